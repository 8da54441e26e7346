"""Sweeps on a real Prefect server: one teacher pass for every trial, a longer sweep computes only its new
trials, a killed sweep resumes, the choice is made on validation only, and the chosen trial teaches the next
stage.

The run is sentence classification on generated data with a tiny teacher (seconds per trial). Its validation
sentences are others than eval's, with every label flipped: a trial that learns the task scores well on eval
and badly on validation, so a choice made on eval would pick another trial, and a test can tell which set
decided.
"""

from __future__ import annotations

import json
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from distill.config import RunConfig, load_config, parse_config
from distill.data.synthetic import synthetic_sentiment
from distill.data.task_data import load_task_data
from distill.errors import DataError
from distill.evaluation.evaluate import evaluate_classification
from distill.models.loading import load_model, load_tokenizer
from distill.reporting.files import SWEEP_CSV
from distill.store.artifacts import COMPLETE, MANIFEST, content_hash
from flows.progressive import progressive_distillation
from tests.flows.conftest import start_run
from tests.prefect_api import flow_run_artifacts, poll

METRIC = "validation_accuracy"
# Learning rates far apart: trials that learn the task well, partly and hardly at all, so they score apart.
RATES = [1e-5, 3e-4, 3e-3, 1e-2, 3e-2, 1e-3]


def write_tsv(path: Path, rows: list[dict[str, Any]], *, flip: bool = False) -> Path:
    lines = [f"{row['sentence']}\t{1 - int(row['label']) if flip else row['label']}\n" for row in rows]
    path.write_text("sentence\tlabel\n" + "".join(lines))
    return path


def flipped_validation(seen: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Generated sentences that are in neither training nor eval (the run checks that), labels flipped later."""
    texts = {row["sentence"] for row in seen}
    unique = {row["sentence"]: row for row in synthetic_sentiment(rows=400, seed=5) if row["sentence"] not in texts}
    return list(unique.values())


def sweep_config(root: Path, artifacts: Path, *, trials: int) -> Path:
    """Teacher -> swept 1-layer student -> a second stage it teaches; written as YAML for `distill run` too."""
    held_out = synthetic_sentiment(rows=120, seed=2)
    validation = flipped_validation(held_out + synthetic_sentiment(rows=240, seed=0))  # eval + synthetic:sentiment
    training = {"epochs": 2, "batch_size": 16, "warmup_ratio": 0.0, "logging_steps": 5, "save_steps": 10}
    raw = {
        "name": "sweep-test",
        "seed": 42,
        "artifact_root": str(artifacts),
        "data": {
            "task": "classification",
            "train": {"path": "synthetic:sentiment", "split": "train"},
            "eval": str(write_tsv(root / "eval.tsv", held_out)),
            "validation": str(write_tsv(root / "validation.tsv", validation, flip=True)),
            "labels": ["0", "1"],
            "max_seq_length": 32,
        },
        "teacher": {"model": "tiny-bert", "training": {**training, "epochs": 6, "learning_rate": 2e-3}},
        "evaluation": {"latency_seconds": 0.1, "latency_samples": 3, "throughput_batch_size": 8},
        "export": None,  # the sweep is the point here; exports are tested on the tiny chain
        "stages": [
            {
                "name": "swept",
                # A fresh student: it starts knowing nothing, so the rates decide how much it learns.
                "student": {"fresh": {"num_layers": 1, "hidden_size": 32, "num_heads": 2, "intermediate_size": 64}},
                "prediction_layer": {"training": {**training, "learning_rate": 1e-3}},
                "baseline": True,
                "sweep": {
                    "method": "grid",
                    "trials": trials,
                    "params": {"prediction_layer.training.learning_rate": RATES},
                },
            },
            {
                "name": "next",
                "teacher": "previous",
                "student": {"layers": [0]},
                "prediction_layer": {"training": training},
            },
        ],
    }
    path = root / f"sweep-{trials}.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def statuses(outcome: dict[str, Any]) -> dict[str, str]:
    return {stage["name"]: stage["status"] for stage in outcome["stages"]}


def manifest(uri: str) -> dict[str, Any]:
    return json.loads((Path(uri) / MANIFEST).read_text())


def build_id(directory: Path) -> str:
    return json.loads((directory / MANIFEST).read_text())["build_id"]


def trial_rows(outcome: dict[str, Any]) -> list[dict[str, Any]]:
    return [row for row in outcome["sweeps"] if row["trial"] != "baseline"]


@dataclass(frozen=True)
class SweepRuns:
    """A 3-trial sweep, then the same sweep grown to 4 trials, on one artifact root."""

    config: RunConfig
    first: dict[str, Any]
    second: dict[str, Any]
    second_flow_run_id: Any


@pytest.fixture(scope="module")
def sweep_runs(tmp_path_factory: pytest.TempPathFactory, prefect_server: str) -> SweepRuns:
    root = tmp_path_factory.mktemp("sweep")
    states = []
    for trials in (3, 4):
        config = load_config(sweep_config(root, root / "artifacts", trials=trials))
        states.append(progressive_distillation(config, return_state=True))
    first, second = (state.result() for state in states)
    return SweepRuns(config, first, second, states[1].state_details.flow_run_id)


def test_trials_share_one_teacher_pass(sweep_runs: SweepRuns) -> None:
    config, first = sweep_runs.config, sweep_runs.first
    distilled = [s for s in first["stages"] if s["name"].startswith("distill_swept-trial-")]
    assert len(distilled) == 3
    computed_logits = [s["metrics"]["teacher_pass_seconds"] > 0 for s in distilled]
    assert computed_logits == [True, False, False]  # the first trial runs the teacher; the others read its logits
    folder = {s["metrics"]["teacher_logits"] for s in distilled}
    assert len(folder) == 1 and Path(folder.pop()).parent == Path(config.artifact_root) / "teacher_logits"


def test_adding_trials_computes_only_the_new_ones(sweep_runs: SweepRuns) -> None:
    first, second = sweep_runs.first, sweep_runs.second
    assert all(status == "completed" for status in statuses(first).values())
    grown = statuses(second)
    new = {name for name, status in grown.items() if status == "completed"}
    assert {"distill_swept-trial-3", "validate_swept-trial-3"} <= new
    for number in range(3):
        assert grown[f"distill_swept-trial-{number}"] == grown[f"validate_swept-trial-{number}"] == "cached"
    assert grown["finetune_teacher"] == grown["baseline_swept"] == "cached"
    assert [row["cached"] for row in trial_rows(second)] == [True, True, True, False]
    # The rows' settings are the grid's, in order.
    assert [row["prediction_layer.training.learning_rate"] for row in trial_rows(second)] == RATES[:4]


def eval_accuracy(config: RunConfig, model_dir: str) -> float:
    """A model's accuracy on the run's eval data: what a choice made on the test set would look at."""
    data = load_task_data(config.data, need_train=False)
    model, _ = load_model(model_dir, "classification", num_labels=2)
    evaluation = evaluate_classification(
        model, load_tokenizer(model_dir), data.eval, data.label_list, max_seq_length=config.data.max_seq_length
    )
    return evaluation.metrics["accuracy"]


def test_the_choice_is_made_on_validation_only(sweep_runs: SweepRuns) -> None:
    outcome = sweep_runs.second
    rows = trial_rows(outcome)
    values = [row[METRIC] for row in rows]
    chosen = [row for row in rows if row["chosen"]]
    assert len(chosen) == 1 and chosen[0]["trial"] == values.index(max(values))
    # On eval, the test set, another trial is best: the choice did not look at it.
    stages = {s["name"]: s for s in outcome["stages"]}
    on_eval = [
        eval_accuracy(sweep_runs.config, str(Path(stages[f"distill_swept-trial-{row['trial']}"]["uri"]) / "model"))
        for row in rows
    ]
    assert max(on_eval) > on_eval[chosen[0]["trial"]], (values, on_eval)
    swept = next(row for row in outcome["leaderboard"] if row["model"] == "swept")
    assert swept["accuracy"] == pytest.approx(on_eval[chosen[0]["trial"]])
    assert swept["validation_accuracy"] == pytest.approx(chosen[0][METRIC])
    # The baseline is scored on the same validation set, beside the trials.
    baseline = next(row for row in outcome["sweeps"] if row["trial"] == "baseline")
    leaderboard_baseline = next(row for row in outcome["leaderboard"] if row["model"] == "swept-baseline")
    assert baseline[METRIC] == leaderboard_baseline["validation_accuracy"]


def test_the_chosen_trial_teaches_the_next_stage_and_is_reported(sweep_runs: SweepRuns) -> None:
    outcome = sweep_runs.second
    chosen = next(row for row in trial_rows(outcome) if row["chosen"])
    stages = {s["name"]: s for s in outcome["stages"]}
    chosen_student = stages[f"distill_swept-trial-{chosen['trial']}"]
    chosen_content = content_hash(manifest(chosen_student["uri"])["files"])
    assert manifest(stages["evaluate_swept"]["uri"])["upstream"]["model"] == chosen_content
    assert manifest(stages["distill_next"]["uri"])["upstream"]["teacher"] == chosen_content
    # sweep.csv in the run report, with a plot; the sweep-<stage> table artifact in the API.
    report_dir = Path(outcome["report_dir"])
    assert (report_dir / SWEEP_CSV).read_text().count("\n") == 1 + 1 + 4  # header, baseline, trials
    assert (report_dir / "sweep-swept.png").stat().st_size > 1000
    assert "## Sweep: swept" in (report_dir / "report.md").read_text()


def test_the_sweep_table_artifact_reaches_the_api(sweep_runs: SweepRuns) -> None:
    artifacts = poll(lambda: flow_run_artifacts(sweep_runs.second_flow_run_id), lambda a: "sweep-swept" in a, 15)
    data = artifacts["sweep-swept"].data
    table = json.loads(data) if isinstance(data, str) else data
    assert len(table) == 5 and {"trial", METRIC, "train_loss", "seconds", "chosen"} <= set(table[-1])


def test_a_killed_sweep_resumes(sweep_runs: SweepRuns, prefect_server: str) -> None:
    """The sweep grown to 6 trials, killed (-9) once its new trial 4 is scored; the re-run serves the five
    finished trials from the cache and computes only what the kill left undone: trial 5."""
    root = Path(sweep_runs.config.artifact_root).parent
    config = sweep_config(root, root / "artifacts", trials=6)
    validated_dirs = root / "artifacts" / "validate"
    before = {d.name for d in validated_dirs.iterdir() if (d / COMPLETE).is_file()}
    run = start_run(config, prefect_server, log=root / "killed.log")

    def scored() -> set[str]:
        return {d.name for d in validated_dirs.iterdir() if (d / COMPLETE).is_file()} - before

    poll(lambda: scored() or run.poll() is not None, bool, 300, 0.1)
    run.send_signal(signal.SIGKILL)
    run.wait(timeout=30)
    log = (root / "killed.log").read_text()
    assert run.returncode == -signal.SIGKILL and len(scored()) == 1, log[-3000:]

    builds = {name: build_id(validated_dirs / name) for name in scored()}

    outcome = progressive_distillation(load_config(config), return_state=True).result()
    status = statuses(outcome)
    for number in range(4):
        assert status[f"distill_swept-trial-{number}"] == status[f"validate_swept-trial-{number}"] == "cached"
    # Trial 4 finished in the killed run: served as it is (from the cache, or, if the kill came between its
    # files and Prefect's cache record, from its complete directory), never computed again.
    assert {name: build_id(validated_dirs / name) for name in builds} == builds
    trial_4 = next(s for s in outcome["stages"] if s["name"] == "validate_swept-trial-4")
    assert Path(trial_4["uri"]).name in builds
    assert status["distill_swept-trial-5"] == status["validate_swept-trial-5"] == "completed"
    assert len(trial_rows(outcome)) == 6 and sum(row["chosen"] for row in trial_rows(outcome)) == 1


def test_a_failed_upstream_stage_fails_the_sweep_with_its_own_error(tmp_path: Path) -> None:
    """The teacher fails (its validation file repeats a test sentence): the run says so, not 'a score is pending'."""
    config = sweep_config(tmp_path, tmp_path / "artifacts", trials=2)
    test_sentence = (tmp_path / "eval.tsv").read_text().splitlines()[1]
    with open(tmp_path / "validation.tsv", "a") as validation:
        validation.write(test_sentence + "\n")
    with pytest.raises(DataError, match="data.validation and data.eval share 1 texts"):
        progressive_distillation(load_config(config))


def test_a_factor_sweep_augments_per_factor_and_runs_both_steps_per_trial(sweep_runs: SweepRuns) -> None:
    """`augmentation.factor` in a sweep: each trial trains on data augmented with its factor (the configured one
    is the run's augmented data, from the cache), and a stage with an intermediate step runs both per trial.
    On the module's artifact root: the teacher is the one already trained."""
    root = Path(sweep_runs.config.artifact_root).parent
    raw = yaml.safe_load(sweep_config(root, root / "artifacts", trials=2).read_text())
    raw["augmentation"] = {"method": "embedding", "factor": 1, "candidates": 3, "vectors": "glove-6b-50d"}
    stage = raw["stages"][0]
    training = {"epochs": 1, "batch_size": 16, "warmup_ratio": 0.0, "logging_steps": 5, "save_steps": 50}
    stage.update(
        baseline=False,
        intermediate_layer={"training": {**training, "learning_rate": 1e-3}},
        sweep={"method": "grid", "params": {"augmentation.factor": [1, 2]}},
    )
    raw["stages"] = [stage]
    outcome = progressive_distillation(parse_config(raw, source="factor-sweep"))
    status = statuses(outcome)
    assert status["finetune_teacher"] == "cached" and status["augment_training_data"] == "completed"
    assert status["augment_training_data_swept-trial-0"] == "cached"  # factor 1: the run's augmented data
    assert status["augment_training_data_swept-trial-1"] == "completed"
    stages = {s["name"]: s for s in outcome["stages"]}
    rows = [stages[f"augment_training_data_swept-trial-{n}"]["metrics"]["output_rows"] for n in (0, 1)]
    assert rows[1] > rows[0]  # two copies per sentence, not one
    for number in (0, 1):
        assert status[f"intermediate_swept-trial-{number}"] == status[f"distill_swept-trial-{number}"] == "completed"
    assert [row["augmentation.factor"] for row in trial_rows(outcome)] == [1, 2]
    assert all(isinstance(row["augmentation.factor"], int) for row in trial_rows(outcome))
