"""How tests run `distill ARGV`: as a real process (`distill`), or through the console entry point in the test's
own process (`cli`: no interpreter start-up)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

from distill_cli.main import main


def distill(*args: str | Path, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    """`distill ARGS` in a fresh interpreter, offline: its exit code, stdout and stderr."""
    return subprocess.run(
        [sys.executable, "-m", "distill_cli.main", *map(str, args)],
        capture_output=True,
        text=True,
        env=dict(os.environ, HF_HUB_OFFLINE="1"),
        timeout=timeout,
    )


def cli(argv: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> tuple[Any, str, str]:
    """Run `distill ARGV`: (exit code, stdout, stderr). main() sets env defaults and the distill logger's
    level; both are restored afterwards."""
    monkeypatch.setattr(sys, "argv", ["distill", *argv])
    capsys.readouterr()
    level = logging.getLogger("distill").level
    try:
        with mock.patch.dict(os.environ), pytest.raises(SystemExit) as exited:
            main()
    finally:
        logging.getLogger("distill").setLevel(level)
    captured = capsys.readouterr()
    return exited.value.code, captured.out, captured.err
