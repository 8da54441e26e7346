"""Run config parsing: env interpolation, strict keys, one-line errors naming file, field and value."""

from __future__ import annotations

from pathlib import Path

import pytest

from distill.config import ClassificationDataConfig, QADataConfig, interpolate_env, load_config
from distill.errors import ConfigError

VALID = """
name: demo
data:
  task: qa
  train: ${DATA_ROOT:-/data}/squad.json
  eval: ${DATA_ROOT:-/data}/squad.json
  train_articles: 3
  eval_articles: 1
teacher:
  model: minilm
  training:
    learning_rate: 3.0e-5
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "run.yaml"
    path.write_text(text)
    return path


def test_valid_config_gets_defaults_and_env_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATA_ROOT", raising=False)
    config = load_config(write(tmp_path, VALID))
    assert isinstance(config.data, QADataConfig)
    assert config.data.train.path == "/data/squad.json"
    assert config.data.max_seq_length == 384 and config.data.doc_stride == 128
    assert config.teacher.training.learning_rate == 3e-5
    assert config.teacher.trust_remote_code is False
    assert config.artifact_root == "./artifacts"


def test_env_variable_overrides_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATA_ROOT", "/mnt/shared")
    assert load_config(write(tmp_path, VALID)).data.eval.path == "/mnt/shared/squad.json"


def test_interpolation_rules() -> None:
    env = {"SET": "x", "EMPTY": ""}
    assert interpolate_env("${SET}/${EMPTY:-d}/$${LITERAL}", env=env) == "x/d/${LITERAL}"
    assert interpolate_env({"a": ["${SET}", 3]}, env=env) == {"a": ["x", 3]}
    with pytest.raises(ConfigError, match=r"a\.b\[1\]: environment variable NOPE is not set"):
        interpolate_env({"a": {"b": ["ok", "${NOPE}"]}}, env=env)


def test_classification_section_is_chosen_by_task(tmp_path: Path) -> None:
    text = "name: c\ndata: {task: classification, eval: dev.tsv, labels: ['0', '1']}\nteacher: {model: minilm}\n"
    config = load_config(write(tmp_path, text))
    assert isinstance(config.data, ClassificationDataConfig)
    assert config.data.labels == ["0", "1"] and config.data.text_column == "sentence"


@pytest.mark.parametrize(
    ("replace", "with_", "expected"),
    [
        ("learning_rate: 3.0e-5", "learning_rat: 3.0e-5", r"teacher\.training\.learning_rat: unknown key"),
        (
            "learning_rate: 3.0e-5",
            "learning_rate: -1",
            r"teacher\.training\.learning_rate: .*greater than 0 \(got -1\)",
        ),
        (
            "learning_rate: 3.0e-5",
            "learning_rate: fast",
            r"teacher\.training\.learning_rate: .*valid number.* \(got 'fast'\)",
        ),
        ("train_articles: 3", "train_articles: 0", r"data\.train_articles"),
        ("eval_articles: 1", "eval_articles: 1\n  validation_articles: 2", r"data: .*validation_articles needs data\."),
        ("  model: minilm", "  modle: minilm", r"teacher\.model: required field is missing \(and 1 more problem\)"),
        ("name: demo", "name: 'bad name!'", r"name: String should match pattern"),
        ("task: qa", "task: vision", r"data: .*'qa', 'classification'"),
    ],
)
def test_bad_values_name_file_field_and_value(tmp_path: Path, replace: str, with_: str, expected: str) -> None:
    path = write(tmp_path, VALID.replace(replace, with_))
    with pytest.raises(ConfigError, match=expected) as caught:
        load_config(path)
    message = str(caught.value)
    assert message.startswith(str(path)) and "\n" not in message


def test_doc_stride_must_fit_window(tmp_path: Path) -> None:
    path = write(
        tmp_path, VALID.replace("eval_articles: 1", "eval_articles: 1\n  max_seq_length: 64\n  doc_stride: 64")
    )
    with pytest.raises(ConfigError, match="doc_stride .64. must be smaller than max_seq_length .64."):
        load_config(path)


def test_yaml_syntax_error_has_position(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"run\.yaml: invalid YAML at line \d+ column \d+"):
        load_config(write(tmp_path, "name: x\ndata: [unclosed\n"))


@pytest.mark.parametrize(("text", "expected"), [("", "config file is empty"), ("- a\n- b\n", "expected a mapping")])
def test_empty_or_non_mapping(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        load_config(write(tmp_path, text))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")
