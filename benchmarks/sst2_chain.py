"""Benchmark: the SST-2 progressive chain, every student beside its no-distillation twin, over seeds.

Everything runs through the product: each run is a `progressive_distillation` flow (real
Prefect, content-cached stages) on one artifact root, so what is measured is what a user
gets from `distill run`.

- **distill's recipe**, once per seed: MiniLM-L6 teacher (fine-tuned once, shared by every
  seed) -> L3 (its first 3 layers, Hinton KD, T = 2, w = 0.75) -> L1 (the first layer of
  that L3, distilled from it: progressive); L1 also distilled directly from the 6-layer
  teacher; the same L3 and L1 (layers of the teacher) trained on labels alone, same data
  and schedule: the no-distillation twins. Seeds change student initialisation (heads),
  data order and dropout, not the teacher or the data.
- **txtai's setting**, one seed, as issue #8 measured txtai 9.14 `HFTrainer(teacher=...,
  distillation=(1.0, 1.0))`: 1 epoch, batch 32, max length 64, lr 5e-5, no warmup, no
  weight decay, T = 1, soft targets only (w = 1); L1 distilled from that L3.

Both use the same 8,000 training rows (train.tsv read tab-separated without quoting,
`random.Random(0).shuffle`, the first 8,000) and the full 872-sentence dev set; the teacher
is trained as txtai trains it (1 epoch, batch 32, lr 5e-5, no warmup, no weight decay).

    DISTILL_DATA_DIR=../shared/data python benchmarks/sst2_chain.py --profile full   # ~1 hour on 2 idle cores
    python benchmarks/sst2_chain.py --profile quick                                  # generated data, tiny model

Writes `benchmarks/results/sst2_chain-<profile>.json` and `.md`.
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import common
from common import machine, machine_line, run_chain, today, write_results

# Issue #8's measurements of txtai 9.14 on this machine class (CPU), and txtai's article (GPU, hub models).
TXTAI_MEASURED = {"teacher": 0.833, "l3": 0.791, "l3-baseline": 0.803, "l1": 0.766, "l1-baseline": 0.763}
TXTAI_ARTICLE = {"chain": "0.875 -> 0.833 -> 0.809", "without_distillation": 0.802}


@dataclass(frozen=True)
class Profile:
    teacher: str
    train: str
    eval: str
    train_rows: int | None
    max_seq_length: int
    seeds: tuple[int, ...]
    batch_size: int
    teacher_lr: float
    l3_layers: list[int]
    l3_lr: float
    l1_epochs: float
    l1_lr: float
    eval_rows: int | None = None


def _profiles(data_dir: str | None) -> dict[str, Profile]:
    sst2 = Path(data_dir or ".") / "sst2"
    return {
        # A 4-layer, 64-wide random BERT on generated sentences: checks the runner, not distillation.
        "quick": Profile(
            "tiny-bert",
            "synthetic:sentiment",
            "synthetic:sentiment",
            160,
            32,
            (0,),
            16,
            teacher_lr=2e-3,
            l3_layers=[0, 1],
            l3_lr=2e-3,
            l1_epochs=2,
            l1_lr=2e-3,
            eval_rows=80,
        ),
        "full": Profile(
            "minilm",
            str(sst2 / "train.tsv.gz"),
            str(sst2 / "dev.tsv"),
            8000,
            64,
            (0, 1, 2),
            32,
            teacher_lr=5e-5,
            l3_layers=[0, 1, 2],
            l3_lr=5e-5,
            l1_epochs=1,
            l1_lr=2e-4,
        ),
    }


def _training(epochs: float, lr: float, batch: int, *, hf_defaults: bool = False) -> dict[str, Any]:
    settings: dict[str, Any] = {"epochs": epochs, "learning_rate": lr, "batch_size": batch, "save_steps": 100}
    if hf_defaults:  # the HF Trainer (and so txtai) defaults: constant warm-up-free linear decay, no weight decay
        settings.update(warmup_ratio=0.0, weight_decay=0.0)
    return settings


def _config(profile: Profile, root: Path, name: str, seed: int, teacher: dict[str, Any], stages: list[dict]) -> Any:
    from distill.config import parse_config

    return parse_config(
        {
            "name": name,
            "seed": seed,
            "artifact_root": str(root),
            "data": {
                "task": "classification",
                "train": profile.train,
                "eval": profile.eval,
                "labels": ["0", "1"],
                "max_seq_length": profile.max_seq_length,
                "max_train_samples": profile.train_rows,
                "max_eval_samples": profile.eval_rows,
                "sample_seed": 0,
            },
            "teacher": teacher,
            "stages": stages,
            "evaluation": {"latency_samples": 20},
        },
        source=f"sst2_chain:{name}",
    )


def _recipe_stages(profile: Profile) -> list[dict[str, Any]]:
    """distill's recipe: L3 from the teacher, L1 from L3 (progressive) and L1 from the teacher (direct)."""
    kd = {"temperature": 2.0, "loss_weight": 0.75}
    l1_training = _training(profile.l1_epochs, profile.l1_lr, profile.batch_size)
    return [
        {
            "name": "l3",
            "student": {"layers": profile.l3_layers},
            "prediction_layer": {**kd, "training": _training(1, profile.l3_lr, profile.batch_size)},
            "baseline": True,
        },
        {
            "name": "l1",
            "teacher": "previous",
            "student": {"layers": [0]},
            "prediction_layer": {**kd, "training": l1_training},
        },
        # Layer 0 of the 6-layer teacher: the twin of both L1s, and the direct-distillation comparison.
        {
            "name": "l1-direct",
            "teacher": "original",
            "student": {"layers": [0]},
            "prediction_layer": {**kd, "training": l1_training},
            "baseline": True,
        },
    ]


def _txtai_stages(profile: Profile) -> list[dict[str, Any]]:
    """txtai's `distillation=(1.0, 1.0)`: T = 1, soft targets only, HF Trainer defaults, 1 epoch; L1 from L3."""
    kd = {"temperature": 1.0, "loss_weight": 1.0}
    training = _training(
        1, 5e-5 if profile.teacher == "minilm" else profile.l3_lr, profile.batch_size, hf_defaults=True
    )
    return [
        {
            "name": "l3",
            "student": {"layers": profile.l3_layers},
            "prediction_layer": {**kd, "training": training},
            "baseline": True,
        },
        {
            "name": "l1",
            "teacher": "previous",
            "student": {"layers": [0]},
            "prediction_layer": {**kd, "training": training},
            "baseline": True,
        },
    ]


def run(
    profile_name: str,
    root: Path,
    *,
    seeds: list[int] | None = None,
    teacher_dir: Path | None = None,
    parts: tuple[str, ...] = ("recipe", "txtai"),
) -> dict[str, Any]:
    """The flow runs of `parts`; their results under `runs` (see `report_of`)."""
    if profile_name == "full":
        common.data_dir("SST-2")  # exits with how to set it
    profile = _profiles(os.environ.get("DISTILL_DATA_DIR"))[profile_name]
    teacher_training = _training(
        1 if profile.teacher == "minilm" else 6, profile.teacher_lr, profile.batch_size, hf_defaults=True
    )
    teacher: dict[str, Any] = {"model": profile.teacher, "training": teacher_training}
    if teacher_dir is not None:
        teacher = {"model": str(teacher_dir), "finetuned": True}
    runs: dict[str, dict[str, Any]] = {}
    for seed in (seeds or profile.seeds) if "recipe" in parts else ():
        runs[f"recipe-seed{seed}"] = chain = run_chain(
            _config(profile, root, f"sst2-recipe-seed{seed}", seed, teacher, _recipe_stages(profile))
        )
        if not teacher.get("finetuned"):  # later seeds reuse the fine-tuned teacher as is: students vary by seed
            teacher = {"model": str(Path(chain["stages"]["finetune_teacher"]["uri"]) / "model"), "finetuned": True}
    if "txtai" in parts:
        runs["txtai-setting"] = run_chain(
            _config(profile, root, "sst2-txtai-setting", 42, teacher, _txtai_stages(profile))
        )
    return {"profile": profile_name, "settings": asdict(profile), "runs": runs}


def report_of(parts: list[dict[str, Any]], wall_seconds: float) -> dict[str, Any]:
    """One report from the runs of one or more processes (`--merge`): per-seed accuracies, lifts, txtai rows."""
    runs = {name: run for part in parts for name, run in part["runs"].items()}
    recipe = {int(name.removeprefix("recipe-seed")): run for name, run in runs.items() if name.startswith("recipe")}
    settings = parts[0]["settings"] | {"seeds": sorted(recipe)}
    profile = parts[0]["profile"]
    return {
        "benchmark": "sst2_chain",
        "profile": profile,
        "date": today(),
        "command": f"DISTILL_DATA_DIR=../shared/data python benchmarks/sst2_chain.py --profile {profile}",
        "settings": settings,
        "machine": machine(),
        "wall_seconds": round(wall_seconds, 1),
        "recipe": summarise_recipe(dict(sorted(recipe.items()))),
        "txtai_setting": summarise_txtai(runs["txtai-setting"]),
        "runs": runs,
    }


# Each distilled model and the no-distillation twin it is judged against.
RECIPE_PAIRS = {"l3": "l3-baseline", "l1": "l1-direct-baseline", "l1-direct": "l1-direct-baseline"}


def summarise_recipe(runs: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """Per model: accuracy per seed, mean and spread; per distilled model: lift over its twin per seed."""
    seeds = sorted(runs)
    models = list(next(iter(runs.values()))["rows"])
    summary: dict[str, Any] = {}
    for model in models:
        scores = [runs[seed]["rows"][model]["accuracy"] for seed in seeds]
        entry = {
            "accuracy": dict(zip(seeds, scores, strict=True)),
            "mean": round(statistics.fmean(scores), 4),
            "sd": round(statistics.stdev(scores), 4) if len(scores) > 1 else 0.0,
            "parameters": runs[seeds[0]]["rows"][model]["parameters"],
            "latency_p50_ms": [runs[seed]["rows"][model]["latency_p50_ms"] for seed in seeds],
        }
        if model in RECIPE_PAIRS:
            twin = RECIPE_PAIRS[model]
            lifts = [round(runs[s]["rows"][model]["accuracy"] - runs[s]["rows"][twin]["accuracy"], 4) for s in seeds]
            entry.update(
                twin=twin,
                lift=dict(zip(seeds, lifts, strict=True)),
                lift_mean=round(statistics.fmean(lifts), 4),
                beats_twin_every_seed=all(lift > 0 for lift in lifts),
            )
        summary[model] = entry
    return summary


def summarise_txtai(run: dict[str, Any]) -> dict[str, Any]:
    rows = run["rows"]
    return {
        model: {"accuracy": rows[model]["accuracy"], "txtai_measured": TXTAI_MEASURED.get(model)}
        for model in ("teacher", "l3", "l3-baseline", "l1", "l1-baseline")
    } | {"train_seconds": run["train_seconds"]}


LABELS = {
    "teacher": "teacher (fine-tuned)",
    "l3": "L3, distilled from the teacher (progressive = direct)",
    "l3-baseline": "L3, labels only",
    "l1": "L1, distilled from L3 (progressive)",
    "l1-direct": "L1, distilled from the teacher (direct)",
    "l1-direct-baseline": "L1, labels only",
}


def markdown(report: dict[str, Any]) -> str:
    s, recipe = report["settings"], report["recipe"]
    seeds = list(next(iter(recipe.values()))["accuracy"])
    lines = [
        f"### SST-2 chain, profile `{report['profile']}` ({report['date']})",
        "",
        f"`{report['command']}`; {s['train_rows']} training rows (seeded sample 0), max length "
        f"{s['max_seq_length']}, batch {s['batch_size']}, full dev set unless capped ({s['eval_rows']}); "
        f"seeds {seeds}; wall time {report['wall_seconds'] / 60:.1f} min. {machine_line(report['machine'])}",
        "",
        "**distill's recipe** (T = 2, w = 0.75; L3 1 epoch at "
        f"{s['l3_lr']:g}, L1 {s['l1_epochs']:g} epochs at {s['l1_lr']:g}); dev accuracy:",
        "",
        "| model | parameters | "
        + " | ".join(f"seed {seed}" for seed in seeds)
        + " | mean ± sd | lift over labels-only twin (per seed) | beats twin every seed |",
        "|---|---:|" + "---:|" * len(seeds) + "---:|---|---|",
    ]
    for model, entry in recipe.items():
        per_seed = " | ".join(f"{entry['accuracy'][seed]:.4f}" for seed in seeds)
        lift = ""
        if "lift" in entry:
            lift = f"{entry['lift_mean']:+.4f} ({', '.join(f'{v:+.4f}' for v in entry['lift'].values())})"
        beats = "" if "lift" not in entry else ("yes" if entry["beats_twin_every_seed"] else "**no**")
        lines.append(
            f"| {LABELS.get(model, model)} | {entry['parameters'] / 1e6:.1f}M | {per_seed} | "
            f"{entry['mean']:.4f} ± {entry['sd']:.4f} | {lift} | {beats} |"
        )
    txtai = report["txtai_setting"]
    lines += [
        "",
        "**txtai's setting** (T = 1, w = 1, 1 epoch, lr 5e-5, no warm-up or weight decay; one seed), "
        "beside txtai 9.14 measured on this machine class (issue #8) and txtai's article (GPU, hub models: "
        f"{TXTAI_ARTICLE['chain']}, {TXTAI_ARTICLE['without_distillation']} without distillation):",
        "",
        "| model | distill | txtai 9.14 |",
        "|---|---:|---:|",
    ]
    names = {"l1-baseline": "L1, labels only (layer 0 of the distilled L3)"}
    for model in ("teacher", "l3", "l3-baseline", "l1", "l1-baseline"):
        row = txtai[model]
        lines.append(
            f"| {names.get(model, LABELS.get(model, model))} | {row['accuracy']:.4f} | "
            f"{row['txtai_measured'] if row['txtai_measured'] is not None else ''} |"
        )
    lifts = [(m, e["lift_mean"]) for m, e in recipe.items() if "lift" in e]
    met = all(recipe[m]["beats_twin_every_seed"] for m, _ in lifts)
    lines += [
        "",
        f"Target (every distilled student beats its no-distillation twin, every seed): "
        f"**{'met' if met else 'not met'}**.",
        "",
    ]
    return "\n".join(lines)


def _read_part(item: str, profile: str) -> dict[str, Any]:
    """A `.part.json` of an earlier process, or `RUN=<report dir>/leaderboard.csv` of one flow run."""
    if "=" not in item:
        return json.loads(Path(item).read_text())
    import pandas as pd

    name, path = item.split("=", 1)
    table = pd.read_csv(path).astype(object).where(lambda frame: frame.notna(), None)
    rows = {row["model"]: row for row in table.to_dict(orient="records")}
    settings = asdict(_profiles(os.environ.get("DISTILL_DATA_DIR"))[profile])
    return {"profile": profile, "settings": settings, "runs": {name: {"rows": rows, "train_seconds": {}}}}


def main() -> None:
    parser = common.parser(__doc__, artifacts=True)
    parser.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        default=None,
        help="Student seeds (default: the profile's); several processes with different seeds on one "
        "--artifacts root fill it side by side, and a last run over all seeds reports from the cache.",
    )
    parser.add_argument("--teacher", type=Path, default=None, help="A fine-tuned teacher folder to reuse as is.")
    parser.add_argument("--part", choices=("recipe", "txtai"), action="append", help="Run only these parts.")
    parser.add_argument(
        "--merge",
        nargs="+",
        default=None,
        help="Report from earlier processes instead of running: their .part.json files, or RUN=leaderboard.csv "
        "(RUN: recipe-seed<N> or txtai-setting) for a flow run's report.",
    )
    args = parser.parse_args()
    common.prepare()
    started = time.perf_counter()
    if args.merge:
        parts = [_read_part(item, args.profile) for item in args.merge]
        wall = sum(part.get("wall_seconds", 0.0) for part in parts)
    else:
        root = args.artifacts or Path(tempfile.mkdtemp(prefix="distill-sst2-chain-"))
        parts = [run(args.profile, root, seeds=args.seeds, teacher_dir=args.teacher,
                     parts=tuple(args.part or ("recipe", "txtai")))]  # fmt: skip
        wall = time.perf_counter() - started
    if args.part and not args.merge:  # a share of the work: keep its runs for a later --merge
        parts[0]["wall_seconds"] = round(wall, 1)
        args.output_dir.mkdir(parents=True, exist_ok=True)
        stem = f"sst2_chain-{args.profile}-{'-'.join(args.part)}-{'-'.join(map(str, args.seeds or []))}"
        (args.output_dir / f"{stem}.part.json").write_text(json.dumps(parts[0], indent=2) + "\n")
        return
    report = report_of(parts, wall)
    write_results(report, markdown(report), args.output_dir)
    print(markdown(report))


if __name__ == "__main__":
    main()
