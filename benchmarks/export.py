"""Benchmark: a trained student as PyTorch fp32 and as ONNX fp32 and int8: metric, size, batch-1 latency, throughput.

Targets (issue 20), for int8 ONNX against PyTorch fp32 on 2 CPU cores: >= 2x faster at batch 1,
<= 1/3 of the size, within 1 point of the metric (accuracy points, or SQuAD F1). Every variant is
scored on the run's eval data by the evaluate stage's scorer and timed by its measuring process
(`distill.evaluation.profiling`: a process of its own, time-based warm-up and sampling), at 1 thread
(what the leaderboard reports) and at every core of the machine. On a CPU with AMX-BF16 PyTorch
bf16 autocast is measured too.

    python benchmarks/export.py --profile quick     # a tiny random classifier on generated data, ~1 minute
    python benchmarks/export.py --profile full --model RUN_ROOT/distill_prediction_layer/<key>/model \\
        --config configs/quickstart.yaml --tag sst2-l3   # e.g. the quickstart's minilm-l3 (`make run`'s summary)

Writes `benchmarks/results/export[-<tag>]-<profile>.json` and `.md`. Run it on an idle machine: timings are
wall-clock, and the 2-thread figures especially suffer from anything else running.
"""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path
from typing import Any

import common
from common import machine, machine_line, write_results

EXPORTS = ("onnx", "onnx-int8")


def _quick_inputs(folder: Path) -> tuple[str, Path]:
    """A tiny random classifier and a run config over generated sentiment data (eval: 200 sentences)."""
    import yaml

    from distill.data.synthetic import synthetic_sentiment, vocabulary
    from distill.models.tiny import build_tiny_bert

    model = build_tiny_bert(folder / "model", task="classification", words=vocabulary())
    rows = synthetic_sentiment(rows=200, seed=3)
    eval_file = folder / "eval.tsv"
    eval_file.write_text("sentence\tlabel\n" + "".join(f"{r['sentence']}\t{r['label']}\n" for r in rows))
    config = {
        "name": "export-quick",
        "data": {"task": "classification", "train": {"path": "synthetic:sentiment", "split": "train"},
                 "eval": str(eval_file), "labels": ["0", "1"], "max_seq_length": 64},
        "teacher": {"model": "tiny-bert"},
    }  # fmt: skip
    (folder / "run.yaml").write_text(yaml.safe_dump(config))
    return str(model), folder / "run.yaml"


def _score(model: str, data: Any, settings: Any) -> tuple[dict[str, Any], dict[str, list[int]]]:
    """The task metric on eval as the evaluate stage computes it, and one input to time (a full QA window)."""
    from distill.data.task_data import QAData
    from distill.evaluation.evaluate import tokenize_classification
    from distill.evaluation.profiling import first_input
    from distill.evaluation.scorer import load_scorer
    from distill.qa.features import columns, prepare_eval_features

    if isinstance(data, QAData):
        scorer = load_scorer(model, None, batch_size=64, precision="fp32")
        metrics = scorer.qa(data.eval, settings).metrics
        # best_f1: the official script's F1 at the best no-answer threshold on eval itself (an oracle, not a
        # figure to select on): it compares the spans even when threshold 0 abstains everywhere.
        features = prepare_eval_features(columns(data.eval.examples()[:1]), scorer.tokenizer,
                                         max_seq_length=settings.max_seq_length, doc_stride=settings.doc_stride,
                                         pad_to_max_length=True)  # fmt: skip
        scores = {"f1": metrics["f1"], "exact": metrics["exact"], "best_f1": metrics.get("best_f1")}
        return scores, first_input(features)
    scorer = load_scorer(model, data.label_list, batch_size=64, precision="fp32")
    metrics = scorer.classification(data.eval, settings.max_seq_length).metrics
    example = tokenize_classification(data.eval.take([0], ""), scorer.tokenizer, max_seq_length=settings.max_seq_length)
    return {"accuracy": metrics["accuracy"]}, first_input(example)


def _speed(model: str, task: str, example: dict[str, list[int]], precision: str, threads: int) -> dict[str, Any]:
    from distill.evaluation.profiling import SpeedRequest, measure_speed

    request = SpeedRequest(model_path=model, task=task, example=example, precision=precision, threads=threads,
                           latency_seconds=4.0, latency_samples=200, throughput_batch_size=32)  # fmt: skip
    figures = measure_speed(request)
    return {"latency_p50_ms": figures["latency_p50_ms"], "latency_p95_ms": figures["latency_p95_ms"],
            "throughput_per_s": figures["throughput_per_s"], "runtime": figures["latency_runtime"]}  # fmt: skip


def main() -> None:
    parser = common.parser(__doc__)
    parser.add_argument("--model", help="Trained model folder (full profile).")
    parser.add_argument("--config", type=Path, help="The run config whose eval data it is scored on (full profile).")
    parser.add_argument("--tag", default="", help="Names the results: export-<tag>-<profile>.json (e.g. sst2-l3).")
    args = parser.parse_args()
    common.prepare()
    from distill.config import load_config
    from distill.data.task_data import QAData, load_task_data
    from distill.evaluation.profiling import default_threads, size_on_disk_mb
    from distill.export.check import compare_on_eval, compare_qa
    from distill.export.onnx import export_model
    from distill.precision import cpu_bf16_flags

    scratch = Path(tempfile.mkdtemp(prefix="export-bench-"))
    if args.profile == "quick":
        model, config_path = _quick_inputs(scratch)
    else:
        if not (args.model and args.config):
            raise SystemExit("--profile full needs --model and --config (see --help)")
        model, config_path = args.model, args.config
    config = load_config(config_path)
    data = load_task_data(config.data, need_train=False)
    task = "qa" if isinstance(data, QAData) else "classification"
    checks: dict[str, Any] = {}
    for fmt in EXPORTS:

        def check(reference: Any, tokenizer: Any, exported: Any, fmt: str = fmt) -> dict[str, Any]:
            agreement = compare_on_eval(reference, exported, tokenizer, data, config.data, batch_size=64)
            checks[fmt] = agreement.metrics()
            if task == "qa":  # each question's best span too, whatever the no-answer threshold would do with it
                spans = compare_qa(reference, exported, data.eval.examples(), tokenizer, config.data, batch_size=64,
                                   version_2_with_negative=False)  # fmt: skip
                checks[fmt]["span_agreement"] = spans.agreement
            return checks[fmt]

        export_model(model, scratch / fmt, fmt, task=task, check=check)
        print(fmt, checks[fmt], flush=True)

    variants = [("pytorch", model, "fp32")]
    if "amx_bf16" in cpu_bf16_flags():
        variants.append(("pytorch", model, "bf16"))
    variants += [(fmt, str(scratch / fmt), "int8" if fmt == "onnx-int8" else "fp32") for fmt in EXPORTS]
    cores = default_threads()
    rows = []
    for fmt, path, precision in variants:
        metrics, example = _score(path, data, config.data)
        row: dict[str, Any] = {
            "format": fmt,
            "precision": precision,
            **metrics,
            "size_on_disk_mb": size_on_disk_mb(path),
        }
        for threads in sorted({1, cores}):
            speed = _speed(path, task, example, precision, threads)
            row.update({f"{name}_{threads}t": value for name, value in speed.items() if name != "runtime"})
            row["runtime"] = speed["runtime"]
        row.update(checks.get(fmt, {}))
        rows.append(row)
        print(row, flush=True)
    metric = "f1" if task == "qa" else "accuracy"
    base = rows[0]
    for row in rows:
        row[f"delta_{metric}_points"] = round(100 * (row[metric] - base[metric]) if task != "qa" else
                                              row[metric] - base[metric], 3)  # fmt: skip
        row["size_ratio"] = round(row["size_on_disk_mb"] / base["size_on_disk_mb"], 3)
        for threads in sorted({1, cores}):
            key = f"latency_p50_ms_{threads}t"
            row[f"speedup_{threads}t"] = round(base[key] / row[key], 2)
    report = {
        "benchmark": "-".join(filter(None, ["export", args.tag])),
        "profile": args.profile,
        "date": common.today(),
        "command": common.command_line("DISTILL_DATA_DIR=../shared/data" if args.profile == "full" else ""),
        "machine": machine(),
        "cpu_bf16_flags": list(cpu_bf16_flags()),
        "model": model if args.profile == "full" else "tiny random classifier",
        "config": str(config_path) if args.profile == "full" else "generated sentiment (200 eval sentences)",
        "metric": metric,
        "cores": cores,
        "rows": rows,
    }
    json_path, md_path = write_results(report, markdown(report), args.output_dir)
    print(f"wrote {json_path} and {md_path}")


def markdown(report: dict[str, Any]) -> str:
    metric, cores = report["metric"], report["cores"]
    threads = sorted({1, cores})
    lines = [
        f"# Export benchmark ({report['profile']}, {report['date']})",
        "",
        machine_line(report["machine"]),
        f"Model: `{report['model']}`; eval data: `{report['config']}`.",
        "",
        f"Reproduce: `{report['command']}`",
        "",
        f"| format | precision | {metric} | Δ points | size MB | size ratio | "
        + " | ".join(f"p50 ms ({t} thr) | speed-up ({t} thr) | examples/s ({t} thr)" for t in threads)
        + " | agreement | max logit diff |",
        "|---|---|---:|---:|---:|---:|" + "---:|---:|---:|" * len(threads) + "---:|---:|",
    ]
    for r in report["rows"]:
        cells = [r["format"], r["precision"], f"{r[metric]:.4f}", f"{r[f'delta_{metric}_points']:+.2f}",
                 f"{r['size_on_disk_mb']:.1f}", f"{r['size_ratio']:.2f}"]  # fmt: skip
        for t in threads:
            cells += [
                f"{r[f'latency_p50_ms_{t}t']:.2f}",
                f"{r[f'speedup_{t}t']:.2f}x",
                f"{r[f'throughput_per_s_{t}t']:.0f}",
            ]
        agreement = r.get("check_agreement")
        cells += ["" if agreement is None else f"{agreement:.2%}",
                  "" if agreement is None else f"{r['check_max_abs_diff']:.2g}"]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    if any("best_f1" in r for r in report["rows"]):
        lines += ["", "| format | best_f1 (oracle threshold) | span agreement |", "|---|---:|---:|"]
        lines += [f"| {r['format']} | {r.get('best_f1') or 0:.2f} | "
                  f"{'' if r.get('span_agreement') is None else format(r['span_agreement'], '.2%')} |"
                  for r in report["rows"]]  # fmt: skip
    lines += ["", "Agreement: share of eval predictions (labels; QA answers at the run's threshold) equal to PyTorch "
              "fp32's; span agreement: each question's best span, before abstaining."]  # fmt: skip
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
