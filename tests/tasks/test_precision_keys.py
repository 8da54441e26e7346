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
        if first.kind == "augment_training_data":
            continue
        assert first.key_payload()["precision"] == "fp32", first.kind
        assert stage_key(first) != stage_key(second), first.kind


def test_augmentation_key_ignores_precision(configs) -> None:  # noqa: ANN001
    fp32, bf16 = configs
    assert fp32.augmentation is not None
    assert stage_key(plan_augment(fp32)) == stage_key(plan_augment(bf16))
