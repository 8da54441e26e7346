"""Training progress as a person reads it: step, epoch, loss, samples/s and the time left.

    finetune-teacher: step 120/400 (30%) | epoch 1.20 | loss 0.4321 | lr 2.0e-05 | 38.5 samples/s | ETA 2m05s

The pace is measured over the steps this process trained, so a run resumed at step 300 does not
count the first 300 steps as done in no time.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

# Progress for a terminal travels as log records on this logger (outside 'distill' and 'prefect', so never
# to the Prefect API), with the attribute PROGRESS = {stage, done, total, text}; `distill run` draws them as
# bars. STEP_LINE marks a per-step log line that a terminal showing bars need not repeat.
PROGRESS_LOGGER = PROGRESS = "distill_progress"
STEP_LINE = "distill_step_line"


def format_duration(seconds: float) -> str:
    """1h02m, 3m05s, 42s: the two largest units that matter."""
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def _number(value: float) -> str:
    return f"{value:.4f}" if 1e-3 <= abs(value) < 1e4 or value == 0 else f"{value:.3e}"


@dataclass
class TrainingPace:
    """Samples per second and the time left, from the wall time since training (re)started."""

    samples_per_step: int  # per optimizer step: batch size x gradient accumulation x processes
    start_step: int = 0
    started: float = field(default_factory=time.monotonic)

    def samples_per_second(self, step: int, now: float | None = None) -> float | None:
        elapsed = (time.monotonic() if now is None else now) - self.started
        done = step - self.start_step
        return done * self.samples_per_step / elapsed if done > 0 and elapsed > 0 else None

    def seconds_left(self, step: int, max_steps: int, now: float | None = None) -> float | None:
        elapsed = (time.monotonic() if now is None else now) - self.started
        done = step - self.start_step
        return elapsed / done * max(0, max_steps - step) if done > 0 else None


def progress_text(
    step: int,
    max_steps: int,
    pace: TrainingPace,
    logs: dict[str, float] | None = None,
    epoch: float | None = None,
    now: float | None = None,
    detail: bool = True,
) -> str:
    """'step 120/400 (30%) | epoch 1.20 | loss 0.4321 | lr 2.0e-05 | 38.5 samples/s | ETA 2m05s'.

    `logs`: the Trainer's latest log (loss, distillation terms, learning rate); `epoch` wins over its
    epoch, which is as old as the log. `detail=False` leaves out the learning rate and the loss terms,
    for a terminal line.
    """
    logs = dict(logs or {})
    percent = math.floor(100 * step / max_steps) if max_steps else 100
    parts = [f"step {step}/{max_steps} ({percent}%)"]
    epoch = epoch if epoch is not None else logs.get("epoch")
    if epoch is not None:
        parts.append(f"epoch {epoch:.2f}")
    if "loss" in logs:
        parts.append(f"loss {_number(logs['loss'])}")
    if detail:
        for key in sorted(k for k in logs if "loss" in k and k != "loss" and isinstance(logs[k], int | float)):
            parts.append(f"{key} {_number(logs[key])}")
        if isinstance(logs.get("learning_rate"), int | float):
            parts.append(f"lr {logs['learning_rate']:.1e}")
    speed = pace.samples_per_second(step, now)
    parts.append(f"{speed:.1f} samples/s" if speed is not None else "- samples/s")
    left = pace.seconds_left(step, max_steps, now)
    parts.append(f"ETA {format_duration(left)}" if left is not None else "ETA -")
    return " | ".join(parts)
