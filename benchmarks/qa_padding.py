"""Benchmark: QA windows padded to max_seq_length vs padded per batch with batches grouped by length.

Real SQuAD 2.0 windows (256 tokens, stride 128) from the first dev articles, two ways:

- max_length: every window padded to 256 by the tokenizer (`padding="max_length"`) and batched by
  `default_data_collator`: the features training and evaluation used before;
- per_batch: unpadded windows, each batch padded to its own longest by `QACollator`, training batches
  grouped by length (`train_sampling_strategy="group_by_length"`): what they use now.

For each: the share of padding tokens in the epoch's batches (also for per-batch padding in random
order, to show what grouping adds), the wall time of one training epoch of a MiniLM QA model through
`distill.training.trainer.train`, and the evaluation forward pass (`forward_in_batches`) over the same
questions' windows; the last trained model is evaluated both ways, and its answers and null odds must
agree. Also the plain QA loss of the batch of shortest windows at initialisation both ways: the
model's cross-entropy ranges over padding positions too, so it is not padding-invariant.

    DISTILL_DATA_DIR=../shared/data python benchmarks/qa_padding.py --profile full   # ~8 minutes at 1 thread on 2 cores
    python benchmarks/qa_padding.py --profile quick                                  # generated data, tiny model

Writes `benchmarks/results/qa_padding-<profile>.json` and `.md`.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import common
import numpy as np
import torch
from common import machine, machine_line, today, write_results
from datasets import Dataset
from transformers import default_data_collator, set_seed

from distill.config import PredictionTrainingConfig, QADataConfig
from distill.data.squad import SquadDataset, cap_questions, parse_squad, read_squad, select_articles
from distill.data.synthetic import synthetic_squad
from distill.models.inference import forward_in_batches
from distill.models.loading import load_model, load_tokenizer
from distill.qa.features import columns, prepare_eval_features, prepare_train_features
from distill.qa.postprocess import postprocess_qa_predictions
from distill.training.features import QACollator, qa_train_dataset
from distill.training.trainer import LengthGroupedTrainer, train, training_arguments


@dataclass(frozen=True)
class Profile:
    model: str
    articles: int  # the first N dev articles (full), or N generated ones of 1 to N facts a paragraph (quick)
    questions: int  # the first N questions of those
    max_seq_length: int
    doc_stride: int
    batch_size: int
    eval_batch_size: int


PROFILES = {
    "quick": Profile("tiny-bert", 6, 200, 96, 32, 16, 64),
    # 384 questions of "Normans" and "Computational_complexity_theory": ~26 steps of 16 windows per epoch.
    "full": Profile("minilm", 2, 384, 256, 128, 16, 64),
}


def load_squad(profile: str, settings: Profile) -> SquadDataset:
    if profile == "quick":  # paragraphs of 1 to 6 facts, so windows vary in length as real contexts do
        articles = [
            article
            for facts in range(1, settings.articles + 1)
            for article in synthetic_squad(articles=1, paragraphs=3, facts=facts, seed=facts)["data"]
        ]
        dataset = parse_squad({"version": "v2.0", "data": articles}, source="synthetic")
    else:
        dev = read_squad(str(common.data_dir("SQuAD 2.0 dev") / "squad_v2" / "dev-v2.0.json.gz"))
        dataset = select_articles(dev, settings.articles, from_end=False)
    return cap_questions(dataset, settings.questions)


def padding_share(lengths: np.ndarray, batches: list[np.ndarray], width: int | None = None) -> float:
    """Padding tokens over all tokens of `batches` (row indices), each padded to `width` or its longest row."""
    real = sum(int(lengths[rows].sum()) for rows in batches)
    total = sum(len(rows) * (width or int(lengths[rows].max())) for rows in batches)
    return round(1 - real / total, 4)


def in_batches(order: list[int] | np.ndarray, batch_size: int) -> list[np.ndarray]:
    order = np.asarray(order)
    return [order[begin : begin + batch_size] for begin in range(0, len(order), batch_size)]


def run(profile: str, output_dir: Path) -> dict[str, Any]:
    settings = PROFILES[profile]
    work = Path(tempfile.mkdtemp(prefix="distill-qa-padding-"))
    squad = load_squad(profile, settings)
    tokenizer = load_tokenizer(settings.model)
    window = {"max_seq_length": settings.max_seq_length, "doc_stride": settings.doc_stride}
    per_batch = qa_train_dataset(squad, tokenizer, QADataConfig(eval="unused.json", **window))
    padded = prepare_train_features(columns(squad.examples()), tokenizer, pad_to_max_length=True, **window)
    max_length = Dataset.from_dict({name: padded[name] for name in per_batch.column_names})
    lengths = np.array([len(ids) for ids in per_batch["input_ids"]])
    training = PredictionTrainingConfig(
        epochs=1, batch_size=settings.batch_size, learning_rate=5e-5, save_steps=10**9, logging_steps=10**9
    )

    # Padding share of one epoch's batches, in the order training draws them.
    args = training_arguments(training, work / "sampler", seed=0, show_progress=False, group_by_length=True)
    set_seed(0)  # the new QA head, whose loss is compared below
    model, _ = load_model(settings.model, "qa")
    sampler = LengthGroupedTrainer(model=model, args=args, train_dataset=per_batch)._get_train_sampler(per_batch)
    shuffled = torch.randperm(len(lengths), generator=torch.Generator().manual_seed(0)).tolist()
    grouped = in_batches(list(sampler), settings.batch_size)
    shares = {
        "max_length": padding_share(lengths, in_batches(shuffled, settings.batch_size), settings.max_seq_length),
        "per_batch_random_order": padding_share(lengths, in_batches(shuffled, settings.batch_size)),
        "per_batch_grouped": padding_share(lengths, grouped),
    }
    print(f"{len(lengths)} windows; padding share {shares}", flush=True)

    # The plain QA loss of one batch padded both ways, at initialisation (eval mode: no dropout): the grouped
    # batch of the shortest windows, where per-batch padding drops the most positions from the softmax.
    first = min(grouped, key=lambda rows: lengths[rows].max()).tolist()
    with torch.no_grad():
        model.eval()
        hard_loss = {
            "max_length": round(float(model(**default_data_collator([max_length[i] for i in first])).loss), 4),
            "per_batch": round(float(model(**QACollator(tokenizer)([per_batch[i] for i in first])).loss), 4),
        }
    print(f"plain QA loss of one batch at init: {hard_loss}", flush=True)

    # One training epoch each way, through the product's train().
    timings: dict[str, dict[str, Any]] = {}
    for name, features, collator in (
        ("max_length", max_length, default_data_collator),
        ("per_batch", per_batch, QACollator(tokenizer)),
    ):
        set_seed(0)
        model, _ = load_model(settings.model, "qa")
        started = time.perf_counter()
        summary = train(
            model,
            features,
            training,
            checkpoint_dir=work / name / "checkpoints",
            seed=0,
            data_collator=collator,
            group_by_length=name == "per_batch",  # as QA stages train: windows of similar length share a batch
        )
        seconds = time.perf_counter() - started
        timings[name] = {
            "train_seconds": round(seconds, 2),
            "train_steps": summary.global_step,
            "seconds_per_step": round(seconds / summary.global_step, 3),
            "train_loss": round(summary.train_loss, 4),
        }
        print(f"{name}: {timings[name]}", flush=True)

    # Evaluation of the last trained model over the same questions' windows, padded each way: best spans,
    # no-answer odds, and the answers after abstaining at threshold 0 (a briefly trained model may abstain
    # everywhere, so the spans are compared too).
    examples = squad.examples()
    predictions = {}
    for name in timings:
        features = prepare_eval_features(columns(examples), tokenizer, pad_to_max_length=name == "max_length", **window)
        started = time.perf_counter()
        logits = forward_in_batches(
            model, features, ("start_logits", "end_logits"), batch_size=settings.eval_batch_size
        )
        timings[name]["eval_seconds"] = round(time.perf_counter() - started, 2)
        predictions[name] = postprocess_qa_predictions(examples, features, logits["start_logits"], logits["end_logits"])
    eval_lengths = np.sort(np.array([len(ids) for ids in features["input_ids"]]))[::-1]
    shares["eval_max_length"] = padding_share(
        eval_lengths, in_batches(range(len(eval_lengths)), settings.eval_batch_size), settings.max_seq_length
    )
    shares["eval_per_batch_sorted"] = padding_share(
        eval_lengths, in_batches(range(len(eval_lengths)), settings.eval_batch_size)
    )
    before, after = predictions["max_length"], predictions["per_batch"]
    answers_before, answers_after = before.final_answers(0.0), after.final_answers(0.0)
    agreement = {
        "questions": len(before.best_spans),
        "answers_differing": sum(answers_before[q] != answer for q, answer in answers_after.items()),
        "answered": sum(bool(answer) for answer in answers_after.values()),
        "best_spans_differing": sum(before.best_spans[q] != span for q, span in after.best_spans.items()),
        "max_null_odds_difference": float(max(abs(before.null_odds[q] - odds) for q, odds in after.null_odds.items())),
    }
    print(f"evaluation both ways: {agreement}", flush=True)
    shutil.rmtree(work, ignore_errors=True)

    report = {
        "benchmark": "qa_padding",
        "profile": profile,
        "date": today(),
        "command": f"python benchmarks/qa_padding.py --profile {profile}",
        "settings": asdict(settings) | {"questions_used": squad.num_questions, "windows": len(lengths)},
        "machine": machine(),
        "padding_share": shares,
        "hard_loss_one_batch_at_init": hard_loss,
        "results": timings,
        "train_speedup": round(timings["max_length"]["train_seconds"] / timings["per_batch"]["train_seconds"], 3),
        "eval_speedup": round(timings["max_length"]["eval_seconds"] / timings["per_batch"]["eval_seconds"], 3),
        "evaluation_agreement": agreement,
    }
    write_results(report, markdown(report), output_dir)
    return report


def markdown(report: dict[str, Any]) -> str:
    s, shares, results = report["settings"], report["padding_share"], report["results"]
    agreement = report["evaluation_agreement"]
    lines = [
        f"### QA padding, profile `{report['profile']}` ({report['date']})",
        "",
        f"`{report['command']}`: `{s['model']}` QA model, {s['questions_used']} questions of the first "
        f"{s['articles']} articles, {s['windows']} windows of {s['max_seq_length']} tokens (stride "
        f"{s['doc_stride']}); one epoch at batch {s['batch_size']}, evaluation at batch {s['eval_batch_size']}. "
        f"{machine_line(report['machine'])} torch threads: {report['machine']['torch_threads']}.",
        "",
        "| padding | padding share | train epoch (s) | s / step | train loss | eval forward (s) |",
        "|---|---:|---:|---:|---:|---:|",
        f"| max_length (before) | {shares['max_length']:.1%} | {results['max_length']['train_seconds']} | "
        f"{results['max_length']['seconds_per_step']} | {results['max_length']['train_loss']} | "
        f"{results['max_length']['eval_seconds']} |",
        f"| per batch, random order | {shares['per_batch_random_order']:.1%} | | | | |",
        f"| per batch, grouped by length (now) | {shares['per_batch_grouped']:.1%} | "
        f"{results['per_batch']['train_seconds']} | {results['per_batch']['seconds_per_step']} | "
        f"{results['per_batch']['train_loss']} | {results['per_batch']['eval_seconds']} |",
        "",
        f"Training {report['train_speedup']:.2f}x, evaluation {report['eval_speedup']:.2f}x faster per batch "
        f"padded (evaluation padding share {shares['eval_max_length']:.1%} at max length, "
        f"{shares['eval_per_batch_sorted']:.1%} sorted and padded per batch). The trained per-batch model "
        f"evaluated both ways: {agreement['answers_differing']} of {agreement['questions']} answers differ "
        f"({agreement['answered']} answered), {agreement['best_spans_differing']} best non-null spans differ, "
        "null odds within "
        f"{agreement['max_null_odds_difference']:.1e}. Plain QA loss of the batch of shortest windows at "
        "initialisation: "
        f"{report['hard_loss_one_batch_at_init']['max_length']:.4f} padded to max length, "
        f"{report['hard_loss_one_batch_at_init']['per_batch']:.4f} padded per batch (the model's "
        "cross-entropy also ranges over padding positions, so it is not padding-invariant).",
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
