"""`tracking:`: TensorBoard event files and MLflow runs (on the session's `mlflow server`) from a real training
stage, one folder or run per stage when stages run side by side in threads, resumed and interrupted trainings,
cache keys that ignore tracking, and one-line errors for a bad section or a missing package."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from transformers import TrainerCallback

from distill.config import RunConfig, TrackingConfig, load_config, parse_config
from distill.errors import ConfigError
from distill.preflight import check_tracking
from distill.stages import teacher as teacher_stage
from distill.stages.plan import plan_teacher
from distill.store.artifacts import LOSS_CURVE, StageDirectory
from distill.training.tracking import STAGE_TAG, MLflowRun, StageTrackers, TrackedStage, stage_trackers
from tasks.compute import process_slot
from tasks.stage import stage_key
from tests.flows.conftest import tiny_teacher
from tests.stage_inputs import every_input

TINY = Path(__file__).resolve().parents[2] / "configs" / "tiny.yaml"


def scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar in a TensorBoard run folder, as TensorBoard itself reads it: tag -> [(step, value)]."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder))
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def train_tracked(
    config: RunConfig,
    stage_name: str,
    tracking: TrackingConfig,
    extra: Sequence[TrainerCallback] = (),
    started: list[StageTrackers] | None = None,
    ready: threading.Barrier | None = None,
) -> tuple[StageTrackers, dict[str, Any]]:
    """The teacher stage body with the trackers `tracking` asks for (and `extra` callbacks after them): its
    trackers (also put in `started` as soon as they exist, for a training that raises) and metrics.

    It trains on the process's compute slot, as a stage task does; with `ready`, once its trackers exist it
    waits for the other stages' trackers before training.
    """
    inputs = plan_teacher(config)
    directory = StageDirectory(Path(config.artifact_root), inputs.kind, stage_key(inputs))
    directory.prepare()
    with stage_trackers(tracking, TrackedStage(config.name, stage_name, directory.key)) as trackers:
        if started is not None:
            started.append(trackers)
        if ready is not None:
            ready.wait(timeout=60)
        with process_slot():
            metrics = teacher_stage.finetune_teacher(inputs, directory, callbacks=[*trackers.callbacks, *extra])
    return trackers, metrics


def side_by_side(tmp_path: Path, rates: dict[str, float], tracking: TrackingConfig) -> dict[str, StageTrackers]:
    """A stage per learning rate, each in its own thread as the flow submits independent stages: every stage's
    trackers exist before any trains, and the trainings take turns on the compute slot (tasks/compute.py)."""
    ready = threading.Barrier(len(rates))
    trackers: dict[str, StageTrackers] = {}
    errors: list[BaseException] = []

    def train(name: str) -> None:
        try:
            config = tiny_teacher(tmp_path / name, learning_rate=rates[name], max_steps=6)
            trackers[name], _ = train_tracked(config, name, tracking, ready=ready)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=train, args=(name,)) for name in rates]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    return trackers


def train_teacher(
    config: RunConfig, stage_name: str, tracking: TrackingConfig, extra: Sequence[TrainerCallback] = ()
) -> tuple[Path, dict[str, Any]]:
    """`train_tracked` with TensorBoard: (the stage's event folder, the stage's metrics)."""
    trackers, metrics = train_tracked(config, stage_name, tracking, extra)
    assert trackers.tensorboard_dir is not None
    return trackers.tensorboard_dir, metrics


def test_a_training_stage_writes_its_loss_to_its_own_tensorboard_folder(tmp_path: Path) -> None:
    config = tiny_teacher(tmp_path / "artifacts")
    tracking = TrackingConfig(tensorboard=str(tmp_path / "tb"))
    folder, metrics = train_teacher(config, "finetune-teacher", tracking)
    assert folder.parent == tmp_path / "tb" / "tiny" / "finetune-teacher"
    assert folder.name == stage_key(plan_teacher(config))
    curves = scalars(folder)
    # logging_steps 2 over 4 steps: the loss at steps 2 and 4, as the Trainer logged it.
    assert [step for step, _ in curves["train/loss"]] == [2, 4]
    assert all(value > 0 for _, value in curves["train/loss"])
    assert curves["train/train_loss"][0][1] == pytest.approx(metrics["train_loss"], rel=1e-5)
    # Nothing of TensorBoard's lands in the stage directory, whose files are its content hash.
    assert not list((tmp_path / "artifacts").rglob("events.out.tfevents*"))


class Interrupt(TrainerCallback):
    """Stops training with an error once step `step` is logged: a crash, after the trackers have seen that step."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_log(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.global_step == self.step:
            raise KeyboardInterrupt


def test_a_resumed_stage_continues_its_curve_with_one_value_per_step(tmp_path: Path) -> None:
    config = tiny_teacher(tmp_path / "artifacts", logging_steps=1, save_steps=2)
    tracking = TrackingConfig(tensorboard=str(tmp_path / "tb"))
    with pytest.raises(KeyboardInterrupt):  # killed after logging step 3; its newest checkpoint is step 2
        train_teacher(config, "finetune-teacher", tracking, extra=[Interrupt(3)])
    folder, _ = train_teacher(config, "finetune-teacher", tracking)  # resumes from checkpoint-2
    loss = scalars(folder)["train/loss"]
    assert [step for step, _ in loss] == [1, 2, 3, 4]  # the first attempt's step 3 is purged, not shown twice
    history = json.loads((tmp_path / "artifacts" / "finetune_teacher" / folder.name / LOSS_CURVE).read_text())
    assert [value for _, value in loss] == pytest.approx([entry["loss"] for entry in history], rel=1e-5)


def test_stages_side_by_side_keep_their_own_tensorboard_curves(tmp_path: Path) -> None:
    """Each tracker holds its folder: TENSORBOARD_LOGGING_DIR would be one for every stage of the process."""
    rates = {"fast": 2e-3, "slow": 1e-6}
    trackers = side_by_side(tmp_path, rates, TrackingConfig(tensorboard=str(tmp_path / "tb")))
    assert trackers["fast"].tensorboard_dir != trackers["slow"].tensorboard_dir
    for name, rate in rates.items():
        folder = trackers[name].tensorboard_dir
        assert folder is not None and folder.parent.name == name
        curves = scalars(folder)
        assert [step for step, _ in curves["train/loss"]] == [2, 4, 6]  # one curve, not two interleaved
        # Linear decay over 6 steps: step 2, the first logged, trained at 5/6 of the stage's own peak rate.
        assert max(value for _, value in curves["train/learning_rate"]) == pytest.approx(rate * 5 / 6, rel=1e-4)


def test_stages_side_by_side_log_to_their_own_mlflow_runs(mlflow_server: str, tmp_path: Path) -> None:
    """Each tracker holds its client, run id and tags: mlflow's fluent API has one tracking URI and experiment
    per process, and MLFLOW_TAGS would be one for every stage."""
    from mlflow import MlflowClient

    rates = {"fast": 2e-3, "slow": 1e-6}
    trackers = side_by_side(tmp_path, rates, TrackingConfig(mlflow=mlflow_server, experiment="side-by-side"))
    client = MlflowClient(mlflow_server)
    for name, rate in rates.items():
        tracked = trackers[name].mlflow_run
        assert tracked is not None
        run = client.get_run(tracked.run_id)
        assert run.info.run_name == name and run.data.tags[STAGE_TAG] == name and run.info.status == "FINISHED"
        assert float(run.data.params["learning_rate"]) == rate
        assert sorted(metric.step for metric in client.get_metric_history(run.info.run_id, "loss")) == [2, 4, 6]
        rates_logged = client.get_metric_history(run.info.run_id, "learning_rate")
        assert max(metric.value for metric in rates_logged) == pytest.approx(rate * 5 / 6, rel=1e-4)


def test_an_interrupted_training_marks_its_mlflow_run_failed(mlflow_server: str, tmp_path: Path) -> None:
    from mlflow import MlflowClient

    config = tiny_teacher(tmp_path / "artifacts", logging_steps=1)
    tracking = TrackingConfig(mlflow=mlflow_server, experiment="interrupted")
    started: list[StageTrackers] = []
    with pytest.raises(KeyboardInterrupt):
        train_tracked(config, "finetune-teacher", tracking, extra=[Interrupt(3)], started=started)
    run = started[0].mlflow_run
    assert run is not None
    client = MlflowClient(mlflow_server)
    assert client.get_run(run.run_id).info.status == "FAILED"
    assert sorted(metric.step for metric in client.get_metric_history(run.run_id, "loss")) == [1, 2, 3]


def test_mlflow_links_point_at_the_run_page_without_credentials() -> None:
    run = MLflowRun("https://user:secret@mlflow.example:8443/", "7", "abc")
    assert run.ui_url == "https://mlflow.example:8443/#/experiments/7/runs/abc"
    assert MLflowRun("sqlite:///mlflow.db", "7", "abc").ui_url is None  # a local store has no UI address


def test_tracking_changes_no_stage_key() -> None:
    """Tracking observes: a config that differs only in `tracking` computes (and caches) the same stages."""
    config = load_config(TINY)
    tracked = config.model_copy(
        update={"tracking": TrackingConfig(tensorboard="/tmp/tb", mlflow="http://127.0.0.1:5000", experiment="e")}
    )
    stage = config.stages[0].name
    plain = [stage_key(one) for one in every_input(config, stage)]
    assert [stage_key(one) for one in every_input(tracked, stage)] == plain
    assert len(set(plain)) == len(plain) > 5


BASE = {"name": "t", "data": {"task": "qa", "train": "a.json", "eval": "b.json"}, "teacher": {"model": "minilm"}}


@pytest.mark.parametrize(
    ("tracking", "expected"),
    [
        ({"tensorbord": "tb"}, "run.yaml: tracking.tensorbord: unknown key (got 'tb')"),
        ({}, "run.yaml: tracking: set tensorboard (a folder), mlflow (a tracking URI) or both, or remove the section"),
        ({"tensorboard": "tb", "experiment": "e"}, "run.yaml: tracking: experiment names an MLflow experiment"),
        ({"mlflow": ""}, "run.yaml: tracking.mlflow: String should have at least 1 character (got '')"),
        ("tb", "run.yaml: tracking: Input should be a valid dictionary"),
    ],
)
def test_a_bad_tracking_section_is_one_line(tracking: Any, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({**BASE, "tracking": tracking}, source="run.yaml")
    assert str(caught.value).startswith(expected) and "\n" not in str(caught.value)


def test_a_good_tracking_section() -> None:
    config = parse_config({**BASE, "tracking": {"tensorboard": "tb", "mlflow": "sqlite:///m.db"}})
    assert config.tracking is not None and config.tracking.trackers == ["tensorboard", "mlflow"]
    assert parse_config(BASE).tracking is None


@pytest.mark.parametrize("package", ["mlflow", "tensorboard"])
def test_a_tracker_that_is_not_installed_fails_preflight_naming_the_extra(
    package: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, package, None)  # how Python marks a module that cannot be imported
    tracking = TrackingConfig(**{package: str(tmp_path / "x") if package == "tensorboard" else "sqlite:///m.db"})
    with pytest.raises(ConfigError) as caught:
        check_tracking(tracking)
    assert str(caught.value) == (
        f"tracking.{package}: the {package} package is not installed (pip install 'distill[tracking]')"
    )


def test_an_mlflow_server_that_does_not_answer_fails_preflight() -> None:
    import socket

    with socket.socket() as unused:  # a port nothing listens on: bound, never listening
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
        with pytest.raises(ConfigError, match=rf"tracking.mlflow: nothing answers at 127.0.0.1:{port} \("):
            check_tracking(TrackingConfig(mlflow=f"http://127.0.0.1:{port}"))


def test_an_unwritable_tensorboard_folder_fails_preflight(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match=r"tracking.tensorboard: .*file/tb is not writable"):
        check_tracking(TrackingConfig(tensorboard=str(tmp_path / "file" / "tb")))
