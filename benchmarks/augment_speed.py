"""Benchmark: augmented SQuAD paragraphs per second, per method, end to end, and whether answers survive.

Each method runs as its own `distill augment` process on the first 3 articles of SQuAD 2.0
dev (126 paragraphs), factor 4, replace_prob 0.4, 5 candidates, so the time includes
Python start-up, the imports and loading the masked LM and word vectors: what a user waits
for. Peak memory is the process's maximum resident set. The masked LM is the packaged
all-MiniLM-L6-v2 (6 layers, 384 wide) with an untrained MLM head: the same cost as a
trained 6-layer MLM, but its substitutes are random, so this measures speed, not quality.

    DISTILL_DATA_DIR=../shared/data python benchmarks/augment_speed.py            # ~2 minutes
    python benchmarks/augment_speed.py --profile quick                             # synthetic data, ~30 s

Writes `benchmarks/results/augment_speed-<profile>.json` and `.md`.
Reference (issue #6): Haystack v1's augment_squad.py with a 6-layer MLM and GloVe 50d made
504 paragraphs in 912 s on this machine class (0.55 paragraphs/s) and kept 0 answers.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
HAYSTACK_REFERENCE = {"paragraphs_per_second": 0.55, "seconds": 912, "paragraphs": 504, "answers_kept": 0}
TARGETS = {"tinybert": 5.5}  # paragraphs/s; 'embedding' must beat tinybert


def _variants(quick: bool, tiny_mlm: str | None, tiny_vectors: str | None) -> list[tuple[str, list[str]]]:
    models = ["--mlm", tiny_mlm, "--vectors", tiny_vectors] if quick else ["--mlm", "minilm"]
    variants = [
        ("embedding", ["--method", "embedding", *models]),
        ("tinybert", ["--method", "tinybert", *models]),
        ("tinybert, 2 workers", ["--method", "tinybert", "--workers", "2", *models]),
        ("contextual", ["--method", "contextual", *models]),
    ]
    if not quick:
        variants.append(("synonym (WordNet)", ["--method", "synonym"]))
    return variants


def _run(source: Path, output: Path, extra: list[str]) -> dict[str, Any]:
    """One `distill augment` process: wall time, peak RSS and its printed counts."""
    command = [sys.executable, "-m", "distill_cli.main", "augment", str(source), str(output)]
    command += ["--factor", "4", "--replace-prob", "0.4", "--candidates", "5", "--seed", "0", *extra]
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(process.pid, 0)  # this child's own peak memory, not the max over all children
    seconds = time.perf_counter() - started
    stdout, stderr = process.stdout.read(), process.stderr.read()
    if os.waitstatus_to_exitcode(status) != 0:
        return {"error": (stderr.strip().splitlines() or ["failed"])[-1]}
    summary = stdout.strip().splitlines()[-1]
    augmented = int(re.search(r"\((\d+) augmented\)", summary).group(1))
    kept, checked = map(int, re.search(r"answers exact: (\d+)/(\d+)", summary).groups())
    replaced, eligible = map(int, re.search(r"(\d+)/(\d+) replaceable words swapped", summary).groups())
    return {
        "seconds": round(seconds, 2),
        "augmented_paragraphs": augmented,
        "paragraphs_per_second": round(augmented / seconds, 2),
        "peak_rss_mb": round(usage.ru_maxrss / 1024),
        "answers_kept": kept,
        "answers_checked": checked,
        "replaced_share": round(replaced / max(eligible, 1), 4),
    }


def _input(quick: bool, folder: Path) -> tuple[Path, str]:
    source = folder / "input.json"
    if quick:
        from distill.data.synthetic import synthetic_squad

        source.write_text(json.dumps(synthetic_squad(articles=6, paragraphs=4, facts=5, seed=0)))
        return source, "synthetic:qa (24 paragraphs)"
    data_dir = os.environ.get("DISTILL_DATA_DIR")
    if not data_dir:
        sys.exit("set DISTILL_DATA_DIR (the folder holding squad_v2/dev-v2.0.json.gz), or use --profile quick")
    dev = json.loads(gzip.open(Path(data_dir) / "squad_v2" / "dev-v2.0.json.gz").read())
    source.write_text(json.dumps({**dev, "data": dev["data"][:3]}))
    paragraphs = sum(len(a["paragraphs"]) for a in dev["data"][:3])
    return source, f"SQuAD 2.0 dev, first 3 articles ({paragraphs} paragraphs)"


def _tiny_models(folder: Path) -> tuple[str, str]:
    import numpy as np
    import pandas as pd

    from distill.data.synthetic import vocabulary
    from distill.models.tiny import build_tiny_bert

    words = vocabulary()
    mlm = build_tiny_bert(folder / "mlm", task="mlm", words=words)
    vectors = folder / "vectors"
    vectors.mkdir()
    np.save(vectors / "v.npy", np.random.default_rng(0).normal(size=(len(words), 8)).astype(np.float32))
    pd.DataFrame({"word": words}).to_parquet(vectors / "i.parquet")
    return str(mlm), str(vectors)


def _markdown(report: dict[str, Any]) -> str:
    lines = [
        f"Input: {report['input']}; factor 4, replace_prob 0.4, 5 candidates; one process per row, timed end to end.",
        "",
        "| method | wall (s) | augmented paragraphs/s | vs Haystack v1 | peak RSS (MB) | answers exact "
        "| words swapped |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, row in report["runs"].items():
        if "error" in row:
            lines.append(f"| {name} | failed: {row['error']} | | | | | |")
            continue
        speedup = row["paragraphs_per_second"] / HAYSTACK_REFERENCE["paragraphs_per_second"]
        lines.append(
            f"| {name} | {row['seconds']:.1f} | {row['paragraphs_per_second']:.2f} | {speedup:.0f}x | "
            f"{row['peak_rss_mb']} | {row['answers_kept']}/{row['answers_checked']} | {row['replaced_share']:.1%} |"
        )
    lines += ["", f"Reproduce: `{report['command']}`", f"Machine: {report['machine']}"]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=["quick", "full"], default="full")
    args = parser.parse_args()
    quick = args.profile == "quick"
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        source, description = _input(quick, folder)
        tiny_mlm, tiny_vectors = _tiny_models(folder) if quick else (None, None)
        runs = {}
        for name, extra in _variants(quick, tiny_mlm, tiny_vectors):
            runs[name] = _run(source, folder / "out.json", extra)
            print(name, runs[name], flush=True)
    import torch
    import transformers

    report = {
        "profile": args.profile,
        "input": description,
        "runs": runs,
        "haystack_v1_reference": HAYSTACK_REFERENCE,
        "targets_paragraphs_per_second": TARGETS,
        "command": f"python benchmarks/augment_speed.py --profile {args.profile}",
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; Python "
        f"{platform.python_version()}, torch {torch.__version__}, transformers {transformers.__version__}",
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"augment_speed-{args.profile}.json").write_text(json.dumps(report, indent=2) + "\n")
    (RESULTS / f"augment_speed-{args.profile}.md").write_text(_markdown(report))
    print(_markdown(report))


if __name__ == "__main__":
    main()
