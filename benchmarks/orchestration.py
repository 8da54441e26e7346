"""Benchmark: what Prefect orchestration costs over calling the stage functions directly, and a cached re-run.

Three measurements:

1. **direct**: the stage bodies of a one-stage chain (fine-tune teacher, evaluate, distil,
   evaluate, baseline, evaluate) called one after another from Python: `distill.stages.*`,
   no Prefect, no cache keys, no manifests;
2. **flow**: the same config through `progressive_distillation` on a fresh artifact root,
   twice: once with a cold temporary Prefect server (the server's start-up is the fixed part
   of the overhead), once with that server already up; the difference to *direct* is the
   orchestration overhead (task runs, API calls, cache keys and file hashing, manifests,
   artifacts, the report);
3. **cached re-run**: `distill run configs/quickstart.yaml` (the `make run` chain: 5 models)
   run to completion, then run again as a user would, in a fresh process: every stage comes
   back Cached. Timed end to end (process start, imports, temporary server, report), and in
   process against a server that is already up.

    DISTILL_DATA_DIR=../shared/data python benchmarks/orchestration.py --profile full   # ~15 min on 2 cores
    python benchmarks/orchestration.py --profile quick                                  # tiny model, ~2 min

Writes `benchmarks/results/orchestration-<profile>.json` and `.md`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import common
from common import machine, machine_line, today, write_results

ROOT = Path(__file__).resolve().parent.parent
TARGET = {"overhead_share": 0.05, "fixed_seconds": 15.0, "cached_rerun_seconds": 20.0}


def small_config(profile: str, root: Path) -> Any:
    """A one-stage chain: teacher, one distilled student and its baseline, three evaluations."""
    from distill.config import parse_config

    if profile == "quick":
        data = {
            "train": "synthetic:sentiment",
            "eval": "synthetic:sentiment",
            "max_train_samples": 200,
            "max_eval_samples": 80,
            "max_seq_length": 32,
        }
        teacher, lr, layers = "tiny-bert", 2e-3, [0, 1]
    else:
        sst2 = Path(os.environ["DISTILL_DATA_DIR"]) / "sst2"
        data = {
            "train": str(sst2 / "train.tsv.gz"),
            "eval": str(sst2 / "dev.tsv"),
            "max_train_samples": 2000,
            "max_seq_length": 64,
        }
        teacher, lr, layers = "minilm", 5e-5, [0, 1, 2]
    training = {"epochs": 1, "batch_size": 32, "learning_rate": lr, "save_steps": 50}
    return parse_config(
        {
            "name": f"orchestration-{profile}",
            "artifact_root": str(root),
            "data": {"task": "classification", "labels": ["0", "1"], "sample_seed": 0, **data},
            "teacher": {"model": teacher, "training": training},
            "stages": [
                {
                    "name": "student",
                    "student": {"layers": layers},
                    "baseline": True,
                    "prediction_layer": {"training": training},
                }
            ],
            "evaluation": {"latency_samples": 20},
        },
        source="orchestration",
    )


def run_direct(config: Any, root: Path) -> dict[str, float]:
    """The stage bodies in order, no Prefect: seconds per stage."""
    from distill.artifacts import StageDirectory
    from distill.stages import prediction, teacher
    from distill.stages.evaluate import evaluate_model

    seconds: dict[str, float] = {}

    def directory(name: str) -> StageDirectory:
        stage = StageDirectory(root, name, "direct")
        stage.prepare()
        return stage

    def timed(name: str, body: Any) -> None:
        started = time.perf_counter()
        body()
        seconds[name] = round(time.perf_counter() - started, 2)

    stage = config.stages[0]
    teacher_dir, student_dir, baseline_dir = directory("teacher"), directory("student"), directory("baseline")
    timed("finetune_teacher", lambda: teacher.finetune_teacher(config, teacher_dir))
    teacher_path = str(teacher_dir.model_dir)
    timed("evaluate_teacher", lambda: evaluate_model(config, teacher_path, directory("eval-teacher").path))
    timed(
        "distill_student",
        lambda: prediction.distill_prediction_layer(
            config, stage, teacher_path, "direct", student_dir, logits_root=root / "logits"
        ),
    )
    timed("evaluate_student", lambda: evaluate_model(config, str(student_dir.model_dir), directory("eval-s").path))
    timed("baseline_student", lambda: prediction.train_baseline(config, stage, teacher_path, baseline_dir))
    timed("evaluate_baseline", lambda: evaluate_model(config, str(baseline_dir.model_dir), directory("eval-b").path))
    return seconds


def run_flow(config: Any) -> tuple[float, list[str]]:
    from flows.progressive import progressive_distillation

    started = time.perf_counter()
    outcome = progressive_distillation(config)
    return round(time.perf_counter() - started, 2), [stage["status"] for stage in outcome["stages"]]


def cli_run(config_path: Path, artifacts: Path) -> tuple[float, list[str]]:
    """`distill run` in a fresh process, as a user types it; its wall time and each stage's status."""
    import json

    summary = artifacts.parent / f"{artifacts.name}-summary.json"
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    env.pop("PREFECT_API_URL", None)  # a temporary server, as on a fresh machine
    started = time.perf_counter()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "distill_cli.main",
            "run",
            str(config_path),
            "--artifacts",
            str(artifacts),
            "--summary-json",
            str(summary),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
    )
    seconds = round(time.perf_counter() - started, 2)
    if done.returncode != 0:
        raise SystemExit(f"distill run {config_path} failed:\n{done.stderr[-3000:]}")
    return seconds, [stage["status"] for stage in json.loads(summary.read_text())["stages"]]


def run(
    profile: str, output_dir: Path, work: Path, rerun: Path | None = None, rerun_artifacts: Path | None = None
) -> dict[str, Any]:
    if profile == "full" and not os.environ.get("DISTILL_DATA_DIR"):
        raise SystemExit("the full profile reads SST-2 from $DISTILL_DATA_DIR (see README, 'Data')")
    # The cold flow first: it starts the temporary server and pays every first-time import and load, so
    # the direct path and the warm flow after it are measured on equal, warmed-up terms.
    cold, statuses = run_flow(small_config(profile, work / "flow-cold"))
    direct = run_direct(small_config(profile, work / "direct"), work / "direct")
    direct_total = round(sum(direct.values()), 2)
    print(f"direct: {direct_total:.1f} s {direct}", flush=True)
    warm, _ = run_flow(small_config(profile, work / "flow-warm"))  # the server is up now
    cached, cached_statuses = run_flow(small_config(profile, work / "flow-warm"))
    print(f"flow: cold server {cold:.1f} s, warm server {warm:.1f} s, cached re-run {cached:.1f} s", flush=True)
    overhead = warm - direct_total

    # The quickstart chain (`make run`), filled once, then re-run as a user would; or `rerun`, an
    # already filled chain (`rerun_artifacts`), re-run as is.
    quickstart = rerun or ROOT / "configs" / ("quickstart.yaml" if profile == "full" else "tiny.yaml")
    filled = rerun_artifacts or work / "quickstart"
    fill_seconds = None if rerun_artifacts else cli_run(quickstart, filled)[0]
    rerun_seconds, rerun_statuses = cli_run(quickstart, filled)
    from distill.config import load_config

    in_process, in_process_statuses = run_flow(
        load_config(quickstart).model_copy(update={"artifact_root": str(filled)})
    )
    print(
        f"{quickstart.name}: filled in {fill_seconds} s; cached re-run {rerun_seconds:.1f} s (CLI), "
        f"{in_process:.1f} s (in process, server up)",
        flush=True,
    )
    report = {
        "benchmark": "orchestration",
        "profile": profile,
        "date": today(),
        "command": f"DISTILL_DATA_DIR=../shared/data python benchmarks/orchestration.py --profile {profile}",
        "machine": machine(),
        "direct_seconds": direct,
        "direct_total_seconds": direct_total,
        "flow_cold_server_seconds": cold,
        "flow_warm_server_seconds": warm,
        "flow_statuses": statuses,
        # Cold minus warm: the server's start plus first-time imports and loads (an upper bound for the server).
        "server_start_seconds": round(cold - warm, 2),
        "overhead_seconds": round(overhead, 2),
        "overhead_share": round(overhead / direct_total, 4),
        "small_chain_cached_rerun_seconds": cached,
        "quickstart_config": str(quickstart.relative_to(ROOT)) if quickstart.is_relative_to(ROOT) else quickstart.name,
        "quickstart_stages": len(rerun_statuses),
        "quickstart_fill_seconds": fill_seconds,
        "quickstart_cached_rerun_cli_seconds": rerun_seconds,
        "quickstart_cached_rerun_in_process_seconds": in_process,
        "quickstart_rerun_all_cached": all(s == "cached" for s in rerun_statuses + in_process_statuses),
        "target": TARGET,
    }
    report["target_met"] = {
        "overhead": overhead <= TARGET["overhead_share"] * direct_total + TARGET["fixed_seconds"],
        "overhead_fixed_part": cold - warm <= TARGET["fixed_seconds"],
        "cached_rerun_cli": rerun_seconds <= TARGET["cached_rerun_seconds"],
    }
    write_results(report, markdown(report), output_dir)
    return report


def markdown(report: dict[str, Any]) -> str:
    r = report
    direct = ", ".join(f"{name} {seconds:.1f}" for name, seconds in r["direct_seconds"].items())
    return "\n".join(
        [
            f"### Orchestration overhead and cached re-runs, profile `{r['profile']}` ({r['date']})",
            "",
            f"`{r['command']}`. {machine_line(r['machine'])}",
            "",
            "| measurement | seconds |",
            "|---|---:|",
            f"| one-stage chain, stage functions called directly ({direct}) | {r['direct_total_seconds']:.1f} |",
            f"| the same through the flow, temporary server already up | {r['flow_warm_server_seconds']:.1f} |",
            f"| the same through the flow, cold temporary server | {r['flow_cold_server_seconds']:.1f} |",
            f"| orchestration overhead (flow, server up, minus direct) | {r['overhead_seconds']:.1f} "
            f"({100 * r['overhead_share']:.1f}%) |",
            f"| temporary server start and first-time loads (cold minus warm) | {r['server_start_seconds']:.1f} |",
            f"| one-stage chain, fully cached re-run (in process) | {r['small_chain_cached_rerun_seconds']:.1f} |",
            f"| `{r['quickstart_config']}` from scratch (`distill run`) | "
            f"{r['quickstart_fill_seconds'] or 'filled earlier'} |",
            f"| `{r['quickstart_config']}` ({r['quickstart_stages']} stages) fully cached re-run, `distill run`, "
            "fresh process | "
            f"{r['quickstart_cached_rerun_cli_seconds']:.1f} |",
            f"| `{r['quickstart_config']}` fully cached re-run, in process, server up | "
            f"{r['quickstart_cached_rerun_in_process_seconds']:.1f} |",
            "",
            f"Every stage Cached on the re-run: {r['quickstart_rerun_all_cached']}. Targets: overhead ≤ "
            f"{100 * r['target']['overhead_share']:.0f}% + {r['target']['fixed_seconds']:.0f} s "
            f"(**{'met' if r['target_met']['overhead'] else 'not met'}**); cached re-run ≤ "
            f"{r['target']['cached_rerun_seconds']:.0f} s "
            f"(**{'met' if r['target_met']['cached_rerun_cli'] else 'not met'}** for `distill run`, fresh process).",
            "",
        ]
    )


def main() -> None:
    parser = common.parser(__doc__)
    parser.add_argument("--rerun", type=Path, default=None, help="Time a cached re-run of this config instead.")
    parser.add_argument("--rerun-artifacts", type=Path, default=None, help="Where --rerun's chain was filled.")
    args = parser.parse_args()
    common.prepare()
    work = Path(tempfile.mkdtemp(prefix="distill-orchestration-"))
    report = run(args.profile, args.output_dir, work, args.rerun, args.rerun_artifacts)
    print(markdown(report))


if __name__ == "__main__":
    main()
