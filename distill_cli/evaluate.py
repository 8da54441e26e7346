"""`distill score` and `distill evaluate`: a predictions file scored by the official SQuAD rules; a model scored
on QA or classification data, through the evaluate stage's scorer."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer

from distill.config import ClassificationDataConfig, EvaluationConfig, QADataConfig
from distill.errors import DistillError
from distill_cli.app import app, print_json, progress_bar, quiet_libraries

if TYPE_CHECKING:
    from distill.config import DataSource

# Defaults and help come from the config models, so `distill evaluate` scores as a run's evaluate stage does.
_QA = QADataConfig.model_fields
_CLASSIFICATION = ClassificationDataConfig.model_fields
_EVALUATION = EvaluationConfig.model_fields


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
    from distill.evaluation.metrics.squad import (
        missing_predictions,
        score_squad,
        validate_na_probs,
        validate_predictions,
    )
    from distill.io import read_json

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
    print_json(score_squad(dataset, answers, na_probs, na_prob_thresh=na_prob_thresh))


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
    ] = _QA["null_score_diff_threshold"].default,
    validation_data: Annotated[
        Path | None,
        typer.Option(
            help="QA v2: SQuAD JSON to tune the threshold on (its best_f1_thresh); adds tuned_* metrics. "
            "Must share no question with --data."
        ),
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1, help=_EVALUATION["batch_size"].description)] = _EVALUATION[
        "batch_size"
    ].default,
    max_seq_length: Annotated[
        int | None,
        typer.Option(
            min=32,
            help=f"Default: {_QA['max_seq_length'].default} for qa, "
            f"{_CLASSIFICATION['max_seq_length'].default} for classification.",
        ),
    ] = None,
    doc_stride: Annotated[int, typer.Option(min=1, help=_QA["doc_stride"].description)] = _QA["doc_stride"].default,
    split: Annotated[str | None, typer.Option(help="Hub split when --data is a hub id.")] = None,
    text_column: Annotated[str, typer.Option(help="Classification text column.")] = _CLASSIFICATION[
        "text_column"
    ].default,
    label_column: Annotated[str, typer.Option(help="Classification label column.")] = _CLASSIFICATION[
        "label_column"
    ].default,
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
    quiet_libraries()
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
            max_seq_length or _QA["max_seq_length"].default,
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
            max_seq_length or _CLASSIFICATION["max_seq_length"].default,
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
    print_json(result)


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
    from distill.data.squad import cap_questions, check_disjoint, read_squad
    from distill.evaluation.scorer import load_scorer

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
    with progress_bar(questions, "window") as bar:
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
    from distill.evaluation.scorer import load_scorer

    dataset = sample_rows(
        read_classification(source, text_column=text_column, label_column=label_column, default_split="validation"),
        max_samples,
        None,
    )
    with progress_bar(len(dataset), "row") as bar:
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
