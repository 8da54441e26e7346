"""Stage body: a model's task metric and its cost (parameters, size, latency, throughput)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from distill.config import QADataConfig, RunConfig
from distill.data.task_data import QAData
from distill.errors import ModelError
from distill.evaluation import (
    Progress,
    QAEvaluation,
    evaluate_classification,
    evaluate_qa,
    tokenize_classification,
)
from distill.io import atomic_write_json
from distill.models.loading import load_model, load_tokenizer
from distill.precision import default_device, resolve_precision
from distill.profiling import SpeedRequest, first_input, measure_speed, parameter_count, size_on_disk_mb
from distill.qa.features import columns, prepare_eval_features
from distill.stages.common import load_task_data


def evaluate_model(
    config: RunConfig,
    model_path: str,
    output_dir: Any,
    *,
    trust_remote_code: bool = False,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Score the model at `model_path` on the eval data; predictions go to `output_dir` (see write_qa_predictions).

    QA `f1`/`exact` are at the configured `null_score_diff_threshold`; with validation data on
    v2, the figures at the threshold tuned on it are beside them as `tuned_*`.
    """
    data = load_task_data(config, need_train=False)
    settings = config.data
    tokenizer = load_tokenizer(model_path, trust_remote_code=trust_remote_code)
    batch_size = config.teacher.training.eval_batch_size
    precision = resolve_precision(config.precision, "cpu")  # models are evaluated where they load: on the CPU
    if isinstance(data, QAData):
        model, fresh = load_model(model_path, "qa", trust_remote_code=trust_remote_code)
        evaluation = evaluate_qa(
            model,
            tokenizer,
            data.eval,
            settings,
            batch_size=batch_size,
            progress=progress,
            validation=data.validation,
            precision=precision,
        )
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
        model, fresh = load_model(
            model_path, "classification", num_labels=len(data.label_list), trust_remote_code=trust_remote_code
        )
        label_list = [model.config.id2label[i] for i in range(model.config.num_labels)]
        if sorted(label_list) != sorted(data.label_list):
            raise ModelError(f"model '{model_path}': trained for labels {label_list}, data has {data.label_list}")
        evaluation = evaluate_classification(
            model,
            tokenizer,
            data.eval,
            label_list,
            max_seq_length=settings.max_seq_length,
            batch_size=batch_size,
            progress=progress,
            precision=precision,
        )
        metrics = dict(evaluation.metrics)
        atomic_write_json(output_dir / "predictions.json", evaluation.predictions)
        sample = first_input(
            tokenize_classification(data.eval.take([0], ""), tokenizer, max_seq_length=settings.max_seq_length)
        )
    cost = config.evaluation
    metrics.update(
        precision=precision,
        parameters=parameter_count(model),
        size_on_disk_mb=size_on_disk_mb(model_path),
        untrained_head=bool(fresh),
    )
    del model  # the measuring process loads its own copy; this one need not share the machine's memory with it
    # Timed in a process of its own, at the precision the model runs at (see distill.profiling for why).
    speed = SpeedRequest(
        model_path=model_path,
        task="qa" if isinstance(data, QAData) else "classification",
        num_labels=None if isinstance(data, QAData) else len(data.label_list),
        trust_remote_code=trust_remote_code,
        example=sample,
        precision=resolve_precision(config.precision, default_device()),  # the device latency is timed on
        threads=cost.latency_threads,
        latency_seconds=cost.latency_seconds,
        latency_samples=cost.latency_samples,
        throughput_batch_size=cost.throughput_batch_size,
    )
    metrics.update(measure_speed(speed))
    return metrics


def task_metric_name(config: RunConfig) -> str:
    """The headline metric for the run's task."""
    return "f1" if isinstance(config.data, QADataConfig) else "accuracy"


def write_qa_predictions(evaluation: QAEvaluation, output_dir: Path) -> None:
    """The official script's inputs, so its output equals the metrics.

    `predictions.json`: each question's best non-null span. On v2, `null_odds.json`: its
    no-answer odds, the `--na-prob-file`; score with `--na-prob-thresh` = the metrics'
    `null_threshold` (or `tuned_null_threshold` for the tuned figures). When the threshold
    was tuned, the same pair for the validation set as `validation_predictions.json` and
    `validation_null_odds.json` (their official sweep gives `tuned_null_threshold`; see
    `distill.qa.scoring.tuned_threshold`).
    """
    atomic_write_json(output_dir / "predictions.json", evaluation.predictions.best_spans)
    if evaluation.version_2_with_negative:
        atomic_write_json(output_dir / "null_odds.json", evaluation.predictions.null_odds)
    if evaluation.validation is not None:
        atomic_write_json(output_dir / "validation_predictions.json", evaluation.validation.predictions.best_spans)
        atomic_write_json(output_dir / "validation_null_odds.json", evaluation.validation.predictions.null_odds)
