"""Benchmark: the first logged values of the intermediate-layer terms, so their default weights can be judged.

TinyBERT's step one adds an embedding MSE, a hidden-state MSE and an attention loss, each
with its own weight (1 by default). Equal weights only make sense if the terms are of
comparable size, so this runs the intermediate stage itself (`distill_intermediate_layers`:
its student construction, layer map, attention implementation and trainer) for `--steps`
optimizer steps with `logging_steps` equal to it, and reports the first logged value of
each term, for `attention_loss: mse` and `kl`, in two settings:

- qa: SQuAD 2.0 dev (the first questions of the first articles), windows of 256 tokens;
- sst2: SST-2 train (the first rows), sentences of up to 64 tokens;

teacher MiniLM-L6 with a freshly initialised task head (the head plays no part in this
step), student its layers [0, 2, 4], uniform map, batch 16, learning rate 5e-5.

    DISTILL_DATA_DIR=../shared/data python benchmarks/intermediate_terms.py --profile full  # ~3 min on 2 cores
    python benchmarks/intermediate_terms.py --profile quick   # generated data, tiny model, seconds

Writes `benchmarks/results/intermediate_terms-<profile>.json` and `.md`.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import common
from common import machine, machine_line, today, write_results
from transformers import TrainerCallback

from distill.config import parse_config
from distill.stages.intermediate import distill_intermediate_layers
from distill.stages.plan import model_artifact, plan_intermediate
from distill.store.artifacts import StageDirectory

TERMS = ("embedding_loss", "hidden_loss", "attention_loss")
TARGET = 100.0  # the attention term within this factor of the hidden term, at default weights


def data_settings(profile: str) -> dict[str, dict[str, Any]]:
    """The two settings' `data:` sections; each trains on enough rows for the steps run."""
    if profile == "quick":
        return {
            "qa": {
                "task": "qa",
                "train": "synthetic:qa",
                "eval": {"path": "synthetic:qa", "split": "validation"},
                "max_seq_length": 96,
                "doc_stride": 32,
            },
            "sst2": {
                "task": "classification",
                "train": "synthetic:sentiment",
                "eval": {"path": "synthetic:sentiment", "split": "validation"},
                "labels": ["0", "1"],
                "max_seq_length": 32,
            },
        }
    root = common.data_dir("SQuAD 2.0 dev and SST-2")
    squad = str(root / "squad_v2" / "dev-v2.0.json.gz")
    return {
        "qa": {
            "task": "qa",
            "train": squad,
            "eval": squad,
            "train_articles": 2,
            "eval_articles": 1,
            "max_train_samples": 400,
            "max_seq_length": 256,
            "doc_stride": 96,
        },
        "sst2": {
            "task": "classification",
            "train": str(root / "sst2" / "train.tsv.gz"),
            "eval": str(root / "sst2" / "dev.tsv"),
            "labels": ["0", "1"],
            "max_seq_length": 64,
            "max_train_samples": 400,
        },
    }


class FirstLog(TrainerCallback):
    """Keeps the first log entry that carries the loss terms."""

    def __init__(self) -> None:
        self.logs: dict[str, float] | None = None

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, float] | None = None, **kwargs: Any) -> None:
        if self.logs is None and logs and "attention_loss" in logs:
            self.logs = dict(logs)


def first_terms(profile: str, data: dict[str, Any], attention_loss: str, steps: int, root: Path) -> dict[str, float]:
    """Run the intermediate stage for `steps` steps and return its first logged terms."""
    training = {"max_steps": steps, "logging_steps": steps, "batch_size": 16, "save_steps": 10**6}
    config = parse_config(
        {
            "name": "intermediate-terms",
            "seed": 42,
            "artifact_root": str(root),
            "data": data,
            "teacher": {"model": "tiny-bert" if profile == "quick" else "minilm"},
            "stages": [
                {
                    "name": "l3",
                    "student": {"layers": [0, 2] if profile == "quick" else [0, 2, 4]},
                    "intermediate_layer": {"attention_loss": attention_loss, "training": training},
                }
            ],
        },
        source=f"intermediate_terms:{profile}",
    )
    capture = FirstLog()
    directory = StageDirectory(root, f"{data['task']}-{attention_loss}", "run")
    directory.path.mkdir(parents=True, exist_ok=True)
    teacher = "tiny-bert" if profile == "quick" else "minilm"
    inputs = plan_intermediate(config, model_artifact(teacher), config.stages[0].name)
    distill_intermediate_layers(inputs, directory, callbacks=[capture])
    assert capture.logs is not None, "no log entry with the loss terms"
    return {name: capture.logs[name] for name in TERMS}


def run(profile: str, output_dir: Path, steps: int) -> dict[str, Any]:
    results: dict[str, dict[str, dict[str, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="distill-intermediate-terms-") as work:
        for setting, data in data_settings(profile).items():
            for attention_loss in ("mse", "kl"):
                terms = first_terms(profile, data, attention_loss, steps, Path(work) / setting)
                terms["attention_over_hidden"] = round(terms["attention_loss"] / terms["hidden_loss"], 3)
                results.setdefault(setting, {})[attention_loss] = terms
                print(f"{setting:<5} {attention_loss:<4} " + "  ".join(f"{k} {v:.6g}" for k, v in terms.items()))
    ratios = [row["attention_over_hidden"] for setting in results.values() for row in setting.values()]
    report = {
        "benchmark": "intermediate_terms",
        "profile": profile,
        "date": today(),
        "command": f"python benchmarks/intermediate_terms.py --profile {profile} --steps {steps}",
        "steps": steps,
        "machine": machine(),
        "results": results,
        "target": f"attention term within {TARGET:g}x of the hidden term (both directions), default weights",
        # The quick profile's random tiny model has near-uniform attention: no target there.
        "target_met": all(1 / TARGET <= ratio <= TARGET for ratio in ratios) if profile == "full" else None,
    }
    write_results(report, markdown(report), output_dir)
    return report


def markdown(report: dict[str, Any]) -> str:
    verdict = {True: "met", False: "not met", None: "not judged on a random model"}[report["target_met"]]
    lines = [
        f"### Intermediate-layer terms at the first log, profile `{report['profile']}`",
        "",
        f"`{report['command']}` ({report['date']}): the mean of each unweighted term over the first "
        f"{report['steps']} steps (the first logged value), student layers [0, 2, 4] of MiniLM-L6 (quick: "
        "[0, 2] of tiny-bert), batch 16.",
        "",
        "| setting | attention_loss | embedding | hidden | attention | attention / hidden |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for setting, rows in report["results"].items():
        for loss, row in rows.items():
            lines.append(
                f"| {setting} | {loss} | {row['embedding_loss']:.4g} | {row['hidden_loss']:.4g} | "
                f"{row['attention_loss']:.4g} | {row['attention_over_hidden']:.3g} |"
            )
    lines += [
        "",
        f"Target ({report['target']}): **{verdict}**.",
        "",
        machine_line(report["machine"]),
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = common.parser(__doc__)
    parser.add_argument(
        "--steps", type=int, default=10, help="Optimizer steps; the first log comes after them (default 10)."
    )
    args = parser.parse_args()
    common.prepare()
    report = run(args.profile, args.output_dir, args.steps)
    print(markdown(report))


if __name__ == "__main__":
    main()
