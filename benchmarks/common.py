"""What every benchmark runner shares: the machine it ran on, quiet logging, and writing its results.

A result is only worth publishing with the machine and versions it came from and the
command that reproduces it; `write_results` puts all three next to the numbers.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


_SPEED_FLAGS = {"avx2": "AVX2", "avx512f": "AVX-512", "avx512_bf16": "AVX512-BF16", "amx_bf16": "AMX-BF16"}


def machine() -> dict[str, Any]:
    """CPU, cores, memory, GPU and the versions that decide speed and numerics."""
    cpu, cpu_detail = "unknown", None
    try:
        fields: dict[str, str] = {}
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
        cpu = fields.get("model name", cpu)
        # "AMD EPYC" alone names Zen 3 and Zen 5 alike; the family and the bf16 units decide speed and precision.
        flags = set(fields.get("flags", "").split())
        units = [name for flag, name in _SPEED_FLAGS.items() if flag in flags] or ["no AVX2"]
        cpu_detail = f"family {fields.get('cpu family', '?')} model {fields.get('model', '?')}; {', '.join(units)}"
    except OSError:
        pass
    memory_gb = None
    try:
        kib = next(
            int(line.split()[1])
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal")
        )
        memory_gb = round(kib / 2**20, 1)
    except (OSError, StopIteration):
        pass
    import torch

    return {
        "cpu": cpu,
        "cpu_detail": cpu_detail,
        "cores": os.cpu_count(),
        "memory_gb": memory_gb,
        "torch_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "python": platform.python_version(),
        **{name: _version(name) for name in ("torch", "transformers", "prefect", "datasets")},
    }


def machine_line(m: dict[str, Any]) -> str:
    """The machine in one markdown line."""
    cpu = f"{m['cpu']} ({m['cpu_detail']})" if m.get("cpu_detail") else m["cpu"]
    return (
        f"Machine: {cpu}, {m['cores']} cores, {m['memory_gb']} GB, GPU {m['gpu'] or 'none'}; "
        f"Python {m['python']}, torch {m['torch']}, transformers {m['transformers']}, prefect {m['prefect']}."
    )


def parser(doc: str, *, artifacts: bool = False) -> argparse.ArgumentParser:
    """The options every flow benchmark takes: --profile, --output-dir (and --artifacts)."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--profile", choices=("quick", "full"), default="quick")
    parser.add_argument("--output-dir", type=Path, default=RESULTS)
    if artifacts:
        parser.add_argument(
            "--artifacts",
            type=Path,
            default=None,
            help="Artifact root (default: a temporary folder); reuse one to resume a crashed benchmark.",
        )
    return parser


def prepare() -> None:
    """Quiet libraries, stay offline, and make the repository's `flows`/`tasks` importable."""
    quiet()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def quiet() -> None:
    """Keep library chatter out of the benchmark's own table."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # A first start on a fresh PREFECT_HOME migrates the database: ~21 s, past Prefect's 20 s default.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()


def data_dir(what: str) -> Path:
    """The offline data folder ($DISTILL_DATA_DIR) a full profile reads `what` from; exits with how to set it."""
    folder = os.environ.get("DISTILL_DATA_DIR")
    if not folder:
        raise SystemExit(
            f"the full profile reads {what} from $DISTILL_DATA_DIR (see README, 'Data'), or use --profile quick"
        )
    return Path(folder)


def command_line(environment: str = "") -> str:
    """How this process was started, to print beside its numbers: the environment it needs, then argv."""
    import shlex

    script = Path(sys.argv[0]).resolve()
    shown = script.relative_to(RESULTS.parent.parent) if script.is_relative_to(RESULTS.parent.parent) else script
    return " ".join(filter(None, [environment, "python", shlex.join([str(shown), *sys.argv[1:]])]))


def today() -> str:
    return datetime.date.today().isoformat()


def run_chain(config: Any) -> dict[str, Any]:
    """One `progressive_distillation` flow run: leaderboard rows by model, stages by name, wall time."""
    from distill.stages.plan import task_metric_name
    from flows.progressive import progressive_distillation

    started = time.perf_counter()
    outcome = progressive_distillation(config)
    seconds = time.perf_counter() - started
    stages = {stage["name"]: stage for stage in outcome["stages"]}
    train_seconds = {
        name: stage["metrics"]["train_runtime_seconds"]
        for name, stage in stages.items()
        if stage["status"] == "completed" and "train_runtime_seconds" in stage["metrics"]
    }
    rows = {row["model"]: row for row in outcome["leaderboard"]}
    metric = task_metric_name(config)
    print(f"{config.name}: {seconds:.0f} s; " + ", ".join(f"{m} {r[metric]:.4f}" for m, r in rows.items()), flush=True)
    return {
        "seconds": round(seconds, 1),
        "rows": rows,
        "train_seconds": train_seconds,
        "stages": stages,
        "report_dir": outcome["report_dir"],
        "sweeps": outcome.get("sweeps", []),
    }


def write_results(report: dict[str, Any], markdown: str, output_dir: Path) -> tuple[Path, Path]:
    """`<benchmark>-<profile>.json` and `.md` under `output_dir`."""
    output_dir.mkdir(parents=True, exist_ok=True)
    stem = f"{report['benchmark']}-{report['profile']}"
    json_path, md_path = output_dir / f"{stem}.json", output_dir / f"{stem}.md"
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    md_path.write_text(markdown)
    return json_path, md_path


def stage_costs(chains: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Each stage once (by its artifact, under the first run that used it), with the seconds recorded when it ran.

    A cached stage's metrics are those of the run that computed it, so a re-run over a full cache reports the
    same costs.
    """
    rows, seen = [], set()
    for run, chain in chains.items():
        for name, stage in chain.get("stages", {}).items():
            if stage["uri"] in seen:
                continue
            seen.add(stage["uri"])
            metrics = stage["metrics"]
            rows.append(
                {
                    "run": run,
                    "stage": name,
                    "status": stage["status"],
                    "seconds": metrics.get("stage_seconds"),
                    "train_seconds": metrics.get("train_runtime_seconds"),
                    "train_steps": metrics.get("train_steps"),
                    "train_features": metrics.get("train_features") or metrics.get("train_samples"),
                    "precision": metrics.get("precision"),
                }
            )
    return rows


def intermediate_ratios(costs: list[dict[str, Any]]) -> dict[tuple[str, str], float]:
    """(run, student) -> intermediate-layer over prediction-layer training seconds per optimizer step (same data)."""
    by_stage = {(row["run"], row["stage"]): row for row in costs}
    ratios = {}
    for (run, name), row in by_stage.items():
        if name.startswith("intermediate_"):
            student = name.removeprefix("intermediate_")
            prediction = by_stage.get((run, f"distill_{student}"))
            if prediction and all(step[key] for step in (row, prediction) for key in ("train_seconds", "train_steps")):
                per_step = row["train_seconds"] / row["train_steps"]
                ratios[(run, student)] = round(per_step / (prediction["train_seconds"] / prediction["train_steps"]), 2)
    return ratios


def number(value: Any, spec: str) -> str:
    """A markdown cell: the number formatted, or empty for anything else (None, text, booleans)."""
    return format(value, spec) if isinstance(value, int | float) and not isinstance(value, bool) else ""
