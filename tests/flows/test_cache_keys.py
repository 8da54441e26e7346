"""A stage's cache key is what the stage reads, and its upstream artifacts are known by their bytes.

Three cases a hand-kept key list got wrong: the evaluation batch size (read by the evaluations, once
kept in the teacher's training section), a local student folder (its weights were never fingerprinted),
and a recompute that writes the same bytes (a random build id used to invalidate everything after it).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from distill.config import RunConfig, load_config
from distill.data.synthetic import vocabulary
from distill.models.tiny import build_tiny_bert
from distill.store.artifacts import COMPLETE
from flows.progressive import progressive_distillation
from tests.flows.conftest import TINY

STEPS = {"max_steps": 4, "logging_steps": 2, "save_steps": 100, "warmup_ratio": 0.0}


def small_run(artifact_root: Path, student: dict[str, Any]) -> RunConfig:
    """tiny.yaml cut to a teacher and one prediction-layer student, four steps each (seconds)."""
    config = load_config(TINY)
    stage = config.stages[0].model_copy(
        update={
            "student": config.stages[0].student.model_validate(student),
            "intermediate_layer": None,
            "baseline": False,
            "prediction_layer": config.stages[0].prediction_layer.model_validate({"training": STEPS}),
        }
    )
    teacher = config.teacher.model_copy(update={"training": config.teacher.training.model_validate(STEPS)})
    return config.model_copy(
        update={
            "artifact_root": str(artifact_root),
            "augmentation": None,
            "export": None,
            "stages": [stage],
            "teacher": teacher,
        }
    )


def run(config: RunConfig) -> dict[str, dict]:
    return {stage["name"]: stage for stage in progressive_distillation(config)["stages"]}


def computed(stages: dict[str, dict]) -> set[str]:
    return {name for name, stage in stages.items() if stage["status"] == "completed"}


ALL = {"finetune_teacher", "evaluate_teacher", "distill_tiny-small", "evaluate_tiny-small"}
FRESH = {"fresh": {"num_layers": 1, "hidden_size": 32, "num_heads": 2, "intermediate_size": 64}}


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> tuple[RunConfig, dict[str, dict]]:
    config = small_run(tmp_path_factory.mktemp("keys") / "artifacts", FRESH)
    stages = run(config)
    assert computed(stages) == ALL
    return config, stages


def test_a_new_evaluation_batch_size_reruns_the_evaluations_and_retrains_nothing(
    finished: tuple[RunConfig, dict[str, dict]],
) -> None:
    config, _ = finished
    evaluation = config.evaluation.model_copy(update={"batch_size": 7})
    again = run(config.model_copy(update={"evaluation": evaluation}))
    assert computed(again) == {"evaluate_teacher", "evaluate_tiny-small"}


def test_an_identical_recompute_leaves_its_successors_cached(finished: tuple[RunConfig, dict[str, dict]]) -> None:
    config, stages = finished
    teacher = Path(stages["finetune_teacher"]["uri"])
    build = json.loads((teacher / "manifest.json").read_text())["build_id"]
    (teacher / COMPLETE).unlink()  # the teacher is redone from scratch: same seed, same data, same bytes
    again = run(config)
    assert computed(again) == {"finetune_teacher"}
    assert json.loads((teacher / "manifest.json").read_text())["build_id"] != build  # really rebuilt


def test_new_weights_in_a_local_student_folder_recompute_its_stage(tmp_path: Path) -> None:
    folder = build_tiny_bert(tmp_path / "student", task="qa", words=vocabulary(), num_layers=1, seed=0)
    config = small_run(tmp_path / "artifacts", {"model": str(folder)})
    assert computed(run(config)) == ALL
    assert computed(run(config)) == set()
    build_tiny_bert(folder, task="qa", words=vocabulary(), num_layers=1, seed=1)  # same folder, other weights
    assert computed(run(config)) == {"distill_tiny-small", "evaluate_tiny-small"}
