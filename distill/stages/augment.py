"""Stage body: augment the run's training split once, for every distillation step of every stage.

The split is taken after the by-article split and the sample caps, so exactly the data the
students would have trained on is multiplied. QA is written as SQuAD JSON, classification
as JSONL with the config's column names, which the data loaders then read as usual.
"""

from __future__ import annotations

import logging
from typing import Any

from distill.artifacts import StageDirectory
from distill.augment.runner import AugmentInput, Progress, augment_to_file
from distill.config import ClassificationDataConfig, RunConfig
from distill.data.task_data import QAData
from distill.stages.common import load_task_data

log = logging.getLogger("distill")

QA_FILE = "train.json"
CLASSIFICATION_FILE = "train.jsonl"


def train_file_name(config: RunConfig) -> str:
    return CLASSIFICATION_FILE if isinstance(config.data, ClassificationDataConfig) else QA_FILE


def augment_training_data(
    config: RunConfig, directory: StageDirectory, progress: Progress | None = None
) -> dict[str, Any]:
    """Write the augmented training split into `directory`; returns counts, speed and the file's name."""
    assert config.augmentation is not None
    data = load_task_data(config)
    if isinstance(data, QAData):
        squad = data.train.to_json()
        source = AugmentInput.from_squad(squad)
    else:
        settings = config.data
        columns = [settings.text_column, settings.label_column]
        texts = [settings.text_column]
        if settings.text_pair_column:
            columns.append(settings.text_pair_column)
            texts.append(settings.text_pair_column)
        train = data.train
        pairs = train.text_pairs or [None] * len(train)
        rows = [
            dict(zip(columns, [text, label] + ([pair] if settings.text_pair_column else []), strict=True))
            for text, label, pair in zip(train.texts, train.labels, pairs, strict=True)
        ]
        source = AugmentInput.from_rows(columns, rows, texts)
    result = augment_to_file(
        source, directory.path / train_file_name(config), config.augmentation, seed=config.seed, progress=progress
    )
    log.info("augmentation: %s", result.summary())
    return {"train_file": train_file_name(config), "method": config.augmentation.method, **result.as_metrics()}
