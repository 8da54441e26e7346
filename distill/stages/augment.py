"""Stage body: augment the run's training split once, for every distillation step of every stage.

The split is taken after the by-article split and the sample caps, so exactly the data the
students would have trained on is multiplied. QA is written as SQuAD JSON, classification
as JSONL with the config's column names, which the data loaders then read as usual.
"""

from __future__ import annotations

import logging
from typing import Any

from distill.augment.runner import AugmentSource, Progress, augment_to_file
from distill.data.task_data import QAData, augmented_file_name, load_task_data
from distill.stages.inputs import AugmentInput
from distill.store.artifacts import StageDirectory

log = logging.getLogger("distill")


def augment_training_data(
    inputs: AugmentInput, directory: StageDirectory, progress: Progress | None = None
) -> dict[str, Any]:
    """Write the augmented training split into `directory`; returns counts, speed and the file's name."""
    settings = inputs.data.config
    data = load_task_data(settings)
    if isinstance(data, QAData):
        source = AugmentSource.from_squad(data.train.to_json())
    else:
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
        source = AugmentSource.from_rows(columns, rows, texts)
    name = augmented_file_name(settings)
    result = augment_to_file(source, directory.path / name, inputs.augmentation, seed=inputs.seed, progress=progress)
    log.info("augmentation: %s", result.summary())
    return {"train_file": name, "method": inputs.augmentation.method, **result.as_metrics()}
