"""Benchmark: the SQuAD 2.0 chain at CPU scale: augmentation, TinyBERT + Hinton distillation, baselines.

One `progressive_distillation` flow run (real Prefect, content-cached stages), as
`configs/squad_v2.yaml` describes it but sized for 2 CPU cores:

- data: SQuAD 2.0 dev split by article (the official train set is not obtainable offline):
  train on the first 400 questions of the first two articles, tune the no-answer threshold on
  the next two (534 questions), evaluate on the last article (377 questions), no overlap;
  windows of 256 tokens, stride 96;
- teacher: MiniLM-L6 fine-tuned on the training articles;
- augmentation: once, `embedding` (GloVe 6B 50d neighbours), one copy per paragraph, every
  answer kept exact; the distillation steps train on it, the teacher and baselines do not;
- l3 (layers 0, 2, 4 of the teacher): intermediate-layer distillation (embeddings, hidden
  states, attentions), then prediction-layer (T = 2, w = 0.75), each 1 epoch of the augmented
  data; baseline: the same student on labels alone, 1 epoch of the original data (the product's
  definition: same schedule, no distillation, no augmentation; so the distilled student takes
  more optimizer steps, which the table shows);
- l1 (layer 0 of the distilled l3, taught by it): the same two steps, with its baseline;
- scoring: the official SQuAD v2.0 script's figures on each model's best spans and no-answer
  odds, at the configured threshold 0 (the headline) and at the threshold tuned on the
  validation articles (the official best_f1_thresh there), side by side.

    DISTILL_DATA_DIR=../shared/data python benchmarks/squad_chain.py --profile full   # ~40 min on 2 cores
    python benchmarks/squad_chain.py --profile quick                                  # generated data, tiny model

Writes `benchmarks/results/squad_chain-<profile>.json` and `.md`.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import common
from common import machine, machine_line, run_chain, today, write_results

TRAIN_ARTICLES = ["Normans", "Computational_complexity_theory"]  # 626 questions, 333 of them unanswerable
TRAIN_QUESTIONS = 400  # the first 400 of them (file order): what 2 CPU cores train in minutes at 256 tokens
VALIDATION_ARTICLES = ["Southern_California", "Sky_(United_Kingdom)"]  # the next two: 534 questions, 246 unanswerable
EVAL_ARTICLES = ["Force"]  # the last dev article: 377 questions, 175 of them unanswerable

# The Haystack distillation guide (GPU scale, full SQuAD): F1 lift over the no-distillation student.
HAYSTACK = {
    "prediction_layer_lift": "+1.0 to +3.2",
    "intermediate_layer_lift": "+5.1 (TinyBERT-6L 71.1 -> 76.2, teacher 77.8)",
}


def _training(epochs: float, lr: float, batch: int) -> dict[str, Any]:
    return {"epochs": epochs, "learning_rate": lr, "batch_size": batch, "save_steps": 50, "logging_steps": 5}


def build_config(profile: str, root: Path) -> Any:
    from distill.config import parse_config

    if profile == "quick":
        data = {
            "train": "synthetic:qa",
            "eval": {"path": "synthetic:qa", "split": "validation"},
            "validation": {"path": "synthetic:qa", "split": "test"},  # a third seed: disjoint paragraphs
            "max_seq_length": 96,
            "doc_stride": 32,
            "max_eval_samples": 40,
        }
        teacher = {"model": "tiny-bert", "training": {**_training(4, 2e-3, 16), "warmup_ratio": 0.0}}
        student_training = _training(2, 2e-3, 16)
        augmentation = {"method": "embedding", "factor": 1, "candidates": 5, "vectors": "glove-6b-50d"}
        l3_layers = [0, 2]
    else:
        squad = str(common.data_dir("SQuAD 2.0 dev") / "squad_v2" / "dev-v2.0.json.gz")
        data = {
            "train": squad,
            "eval": squad,
            "validation": squad,
            "train_articles": TRAIN_ARTICLES,
            "validation_articles": VALIDATION_ARTICLES,
            "eval_articles": EVAL_ARTICLES,
            "max_train_samples": TRAIN_QUESTIONS,
            "version_2_with_negative": True,
            "max_seq_length": 256,
            "doc_stride": 96,
        }
        teacher = {"model": "minilm", "training": _training(2, 1e-4, 16)}
        student_training = _training(1, 1e-4, 16)
        augmentation = {
            "method": "embedding",
            "factor": 1,
            "replace_prob": 0.4,
            "candidates": 15,
            "vectors": "glove-6b-50d",
        }
        l3_layers = [0, 2, 4]

    def stage(name: str, layers: list[int]) -> dict[str, Any]:
        return {
            "name": name,
            "teacher": "previous",
            "student": {"layers": layers},
            "intermediate_layer": {"layer_map": "uniform", "training": student_training},
            "prediction_layer": {"temperature": 2.0, "loss_weight": 0.75, "training": student_training},
            "baseline": True,
        }

    stages = [stage("l3", l3_layers), stage("l1", [0])]
    return parse_config(
        {
            "name": f"squad-chain-{profile}",
            "seed": 42,
            "artifact_root": str(root),
            "data": {"task": "qa", **data},
            "teacher": teacher,
            "augmentation": augmentation,
            "stages": stages,
            "evaluation": {"latency_samples": 20},
        },
        source=f"squad_chain:{profile}",
    )


def run(profile: str, output_dir: Path, root: Path) -> dict[str, Any]:
    config = build_config(profile, root)
    chain = run_chain(config)
    from distill.report import METRIC_COLUMNS

    columns = (
        *(c for c in METRIC_COLUMNS if c.removeprefix("validation_") != "accuracy"),  # the leaderboard's QA columns
        "parameters",
        "latency_p50_ms",
        "delta_vs_teacher",
        "lift_vs_baseline",
    )
    rows = {
        model: {c: row.get(c) for c in columns} | {"taught_by": row.get("taught_by")}
        for model, row in chain["rows"].items()
    }
    stages = chain["stages"]
    report = {
        "benchmark": "squad_chain",
        "profile": profile,
        "date": today(),
        "command": f"DISTILL_DATA_DIR=../shared/data python benchmarks/squad_chain.py --profile {profile}",
        "config": config.model_dump(mode="json", exclude={"artifact_root"}),
        "train_articles": TRAIN_ARTICLES if profile == "full" else "synthetic",
        "validation_articles": VALIDATION_ARTICLES if profile == "full" else "synthetic",
        "eval_articles": EVAL_ARTICLES if profile == "full" else "synthetic",
        "machine": machine(),
        "wall_seconds": chain["seconds"],
        "rows": rows,
        "train_seconds": chain["train_seconds"],
        "stage_metrics": {name: stage["metrics"] for name, stage in stages.items()},
        "haystack_gpu_reference": HAYSTACK,
    }
    write_results(report, markdown(report), output_dir)
    return report


def markdown(report: dict[str, Any]) -> str:
    config = report["config"]
    data = config["data"]
    lines = [
        f"### SQuAD 2.0 chain, profile `{report['profile']}` ({report['date']})",
        "",
        f"`{report['command']}`; train articles {report['train_articles']}, validation articles "
        f"{report['validation_articles']}, held-out eval articles {report['eval_articles']}; max length "
        f"{data['max_seq_length']}, stride {data['doc_stride']}; teacher "
        f"{config['teacher']['model']} ({config['teacher']['training']['epochs']:g} epochs at "
        f"{config['teacher']['training']['learning_rate']:g}); augmentation {config['augmentation']['method']} x"
        f"{config['augmentation']['factor']}; wall time {report['wall_seconds'] / 60:.1f} min. "
        f"{machine_line(report['machine'])}",
        "",
        f"Figures are the official SQuAD v2.0 script's on each model's best spans and no-answer odds: at threshold "
        f"{data['null_score_diff_threshold']:g} (configured; the headline, and what deltas and lifts use), and at the "
        "threshold tuned on the validation articles (their official best_f1_thresh).",
        "",
        "| model | taught by | EM | F1 | HasAns F1 | NoAns F1 | tuned threshold | tuned EM | tuned F1 "
        "| tuned HasAns F1 | tuned NoAns F1 | F1 vs teacher | F1 lift over baseline | parameters |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]

    def number(value: Any, spec: str) -> str:
        return format(value, spec) if isinstance(value, int | float) else ""

    for model, row in report["rows"].items():
        lines.append(
            f"| {model} | {row['taught_by'] or ''} | {number(row['exact'], '.2f')} | {number(row['f1'], '.2f')} | "
            f"{number(row['HasAns_f1'], '.2f')} | {number(row['NoAns_f1'], '.2f')} | "
            f"{number(row['tuned_null_threshold'], '+.3f')} | {number(row['tuned_exact'], '.2f')} | "
            f"{number(row['tuned_f1'], '.2f')} | {number(row['tuned_HasAns_f1'], '.2f')} | "
            f"{number(row['tuned_NoAns_f1'], '.2f')} | "
            f"{number(row['delta_vs_teacher'], '+.2f')} | {number(row['lift_vs_baseline'], '+.2f')} | "
            f"{number(row['parameters'], ',d')} |"
        )
    lines += [
        "",
        "Training per stage (seconds, optimizer steps): "
        + ", ".join(
            f"{name} {seconds:.0f} s / {report['stage_metrics'][name].get('train_steps')} steps"
            for name, seconds in report["train_seconds"].items()
        )
        + ".",
        "",
        f"Reference (Haystack guide, GPU, full SQuAD): prediction-layer F1 lift {HAYSTACK['prediction_layer_lift']}, "
        f"with intermediate-layer {HAYSTACK['intermediate_layer_lift']}.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = common.parser(__doc__, artifacts=True)
    args = parser.parse_args()
    common.prepare()
    root = args.artifacts or Path(tempfile.mkdtemp(prefix="distill-squad-chain-"))
    report = run(args.profile, args.output_dir, root)
    print(markdown(report))


if __name__ == "__main__":
    main()
