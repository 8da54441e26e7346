"""Stage bodies: a model's task metric and its cost (parameters, size, latency, throughput); its validation score.

Eval is the test set: reported, never selected on. Choices (sweeps, `min_teacher_metric`)
read the validation figures, `validation_<metric>`, which `evaluate_model` reports beside
the eval ones and `validate_model` alone gives, the same values, without touching eval's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from distill.config import QADataConfig
from distill.data.classification import ClassificationDataset
from distill.data.task_data import ClassificationData, QAData, load_task_data
from distill.errors import DataError
from distill.evaluation.evaluate import (
    Progress,
    QAEvaluation,
    qa_version_2,
    tokenize_classification,
    validation_metrics,
)
from distill.evaluation.profiling import SpeedRequest, first_input, measure_speed, parameter_count, size_on_disk_mb
from distill.evaluation.scorer import Scorer, load_scorer
from distill.io import atomic_write_json
from distill.qa.features import columns, prepare_eval_features
from distill.stages.inputs import EvaluateInput, ValidateInput


def _load_scorer(
    inputs: EvaluateInput | ValidateInput, data: QAData | ClassificationData, progress: Progress | None
) -> Scorer:
    return load_scorer(
        inputs.model.model(),
        None if isinstance(data, QAData) else data.label_list,
        batch_size=inputs.batch_size,
        precision=inputs.precision,
        trust_remote_code=inputs.trust_remote_code,
        progress=progress,
    )


def _validate_classification(
    scorer: Scorer, validation: ClassificationDataset, max_seq_length: int, output_dir: Path
) -> dict[str, Any]:
    evaluation = scorer.classification(validation, max_seq_length)
    atomic_write_json(output_dir / "validation_predictions.json", evaluation.predictions)
    return validation_metrics(evaluation.metrics)


def evaluate_model(inputs: EvaluateInput, output_dir: Any, *, progress: Progress | None = None) -> dict[str, Any]:
    """Score `inputs.model` on the eval data; predictions go to `output_dir` (see write_qa_predictions).

    QA `f1`/`exact` are at the configured `null_score_diff_threshold`; with validation data on
    v2, the figures at the threshold tuned on it are beside them as `tuned_*`. With validation
    data, its figures are beside the eval ones as `validation_*` (those `validate_model` gives).
    """
    data = load_task_data(inputs.data.config, need_train=False)
    settings, output_dir = inputs.data.config, Path(output_dir)
    model_path, trust_remote_code = inputs.model.model(), inputs.trust_remote_code
    scorer = _load_scorer(inputs, data, progress)
    tokenizer = scorer.tokenizer
    if isinstance(data, QAData):
        assert isinstance(settings, QADataConfig)
        evaluation = scorer.qa(data.eval, settings, validation=data.validation)
        metrics: dict[str, Any] = dict(evaluation.metrics)
        write_qa_predictions(evaluation, output_dir)
        sample = first_input(
            prepare_eval_features(
                columns(data.eval.examples()[:1]),
                tokenizer,
                max_seq_length=settings.max_seq_length,
                doc_stride=settings.doc_stride,
                pad_to_max_length=True,  # latency of one full window, whatever the first example's length
            )
        )
    else:
        classified = scorer.classification(data.eval, settings.max_seq_length)
        metrics = dict(classified.metrics)
        atomic_write_json(output_dir / "predictions.json", classified.predictions)
        if data.validation is not None:
            metrics.update(_validate_classification(scorer, data.validation, settings.max_seq_length, output_dir))
        sample = first_input(
            tokenize_classification(data.eval.take([0], ""), tokenizer, max_seq_length=settings.max_seq_length)
        )
    cost = inputs.cost
    metrics.update(
        precision=scorer.options["precision"],
        parameters=parameter_count(scorer.model),
        size_on_disk_mb=size_on_disk_mb(model_path),
        untrained_head=bool(scorer.fresh),
    )
    head_labels = scorer.label_list  # the head's labels (a file may hold only some): the size it is loaded at
    del scorer  # the measuring process loads its own copy; this one need not share the machine's memory with it
    # Timed in a process of its own, at the precision the model runs at (see distill.evaluation.profiling for why).
    speed = SpeedRequest(
        model_path=model_path,
        task="qa" if isinstance(data, QAData) else "classification",
        num_labels=None if head_labels is None else len(head_labels),
        trust_remote_code=trust_remote_code,
        example=sample,
        precision=inputs.speed_precision,  # that of the device latency is timed on
        threads=cost.latency_threads,
        latency_seconds=cost.latency_seconds,
        latency_samples=cost.latency_samples,
        throughput_batch_size=cost.throughput_batch_size,
    )
    metrics.update(measure_speed(speed))
    return metrics


def validate_model(inputs: ValidateInput, output_dir: Any, *, progress: Progress | None = None) -> dict[str, Any]:
    """Score `inputs.model` on the validation set only: the `validation_*` keys `evaluate_model` adds.

    Nothing is predicted on eval and nothing is timed. Validation predictions go to `output_dir`
    as `validation_predictions.json` (QA v2: and `validation_null_odds.json`).
    """
    settings = inputs.data.config
    data = load_task_data(settings, need_train=False)
    if data.validation is None:
        raise DataError(
            "data: no validation set to score on; set data.validation or data.validation_fraction "
            "(eval is the test set, which nothing is selected on)"
        )
    output_dir = Path(output_dir)
    scorer = _load_scorer(inputs, data, progress)
    if isinstance(data, QAData):
        assert isinstance(settings, QADataConfig) and data.validation is not None
        # Scored as evaluate_model scores it: with abstention exactly when the eval figures are.
        as_eval = settings.model_copy(update={"version_2_with_negative": qa_version_2(settings, data.eval)})
        evaluation = scorer.qa(data.validation, as_eval)
        _write_qa_files(evaluation, output_dir, "validation_")
        return validation_metrics(evaluation.metrics)
    assert data.validation is not None
    return _validate_classification(scorer, data.validation, settings.max_seq_length, output_dir)


def write_qa_predictions(evaluation: QAEvaluation, output_dir: Path) -> None:
    """The official script's inputs, so its output equals the metrics.

    `predictions.json`: each question's best non-null span. On v2, `null_odds.json`: its
    no-answer odds, the `--na-prob-file`; score with `--na-prob-thresh` = the metrics'
    `null_threshold` (or `tuned_null_threshold` for the tuned figures). When the threshold
    was tuned, the same pair for the validation set as `validation_predictions.json` and
    `validation_null_odds.json` (their official sweep gives `tuned_null_threshold`; see
    `distill.qa.scoring.tuned_threshold`).
    """
    _write_qa_files(evaluation, output_dir, "")
    if evaluation.validation is not None:
        _write_qa_files(evaluation.validation, output_dir, "validation_")


def _write_qa_files(evaluation: QAEvaluation, output_dir: Path, prefix: str) -> None:
    atomic_write_json(output_dir / f"{prefix}predictions.json", evaluation.predictions.best_spans)
    if evaluation.version_2_with_negative:
        atomic_write_json(output_dir / f"{prefix}null_odds.json", evaluation.predictions.null_odds)
