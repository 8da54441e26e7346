"""The `distill` command line: score, evaluate, augment, validate, run and serve.

Bad input of any kind ends in one line on stderr naming what is wrong, exit code 2, and
nothing written. Outputs are written atomically, only after everything succeeded.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer

from distill.augment.config import AugmentConfig, AugmentMethod
from distill.errors import DistillError

if TYPE_CHECKING:
    from distill.config import DataSource

app = typer.Typer(
    name="distill",
    help="Distil large language models into small ones that keep their accuracy.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

log = logging.getLogger("distill")


def _quiet_libraries() -> None:
    # transformers' load reports (e.g. 'newly initialised head') are rephrased by us where they matter.
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()


def _print_json(obj: object) -> None:
    typer.echo(json.dumps(obj, indent=2))


@app.command()
def score(
    data: Annotated[Path, typer.Argument(help="SQuAD v1.1/v2.0 JSON (or .json.gz) with the gold answers.")],
    predictions: Annotated[Path, typer.Argument(help="JSON object: question id -> predicted answer text.")],
    na_prob_file: Annotated[
        Path | None,
        typer.Option(help="JSON object: question id -> no-answer probability or odds (adds best_* keys)."),
    ] = None,
    na_prob_thresh: Annotated[
        float,
        typer.Option(
            help="Abstain where the na-prob value exceeds this. The official default 1.0 is for probabilities; "
            "for the odds `distill evaluate` writes, pass its null_threshold (default 0)."
        ),
    ] = 1.0,
) -> None:
    """Score SQuAD predictions exactly as the official v2.0 evaluation script does."""
    from distill.data.squad import read_squad
    from distill.io import read_json
    from distill.metrics.squad import missing_predictions, score_squad, validate_na_probs, validate_predictions

    dataset = read_squad(str(data), check_answer_spans=False)
    answers = validate_predictions(read_json(predictions), str(predictions))
    na_probs = None
    if na_prob_file is not None:
        scored = [qa["id"] for qa in dataset.questions() if qa["id"] in answers]
        na_probs = validate_na_probs(read_json(na_prob_file), str(na_prob_file), scored)
    missing = missing_predictions(dataset, answers)
    if missing:
        typer.echo(
            f"warning: {len(missing)} of {dataset.num_questions} questions have no prediction "
            f"(e.g. {missing[0]}); they score 0",
            err=True,
        )
    _print_json(score_squad(dataset, answers, na_probs, na_prob_thresh=na_prob_thresh))


@app.command()
def evaluate(
    model: Annotated[str, typer.Option(help="Model folder, hub id, or short name ('minilm').")],
    data: Annotated[str, typer.Option(help="SQuAD JSON for qa; TSV/CSV/JSONL for classification; or a hub id.")],
    task: Annotated[
        Literal["auto", "qa", "classification"],
        typer.Option(help="Default: from the model's head, else the file type."),
    ] = "auto",
    max_samples: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Evaluate the first N questions/rows only (`distill score` on the whole file counts the rest as 0).",
        ),
    ] = None,
    output: Annotated[
        Path | None, typer.Option(help="Write predictions here (JSON; QA: each question's best span).")
    ] = None,
    na_prob_output: Annotated[
        Path | None,
        typer.Option(
            help="QA v2: write no-answer odds here; `score --na-prob-file` with `--na-prob-thresh` = null_threshold "
            "reproduces the metrics."
        ),
    ] = None,
    null_threshold: Annotated[
        float, typer.Option(help="QA v2: abstain where the no-answer odds (a logit difference) exceed this.")
    ] = 0.0,
    validation_data: Annotated[
        Path | None,
        typer.Option(
            help="QA v2: SQuAD JSON to tune the threshold on (its best_f1_thresh); adds tuned_* metrics. "
            "Must share no question with --data."
        ),
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1)] = 32,
    max_seq_length: Annotated[
        int | None, typer.Option(min=32, help="Default: 384 for qa, 128 for classification.")
    ] = None,
    doc_stride: Annotated[int, typer.Option(min=1, help="QA window overlap in tokens.")] = 128,
    split: Annotated[str | None, typer.Option(help="Hub split when --data is a hub id.")] = None,
    text_column: Annotated[str, typer.Option(help="Classification text column.")] = "sentence",
    label_column: Annotated[str, typer.Option(help="Classification label column.")] = "label",
    trust_remote_code: Annotated[bool, typer.Option(help="Allow code shipped with the checkpoint to run.")] = False,
    precision: Annotated[
        Literal["auto", "fp32", "bf16"],
        typer.Option(help="bf16 autocast, fp32, or auto: bf16 where the GPU or CPU (AMX/AVX512-BF16) runs it fast."),
    ] = "auto",
) -> None:
    """Evaluate a model on QA (EM/F1) or classification (accuracy) data and print JSON metrics.

    QA: the metrics are the official SQuAD v2.0 script's on the files written: `distill score DATA
    OUTPUT --na-prob-file NA_PROB_OUTPUT --na-prob-thresh NULL_THRESHOLD` prints the same.
    """
    _quiet_libraries()
    from distill.config import DataSource
    from distill.data.sources import is_local
    from distill.models.loading import model_task
    from distill.precision import resolve_precision

    source = DataSource(path=data, split=split)
    if task == "auto":
        suffixes = "".join(Path(data).suffixes).lower()
        by_data = "qa" if ".json" in suffixes and ".jsonl" not in suffixes else None
        task = model_task(model) or by_data or ("classification" if is_local(data) else "qa")
    started = time.perf_counter()
    resolved = resolve_precision(precision, "cpu")  # models are evaluated where they load: on the CPU
    if task == "qa":
        result, written = _evaluate_qa(
            model,
            source,
            max_samples,
            batch_size,
            max_seq_length or 384,
            doc_stride,
            trust_remote_code,
            null_threshold,
            validation_data,
            resolved,
        )
        if na_prob_output is not None and "null_odds" not in written:
            typer.echo("note: no unanswerable questions, so nothing abstains: no na-prob file written", err=True)
    else:
        result, written = _evaluate_classification(
            model,
            source,
            max_samples,
            batch_size,
            max_seq_length or 128,
            text_column,
            label_column,
            trust_remote_code,
            resolved,
        )
    result["precision"] = resolved
    result["eval_seconds"] = round(time.perf_counter() - started, 3)
    # Outputs are written only now that everything has succeeded.
    from distill.io import atomic_write_json

    if output is not None:
        atomic_write_json(output, written["predictions"])
    if na_prob_output is not None and "null_odds" in written:
        atomic_write_json(na_prob_output, written["null_odds"])
    _print_json(result)


def _progress_bar(total: int, unit: str):  # noqa: ANN202 - tqdm type
    from tqdm.auto import tqdm

    return tqdm(total=total, unit=unit, file=sys.stderr, leave=False, disable=not sys.stderr.isatty())


def _warn_fresh_head(model: str, fresh: list[str]) -> bool:
    if fresh:
        typer.echo(
            f"note: model '{model}' has a newly initialised head ({len(fresh)} tensors): "
            "scores reflect an untrained model",
            err=True,
        )
    return bool(fresh)


def _evaluate_qa(
    model_name: str,
    source: DataSource,
    max_samples: int | None,
    batch_size: int,
    max_seq_length: int,
    doc_stride: int,
    trust_remote_code: bool,
    null_threshold: float,
    validation_data: Path | None,
    precision: str,
) -> tuple[dict, dict]:
    from distill.config import QADataConfig
    from distill.data.squad import cap_questions, check_disjoint, read_squad
    from distill.stages.evaluate import load_scorer

    try:
        settings = QADataConfig(
            eval=source,
            max_seq_length=max_seq_length,
            doc_stride=doc_stride,
            null_score_diff_threshold=null_threshold,
        )
    except ValueError as exc:
        raise DistillError(f"evaluate: {str(exc).splitlines()[-1].strip()}") from None
    dataset = cap_questions(read_squad(source), max_samples)
    validation = None
    if validation_data is not None:
        validation = read_squad(str(validation_data))
        check_disjoint(
            validation, dataset, "--validation-data and --data", "the threshold must be tuned on held-out questions"
        )
    questions = dataset.num_questions + (validation.num_questions if validation is not None else 0)
    with _progress_bar(questions, "window") as bar:
        scorer = load_scorer(
            model_name,
            None,
            batch_size=batch_size,
            precision=precision,
            trust_remote_code=trust_remote_code,
            progress=bar.update,
        )
        evaluation = scorer.qa(dataset, settings, validation=validation)
    if validation is not None and not evaluation.version_2_with_negative:
        typer.echo("note: no unanswerable questions in --data: nothing abstains, no threshold tuned", err=True)
    result = {
        "task": "qa",
        "model": model_name,
        "data": dataset.source,
        "untrained_head": _warn_fresh_head(model_name, scorer.fresh),
        "num_features": evaluation.num_features,
        "metrics": evaluation.metrics,
    }
    written = {"predictions": evaluation.predictions.best_spans}
    if evaluation.version_2_with_negative:
        written["null_odds"] = evaluation.predictions.null_odds
    return result, written


def _evaluate_classification(
    model_name,
    source,
    max_samples,
    batch_size,
    max_seq_length,
    text_column,  # noqa: ANN001, ANN202
    label_column,
    trust_remote_code,
    precision,
):
    from distill.data.classification import infer_label_list, read_classification, sample_rows
    from distill.stages.evaluate import load_scorer

    dataset = sample_rows(
        read_classification(source, text_column=text_column, label_column=label_column, default_split="validation"),
        max_samples,
        None,
    )
    with _progress_bar(len(dataset), "row") as bar:
        scorer = load_scorer(
            model_name,
            infer_label_list(dataset),
            batch_size=batch_size,
            precision=precision,
            trust_remote_code=trust_remote_code,
            progress=bar.update,
        )
        evaluation = scorer.classification(dataset, max_seq_length)
    result = {
        "task": "classification",
        "model": model_name,
        "data": dataset.source,
        "labels": scorer.label_list,
        "untrained_head": _warn_fresh_head(model_name, scorer.fresh),
        "metrics": evaluation.metrics,
    }
    return result, {"predictions": evaluation.predictions}


# `distill augment` takes its defaults and help from the config model, so the CLI and a run config agree.
_AUGMENT = AugmentConfig.model_fields


def _augment_option(name: str, *flags: str, help: str | None = None) -> Any:  # noqa: A002 - typer's name
    return typer.Option(*flags, help=help or _AUGMENT[name].description)


@app.command()
def augment(
    input: Annotated[Path, typer.Argument(help="SQuAD .json/.json.gz, or sentences as .tsv/.csv/.jsonl (.gz).")],
    output: Annotated[Path, typer.Argument(help="Where to write the augmented data (same kind of file).")],
    factor: Annotated[int, _augment_option("factor")] = _AUGMENT["factor"].default,
    method: Annotated[AugmentMethod, _augment_option("method")] = _AUGMENT["method"].default,
    replace_prob: Annotated[float, _augment_option("replace_prob")] = _AUGMENT["replace_prob"].default,
    candidates: Annotated[int, _augment_option("candidates")] = _AUGMENT["candidates"].default,
    seed: Annotated[int, typer.Option(help="Seed for the draws: same seed, same output bytes.")] = 42,
    workers: Annotated[int, _augment_option("workers")] = _AUGMENT["workers"].default,
    original: Annotated[bool, _augment_option("keep_original", "--original/--no-original")] = _AUGMENT[
        "keep_original"
    ].default,
    augment_questions: Annotated[bool, _augment_option("augment_questions")] = _AUGMENT["augment_questions"].default,
    mlm: Annotated[str, _augment_option("mlm")] = _AUGMENT["mlm"].default,
    vectors: Annotated[str, _augment_option("vectors")] = _AUGMENT["vectors"].default,
    vector_vocab_size: Annotated[int | None, _augment_option("vector_vocab_size")] = _AUGMENT[
        "vector_vocab_size"
    ].default,
    mask_ratio: Annotated[float, _augment_option("mask_ratio")] = _AUGMENT["mask_ratio"].default,
    batch_size: Annotated[int, _augment_option("batch_size")] = _AUGMENT["batch_size"].default,
    text_column: Annotated[
        list[str] | None, typer.Option(help="Sentence column(s) to augment (repeatable); default 'sentence'.")
    ] = None,
) -> None:
    """Multiply training data TinyBERT-style: words swapped for likely substitutes, SQuAD answers kept exact."""
    _quiet_libraries()
    from pydantic import ValidationError

    from distill.augment.runner import augment_file, detect_kind
    from distill.config import format_validation_error

    try:
        settings = AugmentConfig(
            method=method,
            factor=factor,
            replace_prob=replace_prob,
            candidates=candidates,
            keep_original=original,
            augment_questions=augment_questions,
            mlm=mlm,
            vectors=vectors,
            vector_vocab_size=vector_vocab_size,
            mask_ratio=mask_ratio,
            batch_size=batch_size,
            workers=workers,
        )
    except ValidationError as exc:
        raise DistillError(format_validation_error(exc, "augment").replace("augment: ", "augment: --", 1)) from None
    unit = "paragraph" if detect_kind(input) == "squad" else "row"
    bar = _progress_bar(0, unit)

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    with bar:
        result = augment_file(input, output, settings, seed=seed, text_columns=text_column, progress=progress)
    typer.echo(f"{output}: {result.summary()}")


@app.command()
def serve(
    configs: Annotated[list[Path], typer.Argument(help="YAML run configs, one deployment each.")],
    cron: Annotated[str | None, typer.Option(help="Cron schedule (UTC), e.g. '0 2 * * *'.")] = None,
) -> None:
    """Serve the configs as Prefect deployments from this process (one machine, no work pool or worker)."""
    _quiet_libraries()
    from deployments.serve import serve_configs

    serve_configs(configs, cron)


@app.command()
def validate(config: Annotated[Path, typer.Argument(help="YAML run config.")]) -> None:
    """Check a run config and print it fully resolved (defaults filled in, ${VAR}s expanded, secrets as ***)."""
    from distill.config import load_config

    # JSON dumps of a config redact secrets (distill.config_base): what is printed is safe to share.
    _print_json(load_config(config).model_dump(mode="json"))


@app.command()
def run(
    config: Annotated[Path, typer.Argument(help="YAML run config.")],
    artifacts: Annotated[Path | None, typer.Option(help="Artifact root; overrides the config's artifact_root.")] = None,
    refresh: Annotated[
        list[str] | None, typer.Option(help="Recompute this stage even if cached (repeatable); later stages follow.")
    ] = None,
    summary_json: Annotated[Path | None, typer.Option(help="Write a JSON summary of every stage here.")] = None,
) -> None:
    """Run the distillation workflow described by CONFIG as a Prefect flow (cached, resumable, monitored)."""
    from distill.config import load_config

    # The config first: a typo fails in a moment, before torch and transformers are imported.
    run_config = load_config(config)
    if artifacts is not None:
        run_config = run_config.model_copy(update={"artifact_root": str(artifacts)})
    from distill.stages.inputs import STAGE_KINDS

    unknown = sorted(set(refresh or []) - set(STAGE_KINDS))
    if unknown:
        raise DistillError(f"--refresh: unknown stage {unknown[0]!r} (stages: {', '.join(STAGE_KINDS)})")
    _quiet_libraries()
    from distill.preflight import preflight

    # Bad data, models or paths fail here in a second (before Prefect is even imported), not minutes into the flow.
    preflight(run_config)
    from flows.progressive import progressive_distillation

    outcome = progressive_distillation(run_config, refresh=list(refresh or []))
    if summary_json is not None:
        from distill.io import atomic_write_json
        from distill.redact import redact

        atomic_write_json(summary_json, redact({"run": run_config.name, **outcome}))
    _print_outcome(outcome)


def _print_outcome(outcome: dict) -> None:
    typer.echo(f"\n{'stage':<34} status")
    for stage in outcome["stages"]:
        typer.echo(f"{stage['name']:<34} {stage['status']}")
    rows = outcome["leaderboard"]
    metric = "accuracy" if rows and "accuracy" in rows[0] else "f1"
    header = f"{'model':<24} {'role':<10} {'eval ' + metric:>9} {'vs teacher':>11} {'lift':>8} {'params':>11}"
    typer.echo(f"\n{header} {'p50 ms':>8}")

    def number(value: object, spec: str) -> str:
        width = int("".join(ch for ch in spec.split(".")[0].split(",")[0] if ch.isdigit()) or 0)
        return format(value, spec) if isinstance(value, int | float) else "-".rjust(width)

    for row in rows:
        typer.echo(
            f"{row['model']:<24} {row['role']:<10} {number(row[metric], '9.4f')} "
            f"{number(row['delta_vs_teacher'], '+11.4f')} {number(row['lift_vs_baseline'], '+8.4f')} "
            f"{number(row['parameters'], '11,d')} {number(row['latency_p50_ms'], '8.2f')}"
        )
    teacher = next((row for row in rows if row["role"] == "teacher"), None)
    if teacher is not None:
        typer.echo(f"\nteacher eval {metric}: {teacher[metric]:.4f}")
    _print_sweeps(outcome.get("sweeps", []))


def _print_sweeps(rows: list[dict]) -> None:
    """Each swept stage's chosen trial, its validation score, and the baseline's on the same validation set."""
    for stage in dict.fromkeys(row["stage"] for row in rows):
        trials = [row for row in rows if row["stage"] == stage]
        chosen = next(row for row in trials if row.get("chosen"))
        metric = next(key for key in chosen if key.startswith("validation_"))
        settings = {k: v for k, v in chosen.items() if "." in k and v is not None}
        baseline = next((row.get(metric) for row in trials if row["trial"] == "baseline"), None)
        count = sum(row["trial"] != "baseline" for row in trials)
        line = f"\nsweep {stage}: best of {count} trials is trial {chosen['trial']} ({metric} {chosen[metric]:.4f}"
        line += f"; baseline {baseline:.4f})" if baseline is not None else ")"
        typer.echo(line)
        for name, value in settings.items():
            typer.echo(f"  {name} = {value:g}")


def main() -> None:
    """Console entry point: user errors become one line on stderr and exit code 2, transient failures one line and
    exit code 1 (see distill.errors); a bug keeps its traceback."""
    # Offline machines: Prefect's telemetry would log failures (and provoke 'database is locked' noise).
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # The first temporary server on a fresh PREFECT_HOME migrates its database (~21 s on 2 cores),
    # past Prefect's 20 s default: a first `distill run` on a new machine would fail for nothing.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
    # Core messages (e.g. "resuming from checkpoint ...") go to the task run logs in the UI too.
    os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "distill")
    from deployments.serve import use_loopback
    from distill.redact import install_log_redaction, redact_text

    use_loopback()  # before Prefect is imported: its settings are read once
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger("distill").setLevel(logging.INFO)
    install_log_redaction(*logging.getLogger().handlers)
    try:
        app()
    except DistillError as exc:
        # Messages quote the bad value, which may be a URL with credentials in it.
        typer.echo(f"distill: error: {redact_text(' '.join(str(exc).splitlines()))}", err=True)
        sys.exit(2)
    except Exception as exc:
        from distill.errors import first_line, is_transient

        if not is_transient(exc):
            raise  # a bug: its traceback is the report
        # The network or the hub failed, after the stages' own retries: nothing is wrong with the input.
        typer.echo(f"distill: error (transient; run it again to resume): {redact_text(first_line(exc))}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        typer.echo("distill: interrupted", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
