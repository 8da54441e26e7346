"""The resolved precision is part of every key whose output it changes, and of no other."""

from __future__ import annotations

from pathlib import Path

import pytest

from distill.config import load_config
from tasks.augment import AUGMENT
from tasks.distill import baseline_spec, intermediate_spec, prediction_spec
from tasks.evaluate import EVALUATE
from tasks.teacher import FINETUNE_TEACHER

TINY = Path(__file__).resolve().parents[2] / "configs" / "tiny.yaml"


@pytest.fixture()
def configs():  # noqa: ANN201
    config = load_config(TINY)
    return config.model_copy(update={"precision": "fp32"}), config.model_copy(update={"precision": "bf16"})


def test_training_and_evaluation_keys_follow_precision(configs) -> None:  # noqa: ANN001
    fp32, bf16 = configs
    stage = fp32.stages[0].name
    for spec in (FINETUNE_TEACHER, EVALUATE, intermediate_spec(stage), prediction_spec(stage), baseline_spec(stage)):
        assert spec.config_of(fp32)["precision"] == "fp32", spec.name
        assert spec.config_of(fp32) != spec.config_of(bf16), spec.name


def test_augmentation_key_ignores_precision(configs) -> None:  # noqa: ANN001
    fp32, bf16 = configs
    assert AUGMENT.config_of(fp32) == AUGMENT.config_of(bf16)
