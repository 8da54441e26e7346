"""Benchmark: SST-2 students distilled with TinyBERT's recipe, each beside its labels-only twin, over seeds.

Everything runs through the product: each run is a `progressive_distillation` flow (real
Prefect, content-cached stages) on one artifact root, so what is measured is what a user
gets from `distill run`.

- **The teacher**: MiniLM-L6 fine-tuned once on SST-2's training file (full profile: all of
  it, 1 epoch), less a validation share held out by distinct text (5%, seeded; the same
  share every run holds out, so the teacher never saw a validation sentence). Shared by every
  seed as a fine-tuned folder.
- **distill's recipe**, once per seed, on a seeded sample of the remaining rows (full: 8,000):
  the sample augmented (GloVe-neighbour word swaps, `factor` copies per sentence, labelled by
  the teacher's soft targets), then L3 (the teacher's first 3 layers): intermediate-layer
  distillation (embeddings, hidden states, attentions), then prediction-layer; L1 (the first
  layer of that L3, taught by it: progressive) the same way; L1 also taught by the teacher
  directly. The first seed sweeps L3's temperature and soft-target weight on the validation
  share (grid); every seed then uses the chosen values for every stage.
- **The twins**: the same L3 and L1 (layers of the teacher), the same sample, schedule and
  seed, on labels alone, without augmentation or teacher.
- **txtai's setting**, one seed, as issue #8 measured txtai 9.14 `HFTrainer(teacher=...,
  distillation=(1.0, 1.0))`: its own teacher on the 8,000 rows, 1 epoch, batch 32, max length
  64, lr 5e-5, no warmup, no weight decay, T = 1, soft targets only (w = 1); L1 distilled
  from that L3.

Eval: the full 872-sentence dev set; nothing is chosen on it.

    DISTILL_DATA_DIR=../shared/data python benchmarks/sst2_chain.py --profile full --artifacts /tmp/sst2
    python benchmarks/sst2_chain.py --profile quick   # generated data, tiny model, a few minutes

Writes `benchmarks/results/sst2_chain-<profile>.json` and `.md`.
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import common
from common import machine, machine_line, run_chain, today, write_results

# Issue #8's measurements of txtai 9.14 on this machine class (CPU), and txtai's article (GPU, hub models).
TXTAI_MEASURED = {"teacher": 0.833, "l3": 0.791, "l3-baseline": 0.803, "l1": 0.766, "l1-baseline": 0.763}
TXTAI_ARTICLE = {"chain": "0.875 -> 0.833 -> 0.809", "without_distillation": 0.802}
# Issue 18's targets: teacher dev accuracy; mean lift over the twin (points); L3 distance to the teacher (points).
TARGETS = {"teacher_accuracy": 0.88, "lift_points": 1.0, "l3_within_points": 1.5}
SWEPT = ("prediction_layer.temperature", "prediction_layer.loss_weight")


@dataclass(frozen=True)
class Profile:
    teacher: str
    train: str
    eval: str
    teacher_rows: int | None  # rows the recipe's teacher trains on (None: the whole file less validation)
    teacher_epochs: float
    train_rows: int  # the students' seeded sample (and txtai's setting's rows)
    max_seq_length: int
    seeds: tuple[int, ...]
    batch_size: int
    teacher_lr: float
    l3_layers: list[int]
    l3_lr: float
    l1_epochs: float
    l1_lr: float
    augmentation_factor: int
    validation_fraction: float
    max_validation_samples: int
    kd: dict[str, float]  # the configured T and w (trial 0 of the sweep)
    sweep: dict[str, list[float]] = field(default_factory=dict)  # grid over SWEPT on the first seed
    eval_rows: int | None = None


def _profiles(data_dir: str | None) -> dict[str, Profile]:
    sst2 = Path(data_dir or ".") / "sst2"
    return {
        # A 4-layer, 64-wide random BERT on generated sentences: checks the runner, not distillation.
        "quick": Profile(
            "tiny-bert",
            "synthetic:sentiment",
            "synthetic:sentiment",
            teacher_rows=None,
            teacher_epochs=4,
            train_rows=160,
            max_seq_length=32,
            seeds=(0, 1),
            batch_size=16,
            teacher_lr=2e-3,
            l3_layers=[0, 1],
            l3_lr=2e-3,
            l1_epochs=2,
            l1_lr=2e-3,
            augmentation_factor=1,
            validation_fraction=0.2,
            max_validation_samples=60,
            kd={"temperature": 1.0, "loss_weight": 1.0},
            sweep={SWEPT[0]: [1.0, 2.0]},
            eval_rows=80,
        ),
        "full": Profile(
            "minilm",
            str(sst2 / "train.tsv.gz"),
            str(sst2 / "dev.tsv"),
            teacher_rows=None,
            teacher_epochs=1,
            train_rows=8000,
            max_seq_length=64,
            seeds=(0, 1, 2),
            batch_size=32,
            teacher_lr=5e-5,
            l3_layers=[0, 1, 2],
            l3_lr=5e-5,
            l1_epochs=1,
            l1_lr=2e-4,
            augmentation_factor=4,
            validation_fraction=0.05,
            max_validation_samples=1000,
            # T = 1, w = 1: what issue 17's validation sweep chose for the quickstart's L3 (8 trials, T x w).
            kd={"temperature": 1.0, "loss_weight": 1.0},
            sweep={SWEPT[0]: [1.0, 2.0], SWEPT[1]: [0.5, 1.0]},
        ),
    }


def _training(epochs: float, lr: float, batch: int, *, hf_defaults: bool = False) -> dict[str, Any]:
    settings: dict[str, Any] = {"epochs": epochs, "learning_rate": lr, "batch_size": batch, "save_steps": 100}
    if hf_defaults:  # the HF Trainer (and so txtai) defaults: constant warm-up-free linear decay, no weight decay
        settings.update(warmup_ratio=0.0, weight_decay=0.0)
    return settings


def _data(profile: Profile, *, rows: int | None, validation: bool) -> dict[str, Any]:
    data: dict[str, Any] = {
        "task": "classification",
        "train": profile.train,
        "eval": profile.eval,
        "labels": ["0", "1"],
        "max_seq_length": profile.max_seq_length,
        "max_train_samples": rows,
        "max_eval_samples": profile.eval_rows,
        "sample_seed": 0,
    }
    if validation:  # held out of the whole file before the sample is drawn: the same sentences in every run
        data |= {
            "validation_fraction": profile.validation_fraction,
            "max_validation_samples": profile.max_validation_samples,
        }
    return data


def _config(profile: Profile, root: Path, name: str, seed: int, teacher: dict[str, Any], stages: list[dict],
            *, data: dict[str, Any], augmentation: bool = False) -> Any:  # fmt: skip
    from distill.config import parse_config

    raw: dict[str, Any] = {
        "name": name,
        "seed": seed,
        "artifact_root": str(root),
        "data": data,
        "teacher": teacher,
        "stages": stages,
        "evaluation": {"latency_samples": 20},
    }
    if augmentation:
        raw["augmentation"] = {
            "method": "embedding",
            "factor": profile.augmentation_factor,
            "replace_prob": 0.4,
            "candidates": 15,
            "vectors": "glove-6b-50d",
        }
    return parse_config(raw, source=f"sst2_chain:{name}")


def _recipe_stages(profile: Profile, kd: dict[str, float], *, sweep: bool) -> list[dict[str, Any]]:
    """L3 from the teacher, L1 from L3 (progressive) and L1 from the teacher (direct): TinyBERT's two steps each."""

    def student(name: str, layers: list[int], teacher: str, epochs: float, lr: float, baseline: bool) -> dict:
        training = _training(epochs, lr, profile.batch_size)
        return {
            "name": name,
            "teacher": teacher,
            "student": {"layers": layers},
            "intermediate_layer": {"layer_map": "uniform", "training": training},
            "prediction_layer": {**kd, "training": training},
            "baseline": baseline,
        }

    l3 = student("l3", profile.l3_layers, "original", 1, profile.l3_lr, baseline=True)
    if sweep and profile.sweep:
        l3["sweep"] = {"method": "grid", "metric": "accuracy", "params": profile.sweep}
    return [
        l3,
        student("l1", [0], "previous", profile.l1_epochs, profile.l1_lr, baseline=False),
        # Layer 0 of the 6-layer teacher: the twin of both L1s, and the direct-distillation comparison.
        student("l1-direct", [0], "original", profile.l1_epochs, profile.l1_lr, baseline=True),
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


def chosen_settings(chain: dict[str, Any]) -> dict[str, float]:
    """The swept values of the trial the sweep chose (on validation), as prediction_layer fields."""
    [row] = [row for row in chain["sweeps"] if row.get("chosen")]
    return {key.removeprefix("prediction_layer."): row[key] for key in SWEPT if key in row}


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
    runs: dict[str, dict[str, Any]] = {}
    kd: dict[str, float] = dict(profile.kd)
    if "recipe" in parts:
        if teacher_dir is None:
            training = _training(profile.teacher_epochs, profile.teacher_lr, profile.batch_size)
            runs["teacher"] = chain = run_chain(
                _config(
                    profile,
                    root,
                    "sst2-teacher",
                    42,
                    {"model": profile.teacher, "training": training},
                    [],
                    data=_data(profile, rows=profile.teacher_rows, validation=True),
                )
            )
            teacher_dir = Path(chain["stages"]["finetune_teacher"]["uri"]) / "model"
        teacher = {"model": str(teacher_dir), "finetuned": True}
        data = _data(profile, rows=profile.train_rows, validation=True)
        # The first seed sweeps; the others use what it chose (from the cache when a process ran it before).
        sweep_seed, *_ = profile.seeds
        order = [sweep_seed] + [s for s in (seeds or profile.seeds) if s != sweep_seed]
        for seed in order:
            swept = seed == sweep_seed and bool(profile.sweep)
            chain = run_chain(
                _config(
                    profile,
                    root,
                    f"sst2-recipe-seed{seed}",
                    seed,
                    teacher,
                    _recipe_stages(profile, kd, sweep=swept),
                    data=data,
                    augmentation=True,
                )
            )
            if swept:
                kd |= chosen_settings(chain)
            if seeds is None or seed in seeds:
                runs[f"recipe-seed{seed}"] = chain
    if "txtai" in parts:
        epochs = 1 if profile.teacher == "minilm" else profile.teacher_epochs  # txtai: 1 epoch
        teacher_training = _training(epochs, profile.teacher_lr, profile.batch_size, hf_defaults=True)
        runs["txtai-setting"] = run_chain(
            _config(
                profile,
                root,
                "sst2-txtai-setting",
                42,
                {"model": profile.teacher, "training": teacher_training},
                _txtai_stages(profile),
                data=_data(profile, rows=profile.train_rows, validation=False),
            )
        )
    return {"profile": profile_name, "settings": asdict(profile) | {"kd_chosen": kd}, "runs": runs}


def report_of(parts: list[dict[str, Any]], wall_seconds: float) -> dict[str, Any]:
    """One report from the runs of one or more processes (`--merge`): per-seed accuracies, lifts, txtai rows."""
    runs = {name: run for part in parts for name, run in part["runs"].items()}
    recipe = {int(name.removeprefix("recipe-seed")): run for name, run in runs.items() if name.startswith("recipe")}
    settings = parts[0]["settings"] | {"seeds": sorted(recipe)}
    profile = parts[0]["profile"]
    summary = summarise_recipe(dict(sorted(recipe.items())))
    sweep_runs = [run for run in recipe.values() if run.get("sweeps")]
    return {
        "benchmark": "sst2_chain",
        "profile": profile,
        "date": today(),
        "command": f"DISTILL_DATA_DIR=../shared/data python benchmarks/sst2_chain.py --profile {profile} "
        "--artifacts /tmp/sst2",
        "settings": settings,
        "machine": machine(),
        "wall_seconds": round(wall_seconds, 1),
        "run_seconds": {name: run.get("seconds") for name, run in runs.items()},
        "recipe": summary,
        "targets": targets(summary),
        "sweep": sweep_runs[0]["sweeps"] if sweep_runs else [],
        "costs": costs(runs),
        "txtai_setting": summarise_txtai(runs["txtai-setting"]) if "txtai-setting" in runs else None,
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
        rows = [runs[seed]["rows"][model] for seed in seeds]
        scores = [row["accuracy"] for row in rows]
        entry = {
            "accuracy": dict(zip(seeds, scores, strict=True)),
            "mean": round(statistics.fmean(scores), 4),
            "sd": round(statistics.stdev(scores), 4) if len(scores) > 1 else 0.0,
            "validation_accuracy": [row.get("validation_accuracy") for row in rows],
            "parameters": rows[0]["parameters"],
            "size_on_disk_mb": rows[0].get("size_on_disk_mb"),
            "latency_p50_ms": [row["latency_p50_ms"] for row in rows],
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


def targets(summary: dict[str, Any]) -> dict[str, bool]:
    teacher = summary["teacher"]["mean"]
    met = {f"teacher dev accuracy >= {TARGETS['teacher_accuracy']}": teacher >= TARGETS["teacher_accuracy"]}
    for model in RECIPE_PAIRS:
        if model in summary:
            entry = summary[model]
            met[f"{model} beats its twin on every seed"] = entry["beats_twin_every_seed"]
            met[f"{model} mean lift >= +{TARGETS['lift_points']:g} point"] = (
                entry["lift_mean"] * 100 >= TARGETS["lift_points"] - 1e-9
            )
    if "l3" in summary:
        met[f"l3 within {TARGETS['l3_within_points']:g} points of the teacher"] = (
            teacher - summary["l3"]["mean"]
        ) * 100 <= TARGETS["l3_within_points"]
    return met


def costs(runs: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Each stage a run computed (cached ones belong to the run that computed them): seconds and precision."""
    rows = []
    for run, chain in runs.items():
        for name, stage in chain.get("stages", {}).items():
            if stage["status"] != "completed":
                continue
            metrics = stage["metrics"]
            rows.append(
                {
                    "run": run,
                    "stage": name,
                    "seconds": metrics.get("stage_seconds"),
                    "train_seconds": metrics.get("train_runtime_seconds"),
                    "train_steps": metrics.get("train_steps"),
                    "precision": metrics.get("precision"),
                }
            )
    return rows


def summarise_txtai(run: dict[str, Any]) -> dict[str, Any]:
    rows = run["rows"]
    return {
        model: {"accuracy": rows[model]["accuracy"], "txtai_measured": TXTAI_MEASURED.get(model)}
        for model in ("teacher", "l3", "l3-baseline", "l1", "l1-baseline")
    } | {"train_seconds": run["train_seconds"]}


LABELS = {
    "teacher": "teacher (fine-tuned)",
    "l3": "L3, distilled from the teacher",
    "l3-baseline": "L3, labels only",
    "l1": "L1, distilled from L3 (progressive)",
    "l1-direct": "L1, distilled from the teacher (direct)",
    "l1-direct-baseline": "L1, labels only",
}


def _number(value: Any, spec: str) -> str:
    return "" if value is None else format(value, spec)


def _ratio_line(report: dict[str, Any]) -> str:
    by_run: dict[tuple[str, str], dict[str, Any]] = {(row["run"], row["stage"]): row for row in report["costs"]}
    ratios = []
    for (run, stage), row in by_run.items():
        if stage.startswith("intermediate_"):
            prediction = by_run.get((run, stage.replace("intermediate_", "distill_", 1)))
            if prediction and row["train_seconds"] and prediction["train_seconds"]:
                ratios.append(f"{run} {stage.removeprefix('intermediate_')} "
                              f"{row['train_seconds'] / prediction['train_seconds']:.2f}x")  # fmt: skip
    return ", ".join(ratios) or "none computed in this process"


def markdown(report: dict[str, Any]) -> str:
    s, recipe = report["settings"], report["recipe"]
    seeds = list(next(iter(recipe.values()))["accuracy"])
    kd = s["kd_chosen"]
    lines = [
        f"### SST-2: students with TinyBERT's recipe beside their labels-only twins, profile `{report['profile']}` "
        f"({report['date']})",
        "",
        f"`{report['command']}`; wall time {report['wall_seconds'] / 60:.1f} min. {machine_line(report['machine'])}",
        "",
        f"Teacher: {s['teacher']}, {s['teacher_epochs']:g} epoch(s) on "
        f"{'the whole training file' if s['teacher_rows'] is None else str(s['teacher_rows']) + ' rows'} less a "
        f"{s['validation_fraction']:g} validation share (by distinct text; {s['max_validation_samples']} of it "
        f"scored). Students: a seeded sample of {s['train_rows']} rows, augmented x{s['augmentation_factor']} "
        f"(GloVe neighbours), intermediate then prediction layer, 1 epoch each (L3 lr {s['l3_lr']:g}, L1 lr "
        f"{s['l1_lr']:g}); T = {kd.get('temperature'):g}, w = {kd.get('loss_weight'):g} "
        f"(chosen on validation by the first seed's sweep); max length {s['max_seq_length']}, batch "
        f"{s['batch_size']}; seeds {seeds}. Twins: the same students, sample, schedule and seed on labels only.",
        "",
        "| model | parameters | "
        + " | ".join(f"seed {seed}" for seed in seeds)
        + " | mean ± sd | lift over labels-only twin, points (per seed) | beats twin every seed |",
        "|---|---:|" + "---:|" * len(seeds) + "---:|---|---|",
    ]
    for model, entry in recipe.items():
        per_seed = " | ".join(f"{entry['accuracy'][seed]:.4f}" for seed in seeds)
        lift = ""
        if "lift" in entry:
            lift = f"{entry['lift_mean'] * 100:+.2f} ({', '.join(f'{v * 100:+.2f}' for v in entry['lift'].values())})"
        beats = "" if "lift" not in entry else ("yes" if entry["beats_twin_every_seed"] else "**no**")
        lines.append(
            f"| {LABELS.get(model, model)} | {entry['parameters'] / 1e6:.1f}M | {per_seed} | "
            f"{entry['mean']:.4f} ± {entry['sd']:.4f} | {lift} | {beats} |"
        )
    lines += ["", "Targets (issue 18): " + "; ".join(
        f"{name}: **{'met' if met else 'missed'}**" for name, met in report["targets"].items()) + ".", ""]  # fmt: skip
    if report["sweep"]:
        keys = [k for k in report["sweep"][-1] if k.startswith("prediction_layer.")]
        lines += [
            "Sweep (first seed, L3's prediction layer, chosen on validation accuracy):",
            "",
            "| trial | " + " | ".join(k.removeprefix("prediction_layer.") for k in keys) + " | validation accuracy "
            "| chosen |",
            "|---|" + "---:|" * len(keys) + "---:|---|",
        ]
        for row in report["sweep"]:
            value = row.get("validation_accuracy")
            lines.append(
                f"| {row['trial']} | "
                + " | ".join(f"{row.get(k, '')}" for k in keys)
                + f" | {value:.4f} | {'yes' if row.get('chosen') else ''} |"
                if isinstance(value, float)
                else f"| {row['trial']} | " + " | " * len(keys) + " |  |"
            )
        lines.append("")
    lines += [
        "Stages this process computed (cached ones are left out):",
        "",
        "| run | stage | seconds | train seconds | steps | precision |",
        "|---|---|---:|---:|---:|---|",
        *(
            f"| {row['run']} | {row['stage']} | {row['seconds']:.0f} | {_number(row['train_seconds'], '.0f')} | "
            f"{row['train_steps'] or ''} | {row['precision'] or ''} |"
            for row in report["costs"]
            if row["seconds"] is not None
        ),
        "",
        f"Intermediate over prediction-layer training time (same data and epochs): {_ratio_line(report)}.",
        "",
    ]
    txtai = report["txtai_setting"]
    if txtai:
        lines += [
            "**txtai's setting** (its own teacher on the same rows, T = 1, w = 1, 1 epoch, lr 5e-5, no warm-up or "
            "weight decay; one seed), beside txtai 9.14 measured on this machine class (issue #8) and txtai's "
            f"article (GPU, hub models: {TXTAI_ARTICLE['chain']}, {TXTAI_ARTICLE['without_distillation']} without "
            "distillation):",
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
        lines.append("")
    return "\n".join(lines)


def _read_part(item: str) -> dict[str, Any]:
    """A `.part.json` of an earlier process."""
    return json.loads(Path(item).read_text())


def main() -> None:
    parser = common.parser(__doc__, artifacts=True)
    parser.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        default=None,
        help="Student seeds (default: the profile's); several processes with different seeds on one "
        "--artifacts root fill it side by side (each runs the first seed's sweep, from the cache when done), "
        "and a last run over all seeds reports from the cache.",
    )
    parser.add_argument("--teacher", type=Path, default=None, help="A fine-tuned teacher folder to reuse as is.")
    parser.add_argument("--part", choices=("recipe", "txtai"), action="append", help="Run only these parts.")
    parser.add_argument(
        "--merge", nargs="+", default=None, help="Report from earlier processes' .part.json files instead of running."
    )
    args = parser.parse_args()
    common.prepare()
    started = time.perf_counter()
    if args.merge:
        parts = [_read_part(item) for item in args.merge]
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
