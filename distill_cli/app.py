"""The `distill` Typer app and what its commands share: quiet libraries, JSON output, progress bars."""

from __future__ import annotations

import json
import logging
import os
import sys

import typer

try:  # typer 0.2x+ runs on its own copy of click: the usage errors it raises are that copy's, not click's
    from typer._click.exceptions import ClickException, UsageError
except ImportError:  # older typer runs on click itself
    from click.exceptions import ClickException, UsageError

app = typer.Typer(
    name="distill",
    help="Distil large language models into small ones that keep their accuracy.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

log = logging.getLogger("distill")


def quiet_libraries() -> None:
    # transformers' load reports (e.g. 'newly initialised head') are rephrased by us where they matter.
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()


def print_json(obj: object) -> None:
    typer.echo(json.dumps(obj, indent=2))


def progress_bar(total: int, unit: str):  # noqa: ANN202 - tqdm type
    from tqdm.auto import tqdm

    return tqdm(total=total, unit=unit, file=sys.stderr, leave=False, disable=not sys.stderr.isatty())


def report_click_error(exc: ClickException, args: list[str]) -> int:
    """Print a click error as one line on stderr, argparse-style (`distill evaluate: error: Invalid value for
    '--max-samples': ...`), instead of click's usage box; return its exit code (2 for a usage error).
    `args` (the command line) names the command where click's parser leaves the error without a context."""
    from distill.redact import redact_text

    message = exc.format_message()
    if type(exc).__name__ == "NoArgsIsHelpError":  # `distill` alone: its message is the help, if rich did not print it
        if message:
            typer.echo(message, err=True)
        return exc.exit_code
    ctx = exc.ctx if isinstance(exc, UsageError) else None
    if ctx is not None:
        where = ctx.command_path
    else:
        commands = typer.main.get_command(app).commands  # type: ignore[attr-defined] - a group: app has commands
        where = f"distill {args[0]}" if args and args[0] in commands else "distill"
    # Messages quote the bad value, which may be a URL with credentials in it.
    typer.echo(f"{where}: error: {redact_text(' '.join(message.splitlines()))}", err=True)
    return exc.exit_code
