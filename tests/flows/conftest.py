"""Flow tests run against a real Prefect server: one harness for the whole session (~15 s to start)."""

from __future__ import annotations

import os
import subprocess
import sys
from contextlib import nullcontext
from pathlib import Path

import pytest
import yaml

from distill.config import RunConfig, load_config

REPO_ROOT = Path(__file__).resolve().parents[2]
TINY = REPO_ROOT / "configs" / "tiny.yaml"


@pytest.fixture(autouse=True)
def _on_prefect_server(prefect_server: str) -> None:
    """Every flow test runs against the session's real Prefect server."""


def tiny_config(artifact_root: Path) -> RunConfig:
    """configs/tiny.yaml as it is: two chained stages with augmentation (~1 minute)."""
    return load_config(TINY).model_copy(update={"artifact_root": str(artifact_root)})


def tiny_one_stage(artifact_root: Path) -> RunConfig:
    """tiny.yaml's first stage only, without augmentation or exports: the spine tests' run (~35 s)."""
    config = tiny_config(artifact_root)
    return config.model_copy(update={"stages": config.stages[:1], "augmentation": None, "export": None})


def tiny_teacher(artifact_root: Path, **training: object) -> RunConfig:
    """tiny.yaml's teacher alone (no students, augmentation or exports), four steps unless `training` says
    otherwise: a training stage in seconds."""
    config = tiny_config(artifact_root)
    settings = {"max_steps": 4, "logging_steps": 2, "save_steps": 100, "warmup_ratio": 0.0, **training}
    teacher = config.teacher.model_copy(update={"training": config.teacher.training.model_validate(settings)})
    return config.model_copy(update={"stages": [], "augmentation": None, "export": None, "teacher": teacher})


def write_tiny_variant(path: Path, artifact_root: Path, *, stages: int = 1, **training: object) -> Path:
    """tiny_one_stage as a YAML file, with another artifact root, its first `stages` stages (0: teacher and its
    evaluation only) and teacher training overrides, for subprocesses."""
    raw = yaml.safe_load(TINY.read_text())
    raw["artifact_root"] = str(artifact_root)
    raw["stages"] = raw["stages"][:stages]
    raw.pop("augmentation")
    raw["export"] = None  # the spine's tests are about training and caching; exports have their own
    raw["teacher"]["training"].update(training)
    path.write_text(yaml.safe_dump(raw))
    return path


def start_run(config: Path, api_url: str, *args: str, log: Path | None = None) -> subprocess.Popen[str]:
    """`distill run` in its own process, reporting to the harness server.

    Its output goes to a pipe (read it with `communicate`), or to `log`: a file never fills up and blocks
    the run while the test is busy with something else, e.g. waiting for a checkpoint.
    """
    env = dict(os.environ, PREFECT_API_URL=api_url, HF_HUB_OFFLINE="1")
    with open(log, "w") if log is not None else nullcontext(subprocess.PIPE) as stdout:
        return subprocess.Popen(
            [sys.executable, "-m", "distill_cli.main", "run", str(config), *args],
            stdout=stdout,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            cwd=REPO_ROOT,
        )
