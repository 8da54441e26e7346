"""The layers of the code base, enforced: no module imports one from a layer above its own.

    deployments, distill_cli   how users start runs
    flows                      the Prefect flows: which stages run, in what order
    tasks                      Prefect tasks around the stage bodies: caching, retries, monitoring
    distill                    pure ML, never Prefect; inside it, from the top down:
      5  stages, reporting, preflight    stage bodies and their typed inputs; the report; checks before a run
      4  training, evaluation, sweep, export   training loops and losses; scoring and cost; the sweep driver;
                                         ONNX export and its check
      3  qa, augment, classify           QA features, post-processing and answering; data augmentation;
                                         classifying texts
      2  models, evaluation.metrics, export.runtime   loading and building models, batched inference; the
                                         metrics; running an exported model
      1  data, store                     reading datasets; fingerprints and the artifact store
      0  config, errors, io, redact, hub, precision   the foundation every layer may use

Imports inside a function count too: a lazy import is still a dependency. And the core stays pure ML:
importing any distill module never imports Prefect.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# The distill layers, by module prefix; the longest prefix that matches a module decides its layer.
DISTILL_LAYERS = {
    "distill": 0,
    "distill.config": 0,
    "distill.errors": 0,
    "distill.io": 0,
    "distill.redact": 0,
    "distill.hub": 0,
    "distill.precision": 0,
    "distill.data": 1,
    "distill.store": 1,
    "distill.models": 2,
    "distill.evaluation.metrics": 2,
    "distill.qa": 3,
    "distill.augment": 3,
    "distill.classify": 3,
    "distill.export": 4,
    "distill.export.runtime": 2,
    "distill.training": 4,
    "distill.evaluation": 4,
    "distill.sweep": 4,
    "distill.stages": 5,
    "distill.reporting": 5,
    "distill.preflight": 5,
}
# The packages around distill, above all of it.
OUTER_LAYERS = {"tasks": 10, "flows": 11, "deployments": 12, "distill_cli": 12}


def layer(module: str) -> int | None:
    """The layer of a module of this repository; None for a third-party one."""
    top = module.split(".")[0]
    if top in OUTER_LAYERS:
        return OUTER_LAYERS[top]
    if top != "distill":
        return None
    parts = module.split(".")
    for length in range(len(parts), 0, -1):
        prefix = ".".join(parts[:length])
        if prefix in DISTILL_LAYERS:
            return DISTILL_LAYERS[prefix]
    raise AssertionError(f"{module}: not in any layer; add it to DISTILL_LAYERS")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """Every module `path` imports, at any depth of its code; relative imports resolved."""
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            found.add(base)
            # `from distill.data import squad` imports the module distill.data.squad
            found.update(
                f"{base}.{alias.name}"
                for alias in node.names
                if (ROOT / base.replace(".", "/") / f"{alias.name}.py").is_file()
            )
    return found


SOURCES = sorted(p for folder in ("distill", *OUTER_LAYERS) for p in (ROOT / folder).rglob("*.py"))


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_import_reaches_up_a_layer(path: Path) -> None:
    own = layer(module_name(path))
    assert own is not None
    upward = sorted(
        f"{target} (layer {layer(target)})"
        for target in imports(path)
        if (target_layer := layer(target)) is not None and target_layer > own
    )
    assert not upward, f"{module_name(path)} (layer {own}) imports {upward}"


def test_distill_never_imports_prefect() -> None:
    modules = sorted(
        ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        for path in (ROOT / "distill").rglob("*.py")
    )
    code = "import importlib, sys\n" + "".join(f"importlib.import_module({m!r})\n" for m in modules)
    code += "print(sorted(m for m in sys.modules if m == 'prefect' or m.startswith('prefect.')))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
    assert len(modules) > 20
