"""Fine-tune a model with the Hugging Face Trainer, checkpointing into the stage directory.

The Trainer brings what a user expects (AdamW, linear warm-up and decay, gradient
accumulation, bf16 autocast on GPUs and CPUs that have it, RNG state in checkpoints) and its resume logic:
a retried or re-run stage continues from the newest valid checkpoint with the same data
order and random state, instead of starting over.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import PrinterCallback, Trainer, TrainerCallback, TrainingArguments
from transformers.trainer_pt_utils import DistributedLengthGroupedSampler, LengthGroupedSampler

from distill.config import TrainingConfig
from distill.io import atomic_write_json
from distill.precision import ResolvedPrecision
from distill.store.artifacts import LOSS_CURVE
from distill.training import distributed
from distill.training.checkpoints import (
    TrainingClock,
    latest_valid_checkpoint,
    mean_loss_of_resumed_run,
    read_resume_point,
)

log = logging.getLogger("distill")


@dataclass(frozen=True)
class TrainSummary:
    """What a training run reports: loss, steps, time, and where it resumed from (if it did).

    For a resumed run, loss and time cover the whole run (every step in the final model), as an
    uninterrupted run reports them; only `resumed_from` tells the two apart.
    """

    train_loss: float
    global_step: int
    train_runtime_seconds: float  # training time of the steps in the final model, earlier attempts' included
    train_samples: int
    resumed_from: str | None
    precision: ResolvedPrecision = "fp32"
    devices: int = 1  # processes that trained together (the Trainer's world size)

    def as_metrics(self) -> dict[str, Any]:
        return {
            "train_loss": self.train_loss,
            "train_steps": self.global_step,
            "train_runtime_seconds": round(self.train_runtime_seconds, 3),
            "train_samples": self.train_samples,
            "resumed_from": self.resumed_from,
            "precision": self.precision,
            "train_devices": self.devices,
        }


class LogAtCheckpoints(TrainerCallback):
    """Log the loss at every checkpoint (the last step included), not only every `logging_steps`.

    A checkpoint's log history then accounts for every step before it, so a run resumed from it can
    report the mean loss of the whole run (see `mean_loss_of_resumed_run`), as an uninterrupted run does.
    """

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        if control.should_save:  # set by the Trainer's own flow callback, which runs first
            control.should_log = True
        return control


class LengthGroupedTrainer(Trainer):
    """Trainer whose length-grouped batches are shuffled by (data seed, epoch), not by the global RNG.

    With `train_sampling_strategy="group_by_length"` the library's LengthGroupedSampler draws each
    epoch's shuffle from the global torch RNG; a run resumed in a later epoch gets there in another
    RNG state and would train on other batches than the run it continues (accelerate reseeds only a
    RandomSampler per epoch). The library's distributed variant shuffles by seed + epoch; with one
    replica it groups the same way, and a resumed run sees the same batches.
    """

    def _get_train_sampler(self, train_dataset: Any = None) -> Any:
        sampler = super()._get_train_sampler(train_dataset)
        if not isinstance(sampler, LengthGroupedSampler):
            return sampler
        seed = self.args.data_seed if self.args.data_seed is not None else self.args.seed
        # Grouped by the global batch (per-device batch x processes), as one process with that batch groups:
        # accelerate then deals rank r every N-th batch of this one order (split_batches off), so N processes
        # train each step on the samples one process would (tests/distill/test_ddp.py).
        return DistributedLengthGroupedSampler(
            sampler.batch_size * self.args.world_size, num_replicas=1, rank=0, seed=seed, lengths=sampler.lengths
        )


def training_arguments(
    training: TrainingConfig,
    checkpoint_dir: Path,
    *,
    seed: int,
    show_progress: bool,
    precision: ResolvedPrecision = "fp32",
    group_by_length: bool = False,
) -> TrainingArguments:
    """Map our TrainingConfig onto TrainingArguments; `precision` bf16 trains under bf16 autocast (fp32 weights).

    `group_by_length` puts rows of similar length in one batch, so per-batch padding leaves little to pad.
    QA turns it on: SQuAD windows at 256 tokens go from 42% to 11% padding and train 1.7x faster. Sentence
    classification does not: its batches already pad to their own longest sentence, and on the quickstart
    (SST-2, 4,000 rows, one epoch) length-sorted batches cost the 3-layer student 3 to 8 points of accuracy.
    """
    cuda = torch.cuda.is_available()
    return TrainingArguments(
        output_dir=str(checkpoint_dir),
        num_train_epochs=training.epochs,
        max_steps=training.max_steps or -1,
        learning_rate=training.learning_rate,
        per_device_train_batch_size=training.batch_size,
        train_sampling_strategy="group_by_length" if group_by_length else "random",
        per_device_eval_batch_size=training.eval_batch_size,
        gradient_accumulation_steps=training.gradient_accumulation_steps,
        weight_decay=training.weight_decay,
        warmup_steps=training.warmup_ratio,  # a float in [0, 1) is a ratio of total steps in transformers 5
        lr_scheduler_type="linear",
        # One fused kernel per parameter group instead of a loop of ops, the same AdamW update: on a quiet 2-core
        # EPYC 1.08-1.11x faster fp32 steps, no measurable change in bf16 (benchmarks/precision.py).
        optim="adamw_torch_fused",
        logging_steps=training.logging_steps,
        save_strategy="steps",
        save_steps=training.save_steps,
        save_total_limit=training.save_total_limit,
        eval_strategy="no",
        seed=seed,
        data_seed=seed,
        bf16=precision == "bf16",
        # The Trainer accepts bf16 without a GPU only when told it trains on the CPU (Apple's MPS keeps its device).
        # Under torchrun without a GPU this is also what makes the ranks one gloo process group (accelerate's
        # MULTI_CPU); without it each rank would silently train alone.
        use_cpu=not cuda and not torch.backends.mps.is_available(),
        ddp_backend=distributed.backend() if distributed.world_size() > 1 else None,
        report_to="none",
        disable_tqdm=not show_progress,
        dataloader_num_workers=0,
        dataloader_pin_memory=cuda,
    )


def train(
    model: Any,
    train_dataset: Any,
    training: TrainingConfig,
    *,
    checkpoint_dir: Path,
    seed: int,
    callbacks: Sequence[TrainerCallback] = (),
    data_collator: Callable[[list[dict[str, Any]]], dict[str, Any]] | None = None,
    processing_class: Any = None,
    trainer_class: type[Trainer] = LengthGroupedTrainer,
    trainer_kwargs: dict[str, Any] | None = None,
    show_progress: bool = False,
    keep_extra_columns: bool = False,
    precision: ResolvedPrecision = "fp32",
    group_by_length: bool = False,
) -> TrainSummary:
    """Train `model` in place, resuming from the newest valid checkpoint in `checkpoint_dir` if there is one.

    The logged training loss per step goes to `LOSS_CURVE` next to `checkpoint_dir` (the stage directory).
    """
    if len(train_dataset) == 0:
        raise ValueError("no training features")
    args = training_arguments(
        training,
        checkpoint_dir,
        seed=seed,
        show_progress=show_progress,
        precision=precision,
        group_by_length=group_by_length,
    )
    # Distillation feeds columns the model does not take (feature_index, kd_mask); its trainer pops them.
    args.remove_unused_columns = not keep_extra_columns
    resume_folder = latest_valid_checkpoint(checkpoint_dir)
    # Everything the summary needs from the checkpoint is read now: once the resumed run saves newer
    # checkpoints, the Trainer's rotation (save_total_limit) may delete this one.
    resume = read_resume_point(resume_folder) if resume_folder is not None else None
    clock = TrainingClock(resume.train_seconds if resume else 0.0)
    trainer = trainer_class(
        model=model,
        args=args,
        train_dataset=train_dataset,
        data_collator=data_collator,
        processing_class=processing_class,
        callbacks=[LogAtCheckpoints(), clock, *callbacks],
        **(trainer_kwargs or {}),
    )
    # Every loss here is a mean over its micro-batch; one scaling rule for gradient accumulation in every
    # trainer (plain, distillation, baseline) keeps loss_weight = 0 identical to plain fine-tuning.
    trainer.model_accepts_loss_kwargs = False
    if not show_progress:
        # Without a progress bar the Trainer prints every log dict; the callbacks already report them.
        trainer.remove_callback(PrinterCallback)
    if trainer.args.world_size != distributed.world_size():
        raise RuntimeError(
            f"training in a group of {trainer.args.world_size} processes, but torchrun started "
            f"{distributed.world_size()}: the ranks would not train together"
        )
    if resume is not None:
        log.info("resuming from checkpoint %s", resume.name)
    output = trainer.train(resume_from_checkpoint=str(resume_folder) if resume_folder else None)
    curve = [{"step": e["step"], "loss": e["loss"]} for e in trainer.state.log_history if "loss" in e]
    if distributed.is_main_process():  # with several processes, rank 0 alone writes the stage's files
        atomic_write_json(Path(checkpoint_dir).parent / LOSS_CURVE, curve, indent=None)
    loss = float(output.training_loss)
    if resume is not None:  # the Trainer averages only the steps since the resume; report the whole run's mean
        loss = mean_loss_of_resumed_run(resume.log_history, resume.step, output.global_step, loss)
    return TrainSummary(
        train_loss=loss if math.isfinite(loss) else float("nan"),
        global_step=int(output.global_step),
        train_runtime_seconds=clock.seconds,
        train_samples=len(train_dataset),
        resumed_from=resume.name if resume else None,
        precision=precision,
        devices=trainer.args.world_size,
    )
