"""The resolved precision is part of every key whose output it changes, and of no other."""

from __future__ import annotations

from pathlib import Path

import pytest

from distill.config import load_config
from distill.stages.plan import plan_augment
from tasks.stage import stage_key
from tests.stage_inputs import every_input

TINY = Path(__file__).resolve().parents[2] / "configs" / "tiny.yaml"


@pytest.fixture()
def configs():  # noqa: ANN201
    config = load_config(TINY)
    return config.model_copy(update={"precision": "fp32"}), config.model_copy(update={"precision": "bf16"})


def test_training_and_evaluation_keys_follow_precision(configs) -> None:  # noqa: ANN001
    fp32, bf16 = configs
    stage = fp32.stages[0].name
    for first, second in zip(every_input(fp32, stage), every_input(bf16, stage), strict=True):
        if first.kind in ("augment_training_data", "export"):
            continue
        assert first.key_payload()["precision"] == "fp32", first.kind
        assert stage_key(first) != stage_key(second), first.kind


def test_augmentation_key_ignores_precision(configs) -> None:  # noqa: ANN001
    fp32, bf16 = configs
    assert fp32.augmentation is not None
    assert stage_key(plan_augment(fp32)) == stage_key(plan_augment(bf16))


def test_export_key_ignores_precision(configs) -> None:  # noqa: ANN001
    # The export graph and its check's reference run in fp32 whatever the run trains at (a bf16 run's student is
    # saved in fp32); the export is then evaluated like any model.
    fp32, bf16 = configs
    keys = [{stage_key(one) for one in every_input(config, config.stages[0].name) if one.kind == "export"}
            for config in (fp32, bf16)]  # fmt: skip
    assert len(keys[0]) == 2 and keys[0] == keys[1]
