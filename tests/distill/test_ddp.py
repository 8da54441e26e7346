"""`training.devices: 2` on the CPU: two real gloo processes under real torchrun, through the stage bodies.

Each comparison trains the same tiny dropout-free model on the same data and seed twice: one process with
batch 2b, and two processes with batch b each. DDP averages the two ranks' gradients, so when the global
batch holds the same samples the weights after training must agree up to float rounding. Two ranks that
silently trained alone would each take steps on half the data and end elsewhere (and report world size 1).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from distill.config import RunConfig
from distill.data.synthetic import vocabulary
from distill.errors import ConfigError, DataError, TransientError
from distill.models.tiny import build_tiny_bert
from distill.preflight import check_devices, check_tracking_devices
from distill.stages import distributed as on_devices
from distill.stages.intermediate import distill_intermediate_layers
from distill.stages.plan import model_artifact, plan_intermediate, plan_prediction, plan_teacher
from distill.stages.prediction import distill_prediction_layer
from distill.stages.teacher import finetune_teacher
from distill.store.artifacts import StageDirectory

ROWS, BATCH, STEPS = 32, 4, 4  # one epoch: 32 rows in 4 global batches of 8 (two ranks x 4, or one x 8)
# fp32 weights after 4 AdamW steps: the ranks' gradients are summed in another order than one process sums its
# batch, so they differ in the last bits (~1e-7 relative) and Adam's normalisation carries that into the update;
# 1e-5 is far below a real difference (one step at lr 1e-3 moves a weight by ~1e-3).
ATOL = 1e-5


@pytest.fixture(scope="module")
def teacher_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny classifier without dropout: a training run is then a function of its data and seed alone."""
    path = build_tiny_bert(tmp_path_factory.mktemp("ddp-teacher"), task="classification", words=vocabulary())
    config = json.loads((path / "config.json").read_text())
    config.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, classifier_dropout=0.0)
    (path / "config.json").write_text(json.dumps(config))
    return path


def run_config(
    root: Path, teacher: Path, *, devices: int, batch_size: int, train: Any = None, **training: Any
) -> RunConfig:
    settings = {
        "max_steps": STEPS,
        "batch_size": batch_size,
        "devices": devices,
        "learning_rate": 1e-3,
        "warmup_ratio": 0.0,
        "logging_steps": 1,
        "save_steps": 2,
        **training,
    }
    return RunConfig.model_validate(
        {
            "name": "ddp",
            "seed": 7,
            "precision": "fp32",  # bf16 autocast would make the comparison about rounding, not about DDP
            "artifact_root": str(root),
            "data": {
                "task": "classification",
                "train": train or {"path": "synthetic:sentiment", "split": "train"},
                "eval": {"path": "synthetic:sentiment", "split": "validation"},
                "labels": ["0", "1"],
                "max_seq_length": 24,
                "max_train_samples": ROWS,
            },
            "teacher": {"model": str(teacher), "training": settings},
            "stages": [
                {
                    "name": "s",
                    "student": {"layers": [0]},
                    "prediction_layer": {"loss_weight": 0.5, "training": settings},
                }
            ],
        }
    )


def stage_directory(root: Path, kind: str) -> StageDirectory:
    directory = StageDirectory(root, kind, "key")
    directory.prepare()
    return directory


def weights(directory: StageDirectory) -> dict[str, torch.Tensor]:
    return load_file(str(directory.model_dir / "model.safetensors"))


def max_difference(first: dict[str, torch.Tensor], second: dict[str, torch.Tensor]) -> float:
    assert first.keys() == second.keys()
    return max(float((first[name] - second[name]).abs().max()) for name in first)


def logged_terms(directory: StageDirectory) -> list[float]:
    """kd_loss and hard_loss at each logged step, from the last checkpoint's trainer state."""
    state = json.loads((directory.checkpoints / f"checkpoint-{STEPS}" / "trainer_state.json").read_text())
    return [entry[name] for entry in state["log_history"] if "kd_loss" in entry for name in ("kd_loss", "hard_loss")]


def files(directory: StageDirectory) -> set[str]:
    return {str(path.relative_to(directory.path)) for path in directory.path.rglob("*") if path.is_file()}


def assert_same_files_but_rank_states(single: StageDirectory, ranks: StageDirectory) -> None:
    """The two-process stage wrote what the one-process stage wrote (rank 0's files), and the only trace of
    rank 1 is HF's per-rank RNG state in each checkpoint, which a resumed rank 1 needs."""
    one, two = files(single), files(ranks)
    rank_states = {name for name in two if name.endswith("rng_state_1.pth")}
    assert rank_states and all(name.startswith("checkpoints/checkpoint-") for name in rank_states)
    renamed = {name.replace("rng_state_0.pth", "rng_state.pth") for name in two - rank_states}
    assert renamed == one


@dataclass(frozen=True)
class MirroredDirectory(StageDirectory):
    """A stage directory whose root is an object store, as far as the launching process sees: it records what it
    is handed to mirror (the store's own copying is tested in tests/distill/test_remote_store.py)."""

    mirrored: list[tuple[str, list[str]]] = field(default_factory=list)

    def checkpoint_saved(self, folder: Path) -> None:
        self.mirrored.append((folder.name, sorted(child.name for child in folder.iterdir())))


def torchelastic_folders() -> set[Path]:
    return set(Path(tempfile.gettempdir()).glob("torchelastic_*"))


class TeacherRuns:
    """The teacher stage trained by one process (batch 2b) and by two (batch b each), and the latter's output."""

    def __init__(self, root: Path, teacher: Path) -> None:
        self.single = stage_directory(root / "one", "finetune_teacher")
        self.ranks = MirroredDirectory(root / "two", "finetune_teacher", "key", remote=object())  # type: ignore[arg-type]
        self.ranks.prepare()
        self.ranks_inputs = plan_teacher(run_config(root / "two", teacher, devices=2, batch_size=BATCH))
        self.single_metrics = finetune_teacher(
            plan_teacher(run_config(root / "one", teacher, devices=1, batch_size=2 * BATCH)), self.single
        )
        self.lines: list[str] = []
        before = torchelastic_folders()
        started = time.perf_counter()
        self.ranks_metrics = finetune_teacher(self.ranks_inputs, self.ranks, output=self.lines.append)
        print(f"two-process teacher stage: {time.perf_counter() - started:.1f} s")
        self.torchelastic_left = torchelastic_folders() - before


@pytest.fixture(scope="module")
def teacher_runs(teacher_path: Path, tmp_path_factory: pytest.TempPathFactory) -> TeacherRuns:
    return TeacherRuns(tmp_path_factory.mktemp("teacher-runs"), teacher_path)


def test_teacher_on_two_cpu_processes_trains_as_one_with_twice_the_batch(teacher_runs: TeacherRuns) -> None:
    single, ranks = teacher_runs.single_metrics, teacher_runs.ranks_metrics
    # The Trainer trained as one group of two (a rank alone would say 1), on the global batch of one process.
    assert single["train_devices"] == 1 and ranks["train_devices"] == 2
    assert ranks["train_steps"] == single["train_steps"] == STEPS
    difference = max_difference(weights(teacher_runs.single), weights(teacher_runs.ranks))
    print(f"max weight difference, teacher: {difference:.3g}")
    assert difference <= ATOL
    assert ranks["train_loss"] == pytest.approx(single["train_loss"], abs=1e-5)
    assert_same_files_but_rank_states(teacher_runs.single, teacher_runs.ranks)
    # Rank 0's progress lines reach the stage's output unprefixed.
    assert any(line.startswith(f"step {STEPS}/{STEPS}") for line in teacher_runs.lines), teacher_runs.lines
    # torchrun's logs went into the launch's scratch folder, removed with it.
    assert not teacher_runs.torchelastic_left


def test_the_launching_process_mirrors_each_checkpoint_rank_0_saved(teacher_runs: TeacherRuns) -> None:
    """The ranks' Trainer runs out of the reach of the stage's MirrorCheckpoints: rank 0 lists each checkpoint in
    the launch's scratch folder, and the launching process (which holds the artifact store) hands it to
    `checkpoint_saved` once every rank's RNG state is in it."""
    saved = [name for name, _ in teacher_runs.ranks.mirrored]
    assert saved == [f"checkpoint-{step}" for step in range(2, STEPS + 1, 2)]
    assert all({"rng_state_0.pth", "rng_state_1.pth", "trainer_state.json"} <= set(names) for _, names in
               teacher_runs.ranks.mirrored)  # fmt: skip


def test_ranks_resume_from_the_newest_checkpoint(teacher_runs: TeacherRuns, tmp_path: Path) -> None:
    """A relaunch finds rank 0's checkpoints (and rank 1's RNG state in them) and trains only what is left."""
    directory = StageDirectory(tmp_path, "finetune_teacher", "key")
    shutil.copytree(teacher_runs.ranks.path, directory.path)
    shutil.rmtree(directory.model_dir)  # as if killed after its last checkpoint
    shutil.rmtree(directory.checkpoints / f"checkpoint-{STEPS}")  # ... and before the final one
    resumed = finetune_teacher(teacher_runs.ranks_inputs, directory)
    assert resumed["resumed_from"] == f"checkpoint-{STEPS // 2}" and resumed["train_devices"] == 2
    # The two steps after the resume are those of the uninterrupted run: same weights, same mean loss.
    assert max_difference(weights(directory), weights(teacher_runs.ranks)) <= ATOL
    assert resumed["train_loss"] == pytest.approx(teacher_runs.ranks_metrics["train_loss"], abs=1e-6)


def test_prediction_layer_on_two_processes_computes_teacher_logits_once(teacher_path: Path, tmp_path: Path) -> None:
    teacher = model_artifact(str(teacher_path))
    single_config = run_config(tmp_path / "one", teacher_path, devices=1, batch_size=2 * BATCH)
    ranks_config = run_config(tmp_path / "two", teacher_path, devices=2, batch_size=BATCH)
    single_inputs = plan_prediction(single_config, teacher, "s", None, None)
    ranks_inputs = plan_prediction(ranks_config, teacher, "s", None, None)
    # devices is training config, so part of the cache key: a new global batch is a new stage output.
    assert single_inputs.key_payload() != ranks_inputs.key_payload()
    single = stage_directory(tmp_path / "one", ranks_inputs.kind)
    ranks = stage_directory(tmp_path / "two", ranks_inputs.kind)

    single_metrics = distill_prediction_layer(single_inputs, single)
    lines: list[str] = []
    started = time.perf_counter()
    ranks_metrics = distill_prediction_layer(ranks_inputs, ranks, output=lines.append)
    print(f"two-process prediction-layer stage: {time.perf_counter() - started:.1f} s")

    assert single_metrics["train_devices"] == 1 and ranks_metrics["train_devices"] == 2
    difference = max_difference(weights(single), weights(ranks))
    print(f"max weight difference, prediction layer: {difference:.3g}")
    assert difference <= ATOL
    assert ranks_metrics["train_loss"] == pytest.approx(single_metrics["train_loss"], abs=1e-5)
    # The logged loss terms cover both ranks' batches, not rank 0's alone.
    single_terms, ranks_terms = logged_terms(single), logged_terms(ranks)
    assert len(ranks_terms) == 2 * STEPS and ranks_terms == pytest.approx(single_terms, abs=1e-5)
    # Rank 0 ran the teacher; rank 1 waited at the barrier and read rank 0's files.
    computed = [line for line in lines if "teacher logits computed" in line]
    reused = [line for line in lines if "teacher logits reused" in line]
    assert len(computed) == 1 and not computed[0].startswith("[rank"), lines
    assert len(reused) == 1 and reused[0].startswith("[rank 1]"), lines
    assert ranks_metrics["teacher_pass_seconds"] > 0
    assert len(list((tmp_path / "two" / "teacher_logits").iterdir())) == 1
    assert_same_files_but_rank_states(single, ranks)


def test_intermediate_layers_on_two_processes_average_their_gradients(teacher_path: Path, tmp_path: Path) -> None:
    """The trainer calls the student's base model past the DDP wrapper, so it averages gradients itself.

    Its losses are means over real tokens, and the mean over a batch is the mean of its halves' means only
    when every sentence has as many tokens: here each is four whole-word tokens. (With sentences of other
    lengths N processes weight tokens a little differently than one process does, as DDP does for any
    token-mean loss.)
    """
    words = [word for word in vocabulary() if word.isalpha()]
    rows = [" ".join(words[(4 * i + k) % len(words)] for k in range(4)) + f"\t{i % 2}\n" for i in range(ROWS)]
    data = tmp_path / "train.tsv"
    data.write_text("sentence\tlabel\n" + "".join(rows))
    teacher = model_artifact(str(teacher_path))
    directories = []
    for devices in (1, 2):
        config = run_config(
            tmp_path / str(devices), teacher_path, devices=devices, batch_size=2 * BATCH // devices, train=str(data)
        )
        raw = config.model_dump()
        raw["stages"][0]["intermediate_layer"] = {"training": raw["stages"][0]["prediction_layer"]["training"]}
        inputs = plan_intermediate(RunConfig.model_validate(raw), teacher, "s", None)
        directory = stage_directory(tmp_path / str(devices), inputs.kind)
        metrics = distill_intermediate_layers(inputs, directory)
        assert metrics["train_devices"] == devices
        directories.append(directory)
    difference = max_difference(weights(directories[0]), weights(directories[1]))
    print(f"max weight difference, intermediate layers: {difference:.3g}")
    assert difference <= ATOL


def _commands() -> list[tuple[int, list[bytes]]]:
    """(pid, command line) of this user's processes."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and entry.stat().st_uid == os.getuid():
            try:
                found.append((int(entry.name), (entry / "cmdline").read_bytes().split(b"\0")))
            except OSError:
                continue
    return found


def _environment(pid: int) -> list[bytes] | None:
    try:
        return Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return None


def _processes(module: str, tag: str) -> dict[int, list[bytes]]:
    """pid -> environment of this user's processes running `module` for this test: `tag`, a variable set in the
    test's environment, is in theirs (inherited), so another DDP run on the machine is not counted."""
    found = {}
    for pid, command in _commands():
        if module.encode() in command and (environment := _environment(pid)) is not None:
            if any(item.startswith(tag.encode() + b"=") for item in environment):
                found[pid] = environment
    return found


def _rank_processes(tag: str) -> dict[int, int]:
    """pid -> rank of this test's processes running a stage's rank."""
    found = {}
    for pid, environment in _processes(on_devices.RANK_MODULE, tag).items():
        ranks = [item.removeprefix(b"RANK=") for item in environment if item.startswith(b"RANK=")]
        if ranks:
            found[pid] = int(ranks[0])
    return found


def _torchrun_processes(tag: str) -> list[int]:
    return list(_processes(on_devices.TORCHRUN_MODULE, tag))


def test_a_failing_rank_fails_the_stage_in_one_line_and_leaves_no_rank_behind(
    teacher_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rank 1 is killed; rank 0 then fails too, at its next collective, maybe in the same second (torchrun's root
    cause would name it): the ranks' own failure reports name rank 1."""
    tag = f"DISTILL_TEST_{uuid.uuid4().hex}"
    monkeypatch.setenv(tag, "1")  # inherited by this test's ranks alone
    config = run_config(tmp_path, teacher_path, devices=2, batch_size=BATCH, max_steps=10_000, save_steps=10_000)
    inputs = plan_teacher(config)
    directory = stage_directory(tmp_path, inputs.kind)
    lines: list[str] = []
    failure: list[BaseException] = []

    def stage() -> None:
        try:
            finetune_teacher(inputs, directory, output=lines.append)
        except BaseException as exc:  # noqa: BLE001 - the test inspects it
            failure.append(exc)

    thread = threading.Thread(target=stage)
    thread.start()
    deadline = time.monotonic() + 120
    while not any(line.startswith("step ") for line in lines):  # both ranks are training
        assert thread.is_alive() and time.monotonic() < deadline, lines
        time.sleep(0.2)
    victim = next(pid for pid, rank in _rank_processes(tag).items() if rank == 1)
    os.kill(victim, 9)
    thread.join(60)
    assert not thread.is_alive()
    (error,) = failure
    message = str(error)
    assert isinstance(error, on_devices.RankFailed) and "\n" not in message
    assert message.startswith("finetune_teacher: rank 1 of 2 failed"), message
    assert not _rank_processes(tag)


def test_a_ranks_user_error_keeps_its_kind(teacher_path: Path, tmp_path: Path) -> None:
    """Both ranks fail to read the training data: a DataError (a user error, not retried), in one line."""
    data = tmp_path / "train.tsv"
    data.write_text("text\tstars\nfine\t5\n")  # not the sentence/label columns the config names
    config = run_config(tmp_path, teacher_path, devices=2, batch_size=BATCH, train=str(data))
    inputs = plan_teacher(config)
    with pytest.raises(DataError, match=r"^finetune_teacher: rank [01] of 2: ") as caught:
        finetune_teacher(inputs, stage_directory(tmp_path, inputs.kind))
    assert "\n" not in str(caught.value)


def report(scratch: Path, rank: int, time_ns: int, **fields: Any) -> None:
    failure = {"time_ns": time_ns, "transient": False, "user_error": None, "collective": False, "type": "X"}
    (scratch / f"failure-{rank}.json").write_text(json.dumps({**failure, "message": f"rank {rank}", **fields}))


def test_the_earliest_failure_report_decides_the_rank_and_the_kind(tmp_path: Path) -> None:
    """What the launching process makes of the ranks' failure reports (the real ones: the two tests above)."""
    torchrun_says = {on_devices.LAUNCHER: ["Root Cause (first observed failure):", "  rank      : 0 (local_rank: 0)"]}
    tails: Any = {**torchrun_says, 0: ["Traceback", "boom"], 1: ["Traceback", "CUDA out of memory"]}
    report(tmp_path, 0, 2_000, type="RuntimeError")
    report(tmp_path, 1, 1_000, transient=True, type="OutOfMemoryError", message="CUDA out of memory")
    error = on_devices.blame("finetune_teacher", 2, 1, tmp_path, tails)
    assert isinstance(error, TransientError)  # retried by the stage task, as a one-process OOM is
    assert str(error) == "finetune_teacher: rank 1 of 2 failed: OutOfMemoryError: CUDA out of memory"
    # A communication failure is another rank's death seen from here: the rank with its own error comes first.
    report(tmp_path, 1, 500, collective=True, type="DistBackendError")
    error = on_devices.blame("finetune_teacher", 2, 1, tmp_path, tails)
    assert isinstance(error, on_devices.RankFailed) and str(error).startswith("finetune_teacher: rank 0 of 2 failed")
    report(tmp_path, 0, 200, user_error="ConfigError", type="ConfigError", message="bad field")
    error = on_devices.blame("finetune_teacher", 2, 1, tmp_path, tails)
    assert type(error) is ConfigError and str(error) == "finetune_teacher: rank 0 of 2: bad field"


def test_more_devices_than_gpus_is_refused_at_preflight(teacher_path: Path, tmp_path: Path) -> None:
    config = run_config(tmp_path, teacher_path, devices=2, batch_size=BATCH)
    check_devices(config, gpus=2)
    one_gpu = r"^teacher\.training\.devices is 2, but this process sees 1 GPU \(CUDA_VISIBLE_DEVICES\)$"
    with pytest.raises(ConfigError, match=one_gpu):
        check_devices(config, gpus=1)
    raw = config.model_dump()
    raw["teacher"]["finetuned"] = True  # its training does not run, so its devices do not count
    raw["stages"][0]["prediction_layer"]["training"]["devices"] = 3
    message = (
        r"^stages\[0\]\.prediction_layer\.training\.devices is 3, but this process sees 2 GPUs "
        r"\(CUDA_VISIBLE_DEVICES\)$"
    )
    with pytest.raises(ConfigError, match=message):
        check_devices(RunConfig.model_validate(raw), gpus=2)


def test_tracking_with_several_devices_is_refused_at_preflight(teacher_path: Path, tmp_path: Path) -> None:
    """The ranks' Trainer runs out of reach of the stage's TensorBoard and MLflow callbacks: refused up front."""
    config = run_config(tmp_path, teacher_path, devices=2, batch_size=BATCH)
    check_tracking_devices(config)
    with_tracking = RunConfig.model_validate({**config.model_dump(), "tracking": {"tensorboard": str(tmp_path)}})
    with pytest.raises(ConfigError, match=r"^teacher\.training\.devices is 2: tracking \(TensorBoard, MLflow\) is not"):
        check_tracking_devices(with_tracking)
    raw = with_tracking.model_dump()
    for section in (raw["teacher"]["training"], raw["stages"][0]["prediction_layer"]["training"]):
        section["devices"] = 1
    check_tracking_devices(RunConfig.model_validate(raw))


def test_every_training_stage_kind_can_run_in_a_rank() -> None:
    from distill.stages.inputs import STAGE_INPUTS, StageInput
    from distill.stages.rank import BODIES

    training = {cls.kind for cls in STAGE_INPUTS if cls.training_settings is not StageInput.training_settings}
    assert training == set(BODIES)


def test_killing_the_stage_process_ends_torchrun_and_its_ranks(teacher_path: Path, tmp_path: Path) -> None:
    """The worker running a two-process stage is killed outright (kill -9): no rank trains on as an orphan."""
    config = run_config(tmp_path, teacher_path, devices=2, batch_size=BATCH, max_steps=10_000, save_steps=1)
    inputs = plan_teacher(config)
    directory = stage_directory(tmp_path, inputs.kind)
    spec = tmp_path / "spec.json"
    on_devices.write_spec(spec, inputs, directory, tmp_path / "result.json")
    stage = "import sys; from pathlib import Path; from distill.stages import distributed as d; " + (
        "inputs, directory, _ = d.read_spec(Path(sys.argv[1])); d.launch(inputs, directory)"
    )
    tag = f"DISTILL_TEST_{uuid.uuid4().hex}"  # inherited by this test's torchrun and ranks alone
    environment = {**os.environ, tag: "1"}
    parent = subprocess.Popen([sys.executable, "-c", stage, str(spec)], cwd=Path(__file__).parents[2], env=environment)
    try:
        deadline = time.monotonic() + 120
        # Both ranks are training once a checkpoint is written (older ones are rotated away: any one will do).
        while not list(directory.checkpoints.glob("checkpoint-*")):
            assert parent.poll() is None and time.monotonic() < deadline
            time.sleep(0.2)
        assert sorted(_rank_processes(tag).values()) == [0, 1]
    finally:
        parent.kill()
        parent.wait()
    deadline = time.monotonic() + 30
    while _rank_processes(tag) or _torchrun_processes(tag):
        assert time.monotonic() < deadline, (_rank_processes(tag), _torchrun_processes(tag))
        time.sleep(0.2)
