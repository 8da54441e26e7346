"""A stage's sweep: trials proposed ask-and-tell, each an ordinary cached run of the stage's steps, scored on
validation data; the best trial's student is the stage's student.

Every trial is the stage's own steps under a config with the trial's values (distill.sweep.trial_config),
so trials are content-cached like any stage: all of them on one teacher and one dataset share one
teacher-logit pass (distill.training.teacher_logits), a re-run or a longer sweep replays finished trials
from the cache, and a killed sweep resumes at the trial it was in. Trials run one after another: heavy
stages take turns within a flow's process anyway (tasks/compute.py), and a sampler told each result before
its next ask chooses better than one asked for a batch blind.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from prefect import get_run_logger
from prefect.artifacts import create_table_artifact
from prefect.futures import PrefectFuture
from pydantic import ValidationError

from distill.config import DistillStageConfig, RunConfig
from distill.config.sweep import stage_field, trial_config, validation_key
from distill.errors import ConfigError, DistillError
from distill.stages.identity import StageId, augment_trial
from distill.store.artifacts import StageResult
from distill.sweep import SweepDriver, Trial, best_trial
from flows.student import submit_student
from flows.submitter import StageSubmitter, status_of
from tasks.augment import AUGMENT, augment_training_data
from tasks.evaluate import VALIDATE, validate_model
from tasks.stage import STAGE_SECONDS


@dataclass(frozen=True)
class SweepOutcome:
    """The chosen trial's student steps, and one row per trial for the sweep table (trial order)."""

    steps: dict[str, PrefectFuture]
    rows: list[dict[str, Any]]
    metric: str  # the validation metric chosen on, e.g. 'validation_accuracy'
    seconds: float  # wall time of the whole sweep, orchestration included


def run_sweep(
    submit: StageSubmitter,
    config: RunConfig,
    stage: DistillStageConfig,
    teacher: PrefectFuture,
    *,
    augmented: PrefectFuture | None,
    gate: dict[str, Any],
) -> SweepOutcome:
    """Run the stage's sweep and return its best trial (highest validation metric; the earliest on ties)."""
    sweep = stage.sweep
    assert sweep is not None
    logger = get_run_logger()
    metric = validation_key(sweep.metric_name(config.data.task))
    configured = {name: stage_field(config, stage.name, name) for name in sweep.params}
    driver = SweepDriver(sweep, seed=config.seed, configured=configured)
    logger.info("sweep %s: %d %s trials on %s", stage.name, sweep.trial_count, sweep.method, metric)
    started = time.perf_counter()

    trials: list[tuple[Trial, dict[str, PrefectFuture]]] = []
    values: dict[int, float] = {}
    while not driver.done:
        trial = driver.ask()
        steps = _submit_trial(submit, config, stage, teacher, trial, augmented, gate)
        # Upstream first: when the teacher or a step failed, its own error is raised, not "the score is pending".
        for future in [teacher, *gate.values(), augmented, *steps.values()]:
            if future is not None:
                future.result()
        value = steps["validate"].result().metrics.get(metric)
        if value is None:
            raise DistillError(f"sweep {stage.name}: trial {trial.number}'s evaluation reported no {metric}")
        values[trial.number] = float(value)
        driver.tell(trial, float(value))
        logger.info("sweep %s: trial %d %s -> %s %.4f", stage.name, trial.number, trial.params, metric, value)
        trials.append((trial, steps))

    chosen = best_trial(values)
    rows = [_row(trial, steps, metric, chosen) for trial, steps in trials]
    seconds = time.perf_counter() - started
    logger.info("sweep %s: best is trial %d %s (%s %.4f); %.1f s", stage.name, chosen, rows[chosen]["params"],
                metric, values[chosen], seconds)  # fmt: skip
    return SweepOutcome(steps=trials[chosen][1], rows=rows, metric=metric, seconds=round(seconds, 2))


def _submit_trial(
    submit: StageSubmitter,
    config: RunConfig,
    stage: DistillStageConfig,
    teacher: PrefectFuture,
    trial: Trial,
    augmented: PrefectFuture | None,
    gate: dict[str, Any],
) -> dict[str, PrefectFuture]:
    """One trial: the stage's steps under the trial's config, then its score on validation."""
    try:
        trial_run = trial_config(config, stage.name, trial.params)
    except ValidationError as exc:  # the config checks each value and the space's corners; this is a backstop
        problem = exc.errors(include_url=False)[0]["msg"]
        raise ConfigError(
            f"sweep {stage.name}: trial {trial.number} {trial.params} is not a valid config: {problem}"
        ) from None
    trial_stage = next(s for s in trial_run.stages if s.name == stage.name)
    steps: dict[str, PrefectFuture] = {}
    if any(name.startswith("augmentation.") for name in trial.params):  # its own augmented data, cached per factor
        augmented = steps["augment"] = submit(
            augment_trial(stage.name, trial.number), augment_training_data, AUGMENT, config=trial_run
        )
    steps |= submit_student(submit, trial_run, trial_stage, teacher, augmented=augmented, gate=gate, trial=trial.number)
    # Keyed by the trial's model, not its number: the same settings asked again are scored from the cache.
    steps["validate"] = submit(
        StageId("validate", stage.name, trial.number),
        validate_model,
        VALIDATE,
        steps["distill"],
        label=stage.name,
        config=trial_run,
    )
    return steps


def _row(trial: Trial, steps: dict[str, PrefectFuture], metric: str, chosen: int) -> dict[str, Any]:
    results: dict[str, StageResult] = {name: future.result() for name, future in steps.items()}
    return {
        "trial": trial.number,
        "params": trial.params,
        metric: results["validate"].metrics.get(metric),
        "train_loss": results["distill"].metrics.get("train_loss"),
        # What the trial's steps cost when they were computed (a cached step cost nothing this time).
        "seconds": round(sum(r.metrics.get(STAGE_SECONDS, 0.0) for r in results.values()), 2),
        "cached": all(status_of(future) == "cached" for future in steps.values()),
        "chosen": trial.number == chosen,
        "model_path": results["distill"].model_path,
    }


def sweep_table(stage: str, outcome: SweepOutcome, baseline: StageResult | None) -> list[dict[str, Any]]:
    """Flat rows (one column per swept field), with the stage's baseline on the same validation set first."""
    rows = []
    if baseline is not None:
        rows.append({"stage": stage, "trial": "baseline", outcome.metric: baseline.metrics.get(outcome.metric)})
    for row in outcome.rows:
        flat = {"stage": stage, "trial": row["trial"], **row["params"]}
        flat.update({key: value for key, value in row.items() if key not in ("trial", "params", "model_path")})
        rows.append(flat)
    return rows


def publish_sweep(stage: str, rows: list[dict[str, Any]], metric: str) -> None:
    """The `sweep-<stage>` table artifact: one row per trial (and the baseline), best marked."""
    create_table_artifact(
        # Four significant figures, not decimals: learning rates such as 3e-05 must not show as 0.0.
        table=[{k: (float(f"{v:.4g}") if isinstance(v, float) else v) for k, v in row.items()} for row in rows],
        key=f"sweep-{stage}",
        description=f"Sweep of {stage}: settings, {metric} (chosen on validation only), train loss and seconds "
        "per trial; the chosen trial's student is the stage's student",
    )
