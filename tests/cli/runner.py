"""`distill ARGV` through the console entry point, in the test's own process (no interpreter start-up)."""

from __future__ import annotations

import logging
import os
import sys
from typing import Any
from unittest import mock

import pytest

from distill_cli.main import main


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
