"""A run with `augmentation:`: the training data is augmented once and every student trains on it."""

from __future__ import annotations

from pathlib import Path

from distill.augment.config import AugmentConfig
from flows.progressive import progressive_distillation
from tests.flows.conftest import tiny_config


def test_augments_once_for_every_stage_and_caches_across_worker_counts(
    tmp_path: Path, tiny_mlm: Path, tiny_vectors: Path
) -> None:
    config = tiny_config(tmp_path / "artifacts")
    first = config.stages[0].model_copy(update={"intermediate_layer": None, "baseline": False})
    second = first.model_copy(update={"name": "tiny-small-t4"})
    second.prediction_layer = second.prediction_layer.model_copy(update={"temperature": 4.0})
    augmentation = AugmentConfig(method="tinybert", factor=2, mlm=str(tiny_mlm), vectors=str(tiny_vectors))
    config = config.model_copy(update={"stages": [first, second], "augmentation": augmentation})

    stages = {s["name"]: s for s in progressive_distillation(config)["stages"]}
    augment = stages["augment_training_data"]
    assert augment["status"] == "completed"
    assert augment["metrics"]["answers_kept"] == augment["metrics"]["answers_checked"] > 0
    assert augment["metrics"]["output_questions"] == 3 * 352  # 352 generated questions, original + 2 copies
    assert [name for name in stages if name.startswith("augment")] == ["augment_training_data"]  # once
    teacher_features = stages["finetune_teacher"]["metrics"]["train_features"]
    for name in ("distill_tiny-small", "distill_tiny-small-t4"):
        assert stages[name]["metrics"]["train_questions"] == 3 * 352
        assert stages[name]["metrics"]["train_features"] >= 3 * teacher_features - 5

    # Another worker count gives the same bytes, so nothing is recomputed.
    faster = config.model_copy(update={"augmentation": augmentation.model_copy(update={"workers": 2})})
    again = progressive_distillation(faster)["stages"]
    assert {s["name"]: s["status"] for s in again} == {name: "cached" for name in stages}
