"""Bad input, table-driven: each row is one mistake a user makes, fed to the real `distill` entry point.

Every row must end the same way: exit code 2, exactly one line on stderr naming the file,
field or model at fault, and nothing written (no stage directory under the artifact
root, no output file). The CLI runs in-process (seconds for the whole table); one row
also runs as a real process, for the true exit code and stderr.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from distill.config import load_config
from distill.data.synthetic import synthetic_sentiment, synthetic_squad
from distill.models.tiny import build_tiny_bert
from distill.preflight import preflight
from tests.cli.runner import cli, distill

# --------------------------------------------------------------------------- inputs


@dataclass
class Inputs:
    """One row's files: a valid run config (edited by the row) over tiny generated data and models."""

    root: Path
    teacher: Path
    models: dict[str, Path]
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def artifacts(self) -> Path:
        return self.root / "artifacts"

    @property
    def config_path(self) -> Path:
        return self.root / "run.yaml"

    def file(self, name: str, text: str) -> Path:
        path = self.root / name
        path.write_text(text)
        return path

    def train_squad(self, edit: Callable[[dict[str, Any]], Any]) -> None:
        """Rewrite train.json with `edit` applied to its SQuAD object (or replaced by its return value)."""
        obj = synthetic_squad(articles=2, paragraphs=2, facts=3, seed=1)
        obj = edit(obj) or obj
        self.file("train.json", json.dumps(obj))

    def classification(self, train_rows: str | None = None) -> None:
        """Switch the run to sentence classification over TSV files; `train_rows` replaces the training rows."""
        rows = synthetic_sentiment(rows=24, seed=3)
        body = "".join(f"{r['sentence']}\t{r['label']}\n" for r in rows)
        self.file("train.tsv", "sentence\tlabel\n" + (body if train_rows is None else train_rows))
        self.file("eval.tsv", "sentence\tlabel\n" + body)
        self.config["data"] = {
            "task": "classification",
            "train": str(self.root / "train.tsv"),
            "eval": str(self.root / "eval.tsv"),
            "labels": ["0", "1"],
        }

    def stage(self) -> dict[str, Any]:
        return self.config["stages"][0]

    def names(self) -> dict[str, str]:
        """Placeholders the expected fragments may use."""
        return {
            "root": str(self.root),
            "config": str(self.config_path),
            "train": str(self.root / "train.json"),
            "teacher": str(self.teacher),
            **{name: str(path) for name, path in self.models.items()},
        }


def base_config(inputs: Inputs) -> dict[str, Any]:
    """Passes preflight as is (see test_base_config_passes_preflight): each row breaks one thing."""
    return {
        "name": "bad-input",
        "artifact_root": str(inputs.artifacts),
        "data": {
            "task": "qa",
            "train": str(inputs.root / "train.json"),
            "eval": str(inputs.root / "eval.json"),
            "max_seq_length": 64,
            "doc_stride": 16,
        },
        "teacher": {"model": str(inputs.teacher)},
        "stages": [
            {"name": "small", "student": {"layers": [0]}, "intermediate_layer": {"layer_map": "uniform"}},
        ],
    }


@pytest.fixture(scope="module")
def models(tiny_qa_model: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Broken and mismatched models next to the 2-layer tiny teacher."""
    root = tmp_path_factory.mktemp("bad-models")
    other = build_tiny_bert(root / "other-vocab", task="qa", words=["zebra", "quokka", "ibis"])
    truncated = Path(shutil.copytree(tiny_qa_model, root / "truncated"))
    weights = truncated / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    pickled = root / "pickled"
    pickled.mkdir()
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json", "vocab.txt"):
        if (tiny_qa_model / name).is_file():
            shutil.copy(tiny_qa_model / name, pickled / name)
    from safetensors.torch import load_file

    torch.save(load_file(tiny_qa_model / "model.safetensors"), pickled / "pytorch_model.bin")
    return {"other_vocab": other, "truncated": truncated, "pickled": pickled}


@pytest.fixture()
def inputs(tmp_path: Path, tiny_qa_model: Path, models: dict[str, Path]) -> Inputs:
    made = Inputs(tmp_path, tiny_qa_model, models)
    made.train_squad(lambda obj: None)
    made.file("eval.json", json.dumps(synthetic_squad(articles=1, paragraphs=2, facts=3, seed=2)))
    made.config = base_config(made)
    return made


# --------------------------------------------------------------------------- the table
# A row: id, what it breaks (edits `inputs`; returns argv for commands other than `distill run CONFIG`),
# and the fragments the one error line must contain ({name} placeholders: see Inputs.names).

Setup = Callable[[Inputs], list[str] | None]


def set_path(path: str, value: Any) -> Setup:
    """Set a dotted config field, e.g. 'stages.0.prediction_layer.temperature'."""

    def setup(inputs: Inputs) -> None:
        *parents, last = path.split(".")
        node: Any = inputs.config
        for part in parents:
            node = node[int(part)] if part.isdigit() else node.setdefault(part, {})
        node[last] = value

    return setup


def together(*setups: Setup) -> Setup:
    """Several edits in one row: a mistake made of settings that are fine alone."""

    def setup(inputs: Inputs) -> None:
        for each in setups:
            each(inputs)

    return setup


def write(name: str, text: str) -> Setup:
    def setup(inputs: Inputs) -> None:
        inputs.file(name, text)

    return setup


def squad(edit: Callable[[dict[str, Any]], Any]) -> Setup:
    return lambda inputs: inputs.train_squad(edit)


def shift_first_answer(obj: dict[str, Any]) -> None:
    obj["data"][0]["paragraphs"][0]["qas"][0]["answers"][0]["answer_start"] += 1


def student(spec: dict[str, Any], *, intermediate: Any = "uniform") -> Setup:
    def setup(inputs: Inputs) -> None:
        inputs.stage()["student"] = spec
        if intermediate is None:
            inputs.stage().pop("intermediate_layer")
        else:
            inputs.stage()["intermediate_layer"] = {"layer_map": intermediate}

    return setup


def second_stage(spec: dict[str, Any]) -> Setup:
    """A progressive second stage, taught by the first stage's 1-layer student."""

    def setup(inputs: Inputs) -> None:
        inputs.config["stages"].append({"name": "smaller", "teacher": "previous", "student": spec})

    return setup


def sweep(
    spec: dict[str, Any], *, validation: bool = True, stage: dict[str, Any] | None = None, version_2: bool | None = None
) -> Setup:
    """A sweep on the first stage; with `validation`, a validation file of its own (articles unseen elsewhere);
    `stage` fields replace the stage's, `version_2` sets data.version_2_with_negative."""

    def setup(inputs: Inputs) -> None:
        if validation:
            inputs.file("validation.json", json.dumps(synthetic_squad(articles=1, paragraphs=2, facts=3, seed=5)))
            inputs.config["data"]["validation"] = str(inputs.root / "validation.json")
        if version_2 is not None:
            inputs.config["data"]["version_2_with_negative"] = version_2
        inputs.stage().update(stage or {})
        inputs.stage()["sweep"] = spec

    return setup


def model_path(name: str) -> Setup:
    def setup(inputs: Inputs) -> None:
        inputs.config["teacher"]["model"] = str(inputs.models[name])

    return setup


def finetuned_teacher_without_train_data(inputs: Inputs) -> None:
    inputs.config["teacher"]["finetuned"] = True
    del inputs.config["data"]["train"]


def unwritable_artifacts(inputs: Inputs) -> list[str]:
    # A path under a regular file: not writable even for root, unlike a chmod-ed directory.
    blocker = inputs.file("blocker", "")
    return ["run", str(inputs.config_path), "--artifacts", str(blocker / "artifacts")]


def evaluate_bad_data(inputs: Inputs) -> list[str]:
    inputs.train_squad(shift_first_answer)
    output = inputs.root / "predictions.json"
    return [
        "evaluate",
        "--model",
        str(inputs.teacher),
        "--data",
        str(inputs.root / "train.json"),
        "--output",
        str(output),
        "--max-seq-length",
        "64",
        "--doc-stride",
        "16",
    ]


def score_malformed_predictions(inputs: Inputs) -> list[str]:
    return ["score", str(inputs.root / "eval.json"), str(inputs.file("p.json", '{"q": '))]


def validate_repeated_labels(inputs: Inputs) -> list[str]:
    inputs.classification()
    inputs.config["data"]["labels"] = ["0", "0"]
    return ["validate", str(inputs.config_path)]


def validate_unknown_key(inputs: Inputs) -> list[str]:
    inputs.config["data"]["doc_strid"] = 3
    return ["validate", str(inputs.config_path)]


CASES: list[tuple[str, Setup, list[str]]] = [
    # data files
    ("malformed-json", write("train.json", '{"data": [}'), ["{train}", "malformed JSON at line 1"]),
    ("squad-without-data", squad(lambda obj: {"version": "v2.0"}), ["{train}", "'data' list"]),
    ("squad-without-paragraphs", squad(lambda obj: {"data": [{"title": "t"}]}), ["{train}", "missing 'paragraphs'"]),
    (
        "squad-without-qas",
        squad(lambda obj: {"data": [{"title": "t", "paragraphs": [{"context": "c"}]}]}),
        ["{train}", "missing 'qas'"],
    ),
    ("answer-start-mismatch", squad(shift_first_answer), ["{train}", "syn-1-0-0-0", "answer_start"]),
    ("empty-squad", squad(lambda obj: {"data": []}), ["{train}", "dataset is empty"]),
    ("empty-tsv", lambda i: i.classification(train_rows=""), ["train.tsv", "dataset is empty"]),
    (
        "label-outside-label-set",
        lambda i: i.classification(train_rows="a fine film .\tmaybe\n"),
        ["train.tsv", "label 'maybe' is not in the label set"],
    ),
    (
        "labels-repeat",  # not "row N: label '1' is not in the label set", found later in the data
        together(lambda i: i.classification(), set_path("data.labels", ["0", "1", "0"])),
        ["{config}", "data.labels: labels repeat: ['0']"],
    ),
    ("missing-data-file", set_path("data.eval", "{root}/missing.json"), ["missing.json", "file not found"]),
    (
        "finetuned-teacher-without-train-data",
        finetuned_teacher_without_train_data,
        ["data.train", "training source is required"],
    ),
    (
        "validation-overlaps-eval",
        set_path("data.validation", "{root}/eval.json"),
        ["eval.json", "data.validation_articles and data.eval_articles overlap", "held-out questions"],
    ),
    (
        "validation-fraction-leaves-nothing",  # 10% of the 2 training articles is none: found by preflight
        set_path("data.validation_fraction", 0.1),
        ["{train}", "data.validation_fraction 0.1 of 2 training articles holds out 0"],
    ),
    # config values
    ("invalid-yaml", write("run.yaml", "name: [bad\n"), ["{config}", "invalid YAML"]),
    (
        "unknown-key",
        set_path("teacher.training.learning_rat", 0.1),
        ["{config}", "teacher.training.learning_rat: unknown key"],
    ),
    ("wrong-type", set_path("teacher.training.batch_size", "sixteen"), ["{config}", "teacher.training.batch_size"]),
    (
        "validation-articles-without-validation",
        set_path("data.validation_articles", 2),
        ["{config}", "validation_articles needs data.validation"],
    ),
    (
        "validation-source-and-fraction",
        together(set_path("data.validation", "{root}/eval.json"), set_path("data.validation_fraction", 0.5)),
        ["{config}", "set data.validation or data.validation_fraction, not both"],
    ),
    ("validation-fraction-one", set_path("data.validation_fraction", 1), ["{config}", "data.validation_fraction"]),
    (
        "negative-learning-rate",
        set_path("stages.0.prediction_layer.training.learning_rate", -1e-4),
        ["{config}", "stages[0].prediction_layer.training.learning_rate", "-0.0001"],
    ),
    (
        "zero-temperature",
        set_path("stages.0.prediction_layer.temperature", 0),
        ["{config}", "stages[0].prediction_layer.temperature"],
    ),
    (
        "loss-weight-above-one",
        set_path("stages.0.prediction_layer.loss_weight", 1.5),
        ["{config}", "stages[0].prediction_layer.loss_weight"],
    ),
    ("augmentation-factor-zero", set_path("augmentation", {"factor": 0}), ["{config}", "augmentation.factor"]),
    # tracking
    (
        "tracking-unknown-key",
        set_path("tracking", {"tensorbord": "{root}/tb"}),
        ["{config}", "tracking.tensorbord: unknown key"],
    ),
    ("tracking-nothing-to-track", set_path("tracking", {"experiment": "e"}), ["{config}", "tracking: set tensorboard"]),
    (
        "tracking-mlflow-not-listening",  # port 1 (tcpmux): nothing listens there on loopback
        set_path("tracking", {"mlflow": "http://127.0.0.1:1"}),
        ["tracking.mlflow: nothing answers at 127.0.0.1:1", "start the MLflow server or fix the URI"],
    ),
    (
        "fresh-student-width",
        student({"fresh": {"num_layers": 1, "hidden_size": 30, "num_heads": 4, "intermediate_size": 64}}),
        ["{config}", "hidden_size 30 is not divisible by num_heads 4"],
    ),
    # sweeps
    (
        "sweep-unknown-field",
        sweep({"params": {"prediction_layer.temprature": [1, 2]}}),
        ["{config}", "stages[0].sweep.params", "unknown field 'prediction_layer.temprature'"],
    ),
    (
        "sweep-empty-range",
        sweep({"params": {"prediction_layer.temperature": {"low": 4, "high": 1}}}),
        ["{config}", "stages[0].sweep.params", "prediction_layer.temperature", "empty range"],
    ),
    (
        "sweep-empty-values",
        sweep({"params": {"prediction_layer.loss_weight": []}}),
        ["{config}", "stages[0].sweep.params", "prediction_layer.loss_weight", "empty list"],
    ),
    (
        "sweep-zero-trials",
        sweep({"params": {"prediction_layer.temperature": [1, 2]}, "trials": 0}),
        ["{config}", "stages[0].sweep.trials"],
    ),
    (
        "sweep-without-validation-data",
        sweep({"params": {"prediction_layer.temperature": [1, 2]}}, validation=False),
        ["{config}", "stages[0].sweep", "needs validation data", "data.validation_fraction"],
    ),
    (
        "sweep-value-out-of-bounds",
        sweep({"params": {"prediction_layer.loss_weight": [0.5, 1.5]}}),
        ["{config}", "stages[0].sweep.params.prediction_layer.loss_weight", "1.5"],
    ),
    (
        "sweep-metric-of-another-task",
        sweep({"params": {"prediction_layer.temperature": [1, 2]}, "metric": "accuracy"}),
        ["{config}", "stages[0].sweep.metric", "'accuracy'"],
    ),
    (
        "sweep-grid-trial-breaks-a-rule-across-fields",
        sweep(
            {
                "method": "grid",
                "params": {"intermediate_layer.hidden_weight": [0, 1], "intermediate_layer.attention_weight": [0, 1]},
            },
            stage={"intermediate_layer": {"layer_map": "uniform", "embedding_weight": 0}},
        ),
        ["{config}", "stages[0].sweep: the trial", "is not a valid config", "must be > 0"],
    ),
    (
        "sweep-epochs-with-max-steps",
        sweep(
            {"params": {"prediction_layer.training.epochs": [1, 2]}},
            stage={"prediction_layer": {"training": {"max_steps": 5}}},
        ),
        ["{config}", "stages[0].sweep.params.prediction_layer.training.epochs", "max_steps"],
    ),
    (
        "sweep-best-f1-without-abstention",
        sweep({"params": {"prediction_layer.temperature": [1, 2]}, "metric": "best_f1"}, version_2=False),
        ["{config}", "stages[0].sweep.metric", "best_f1", "v1.1"],
    ),
    # models
    (
        "missing-model-path",
        set_path("teacher.model", "{root}/no-such-model"),
        ["no-such-model", "no such model folder"],
    ),
    (
        "hub-id-while-offline",
        set_path("teacher.model", "some-org/not-cached-model"),
        ["some-org/not-cached-model", "offline mode is set", "pass a local path"],
    ),
    ("truncated-safetensors", model_path("truncated"), ["{truncated}", "model.safetensors", "truncated"]),
    ("pickle-weights-without-opt-in", model_path("pickled"), ["{pickled}", "allow_pickle_weights: true"]),
    (
        "vocabularies-differ",
        student({"model": "{other_vocab}"}, intermediate=None),
        ["{teacher}", "{other_vocab}", "different vocabularies"],
    ),
    (
        "layers-beyond-teacher",
        student({"layers": [7]}),
        ["stage 'small'", "student.layers [7]", "{teacher}", "2 layers"],
    ),
    (
        "layer-map-pair-beyond-teacher",
        student({"layers": [0]}, intermediate=[[1, 5]]),
        ["stage 'small'", "intermediate_layer.layer_map", "[1, 5]"],
    ),
    (
        "layer-map-last-deeper-student",
        student(
            {"fresh": {"num_layers": 3, "hidden_size": 32, "num_heads": 2, "intermediate_size": 64}},
            intermediate="last",
        ),
        ["stage 'small'", "layer_map 'last'", "3 layers"],
    ),
    (
        "layers-beyond-previous-student",
        second_stage({"layers": [0, 1]}),
        ["stage 'smaller'", "student.layers [0, 1]", "the student of stage 'small' has 1 layer (0..0)"],
    ),
    # paths and other commands
    ("artifact-root-not-writable", unwritable_artifacts, ["artifact_root", "blocker", "not writable"]),
    ("evaluate-bad-data", evaluate_bad_data, ["{train}", "answer_start"]),
    ("score-malformed-predictions", score_malformed_predictions, ["p.json", "malformed JSON"]),
    ("validate-unknown-key", validate_unknown_key, ["{config}", "data.doc_strid: unknown key"]),
    ("validate-labels-repeat", validate_repeated_labels, ["{config}", "data.labels: labels repeat: ['0']"]),
]


def prepare(inputs: Inputs, setup: Setup) -> list[str]:
    """Apply the row, write the config (unless the row wrote its own) and return the argv."""
    argv = setup(inputs)
    if not inputs.config_path.exists():
        inputs.config_path.write_text(yaml.safe_dump(_fill(inputs.config, inputs.names()), sort_keys=False))
    return argv or ["run", str(inputs.config_path), "--artifacts", str(inputs.artifacts)]


def _fill(value: Any, names: dict[str, str]) -> Any:
    if isinstance(value, dict):
        return {k: _fill(v, names) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, names) for v in value]
    return value.format(**names) if isinstance(value, str) else value


def run_in_process(
    argv: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> tuple[Any, str, str]:
    """`distill ARGV` in this process, with the flow stubbed out: (exit code, stdout, stderr)."""
    # Reaching the flow would mean a check ran too late: fail at once instead of starting Prefect.
    flow_stub = types.ModuleType("flows.progressive")

    def reached_the_flow(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("bad input got past preflight into the flow")

    flow_stub.progressive_distillation = reached_the_flow  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "flows.progressive", flow_stub)
    return cli(argv, monkeypatch, capsys)


def assert_one_line_error(code: int | str | None, stderr: str, fragments: list[str]) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert code == 2, stderr
    assert len(lines) == 1, stderr
    assert lines[0].startswith("distill: error: ")
    for fragment in fragments:
        assert fragment in lines[0], f"{fragment!r} not in {lines[0]!r}"
    return lines[0]


def assert_nothing_written(inputs: Inputs) -> None:
    artifacts = inputs.artifacts
    written = sorted(p.name for p in artifacts.iterdir()) if artifacts.is_dir() else []
    assert written == [], f"artifact root holds {written}"
    assert not artifacts.exists(), "a rejected run left an empty artifact root behind"
    assert not (inputs.root / "predictions.json").exists()


def test_table_has_the_rows_the_issue_asks_for() -> None:
    assert len(CASES) >= 20 and len({case_id for case_id, _, _ in CASES}) == len(CASES)


def test_base_config_passes_preflight(inputs: Inputs) -> None:
    prepare(inputs, lambda i: None)
    preflight(load_config(inputs.config_path))


@pytest.mark.parametrize(("setup", "fragments"), [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_bad_input_fails_with_one_line_and_writes_nothing(
    inputs: Inputs,
    setup: Setup,
    fragments: list[str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = prepare(inputs, setup)
    code, _, stderr = run_in_process(argv, monkeypatch, capsys)
    names = inputs.names()
    assert_one_line_error(code, stderr, [fragment.format(**names) for fragment in fragments])
    assert_nothing_written(inputs)


@pytest.mark.parametrize(
    ("setup", "fragments"),
    [
        (set_path("data.train", "{root}/missing.json"), ["missing.json", "file not found"]),
        (set_path("teacher.model", "{root}/no-such-model"), ["no-such-model", "no such model folder"]),
    ],
    ids=["missing-train-file", "missing-model"],
)
def test_rejected_run_leaves_no_new_artifact_folders(
    inputs: Inputs,
    setup: Setup,
    fragments: list[str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The config's own artifact_root, two folders deep, neither there yet: preflight must not leave them behind.
    new = inputs.root / "new"
    inputs.config["artifact_root"] = str(new / "artifacts")
    prepare(inputs, setup)
    code, out, stderr = run_in_process(["run", str(inputs.config_path)], monkeypatch, capsys)  # no --artifacts
    assert_one_line_error(code, stderr, [fragment.format(**inputs.names()) for fragment in fragments])
    assert out == "" and not new.exists()


def test_preflight_leaves_an_existing_artifact_root_as_it_was(inputs: Inputs) -> None:
    # Passing or not, preflight creates nothing: the flow makes the root; one that exists is kept.
    prepare(inputs, lambda i: None)
    preflight(load_config(inputs.config_path))
    assert not inputs.artifacts.exists()
    inputs.artifacts.mkdir()
    preflight(load_config(inputs.config_path))
    assert inputs.artifacts.is_dir() and list(inputs.artifacts.iterdir()) == []


def test_real_process_exit_code_and_stderr(inputs: Inputs) -> None:
    # A config error: the real process's exit path, in about a second (it fails before torch is imported).
    argv = prepare(inputs, set_path("stages.0.prediction_layer.loss_weight", 1.5))
    result = distill(*argv, timeout=120)
    assert result.stdout == ""
    assert_one_line_error(result.returncode, result.stderr, [str(inputs.config_path), "loss_weight", "1.5"])
    assert_nothing_written(inputs)


def test_a_tracker_that_is_not_installed_fails_naming_the_extra(
    inputs: Inputs, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = prepare(inputs, set_path("tracking", {"mlflow": "sqlite:///{root}/mlflow.db"}))
    monkeypatch.setitem(sys.modules, "mlflow", None)  # how Python marks a module that cannot be imported
    code, _, stderr = run_in_process(argv, monkeypatch, capsys)
    assert_one_line_error(code, stderr, ["tracking.mlflow: the mlflow package is not installed", "distill[tracking]"])
    assert_nothing_written(inputs)


@pytest.mark.parametrize("broken", ["missing-bucket", "unreachable-endpoint", "s3fs-not-installed"])
def test_an_unusable_object_store_fails_in_preflight(
    broken: str,
    inputs: Inputs,
    s3_root: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`--artifacts s3://...` on moto's S3 server (tests/s3_server.py): a probe object put and deleted decides."""
    import boto3

    from distill_cli.server import free_port

    bucket = s3_root.split("/")[2]
    objects = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
    root, fragment = s3_root, {
        "missing-bucket": "bucket does not exist",
        "unreachable-endpoint": "Could not connect",
        "s3fs-not-installed": "pip install 'distill[s3]'",
    }[broken]
    if broken == "missing-bucket":
        root = s3_root.replace(bucket, f"{bucket}-missing")
    elif broken == "unreachable-endpoint":
        monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")  # nothing listens there
    else:
        monkeypatch.setitem(sys.modules, "s3fs", None)  # how Python marks a module that cannot be imported
    cache = inputs.root / "cache"
    monkeypatch.setenv("DISTILL_CACHE_DIR", str(cache))
    prepare(inputs, lambda i: None)
    code, _, stderr = run_in_process(["run", str(inputs.config_path), "--artifacts", root], monkeypatch, capsys)
    assert_one_line_error(code, stderr, [f"artifact_root: {root}", fragment])
    assert not cache.exists(), "a rejected run left its local cache behind"
    assert objects.list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0
