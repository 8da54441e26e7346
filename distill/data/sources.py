"""Decide whether a data source is a local file or a hub dataset, and load hub datasets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from distill.config import DataSource
from distill.errors import DataError, TransientError, first_line, is_transient
from distill.hub import hub_offline_forced, hub_reachable, offline_hint

_FILE_SUFFIXES = {".json", ".jsonl", ".tsv", ".csv", ".gz", ".txt"}


def is_local(path: str) -> bool:
    """A source is local when it exists or is spelled like a path (so a typo is 'file not found', not a hub call)."""
    candidate = Path(path).expanduser()
    if candidate.exists():
        return True
    return path.startswith(("/", "./", "../", "~")) or candidate.suffix.lower() in _FILE_SUFFIXES


def local_path(source: DataSource) -> Path:
    path = Path(source.path).expanduser()
    if not path.exists():
        raise DataError(f"{source.path}: file not found")
    if path.is_dir():
        raise DataError(f"{source.path}: is a directory, expected a data file")
    return path


def load_hub_split(source: DataSource, default_split: str) -> Any:
    """Load one split of a hub dataset as a `datasets.Dataset`."""
    import datasets

    split = source.split or default_split
    if not hub_offline_forced() and not hub_reachable():
        raise DataError(offline_hint("dataset", source.path))
    where = f"dataset '{source.path}' (split {split!r})"
    try:
        return datasets.load_dataset(source.path, source.name, split=split, revision=source.revision)
    # What datasets raises for a missing dataset, config or split (FileNotFoundError, DatasetNotFoundError,
    # ValueError) and for a network failure (an OSError, often re-wrapped: is_transient follows the chain).
    except (OSError, ValueError) as exc:
        if hub_offline_forced():  # datasets says so in a ConnectionError's text only: a setting, not a failure
            # Not the library's wording: it may quote the source with its credentials in a form redaction misses.
            raise DataError(offline_hint("dataset", source.path)) from exc
        if is_transient(exc):
            raise TransientError(f"{where}: the hub could not be reached ({first_line(exc)}); try again") from exc
        if not hub_reachable():
            raise DataError(offline_hint("dataset", source.path)) from None
        raise DataError(f"{where}: cannot load from the hub: {first_line(exc)}") from exc
