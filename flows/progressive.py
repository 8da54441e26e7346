"""The distillation flow: teacher, augmentation, then a chain of students, each teaching the next, then a report.

    teacher ─┬─ evaluate
             ├─ augment (once) ─────────────┐
             └─ stage 1: [intermediate] → distil ─ evaluate      (+ baseline ─ evaluate)
                  └─ stage 2 (teacher: previous): [intermediate] → distil ─ evaluate ...
                                                                   └─ report

Stages are submitted as futures. On a GPU machine independent ones (a baseline and its
distilled twin, an evaluation and the next stage) are submitted together and their compute
takes turns per process and per GPU (`tasks/compute.py`); on a CPU-only machine they run one
after another, so latency is never measured beside other work. Every stage is content-cached under
the run's artifact root: a re-run skips finished work, `prefect flow-run retry` resumes a
failed run, and changing one stage's config recomputes that stage and what follows it,
nothing before.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from prefect import Task, flow, get_run_logger
from prefect.futures import PrefectFuture, wait
from prefect.runtime import flow_run

from distill.artifacts import StageResult, check_writable, resolve_root
from distill.config import RunConfig, load_config
from distill.preflight import preflight
from distill.redact import install_log_redaction
from distill.report import Entry
from tasks.augment import AUGMENT, augment_training_data
from tasks.compute import ensure_gpu_limit, gpu_present
from tasks.distill import (
    baseline_spec,
    distill_intermediate_layers,
    distill_prediction_layer,
    intermediate_spec,
    prediction_spec,
    train_baseline,
)
from tasks.evaluate import EVALUATE, evaluate_model
from tasks.report import report
from tasks.stage import StageSpec, bind
from tasks.teacher import FINETUNE_TEACHER, finetune_teacher, use_finetuned_teacher

# Flow runs started by a worker or `distill serve` import this module first: their log lines are redacted too.
install_log_redaction()

# Stage names accepted by `refresh` (and `distill run --refresh`).
STAGE_NAMES = (
    FINETUNE_TEACHER.name,
    AUGMENT.name,
    EVALUATE.name,
    "distill_intermediate_layers",
    "distill_prediction_layer",
    "train_baseline",
)


@dataclass(frozen=True)
class _Model:
    """A model the chain has produced (or will): its name, its stage future and its evaluation future."""

    name: str
    result: PrefectFuture
    evaluation: PrefectFuture


class _Submitter:
    """Submits stage tasks bound to the run's cache, and remembers them in order for the summary."""

    def __init__(self, config: RunConfig, refresh: set[str], *, concurrent: bool) -> None:
        self.config, self.refresh, self.concurrent = config, refresh, concurrent
        self.submitted: list[tuple[str, PrefectFuture]] = []

    def __call__(self, name: str, task: Task, spec: StageSpec | None, *args: Any, **kwargs: Any) -> PrefectFuture:
        if spec is not None:
            task = bind(task, spec, self.config, refresh=spec.name in self.refresh)
        future = task.submit(self.config, *args, **kwargs)
        self.submitted.append((name, future))
        if not self.concurrent:
            future.wait()  # CPU only: one stage at a time, so nothing runs beside a latency measurement
        return future

    def evaluate(self, model: PrefectFuture, label: str) -> PrefectFuture:
        return self(f"evaluate_{label}", evaluate_model, EVALUATE, model, label=label)

    def outcomes(self) -> list[dict[str, Any]]:
        """Each stage's status ('completed' or 'cached'), uri and metrics; raises the first failure, in order."""
        wait([future for _, future in self.submitted])
        stages = []
        for name, future in self.submitted:
            result: StageResult = future.result()  # upstream stages come first, so this raises the root cause
            status = "cached" if future.state.name == "Cached" else "completed"
            stages.append({"name": name, "status": status, "uri": result.uri, "metrics": result.metrics})
        return stages


# log_prints stays off: it replaces print(), which defeats dill's stdout capture inside `datasets`
# and floods the task logs with bytecode disassembly. Stage code logs through the run logger instead.
@flow(name="progressive-distillation", log_prints=False)
def progressive_distillation(config: RunConfig, refresh: list[str] | None = None) -> dict[str, Any]:
    """Run the chain `config` describes.

    Returns `stages` (name, status 'completed' or 'cached', uri, metrics for each), the
    `leaderboard` (one row per evaluated model) and `report_dir` (leaderboard.csv, plots,
    report.md and the final student). `refresh` names stage kinds to recompute even when
    cached; their successors follow, because their upstream manifests change.
    """
    logger = get_run_logger()
    check_writable(resolve_root(config.artifact_root))
    ensure_gpu_limit()
    # With a GPU, independent stages are submitted together and take turns on the `gpu` limit; on a
    # CPU-only machine they run one after another: the cores are shared anyway, and Prefect's own
    # work for a waiting stage would otherwise run beside another stage's latency measurement.
    submit = _Submitter(config, set(refresh or []), concurrent=gpu_present())

    if config.teacher.finetuned:
        teacher_result = submit(FINETUNE_TEACHER.name, use_finetuned_teacher, None)
    else:
        teacher_result = submit(FINETUNE_TEACHER.name, finetune_teacher, FINETUNE_TEACHER)
    teacher = _Model("teacher", teacher_result, submit.evaluate(teacher_result, "teacher"))
    augmented = None
    if config.augmentation is not None and config.stages:  # once per run; every stage's KD steps reuse it
        augmented = submit(AUGMENT.name, augment_training_data, AUGMENT)

    entries: list[tuple[Entry, PrefectFuture]] = [(Entry("teacher", "teacher", {}), teacher.evaluation)]
    previous = teacher
    for stage in config.stages:
        stage_teacher = previous if stage.teacher == "previous" else teacher
        gate = {"teacher_evaluation": stage_teacher.evaluation}
        student_init = None
        if stage.intermediate_layer is not None:  # TinyBERT: internals first, then soft targets
            student_init = submit(
                f"intermediate_{stage.name}",
                distill_intermediate_layers,
                intermediate_spec(stage.name),
                stage_teacher.result,
                label=stage.name,
                augmented=augmented,
                **gate,
            )
        student = submit(
            f"distill_{stage.name}",
            distill_prediction_layer,
            prediction_spec(stage.name),
            stage_teacher.result,
            label=stage.name,
            student_init=student_init,
            augmented=augmented,
            **gate,
        )
        previous = _Model(stage.name, student, submit.evaluate(student, stage.name))
        distilled = Entry(stage.name, "distilled", {}, stage=stage.name, taught_by=stage_teacher.name)
        entries.append((distilled, previous.evaluation))
        if stage.baseline:
            baseline = submit(f"baseline_{stage.name}", train_baseline, baseline_spec(stage.name), stage_teacher.result,
                              label=stage.name)  # fmt: skip
            label = f"{stage.name}-baseline"
            entry = Entry(label, "baseline", {}, baseline_of=stage.name, stage=stage.name, taught_by="(labels only)")
            entries.append((entry, submit.evaluate(baseline, label)))

    stages = submit.outcomes()
    final = previous.result.result() if config.stages else None
    finished = [Entry(**{**entry.__dict__, "metrics": future.result().metrics}) for entry, future in entries]
    trained = {s["name"]: s["uri"] for s in stages if not s["name"].startswith(("evaluate_", AUGMENT.name))}
    outcome = report(
        config,
        [entry.__dict__ for entry in finished],
        stage_dirs=trained,
        final_student=final.model_path if final else None,
        run_name=flow_run.get_name() or config.name,
    )
    for stage in stages:
        logger.info("%s: %s (%s)", stage["name"], stage["status"], stage["uri"])
    return {"stages": stages, **outcome}


@flow(name="distill-config-file", log_prints=False)
def distill_config_file(
    config_path: str, artifact_root: str | None = None, refresh: list[str] | None = None
) -> dict[str, Any]:
    """Deployment entry point: read the YAML run config at run time, check it, run it.

    Reading at run time means an edited config applies to the next scheduled run. A relative
    `config_path` is resolved against the run's working directory (the repository root).
    """
    config = load_config(config_path)
    if artifact_root is not None:
        config = config.model_copy(update={"artifact_root": artifact_root})
    preflight(config)
    return progressive_distillation(config, refresh=refresh)
