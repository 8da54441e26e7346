"""An export that fails its check fails the run with its numbers, after the report of everything else is written."""

from __future__ import annotations

from pathlib import Path

import pytest

from distill.config import ExportConfig
from distill.export.onnx import ExportError
from distill.reporting.files import FINAL_STUDENT, LEADERBOARD_CSV
from flows.progressive import progressive_distillation
from tests.flows.test_cache_keys import FRESH, small_run


def test_a_failed_check_fails_the_run_after_the_report(tmp_path: Path) -> None:
    config = small_run(tmp_path / "artifacts", FRESH)
    # fp32 reproduces PyTorch to ~1e-6, never to 1e-12: its check must fail; int8's (agreement >= 0) passes.
    impossible = ExportConfig(max_abs_diff=1e-12, min_agreement=1e-9)
    with pytest.raises(ExportError, match=r"tiny-small-onnx' as onnx failed its check: logits differ .* by up to"):
        progressive_distillation(config.model_copy(update={"export": impossible}))

    [run_dir] = (tmp_path / "artifacts" / "runs").iterdir()
    models = [line.split(",")[0] for line in (run_dir / LEADERBOARD_CSV).read_text().splitlines()[1:]]
    assert models == ["teacher", "tiny-small", "tiny-small-onnx-int8"]  # the failed export has no row
    assert (run_dir / f"{FINAL_STUDENT}-onnx-int8" / "model.onnx").is_file()
    assert not (run_dir / f"{FINAL_STUDENT}-onnx").exists()
    failed = [p for p in (tmp_path / "artifacts" / "export").iterdir() if not (p / "_COMPLETE").exists()]
    assert len(failed) == 1 and not (failed[0] / "model").exists()  # nothing shipped, nothing cached
