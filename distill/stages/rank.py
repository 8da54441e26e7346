"""One rank of a multi-device stage, as torchrun starts it (see distill.stages.distributed):

    python -m distill.stages.rank <spec.json>

Every rank rebuilds the stage's data and model from the spec and runs the same stage body; the
Trainer inside it trains as one DDP group. Rank 0 prints readable progress lines (the parent relays
them into the stage's log) and reports the stage's metrics.
"""

from __future__ import annotations

import importlib
import logging
import sys
import time
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from distill.errors import DistillError, first_line, is_transient
from distill.io import atomic_write_json
from distill.lifetime import die_with_parent
from distill.stages.distributed import CHECKPOINT_SAVED, failure_file, read_spec
from distill.training import distributed
from distill.training.progress import TrainingPace, format_duration, progress_text

# By stage kind; imported when a rank runs one (every rank pays each import, and torch's and transformers'
# take seconds already).
BODIES = {
    "finetune_teacher": ("distill.stages.teacher", "finetune_teacher"),
    "distill_intermediate_layers": ("distill.stages.intermediate", "distill_intermediate_layers"),
    "distill_prediction_layer": ("distill.stages.prediction", "distill_prediction_layer"),
    "train_baseline": ("distill.stages.prediction", "train_baseline"),
}


class PrintProgress(TrainerCallback):
    """Rank 0's training progress on stdout, one readable line per Trainer log step (the parent's Prefect
    monitor cannot see this process's Trainer)."""

    def __init__(self) -> None:
        self.pace: TrainingPace | None = None

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        samples_per_step = args.train_batch_size * args.gradient_accumulation_steps * args.world_size
        self.pace = TrainingPace(samples_per_step, start_step=state.global_step)
        if state.is_world_process_zero:
            print(f"training on {args.world_size} processes: {state.max_steps} steps, from step {state.global_step}")

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        if self.pace is None or not state.is_world_process_zero:
            return
        logs = {k: v for k, v in (logs or {}).items() if isinstance(v, int | float)}
        if "train_runtime" in logs:
            print(f"trained {state.global_step} steps in {format_duration(logs['train_runtime'])}", flush=True)
        else:
            print(progress_text(state.global_step, state.max_steps, self.pace, logs, epoch=state.epoch), flush=True)


class ReportCheckpoints(TrainerCallback):
    """Rank 0 lists each checkpoint it saved in the launch's scratch folder (CHECKPOINT_SAVED): the parent, which
    holds the artifact store, mirrors it there (`StageDirectory.checkpoint_saved`). `on_save` runs once rank 0 has
    written the checkpoint and rotated older ones out (the parent waits for the other ranks' RNG states)."""

    def __init__(self, scratch: Path) -> None:
        self.listing = scratch / CHECKPOINT_SAVED

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.is_world_process_zero:
            with self.listing.open("a", encoding="utf-8") as listing:  # one write of a whole line
                listing.write(f"{Path(args.output_dir).absolute() / f'checkpoint-{state.global_step}'}\n")


def report_failure(scratch: Path, exc: BaseException) -> None:
    """This rank's failure, for the parent to name the rank that failed first and say whether a retry may pass."""
    kind = type(exc).__name__ if isinstance(exc, DistillError) else None
    failure = {
        "time_ns": time.time_ns(),
        "transient": is_transient(exc),
        "user_error": kind,
        "collective": _collective(exc),
        "type": type(exc).__name__,
        "message": first_line(exc),
    }
    atomic_write_json(failure_file(scratch, distributed.rank()), failure)


def _collective(exc: BaseException) -> bool:
    """A failure of the ranks' communication: most often another rank's failure seen from here (it died)."""
    import torch

    return isinstance(exc, torch.distributed.DistError) or any(
        word in str(exc).lower() for word in ("gloo", "nccl", "connection closed by peer", "connection reset")
    )


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    spec = Path(argv[0])
    try:
        run(spec)
    except Exception as exc:
        report_failure(spec.parent, exc)
        raise


def run(spec: Path) -> None:
    die_with_parent()  # torchrun gone (killed with its parent): this rank goes too
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logging.getLogger("distill").addHandler(handler)
    logging.getLogger("distill").setLevel(logging.INFO)
    inputs, directory, result = read_spec(spec)
    if inputs.devices != distributed.world_size():
        raise RuntimeError(f"the spec asks for {inputs.devices} devices; torchrun started {distributed.world_size()}")
    distributed.init_process_group()
    module, name = BODIES[inputs.kind]
    body = getattr(importlib.import_module(module), name)
    metrics = body(inputs, directory, callbacks=[PrintProgress(), ReportCheckpoints(spec.parent)])
    if distributed.is_main_process():
        atomic_write_json(result, metrics)
    distributed.destroy_process_group()


if __name__ == "__main__":
    main()
