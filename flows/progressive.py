"""The distillation flow: teacher, augmentation, then a chain of students, each teaching the next, then a report.

    teacher ─┬─ evaluate
             ├─ augment (once) ─────────────┐
             └─ stage 1: [intermediate] → distil ─ evaluate      (+ baseline ─ evaluate)
                  └─ stage 2 (teacher: previous): [intermediate] → distil ─ evaluate ...
                                                                   ├─ export (onnx, onnx-int8) ─ evaluate
                                                                   └─ report

The final student (or, with `export.models: students`, every student) is exported in each of
`export.formats`; each export is checked against its PyTorch source, then evaluated like any model.

A stage with a `sweep:` runs its steps once per trial, scores each trial on validation data, and
its best trial is the stage's student (flows/sweep.py).

Stages are submitted as futures. On a GPU machine independent ones (a baseline and its
distilled twin, an evaluation and the next stage) are submitted together and their compute
takes turns per process and per GPU (`tasks/compute.py`); on a CPU-only machine they run one
after another, so latency is never measured beside other work. Every stage is content-cached under
the run's artifact root: a re-run skips finished work, `prefect flow-run retry` resumes a
failed run, and changing one stage's config recomputes that stage and what follows it,
nothing before.
"""

from __future__ import annotations

from dataclasses import asdict, replace
from typing import Any

from prefect import flow, get_run_logger
from prefect.futures import PrefectFuture
from prefect.runtime import flow_run

from distill.config import RunConfig, load_config
from distill.preflight import preflight
from distill.redact import install_log_redaction
from distill.reporting.report import Entry
from distill.stages import identity
from distill.stages.identity import StageId
from distill.store.artifacts import check_artifact_root
from flows.student import submit_student
from flows.submitter import Model, StageSubmitter
from flows.sweep import SweepOutcome, publish_sweep, run_sweep, sweep_table
from tasks.augment import AUGMENT, augment_training_data
from tasks.compute import describe_devices, gpu_present
from tasks.distill import BASELINE, train_baseline
from tasks.export import EXPORT, export_model
from tasks.report import report
from tasks.teacher import FINETUNE_TEACHER, finetune_teacher, use_finetuned_teacher

# The steps that train a student, whose loss curves the report plots (a sweep's validation and augmentation don't).
TRAINING_STEPS = ("intermediate", "distill")

# Flow runs started by a worker or `distill serve` import this module first: their log lines are redacted too.
install_log_redaction()


# log_prints stays off: it replaces print(), which defeats dill's stdout capture inside `datasets`
# and floods the task logs with bytecode disassembly. Stage code logs through the run logger instead.
@flow(name="progressive-distillation", log_prints=False)
def progressive_distillation(config: RunConfig, refresh: list[str] | None = None) -> dict[str, Any]:
    """Run the chain `config` describes.

    Returns `stages` (name, status 'completed' or 'cached', uri, metrics for each), the
    `leaderboard` (one row per evaluated model), `report_dir` (leaderboard.csv, plots,
    report.md and the final student), `sweeps` (one row per trial of each swept stage, and
    its baseline) and `sweep_seconds` (each sweep's wall time). `refresh` names stage kinds to recompute even when
    cached; their successors follow, because their upstream manifests change.
    """
    logger = get_run_logger()
    check_artifact_root(config.artifact_root)
    logger.info("devices: %s", describe_devices())  # which GPU this run's worker gave it (one worker per GPU)
    # With a GPU, independent stages are submitted together and take turns on their device; on a
    # CPU-only machine they run one after another: the cores are shared anyway, and Prefect's own
    # work for a waiting stage would otherwise run beside another stage's latency measurement.
    submit = StageSubmitter(config, set(refresh or []), concurrent=gpu_present())

    if config.teacher.finetuned:
        teacher_result = submit(identity.TEACHER, use_finetuned_teacher, None)
    else:
        teacher_result = submit(identity.TEACHER, finetune_teacher, FINETUNE_TEACHER)
    teacher = Model("teacher", teacher_result, submit.evaluate(teacher_result, "teacher"))
    augmented = None
    if config.augmentation is not None and config.stages:  # once per run; every stage's KD steps reuse it
        augmented = submit(identity.AUGMENT, augment_training_data, AUGMENT)

    entries: list[tuple[Entry, PrefectFuture]] = [(Entry("teacher", "teacher", {}), teacher.evaluation)]
    trained = {identity.TEACHER.name: teacher_result}  # the training stages whose loss curves the report plots
    sweeps: list[tuple[str, SweepOutcome, PrefectFuture | None]] = []
    previous = teacher
    for stage in config.stages:
        stage_teacher = previous if stage.teacher == "previous" else teacher
        gate = {"teacher_evaluation": stage_teacher.evaluation}
        sweep = None
        if stage.sweep is None:
            steps = submit_student(submit, config, stage, stage_teacher.result, augmented=augmented, gate=gate)
        else:  # the trial with the best validation metric is the stage's student, and the next stage's teacher
            sweep = run_sweep(submit, config, stage, stage_teacher.result, augmented=augmented, gate=gate)
            steps = sweep.steps
        # A swept stage's chosen trial is plotted as the stage itself.
        trained |= {StageId(step, stage.name).name: steps[step] for step in TRAINING_STEPS if step in steps}
        previous = Model(stage.name, steps["distill"], submit.evaluate(steps["distill"], stage.name))
        distilled = Entry(stage.name, "distilled", {}, stage=stage.name, taught_by=stage_teacher.name)
        entries.append((distilled, previous.evaluation))
        baseline_evaluation = None
        if stage.baseline:
            baseline_id = StageId("baseline", stage.name)
            baseline = submit(baseline_id, train_baseline, BASELINE, stage_teacher.result, label=stage.name)
            trained[baseline_id.name] = baseline
            label = identity.baseline_label(stage.name)
            entry = Entry(label, "baseline", {}, baseline_of=stage.name, stage=stage.name, taught_by="(labels only)")
            baseline_evaluation = submit.evaluate(baseline, label)
            entries.append((entry, baseline_evaluation))
        if sweep is not None:
            sweeps.append((stage.name, sweep, baseline_evaluation))

    students = {name: future for name, future in trained.items() if name.startswith("distill_")}
    final_exports: dict[str, PrefectFuture] = {}  # the final student's, by format: copied beside the report
    exports: set[str] = set()  # their stages and evaluations: a failed check is raised after the report is written
    for name in identity.exported_stages(config):
        assert config.export is not None
        student = students[StageId("distill", name).name]
        taught_by = next(entry.taught_by for entry, _ in entries if entry.model == name and entry.role == "distilled")
        for export_format in config.export.formats:
            label = identity.exported_label(name, export_format)
            exported = submit(StageId("export", label), export_model, EXPORT, student, label=label,
                              export_format=export_format)  # fmt: skip
            entry = Entry(label, "exported", {}, stage=name, taught_by=taught_by, format=export_format)
            entries.append((entry, submit.evaluate(exported, label)))
            exports |= {StageId("export", label).name, identity.evaluation(label).name}
            if name == config.stages[-1].name:
                final_exports[export_format] = exported

    stages, failed_exports = submit.outcomes(deferred=frozenset(exports))
    final = previous.result.result() if config.stages else None
    finished = [replace(entry, metrics=future.result().metrics) for entry, future in entries if _done(future)]
    final_exports = {fmt: future for fmt, future in final_exports.items() if _done(future)}
    sweep_rows = []
    for name, sweep, baseline_evaluation in sweeps:
        rows = sweep_table(name, sweep, baseline_evaluation.result() if baseline_evaluation else None)
        publish_sweep(name, rows, sweep.metric)
        sweep_rows += rows
    outcome = report(
        config,
        [asdict(entry) for entry in finished],
        stage_dirs={name: future.result().uri for name, future in trained.items()},
        final_student=final.model_path if final else None,
        run_name=flow_run.get_name() or config.name,
        sweeps=sweep_rows,
        final_exports={fmt: future.result().model_path for fmt, future in final_exports.items()},
    )
    for stage in stages:
        logger.info("%s: %s (%s)", stage["name"], stage["status"], stage["uri"])
    if failed_exports:  # everything else is reported; the run still fails, with the check's numbers
        for failure in failed_exports[1:]:
            logger.error("also failed: %s", failure)
        raise failed_exports[0]
    return {"stages": stages, **outcome, "sweep_seconds": {name: sweep.seconds for name, sweep, _ in sweeps}}


def _done(future: PrefectFuture) -> bool:
    return future.state.is_completed()


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
