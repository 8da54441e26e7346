"""The `distill` Typer app and what its commands share: quiet libraries, JSON output, progress bars."""

from __future__ import annotations

import json
import logging
import os
import sys

import typer

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
