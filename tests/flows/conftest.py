"""Flow tests run against a real Prefect server: one harness for the whole session (~15 s to start)."""

from __future__ import annotations

import os
import subprocess
import sys
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
    """tiny.yaml's first stage only, without augmentation: the spine tests' run (~35 s)."""
    config = tiny_config(artifact_root)
    return config.model_copy(update={"stages": config.stages[:1], "augmentation": None})


def write_tiny_variant(path: Path, artifact_root: Path, **training: object) -> Path:
    """tiny_one_stage as a YAML file, with another artifact root and teacher training overrides, for subprocesses."""
    raw = yaml.safe_load(TINY.read_text())
    raw["artifact_root"] = str(artifact_root)
    raw["stages"] = raw["stages"][:1]
    raw.pop("augmentation")
    raw["teacher"]["training"].update(training)
    path.write_text(yaml.safe_dump(raw))
    return path


def start_run(config: Path, api_url: str, *args: str) -> subprocess.Popen[str]:
    """`distill run` in its own process, reporting to the harness server."""
    env = dict(os.environ, PREFECT_API_URL=api_url, HF_HUB_OFFLINE="1")
    return subprocess.Popen(
        [sys.executable, "-m", "distill_cli.main", "run", str(config), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=REPO_ROOT,
    )
