"""Benchmark: training and inference speed of MiniLM in fp32 and bf16 autocast, against the machine's own peak.

For each sequence length (64 and 256 tokens) and each precision, one process measures:

- training: a QA (or classification) model, forward + backward + AdamW step, as the product trains;
- inference: forward only, under `torch.inference_mode`;

and reports tokens/s and model FLOPs utilisation (MFU): the model's FLOPs per second as a share
of the same machine's measured peak for that dtype (a large square matmul, timed here first).
`auto` precision is what `distill.precision.resolve_precision("auto")` picks on this machine.

    python benchmarks/precision.py --profile quick   # tiny BERT, seconds
    python benchmarks/precision.py --profile full    # all-MiniLM-L6-v2, ~5 minutes on 2 cores

Writes `benchmarks/results/precision-<profile>.json` and `.md`. Inputs are random token ids
without padding, so every token is real work; padding is the QA padding benchmark's subject.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import common
import torch
from common import machine, machine_line, write_results

from distill.precision import autocast, cpu_bf16_flags, resolve_precision


@dataclass(frozen=True)
class Shape:
    batch_size: int
    sequence_length: int


@dataclass(frozen=True)
class Profile:
    model: str  # "minilm" or "tiny"
    shapes: tuple[Shape, ...]
    steps: int  # timed steps per measurement, after warm-up
    matmul_size: int


PROFILES = {
    "quick": Profile("tiny", (Shape(8, 64), Shape(4, 256)), steps=3, matmul_size=512),
    "full": Profile("minilm", (Shape(32, 64), Shape(16, 256)), steps=6, matmul_size=2048),
}


def matmul_peak(dtype: torch.dtype, size: int, repeats: int = 10) -> float:
    """Measured GFLOP/s of a `size`² matmul in `dtype`: the machine's practical peak for that dtype."""
    a, b = torch.randn(size, size).to(dtype), torch.randn(size, size).to(dtype)
    for _ in range(3):
        a @ b
    started = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * size**3 * repeats / (time.perf_counter() - started) / 1e9


def load(model: str) -> Any:
    from transformers import AutoModelForQuestionAnswering, BertConfig

    if model == "tiny":
        config = BertConfig(
            vocab_size=1000, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=256
        )
        return AutoModelForQuestionAnswering.from_config(config)
    from distill.models.loading import load_model

    return load_model(model, "qa")[0]


def forward_flops(config: Any, shape: Shape) -> float:
    """FLOPs of one encoder forward over a batch: projections, feed-forward and the two attention matmuls."""
    d, f, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    tokens = shape.batch_size * shape.sequence_length
    dense = 2 * tokens * (4 * d * d + 2 * d * f)  # Q, K, V, output projections and the two FFN matrices
    attention = 2 * 2 * shape.batch_size * shape.sequence_length**2 * d  # QK^T and PV
    return layers * (dense + attention)


def timed(step: Callable[[], None], steps: int, warmup: int = 2) -> float:
    """Median seconds of `step` over `steps` runs, after `warmup` untimed runs."""
    for _ in range(warmup):
        step()
    seconds = []
    for _ in range(steps):
        started = time.perf_counter()
        step()
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds)


def measure(model: Any, shape: Shape, precision: str, steps: int, fused: bool) -> dict[str, float]:
    generator = torch.Generator().manual_seed(0)
    vocab = model.config.vocab_size
    ids = torch.randint(
        1000 if vocab > 2000 else 5, vocab, (shape.batch_size, shape.sequence_length), generator=generator
    )
    inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "token_type_ids": torch.zeros_like(ids)}
    positions = torch.randint(1, shape.sequence_length, (shape.batch_size,), generator=generator)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=fused)

    def train_step() -> None:
        model.train()
        with autocast(precision, "cpu"):
            loss = model(**inputs, start_positions=positions, end_positions=positions).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    def inference_step() -> None:
        model.eval()
        with torch.inference_mode(), autocast(precision, "cpu"):
            model(**inputs)

    train_seconds = timed(train_step, steps)
    inference_seconds = timed(inference_step, steps)
    tokens = shape.batch_size * shape.sequence_length
    return {
        "train_seconds_per_step": round(train_seconds, 4),
        "train_tokens_per_s": round(tokens / train_seconds, 1),
        "inference_seconds_per_batch": round(inference_seconds, 4),
        "inference_tokens_per_s": round(tokens / inference_seconds, 1),
    }


def top_ops(model: Any, shape: Shape, precision: str, fused: bool, rows: int = 12) -> list[dict[str, Any]]:
    """Where a training step's time goes: the operators with the most self CPU time."""
    from torch.profiler import ProfilerActivity, profile

    measure(model, shape, precision, steps=1, fused=fused)  # warm the shapes outside the profile
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        measure(model, shape, precision, steps=1, fused=fused)
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events) or 1
    return [
        {
            "op": e.key,
            "self_cpu_ms": round(e.self_cpu_time_total / 1000, 1),
            "share": round(e.self_cpu_time_total / total, 3),
        }
        for e in events[:rows]
    ]


def main() -> None:
    args = common.parser(__doc__).parse_args()
    common.prepare()
    profile = PROFILES[args.profile]
    torch.manual_seed(0)
    peaks = {
        "fp32": matmul_peak(torch.float32, profile.matmul_size),
        "bf16": matmul_peak(torch.bfloat16, profile.matmul_size),
    }
    print(f"matmul peak GFLOP/s: fp32 {peaks['fp32']:.0f}, bf16 {peaks['bf16']:.0f}", flush=True)
    rows = []
    for shape in profile.shapes:
        for precision in ("fp32", "bf16"):
            for fused in (False, True):
                model = load(profile.model)  # fresh weights and optimizer state for every measurement
                result = measure(model, shape, precision, profile.steps, fused)
                flops = forward_flops(model.config, shape)
                train_mfu = 3 * flops / result["train_seconds_per_step"] / 1e9 / peaks[precision]
                inference_mfu = flops / result["inference_seconds_per_batch"] / 1e9 / peaks[precision]
                row = {
                    "batch_size": shape.batch_size,
                    "sequence_length": shape.sequence_length,
                    "precision": precision,
                    "fused_adamw": fused,
                    **result,
                    "train_mfu": round(train_mfu, 3),
                    "inference_mfu": round(inference_mfu, 3),
                }
                rows.append(row)
                print(row, flush=True)
    where = top_ops(load(profile.model), profile.shapes[-1], resolve_precision("auto", "cpu"), fused=True)
    report = {
        "benchmark": "precision",
        "profile": args.profile,
        "date": common.today(),
        "command": f"python benchmarks/precision.py --profile {args.profile}",
        "machine": machine(),
        "cpu_bf16_flags": list(cpu_bf16_flags()),
        "auto_precision": resolve_precision("auto", "cpu"),
        "matmul_peak_gflops": {k: round(v, 1) for k, v in peaks.items()},
        "model": profile.model,
        "rows": rows,
        "speedups": speedups(rows),
        "training_step_top_ops": where,
    }
    json_path, md_path = write_results(report, markdown(report), args.output_dir)
    print(f"wrote {json_path} and {md_path}")


def speedups(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """bf16 over fp32 (both with the same optimizer) per shape: training and inference."""
    out = []
    by_key = {(r["sequence_length"], r["precision"], r["fused_adamw"]): r for r in rows}
    for (length, precision, fused), row in by_key.items():
        if precision != "bf16":
            continue
        base = by_key[(length, "fp32", False)]
        out.append(
            {
                "sequence_length": length,
                "fused_adamw": fused,
                "train_speedup_vs_fp32": round(base["train_seconds_per_step"] / row["train_seconds_per_step"], 2),
                "inference_speedup_vs_fp32": round(
                    base["inference_seconds_per_batch"] / row["inference_seconds_per_batch"], 2
                ),
            }
        )
    return out


def markdown(report: dict[str, Any]) -> str:
    peaks = report["matmul_peak_gflops"]
    lines = [
        f"# Precision benchmark ({report['profile']}, {report['date']})",
        "",
        machine_line(report["machine"]),
        f"CPU bf16 flags: {', '.join(report['cpu_bf16_flags']) or 'none'}; "
        f"`auto` picks **{report['auto_precision']}**.",
        f"Measured matmul peak: fp32 {peaks['fp32']:.0f} GFLOP/s, bf16 {peaks['bf16']:.0f} GFLOP/s.",
        "",
        f"Reproduce: `{report['command']}`",
        "",
        "| batch × tokens | precision | fused AdamW | train s/step | train tokens/s | train MFU "
        "| infer s/batch | infer tokens/s | infer MFU |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in report["rows"]:
        lines.append(
            f"| {r['batch_size']} × {r['sequence_length']} | {r['precision']} | {'yes' if r['fused_adamw'] else 'no'} "
            f"| {r['train_seconds_per_step']} | {r['train_tokens_per_s']:.0f} | {r['train_mfu']:.1%} "
            f"| {r['inference_seconds_per_batch']} | {r['inference_tokens_per_s']:.0f} | {r['inference_mfu']:.1%} |"
        )
    lines += [
        "",
        "| tokens | bf16 with fused AdamW | train speed-up vs fp32 | inference speed-up vs fp32 |",
        "|---|---|---:|---:|",
    ]
    for s in report["speedups"]:
        lines.append(
            f"| {s['sequence_length']} | {'yes' if s['fused_adamw'] else 'no'} | {s['train_speedup_vs_fp32']}x "
            f"| {s['inference_speedup_vs_fp32']}x |"
        )
    lines += ["", "Where a training step's time goes (longest sequence, `auto` precision, fused AdamW):", ""]
    lines += ["| operator | self CPU ms | share |", "|---|---:|---:|"]
    lines += [f"| `{o['op']}` | {o['self_cpu_ms']} | {o['share']:.1%} |" for o in report["training_step_top_ops"]]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
