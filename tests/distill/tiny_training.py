"""One short, checkpointed training run of the tiny classifier, for the tests of resuming it (locally, and
from an object store on another node)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from transformers import DataCollatorWithPadding, TrainerCallback, set_seed

from distill.config import ClassificationDataConfig, TrainingConfig
from distill.data.classification import ClassificationDataset
from distill.data.synthetic import synthetic_sentiment
from distill.models.loading import load_model, load_tokenizer
from distill.training.features import classification_train_dataset
from distill.training.trainer import TrainSummary, train

# 48 sentences, batch 8, 2 epochs: 12 steps; losses logged every 3 steps and at every checkpoint; a checkpoint
# every 2 steps, one kept at a time (so the Trainer's rotation deletes older ones as it goes).
TRAINING = TrainingConfig(
    epochs=2, batch_size=8, learning_rate=1e-3, warmup_ratio=0.0, logging_steps=3, save_steps=2, save_total_limit=1
)


def tiny_classifier_run(tiny_classifier: Path) -> Callable[..., TrainSummary]:
    """`run(checkpoint_dir, *callbacks)`: train a fresh copy of the tiny classifier under a fixed seed, resuming
    from the newest valid checkpoint in `checkpoint_dir` if there is one."""
    tokenizer = load_tokenizer(str(tiny_classifier))
    rows = synthetic_sentiment(rows=48, seed=5)
    data = ClassificationDataset([r["sentence"] for r in rows], [r["label"] for r in rows], "mem")
    features = classification_train_dataset(data, tokenizer, ClassificationDataConfig(eval="x.tsv"), ["0", "1"])

    def run(checkpoints: Path, *callbacks: TrainerCallback) -> TrainSummary:
        set_seed(0)
        model, _ = load_model(str(tiny_classifier), "classification")
        collator = DataCollatorWithPadding(tokenizer)
        return train(
            model, features, TRAINING, checkpoint_dir=checkpoints, seed=0, data_collator=collator, callbacks=callbacks
        )

    return run
