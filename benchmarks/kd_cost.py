"""Benchmark: what prediction-layer distillation costs over plain fine-tuning, and what the teacher cache saves.

One run, one student (the first 3 layers of a fine-tuned teacher), one dataset, one
schedule; three ways to train it, timed side by side:

- plain: fine-tuning on hard labels only;
- kd-cached: Hinton KD with one teacher pass over the features first (its time included);
- kd-per-step: Hinton KD with the teacher run at every step (the Haystack / txtai way);
- intermediate: TinyBERT intermediate-layer distillation (embeddings, hidden states,
  attention scores; the recording eager attention in both models, teacher run every step).

    python benchmarks/kd_cost.py --profile quick   # synthetic data, tiny model, < 1 minute
    python benchmarks/kd_cost.py --profile full    # SST-2 from $DISTILL_DATA_DIR, MiniLM teacher

Writes `benchmarks/results/kd_cost-<profile>.json` and `.md`. The teacher's own
fine-tuning is not part of any timing.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import common
from common import machine, write_results
from transformers import DataCollatorWithPadding, set_seed

from distill.config import ClassificationDataConfig, DataSource, PredictionTrainingConfig, StudentConfig
from distill.data.classification import ClassificationDataset, read_classification, sample_rows
from distill.data.synthetic import synthetic_sentiment
from distill.evaluation.evaluate import evaluate_classification
from distill.models.attention import RECORDING_ATTENTION
from distill.models.loading import load_model, load_tokenizer, save_model
from distill.models.student import build_student, num_layers
from distill.training import teacher_logits
from distill.training.distillation import PredictionDistillationTrainer
from distill.training.features import classification_train_dataset
from distill.training.intermediate import (
    HiddenProjections,
    IntermediateDistillationTrainer,
    attach_projections,
    detach_projections,
)
from distill.training.layer_map import uniform_map
from distill.training.trainer import train


@dataclass(frozen=True)
class Profile:
    teacher: str
    train_rows: int
    eval_rows: int | None
    epochs: float
    batch_size: int
    max_seq_length: int
    learning_rate: float
    student_layers: tuple[int, ...]
    teacher_epochs: float


PROFILES = {
    "quick": Profile("tiny-bert", 240, 120, 3, 16, 32, 1e-3, (0, 1), teacher_epochs=6),
    "full": Profile("minilm", 2000, None, 3, 32, 64, 5e-5, (0, 1, 2), teacher_epochs=1),
}


def load_data(profile: str, settings: Profile) -> tuple[ClassificationDataset, ClassificationDataset]:
    if profile == "quick":

        def as_dataset(rows: list[dict[str, str]], name: str) -> ClassificationDataset:
            return ClassificationDataset([r["sentence"] for r in rows], [r["label"] for r in rows], name)

        return (
            as_dataset(synthetic_sentiment(rows=settings.train_rows, seed=0), "synthetic:train"),
            as_dataset(synthetic_sentiment(rows=settings.eval_rows or 120, seed=1), "synthetic:eval"),
        )
    data_dir = common.data_dir("SST-2")
    train_set = read_classification(DataSource(path=f"{data_dir}/sst2/train.tsv.gz"))
    dev_set = read_classification(DataSource(path=f"{data_dir}/sst2/dev.tsv"))
    return sample_rows(train_set, settings.train_rows, 0), sample_rows(dev_set, settings.eval_rows, None)


def run(profile: str, output_dir: Path) -> dict[str, Any]:
    settings = PROFILES[profile]
    work = Path(tempfile.mkdtemp(prefix="distill-kd-cost-"))
    labels = ["0", "1"]
    id2label = dict(enumerate(labels))
    training = PredictionTrainingConfig(
        epochs=settings.epochs,
        batch_size=settings.batch_size,
        learning_rate=settings.learning_rate,
        save_steps=10**9,
        logging_steps=50,
    )
    data_settings = ClassificationDataConfig(eval="unused.tsv", max_seq_length=settings.max_seq_length)
    train_set, dev_set = load_data(profile, settings)
    tokenizer = load_tokenizer(settings.teacher)
    features = classification_train_dataset(train_set, tokenizer, data_settings, labels, for_distillation=True)
    plain_features = features.remove_columns(["feature_index"])
    collator = DataCollatorWithPadding(tokenizer)

    # The teacher: fine-tuned once, untimed.
    set_seed(0)
    teacher, _ = load_model(settings.teacher, "classification", id2label=id2label)
    train(
        teacher,
        plain_features,
        training.model_copy(update={"epochs": settings.teacher_epochs}),
        checkpoint_dir=work / "teacher-ckpt",
        seed=0,
        data_collator=collator,
    )
    teacher_dir = save_model(teacher, tokenizer, work / "teacher")

    def accuracy(model: Any) -> float:
        return evaluate_classification(
            model, tokenizer, dev_set, labels, max_seq_length=settings.max_seq_length
        ).metrics["accuracy"]

    teacher_accuracy = round(accuracy(teacher), 4)
    print(f"teacher      dev accuracy {teacher_accuracy:.4f}", flush=True)

    def student(attn_implementation: str | None) -> Any:
        set_seed(0)
        model, _, _ = build_student(
            StudentConfig(layers=list(settings.student_layers)),
            str(teacher_dir),
            "classification",
            id2label=id2label,
            attn_implementation=attn_implementation,
        )
        return model

    results: dict[str, dict[str, Any]] = {}

    def timed(name: str, body: Any, attn_implementation: str | None = None) -> None:
        model = student(attn_implementation)
        started = time.perf_counter()
        extra = body(model) or {}
        seconds = time.perf_counter() - started
        results[name] = {"seconds": round(seconds, 2), "dev_accuracy": round(accuracy(model), 4), **extra}
        print(f"{name:<12} {seconds:8.1f} s  accuracy {results[name]['dev_accuracy']:.4f}", flush=True)

    def plain(model: Any) -> None:
        train(model, plain_features, training, checkpoint_dir=work / "plain", seed=0, data_collator=collator)

    timed("plain", plain)

    def kd(model: Any, name: str, **teacher: Any) -> None:
        """Hinton KD (T = 2, w = 0.75) from cached `teacher_logits` or a per-step `teacher_model`."""
        train(
            model,
            features,
            training,
            checkpoint_dir=work / name,
            seed=0,
            data_collator=collator,
            trainer_class=PredictionDistillationTrainer,
            keep_extra_columns=True,
            trainer_kwargs={"task": "classification", "temperature": 2.0, "loss_weight": 0.75, **teacher},
        )

    def kd_cached(model: Any) -> dict[str, Any]:
        cache = work / "logits"
        shutil.rmtree(cache, ignore_errors=True)
        arrays, _, pass_seconds = teacher_logits.load_or_compute(
            cache,
            "teacher",
            features,
            lambda: teacher_logits.teacher_pass(teacher, features, ("logits",), batch_size=64),
        )
        kd(model, "kd-cached", teacher_logits=arrays)
        return {"teacher_pass_seconds": round(pass_seconds, 2)}

    def kd_per_step(model: Any) -> None:
        kd(model, "kd-step", teacher_model=teacher)

    def intermediate(model: Any) -> None:
        teacher_model, _ = load_model(str(teacher_dir), "classification", attn_implementation=RECORDING_ATTENTION)
        pairs = uniform_map(num_layers(model), num_layers(teacher_model))
        attach_projections(model, HiddenProjections(pairs, model.config.hidden_size, teacher_model.config.hidden_size))
        train(
            model,
            plain_features,
            training,
            checkpoint_dir=work / "intermediate",
            seed=0,
            data_collator=collator,
            trainer_class=IntermediateDistillationTrainer,
            trainer_kwargs={
                "teacher_model": teacher_model,
                "pairs": pairs,
                "embedding_weight": 1.0,
                "hidden_weight": 1.0,
                "attention_weight": 1.0,
                "attention_loss": "mse",
            },
        )
        detach_projections(model)

    timed("kd-cached", kd_cached)
    timed("kd-per-step", kd_per_step)
    timed("intermediate", intermediate, attn_implementation=RECORDING_ATTENTION)

    plain = results["plain"]["seconds"]
    examples = len(features) * settings.epochs
    for name in results:
        results[name]["vs_plain"] = round(results[name]["seconds"] / plain, 3)
        results[name]["ms_per_example"] = round(1000 * results[name]["seconds"] / examples, 2)
    # Intermediate-layer accuracy is that of a student trained on internals only (no task loss yet).
    intermediate_vs_kd = round(results["intermediate"]["seconds"] / results["kd-cached"]["seconds"], 3)
    report = {
        "benchmark": "kd_cost",
        "profile": profile,
        "command": f"python benchmarks/kd_cost.py --profile {profile}",
        "settings": settings.__dict__
        | {"train_rows": len(train_set), "eval_rows": len(dev_set), "train_features": len(features)},
        "machine": machine(),
        "teacher_dev_accuracy": teacher_accuracy,
        "results": results,
        "target": "kd-cached <= 1.2x plain, and below kd-per-step; intermediate <= 2x kd-cached per example",
        "intermediate_vs_kd_cached": intermediate_vs_kd,
        "target_met": results["kd-cached"]["vs_plain"] <= 1.2
        and results["kd-cached"]["seconds"] < results["kd-per-step"]["seconds"]
        and intermediate_vs_kd <= 2.0,
    }
    write_results(report, markdown(report), output_dir)
    shutil.rmtree(work, ignore_errors=True)
    return report


def markdown(report: dict[str, Any]) -> str:
    settings, m = report["settings"], report["machine"]
    lines = [
        f"### KD cost, profile `{report['profile']}`",
        "",
        f"`{report['command']}`: teacher `{settings['teacher']}`, student layers {list(settings['student_layers'])}, "
        f"{settings['train_rows']} training rows, {settings['epochs']} epochs, batch {settings['batch_size']}, "
        f"max length {settings['max_seq_length']}; dev {settings['eval_rows']} rows; "
        f"teacher dev accuracy {report['teacher_dev_accuracy']:.4f}. "
        f"Machine: {m['cpu']}, {m['cores']} cores, GPU {m['gpu']}, torch {m['torch']}.",
        "",
        "| variant | wall time (s) | vs plain | ms per example | dev accuracy | teacher pass (s) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, row in report["results"].items():
        lines.append(
            f"| {name} | {row['seconds']:.1f} | {row['vs_plain']:.2f}x | {row['ms_per_example']:.2f} | "
            f"{row['dev_accuracy']:.4f} | {row.get('teacher_pass_seconds', '')} |"
        )
    lines += [
        "",
        f"Intermediate-layer vs prediction-layer (cached) per example: {report['intermediate_vs_kd_cached']:.2f}x. "
        "The intermediate row's accuracy is that of a student trained on the teacher's internals only; "
        "TinyBERT follows that step with prediction-layer distillation.",
        "",
        f"Target ({report['target']}): **{'met' if report['target_met'] else 'not met'}**.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    args = common.parser(__doc__).parse_args()
    common.quiet()
    report = run(args.profile, args.output_dir)
    print(markdown(report))


if __name__ == "__main__":
    main()
