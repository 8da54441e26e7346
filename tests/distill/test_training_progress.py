"""Training progress lines: the pace counts only the steps this process trained, the ETA follows from it."""

from __future__ import annotations

import pytest

from distill.training.progress import TrainingPace, format_duration, progress_text


@pytest.mark.parametrize(
    ("seconds", "shown"), [(0, "0s"), (42.4, "42s"), (59.6, "1m00s"), (185, "3m05s"), (3725, "1h02m"), (-3, "0s")]
)
def test_durations_read_as_the_two_largest_units(seconds: float, shown: str) -> None:
    assert format_duration(seconds) == shown


def test_a_resumed_run_is_paced_on_the_steps_it_trained() -> None:
    # Resumed at step 100 at t=0; 32 samples per optimizer step; at t=5 s it is at step 110.
    pace = TrainingPace(samples_per_step=32, start_step=100, started=0.0)
    assert pace.samples_per_second(110, now=5.0) == pytest.approx(10 * 32 / 5)  # not 110 steps in 5 s
    assert pace.seconds_left(110, 200, now=5.0) == pytest.approx(5.0 / 10 * 90)
    assert pace.samples_per_second(100, now=5.0) is None  # nothing trained yet: no pace to show
    assert pace.seconds_left(100, 200, now=5.0) is None


def test_the_line_shows_step_epoch_loss_speed_and_eta() -> None:
    pace = TrainingPace(samples_per_step=16, start_step=0, started=0.0)
    logs = {"loss": 0.43215, "learning_rate": 2e-5, "epoch": 1.0, "kd_loss": 0.12, "grad_norm": 3.0}
    line = progress_text(120, 400, pace, logs, epoch=1.2, now=60.0)
    assert line == (
        "step 120/400 (30%) | epoch 1.20 | loss 0.4321 | kd_loss 0.1200 | lr 2.0e-05 | 32.0 samples/s | ETA 2m20s"
    )
    short = progress_text(120, 400, pace, logs, epoch=1.2, now=60.0, detail=False)
    assert short == "step 120/400 (30%) | epoch 1.20 | loss 0.4321 | 32.0 samples/s | ETA 2m20s"


def test_before_the_first_log_the_line_has_no_loss_and_no_pace_yet() -> None:
    pace = TrainingPace(samples_per_step=8, start_step=0, started=0.0)
    assert progress_text(0, 50, pace, None, epoch=0.0, now=1.0) == "step 0/50 (0%) | epoch 0.00 | - samples/s | ETA -"
