"""The report folder: CSV, PNG plots, markdown with embedded images, and the exported student."""

from __future__ import annotations

import csv
from pathlib import Path

from distill.reporting.files import FINAL_STUDENT, LEADERBOARD_CSV, LOSS_PLOT, METRIC_PLOT, REPORT_MD, write_report
from distill.reporting.report import Entry, leaderboard_rows

PNG = b"\x89PNG\r\n\x1a\n"


def test_report_files_and_export(tmp_path: Path, tiny_qa_model: Path) -> None:
    rows = leaderboard_rows(
        [
            Entry("teacher", "teacher", {"f1": 80.0, "exact": 75.0, "parameters": 22_000_000}),
            Entry(
                "l3",
                "distilled",
                {"f1": 77.5, "exact": 71.0, "parameters": 17_000_000},
                stage="l3",
                taught_by="teacher",
            ),  # fmt: skip
            Entry(
                "l3-baseline",
                "baseline",
                {"f1": 74.0, "exact": 69.0, "parameters": 17_000_000},
                baseline_of="l3",
                stage="l3",
            ),  # fmt: skip
        ],
        "f1",
    )
    curves = {"distill_l3": [{"step": 10, "loss": 2.0}, {"step": 20, "loss": 1.2}], "empty": []}
    markdown = write_report(tmp_path / "run", "demo", rows, "f1", curves, final_student=str(tiny_qa_model))
    run = tmp_path / "run"
    table = list(csv.DictReader((run / LEADERBOARD_CSV).open()))
    assert [r["model"] for r in table] == ["teacher", "l3", "l3-baseline"]
    assert float(table[1]["lift_vs_baseline"]) == 3.5 and float(table[1]["delta_vs_teacher"]) == -2.5
    assert (run / METRIC_PLOT).read_bytes().startswith(PNG) and (run / LOSS_PLOT).read_bytes().startswith(PNG)
    assert f"![{METRIC_PLOT}]({METRIC_PLOT})" in (run / REPORT_MD).read_text()
    assert markdown.count("data:image/png;base64,") == 2  # the UI cannot read the artifact store: embedded
    exported = run / FINAL_STUDENT
    assert sorted(p.name for p in exported.iterdir()) == sorted(p.name for p in tiny_qa_model.iterdir())
    write_report(run, "demo", rows, "f1", curves, final_student=str(tiny_qa_model))  # re-export replaces cleanly
    assert not any(p.name.startswith(".") for p in run.iterdir())
