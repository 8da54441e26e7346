"""Usage errors (a bad option value, a missing argument, an unknown option or command) end as bad input does:
exactly one line on stderr, `distill COMMAND: error: ...`, exit code 2, nothing on stdout. Help still works."""

from __future__ import annotations

import pytest

from tests.cli.runner import cli, distill

# argv, the line's start, fragments it must hold
USAGE_ERRORS: list[tuple[list[str], str, list[str]]] = [
    (["evaluate", "--model", "m", "--data", "d", "--max-samples", "0"], "distill evaluate", ["'--max-samples'"]),
    (["evaluate", "--model", "m", "--data", "d", "--task", "nope"], "distill evaluate", ["'--task'", "nope"]),
    (["evaluate", "--data", "d"], "distill evaluate", ["Missing option", "'--model'"]),
    (["evaluate", "--model", "m", "--data", "d", "--max-samp", "3"], "distill evaluate", ["--max-samp"]),
    (["export", "m", "out", "--opset", "99"], "distill export", ["'--opset'"]),
    (["export", "m", "out", "extra"], "distill export", ["unexpected extra argument", "extra"]),
    (["export", "m", "out", "--quantize", "int4"], "distill export", ["'--quantize'", "int4"]),
    (["augment", "in.json", "out.json", "--factor", "many"], "distill augment", ["'--factor'", "integer"]),
    (["score", "data.json"], "distill score", ["Missing argument", "'PREDICTIONS'"]),
    (["run"], "distill run", ["Missing argument", "'CONFIG'"]),
    (["run", "c.yaml", "--refresh"], "distill run", ["'--refresh' requires an argument"]),  # no click context
    (["validate", "c.yaml", "--strict"], "distill validate", ["No such option", "--strict"]),
    (["serve", "c.yaml", "--cron"], "distill serve", ["'--cron' requires an argument"]),
    (["bogus"], "distill", ["No such command", "'bogus'"]),
    (["--verbose"], "distill", ["No such option", "--verbose"]),
]


@pytest.mark.parametrize(("argv", "where", "fragments"), USAGE_ERRORS, ids=[" ".join(c[0]) for c in USAGE_ERRORS])
def test_usage_error_is_one_line(
    argv: list[str],
    where: str,
    fragments: list[str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = cli(argv, monkeypatch, capsys)
    assert code == 2, err
    assert out == ""
    assert err.count("\n") == 1 and err.startswith(f"{where}: error: "), err
    for fragment in fragments:
        assert fragment.lower() in err.lower(), err


def test_usage_error_from_a_real_process() -> None:
    result = distill("evaluate", "--model", "m", "--data", "d", "--max-samples", "0", timeout=120)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith("distill evaluate: error: Invalid value for '--max-samples'")
    assert result.stderr.count("\n") == 1, result.stderr


@pytest.mark.parametrize("argv", [["--help"], ["evaluate", "--help"], ["run", "--help"]])
def test_help_is_printed_and_exits_0(
    argv: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = cli(argv, monkeypatch, capsys)
    assert code == 0 and err == ""
    assert f"Usage: distill {' '.join(argv[:-1])}".rstrip() in " ".join(out.split())


def test_no_arguments_prints_the_help(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli([], monkeypatch, capsys)
    # click's convention for a group called with nothing: the help, and exit code 2 (nothing was done).
    assert code == 2 and err == ""
    assert "Usage: distill" in out and "evaluate" in out and "export" in out
