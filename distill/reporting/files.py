"""The run report on disk: leaderboard.csv, plots, a markdown summary, and the final student exported.

Everything goes to one folder, `<artifact_root>/runs/<run name>/` (for an object-store root, in this
node's cache, and the report task uploads it to `<prefix>/runs/<run name>/`). Plots are PNG files next
to the report, and the markdown for the Prefect UI embeds them as data URIs, because the UI
cannot read the artifact store.
"""

from __future__ import annotations

import base64
import io
import json
import shutil
from pathlib import Path
from typing import Any

import pandas as pd

from distill.io import atomic_write_bytes, atomic_write_text
from distill.store.artifacts import LOSS_CURVE

LEADERBOARD_CSV = "leaderboard.csv"
METRIC_PLOT = "metric_vs_parameters.png"
LOSS_PLOT = "loss_curves.png"
REPORT_MD = "report.md"
SWEEP_CSV = "sweep.csv"
SWEEP_COLUMNS = ("stage", "trial", "train_loss", "seconds", "cached", "chosen")  # the rest: settings and the metric
FINAL_STUDENT = "final-student"


def _figure():  # noqa: ANN202 - a matplotlib Figure with the Agg canvas, no global pyplot state
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6.4, 4.2), dpi=110)
    FigureCanvasAgg(figure)
    return figure


def _png(figure: Any) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight")
    return buffer.getvalue()


def metric_plot(rows: list[dict[str, Any]], metric: str) -> bytes:
    """Task metric against size, one marker style per role, each point labelled.

    Size is megabytes on disk when every scored model has a figure (an int8 export has its source's
    parameters in a quarter of the bytes), else the parameter count.
    """
    figure = _figure()
    axes = figure.add_subplot()
    styles = {"teacher": ("*", 160), "distilled": ("o", 60), "baseline": ("x", 60), "exported": ("s", 50)}
    scored = [r for r in rows if r.get(metric) is not None]
    on_disk = bool(scored) and all(r.get("size_on_disk_mb") for r in scored)
    column, scale, label = ("size_on_disk_mb", 1, "size on disk (MB)") if on_disk else (
        "parameters", 1e6, "parameters (millions)")  # fmt: skip
    shown = []
    for role, (marker, size) in styles.items():
        points = [r for r in scored if r["role"] == role and r.get(column)]
        if points:
            shown.append(role)
            axes.scatter([r[column] / scale for r in points], [r[metric] for r in points], marker=marker, s=size)
            for r in points:
                axes.annotate(r["model"], (r[column] / scale, r[metric]), fontsize=7, xytext=(4, 3),
                              textcoords="offset points")  # fmt: skip
    axes.set_xlabel(label)
    axes.set_ylabel(f"eval {metric}")
    axes.set_title(f"{metric} vs size")
    axes.legend(shown, fontsize=8)
    axes.grid(alpha=0.3)
    return _png(figure)


def loss_plot(curves: dict[str, list[dict[str, float]]]) -> bytes:
    """Training loss per step, one line per training stage."""
    figure = _figure()
    axes = figure.add_subplot()
    for label, points in curves.items():
        if points:
            axes.plot([p["step"] for p in points], [p["loss"] for p in points], label=label, linewidth=1.2)
    axes.set_xlabel("step")
    axes.set_ylabel("training loss")
    axes.set_yscale("log")
    axes.set_title("loss curves")
    axes.legend(fontsize=7)
    axes.grid(alpha=0.3)
    return _png(figure)


def sweep_plot(rows: list[dict[str, Any]], metric: str) -> bytes:
    """One stage's sweep: the validation metric against each swept setting; the chosen trial starred, the
    baseline (same validation set, no distillation) as a dashed line."""
    trials = [r for r in rows if r["trial"] != "baseline" and r.get(metric) is not None]
    settings = [c for c in trials[0] if c not in SWEEP_COLUMNS and c != metric] if trials else []
    figure = _figure()
    figure.set_size_inches(max(4.2, 3.6 * len(settings)), 3.6)
    baseline = next((r.get(metric) for r in rows if r["trial"] == "baseline"), None)
    for index, setting in enumerate(settings, start=1):
        axes = figure.add_subplot(1, len(settings), index)
        axes.scatter([r[setting] for r in trials], [r[metric] for r in trials], s=30, alpha=0.8, label="trial")
        chosen = [r for r in trials if r["chosen"]]
        axes.scatter([r[setting] for r in chosen], [r[metric] for r in chosen], marker="*", s=180, label="chosen")
        if baseline is not None:
            axes.axhline(baseline, linestyle="--", linewidth=1, color="grey", label="baseline (labels only)")
        axes.set_xlabel(setting.split(".", 1)[-1])
        if setting.endswith("learning_rate"):
            axes.set_xscale("log")
        axes.grid(alpha=0.3)
        if index == 1:
            axes.set_ylabel(metric)
            axes.legend(fontsize=7)
    figure.suptitle(f"sweep {rows[0]['stage']}: {metric} by setting", fontsize=10)
    return _png(figure)


def read_loss_curve(stage_dir: str | Path) -> list[dict[str, float]]:
    path = Path(stage_dir) / LOSS_CURVE
    return json.loads(path.read_text()) if path.is_file() else []


def _markdown_table(rows: list[dict[str, Any]]) -> str:
    columns = list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        cells = [f"{v:.4g}" if isinstance(v, float) else ("" if v is None else str(v)) for v in row.values()]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_report(
    run_dir: str | Path,
    title: str,
    rows: list[dict[str, Any]],
    metric: str,
    curves: dict[str, list[dict[str, float]]],
    final_student: str | None = None,
    sweeps: list[dict[str, Any]] | None = None,
    final_exports: dict[str, str] | None = None,
) -> str:
    """Write the report files into `run_dir`; returns the markdown with the plots embedded (for the UI).

    The final student is copied to `final_student/`, and each of its exports (`final_exports`: format
    to folder) to `final_student-<format>/`.

    `sweeps` are the sweep tables' rows (column `stage` tells the sweeps apart): `sweep.csv` and a
    `sweep-<stage>.png` per swept stage.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / LEADERBOARD_CSV, pd.DataFrame(rows).to_csv(index=False))
    plots = {METRIC_PLOT: metric_plot(rows, metric), LOSS_PLOT: loss_plot(curves)}
    sweep_body: list[str] = []
    if sweeps:
        table = pd.DataFrame(sweeps)
        atomic_write_text(run_dir / SWEEP_CSV, table.to_csv(index=False))
        for stage, stage_rows in table.groupby("stage", sort=False):
            records = stage_rows.dropna(axis=1, how="all").astype(object).where(stage_rows.notna(), None)
            records = records.to_dict("records")
            sweep_metric = next(c for c in records[-1] if c.startswith("validation_"))
            plots[f"sweep-{stage}.png"] = sweep_plot(records, sweep_metric)
            sweep_body += [f"## Sweep: {stage} (chosen on {sweep_metric})", "", _markdown_table(records), ""]
    for name, png in plots.items():
        atomic_write_bytes(run_dir / name, png)
    exported = export_student(final_student, run_dir / FINAL_STUDENT) if final_student else None
    body = [f"# {title}", "", _markdown_table(rows), ""]
    if exported:
        body += [f"Final student, ready for `pipeline(..., model=...)`: `{exported}`", ""]
    for export_format, folder in (final_exports or {}).items():
        copied = export_student(folder, run_dir / f"{FINAL_STUDENT}-{export_format}")
        body += [f"Final student as {export_format}, for onnxruntime or optimum's ORTModel classes: `{copied}`", ""]
    body += sweep_body
    files = {name: f"![{name}]({name})" for name in plots}
    embedded = {
        name: f"![{name}](data:image/png;base64,{base64.b64encode(png).decode()})" for name, png in plots.items()
    }
    atomic_write_text(run_dir / REPORT_MD, "\n".join(body + list(files.values())) + "\n")
    return "\n".join(body + [f"Files: `{run_dir}`", ""] + list(embedded.values()))


def export_student(model_dir: str | Path, target: str | Path) -> Path:
    """Copy a model folder (safetensors, config, tokenizer) to `target`, replacing what was there."""
    target = Path(target)
    staging = target.with_name(f".{target.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(model_dir, staging)
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    return target
