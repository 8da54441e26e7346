"""Resume picks the newest checkpoint whose files are all there."""

from __future__ import annotations

from pathlib import Path

from distill.training.checkpoints import latest_valid_checkpoint


def checkpoint(root: Path, step: int, *, complete: bool = True, state: str = '{"global_step": 1}') -> None:
    folder = root / f"checkpoint-{step}"
    folder.mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(b"w")
    for name in ("optimizer.pt", "scheduler.pt"):
        (folder / name).write_bytes(b"s")
    if complete:
        (folder / "trainer_state.json").write_text(state)


def test_newest_complete_checkpoint_wins(tmp_path: Path) -> None:
    assert latest_valid_checkpoint(tmp_path / "missing") is None
    checkpoint(tmp_path, 10)
    checkpoint(tmp_path, 30)
    checkpoint(tmp_path, 40, complete=False)  # killed mid-save: no trainer_state.json
    checkpoint(tmp_path, 50, state="{truncated")  # torn write
    (tmp_path / "checkpoint-60").mkdir()  # empty
    (tmp_path / "tmp-checkpoint-70").mkdir()
    assert latest_valid_checkpoint(tmp_path).name == "checkpoint-30"
