"""Content fingerprints for cache keys: code, configs, data files and model folders.

A stage's cached output is reused only while everything it was computed from is
unchanged. "Everything" is: the source of the `distill` modules the stage runs
(followed through their imports, so editing a helper module invalidates it too), its
canonical config, its upstream artifacts and the bytes of its data.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import importlib.util
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

_CHUNK = 1 << 20


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def canonical_json(obj: Any) -> str:
    """Key-sorted, whitespace-free JSON: equal configs give equal strings."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def hash_object(obj: Any) -> str:
    return sha256_bytes(canonical_json(obj).encode("utf-8"))


# --------------------------------------------------------------------------- code


def _module_file(name: str) -> Path | None:
    try:
        spec = importlib.util.find_spec(name)
    except (ModuleNotFoundError, ValueError):  # `pkg.module.Name` is a name, not a module
        return None
    if spec is None or spec.origin is None or not spec.origin.endswith(".py"):
        return None
    return Path(spec.origin)


def _imported_distill_modules(name: str, source: str) -> set[str]:
    """`distill.*` modules imported anywhere in `source` (function-level imports included)."""
    found: set[str] = set()
    package = name if name.endswith("__init__") else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.split(".")[0] == "distill")
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            if base.split(".")[0] != "distill":
                continue
            found.add(base)
            # `from distill.data import squad` imports a module, not a name
            found.update(f"{base}.{alias.name}" for alias in node.names if _module_file(f"{base}.{alias.name}"))
    return found


@functools.cache
def code_fingerprint(entry_modules: tuple[str, ...]) -> str:
    """sha256 over the source of `entry_modules` and every `distill` module they import, transitively."""
    pending, seen = list(entry_modules), {}
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        path = _module_file(name)
        if path is None:
            seen[name] = ""
            continue
        source = path.read_text(encoding="utf-8")
        seen[name] = source
        pending.extend(_imported_distill_modules(name, source) - seen.keys())
    digest = hashlib.sha256()
    for name in sorted(seen):
        digest.update(name.encode() + b"\0" + seen[name].encode() + b"\0")
    return digest.hexdigest()


# --------------------------------------------------------------------------- data and models


@functools.lru_cache(maxsize=256)
def _file_digest(path: str, size: int, mtime_ns: int) -> str:
    # Keyed on size and mtime so a file is hashed once per process unless it changes.
    return sha256_file(path)


def file_fingerprint(path: str | os.PathLike[str]) -> str:
    stat = os.stat(path)
    return _file_digest(str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)


def folder_fingerprint(folder: str | os.PathLike[str], patterns: Iterable[str] = ("*",)) -> str:
    """sha256 over the relative names and contents of the files in `folder` matching `patterns`."""
    folder = Path(folder)
    files = sorted({p for pattern in patterns for p in folder.rglob(pattern) if p.is_file()})
    return hash_object([[str(p.relative_to(folder)), file_fingerprint(p)] for p in files])
