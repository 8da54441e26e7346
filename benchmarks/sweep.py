"""Benchmark: what a sweep costs, and what it buys, on the quickstart's L3 stage.

An 8-trial grid over the soft-target temperature T and weight w (configs/sweep.yaml: T in
{1, 2, 4, 8} x w in {0.75, 1}) of the L3 student's prediction-layer distillation, chosen on a
validation set held out of SST-2's training file, run through the product
(`progressive_distillation`, real Prefect, cached stages):

- **cost**: the sweep's wall time (the flow's, orchestration and every trial's validation
  scoring included) against what it replaces by hand: 8 plain fine-tunes of the same student
  plus one teacher pass over the training set (target: <= 1.1x); and the wall time of an
  identical re-run (all cached). A plain fine-tune is measured two ways: the stage's
  labels-only baseline in the same run (the issue's reference, one sample), and 8 of them, as
  a sweep of 8 trials with w = 0 (plain fine-tuning, bit for bit) whose learning rates differ
  in the fourth significant digit, so each is a training of its own; this machine's wall
  times wander by +-10% from one training to the next, and one sample is not a reference.
- **gain**: the best trial against the stage as configured (T = 2, w = 0.75, one of the
  trials) on validation, where the choice is made, and on the SST-2 dev set (the test set),
  where both students are scored after the choice, for the report only.

    DISTILL_DATA_DIR=../shared/data python benchmarks/sweep.py --profile full --artifacts /tmp/sweep  # ~15 min, 2 cores
    python benchmarks/sweep.py --profile quick                                                          # generated data

Writes `benchmarks/results/sweep-<profile>.json` and `.md`.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import common
from common import machine, machine_line, today, write_results

REPO = Path(__file__).resolve().parent.parent
STAGE = "minilm-l3"
DEFAULT = {"prediction_layer.temperature": 2.0, "prediction_layer.loss_weight": 0.75}
TARGET_RATIO = 1.1


def profile_config(profile: str, artifacts: Path) -> Any:
    """configs/sweep.yaml's first stage (full), or the same sweep on generated data and a tiny model (quick)."""
    from distill.config import load_config
    from distill.data.synthetic import synthetic_sentiment

    config = load_config(REPO / "configs" / "sweep.yaml")
    if profile == "full":
        common.data_dir("SST-2")
        return config.model_copy(update={"artifact_root": str(artifacts), "stages": config.stages[:1]})
    raw = config.model_dump(mode="python")
    raw["artifact_root"] = str(artifacts)
    # Eval: generated sentences the training data does not have (validation is held out of training).
    trained = {row["sentence"] for row in synthetic_sentiment(rows=240, seed=0)}
    unseen = {r["sentence"]: r for r in synthetic_sentiment(rows=400, seed=2) if r["sentence"] not in trained}
    eval_file = artifacts.parent / "quick-eval.tsv"
    eval_file.parent.mkdir(parents=True, exist_ok=True)
    eval_file.write_text("sentence\tlabel\n" + "".join(f"{t}\t{r['label']}\n" for t, r in unseen.items()))
    raw["data"].update(
        train={"path": "synthetic:sentiment", "split": "train"},
        eval={"path": str(eval_file)},
        max_train_samples=None,
        max_validation_samples=None,
        validation_fraction=0.2,
    )
    raw["teacher"]["model"] = "tiny-bert"
    raw["teacher"]["training"].update(epochs=10, learning_rate=2e-3)
    raw["stages"] = raw["stages"][:1]
    raw["stages"][0]["prediction_layer"]["training"].update(learning_rate=1e-3)
    raw["stages"][0]["min_teacher_metric"] = None
    raw["evaluation"].update(latency_seconds=0.2, latency_samples=5)
    return type(config).model_validate(raw)


def timed_run(config: Any) -> tuple[dict[str, Any], float]:
    from flows.progressive import progressive_distillation

    started = time.perf_counter()
    outcome = progressive_distillation(config)
    return outcome, time.perf_counter() - started


def trial_of(outcome: dict[str, Any], params: dict[str, float]) -> dict[str, Any]:
    return next(
        row
        for row in outcome["sweeps"]
        if row["trial"] != "baseline" and all(row.get(name) == value for name, value in params.items())
    )


def plain_finetunes(config: Any, count: int) -> list[float]:
    """Seconds of `count` plain fine-tunes of the stage's student (w = 0), each its own training, in the flow."""
    from distill.config.sweep import SweepConfig

    stage = config.stages[0]
    rate = stage.prediction_layer.training.learning_rate
    plain = SweepConfig(
        method="grid",
        params={
            "prediction_layer.loss_weight": [0.0],
            "prediction_layer.training.learning_rate": [rate * (1 + i * 1e-4) for i in range(count)],
        },
    )
    outcome, _ = timed_run(config.model_copy(update={"stages": [stage.model_copy(update={"sweep": plain})]}))
    return [
        s["metrics"]["stage_seconds"]
        for s in outcome["stages"]
        if s["name"].startswith(f"distill_{STAGE}-trial-") and s["status"] == "completed"
    ]


def eval_accuracy(config: Any, stages: dict[str, Any], trial: int, workdir: Path) -> dict[str, float]:
    """A trial's student scored on eval and validation, as the evaluate stage scores (after the choice)."""
    from distill.stages.evaluate import evaluate_model
    from distill.stages.plan import model_artifact, plan_evaluate

    model = Path(stages[f"distill_{STAGE}-trial-{trial}"]["uri"]) / "model"
    out = workdir / f"trial-{trial}"
    out.mkdir(parents=True, exist_ok=True)
    metrics = evaluate_model(plan_evaluate(config, model_artifact(str(model)), f"trial-{trial}"), out)
    return {"accuracy": metrics["accuracy"], "validation_accuracy": metrics["validation_accuracy"]}


def main() -> None:
    args = common.parser(__doc__, artifacts=True).parse_args()
    common.prepare()
    with tempfile.TemporaryDirectory() as scratch:
        artifacts = args.artifacts or Path(scratch) / "artifacts"
        config = profile_config(args.profile, artifacts)
        first, first_seconds = timed_run(config)
        again, again_seconds = timed_run(config)
        stages = {stage["name"]: stage for stage in first["stages"]}
        computed = all(stages[name]["status"] == "completed" for name in stages if "-trial-" in name)
        trials = [row for row in first["sweeps"] if row["trial"] != "baseline"]
        first_trial = stages[f"distill_{STAGE}-trial-0"]["metrics"]
        teacher_pass = first_trial["teacher_pass_seconds"]
        plain = stages[f"baseline_{STAGE}"]["metrics"]["stage_seconds"]
        sweep_seconds = first["sweep_seconds"][STAGE]
        reference = len(trials) * plain + teacher_pass
        best = next(row for row in trials if row["chosen"])
        default = trial_of(first, DEFAULT)
        scored = {
            "best": eval_accuracy(config, stages, best["trial"], Path(scratch)),
            "default": eval_accuracy(config, stages, default["trial"], Path(scratch)),
        }
        leaderboard = {row["model"]: row for row in first["leaderboard"]}
        plain_runs = plain_finetunes(config, len(trials))
    report = {
        "benchmark": "sweep",
        "profile": args.profile,
        "date": today(),
        "machine": machine(),
        "command": f"python benchmarks/sweep.py --profile {args.profile}",
        "trials": trials,
        "baseline_validation_accuracy": next(r for r in first["sweeps"] if r["trial"] == "baseline").get(
            "validation_accuracy"
        ),
        "all_trials_computed_in_first_run": computed,
        "sweep_seconds": sweep_seconds,
        "plain_finetune_seconds": plain,
        "teacher_pass_seconds": teacher_pass,
        "reference_seconds": round(reference, 2),
        "ratio": round(sweep_seconds / reference, 3),
        "plain_finetune_seconds_8_runs": plain_runs,
        "reference_seconds_8_runs": round(sum(plain_runs) + teacher_pass, 2),
        "ratio_8_runs": round(sweep_seconds / (sum(plain_runs) + teacher_pass), 3),
        "target_ratio": TARGET_RATIO,
        "first_run_seconds": round(first_seconds, 1),
        "cached_rerun_seconds": round(again_seconds, 1),
        "cached_rerun_sweep_seconds": again["sweep_seconds"][STAGE],
        "cached_rerun_all_cached": all(stage["status"] == "cached" for stage in again["stages"]),
        "best_trial": best["trial"],
        "default_trial": default["trial"],
        "scored": scored,
        "leaderboard": leaderboard,
    }
    markdown = render(report)
    print(markdown)
    for path in write_results(report, markdown, args.output_dir):
        print(f"wrote {path}")


def render(r: dict[str, Any]) -> str:
    settings = [name for name in r["trials"][0] if "." in name]
    lines = [
        f"# Sweep: cost and gain ({r['profile']} profile, {r['date']})",
        "",
        machine_line(r["machine"]),
        "",
        f"Command: `{r['command']}`",
        "",
        "| trial | " + " | ".join(s.split(".")[-1] for s in settings) + " | validation accuracy | train loss | s |",
        "|---" * (len(settings) + 4) + "|",
    ]
    for row in r["trials"]:
        mark = " (chosen)" if row["chosen"] else (" (as configured)" if row["trial"] == r["default_trial"] else "")
        cells = [f"{row[s]:g}" for s in settings]
        lines.append(
            f"| {row['trial']}{mark} | " + " | ".join(cells) + f" | {row['validation_accuracy']:.4f} | "
            f"{row['train_loss']:.4f} | {row['seconds']:.1f} |"
        )
    blanks = " | ".join("" for _ in settings)
    lines.append(f"| baseline (labels only) | {blanks} | {r['baseline_validation_accuracy']:.4f} | | |")
    best, default = r["scored"]["best"], r["scored"]["default"]
    verdict = "meets" if r["ratio"] <= r["target_ratio"] else "misses"
    lines += [
        "",
        "## Cost",
        "",
        f"- Sweep wall time (8 trials, validation scoring and orchestration included): **{r['sweep_seconds']:.1f} s**",
        f"- By hand: {len(r['trials'])} x plain fine-tune ({r['plain_finetune_seconds']:.1f} s, the baseline stage) "
        f"+ one teacher pass ({r['teacher_pass_seconds']:.1f} s) = {r['reference_seconds']:.1f} s",
        f"- Ratio: **{r['ratio']:.3f}x** (target <= {r['target_ratio']}x: {verdict} it)",
        "- With the plain fine-tune measured 8 times (w = 0 trials: "
        + ", ".join(f"{x:.1f}" for x in r["plain_finetune_seconds_8_runs"])
        + f" s) + the teacher pass = {r['reference_seconds_8_runs']:.1f} s: **{r['ratio_8_runs']:.3f}x**",
        f"- Identical re-run, everything cached: {r['cached_rerun_seconds']:.1f} s for the whole flow "
        f"({r['cached_rerun_sweep_seconds']:.1f} s in the sweep); all stages cached: {r['cached_rerun_all_cached']}",
        "",
        "## Gain: best trial vs the stage as configured (T = 2, w = 0.75)",
        "",
        "| | validation accuracy (chosen on) | dev accuracy (test, after the choice) |",
        "|---|---|---|",
        f"| best (trial {r['best_trial']}) | {best['validation_accuracy']:.4f} | {best['accuracy']:.4f} |",
        f"| as configured (trial {r['default_trial']}) | {default['validation_accuracy']:.4f} | "
        f"{default['accuracy']:.4f} |",
        f"| difference | {best['validation_accuracy'] - default['validation_accuracy']:+.4f} | "
        f"{best['accuracy'] - default['accuracy']:+.4f} |",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
