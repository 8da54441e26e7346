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
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from distill.io import atomic_write_json
from distill.stages.distributed import die_with_parent, read_spec
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


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    die_with_parent()  # torchrun gone (killed with its parent): this rank goes too
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logging.getLogger("distill").addHandler(handler)
    logging.getLogger("distill").setLevel(logging.INFO)
    inputs, directory, result = read_spec(Path(argv[0]))
    if inputs.devices != distributed.world_size():
        raise RuntimeError(f"the spec asks for {inputs.devices} devices; torchrun started {distributed.world_size()}")
    distributed.init_process_group()
    module, name = BODIES[inputs.kind]
    body = getattr(importlib.import_module(module), name)
    metrics = body(inputs, directory, callbacks=[PrintProgress()])
    if distributed.is_main_process():
        atomic_write_json(result, metrics)
    distributed.destroy_process_group()


if __name__ == "__main__":
    main()
