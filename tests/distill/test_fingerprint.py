"""Cache-key ingredients: code follows imports, configs are canonical, files hash by content."""

from __future__ import annotations

from pathlib import Path

from distill.store.fingerprint import _imported_distill_modules, canonical_json, code_fingerprint, folder_fingerprint


def test_stage_code_includes_helper_modules() -> None:
    source = Path("distill/stages/teacher.py").read_text()
    direct = _imported_distill_modules("distill.stages.teacher", source)
    assert {
        "distill.training.trainer",
        "distill.models.loading",
        "distill.data.task_data",
        "distill.stages.inputs",
    } <= direct
    # Transitively: the trainer's checkpoint helper and the QA feature code are part of the teacher's code.
    trainer = _imported_distill_modules("distill.training.trainer", Path("distill/training/trainer.py").read_text())
    assert "distill.training.checkpoints" in trainer
    assert code_fingerprint(("distill.stages.teacher",)) != code_fingerprint(("distill.stages.evaluate",))


def test_relative_and_from_imports() -> None:
    source = "from . import squad\nfrom .sources import is_local\nimport distill.io\nimport torch\n"
    found = _imported_distill_modules("distill.data.task_data", source)
    assert {"distill.data", "distill.data.squad", "distill.data.sources", "distill.io"} <= found
    assert not any(name.startswith("torch") for name in found)


def test_canonical_json_ignores_key_order() -> None:
    assert canonical_json({"b": 1, "a": [1, {"d": 2, "c": 3}]}) == canonical_json({"a": [1, {"c": 3, "d": 2}], "b": 1})


def test_folder_fingerprint_tracks_content(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text("{}")
    (tmp_path / "w.safetensors").write_bytes(b"123")
    before = folder_fingerprint(tmp_path)
    (tmp_path / "w.safetensors").write_bytes(b"124")
    assert folder_fingerprint(tmp_path) != before
