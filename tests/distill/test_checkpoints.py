"""Resume picks the newest checkpoint whose files are all there, and reports the whole run's loss."""

from __future__ import annotations

from pathlib import Path

from distill.training.checkpoints import latest_valid_checkpoint, mean_loss_of_resumed_run


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


def test_resumed_run_reports_the_mean_loss_of_every_step() -> None:
    # Logged every 10 steps (each entry the mean of its interval), checkpointed at 20, resumed, 40 steps in all.
    history = [{"step": 10, "loss": 4.0}, {"step": 20, "loss": 2.0}, {"step": 30, "loss": 1.0}, {"train_loss": 0.5}]
    # Steps 21-40 averaged 1.5 after the resume: (10 * 4 + 10 * 2 + 20 * 1.5) / 40, not the Trainer's 1.5.
    assert mean_loss_of_resumed_run(history, resumed_step=20, global_step=40, loss_since_resume=1.5) == 2.25
    # Resumed from the final checkpoint (killed while saving the model): no steps since, not a loss of 0.
    assert mean_loss_of_resumed_run(history[:3], resumed_step=30, global_step=30, loss_since_resume=0.0) == 7 / 3
    # Checkpoint at 25 with logs every 10: steps 21-25 have no recorded loss and are left out.
    assert mean_loss_of_resumed_run(history, resumed_step=25, global_step=40, loss_since_resume=1.0) == 75 / 35
