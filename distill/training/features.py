"""Training features as `datasets.Dataset`s the Trainer consumes, and the collators that pad them per batch.

Features are stored unpadded; each batch is padded to its own longest row. For QA the Trainer
also groups windows of similar length into batches (`group_by_length` in `training_arguments`),
so little padding is left to compute on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from datasets import Dataset
from transformers import DataCollatorWithPadding

from distill.config import ClassificationDataConfig, QADataConfig
from distill.data.classification import ClassificationDataset, encode_labels
from distill.data.squad import SquadDataset
from distill.data.task_data import ClassificationData, QAData
from distill.qa.features import columns, prepare_train_features

_QA_COLUMNS = ["input_ids", "attention_mask", "token_type_ids", "start_positions", "end_positions"]
# With for_distillation, features carry `feature_index` (the row of the teacher's cached logits)
# and, for QA, `kd_mask` (the positions the soft-target distributions range over).


def qa_train_dataset(
    dataset: SquadDataset, tokenizer: Any, settings: QADataConfig, *, for_distillation: bool = False
) -> Dataset:
    """Unpadded windows with start/end positions; `QACollator` pads them per batch."""
    features = prepare_train_features(
        columns(dataset.examples()), tokenizer, max_seq_length=settings.max_seq_length, doc_stride=settings.doc_stride
    )
    rows = {name: features[name] for name in _QA_COLUMNS if name in features}
    if for_distillation:
        rows["feature_index"] = list(range(len(rows["input_ids"])))
        rows["kd_mask"] = features["kd_mask"]
    return Dataset.from_dict(rows)


@dataclass(frozen=True)
class QACollator:
    """Pads a batch of QA windows to its longest window: model inputs with the tokenizer's pad values, `kd_mask` with 0.

    Always on the right, whatever the tokenizer's padding side: start/end positions, `kd_mask` and the
    teacher's cached position logits all index the unpadded window, and left padding would shift them.
    `start_positions`, `end_positions` and `feature_index` are one number per window and pass through as is.
    """

    tokenizer: Any

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        kd_masks = [row["kd_mask"] for row in features] if "kd_mask" in features[0] else None
        rows = [{name: value for name, value in row.items() if name != "kd_mask"} for row in features]
        batch = dict(self.tokenizer.pad(rows, padding=True, padding_side="right", return_tensors="pt"))
        if kd_masks is not None:
            width = batch["input_ids"].shape[1]  # (B, T)
            # 0 on padding: the soft-target distributions never range over positions beyond a window.
            batch["kd_mask"] = torch.tensor([mask + [0] * (width - len(mask)) for mask in kd_masks])
        return batch


def classification_train_dataset(
    dataset: ClassificationDataset,
    tokenizer: Any,
    settings: ClassificationDataConfig,
    label_list: list[str],
    *,
    for_distillation: bool = False,
) -> Dataset:
    """Tokenized, unpadded sentences with `labels`; pad per batch with DataCollatorWithPadding."""
    encoded = tokenizer(dataset.texts, dataset.text_pairs, truncation=True, max_length=settings.max_seq_length)
    rows = dict(encoded)
    rows["labels"] = encode_labels(dataset, label_list)
    if for_distillation:
        rows["feature_index"] = list(range(len(rows["input_ids"])))
    return Dataset.from_dict(rows)


def train_features(
    data: QAData | ClassificationData,
    tokenizer: Any,
    settings: QADataConfig | ClassificationDataConfig,
    *,
    for_distillation: bool = False,
) -> tuple[Dataset, Any]:
    """The training features of a run's data and the collator that batches them."""
    if isinstance(data, QAData):
        features = qa_train_dataset(data.train, tokenizer, settings, for_distillation=for_distillation)
        return features, QACollator(tokenizer)
    features = classification_train_dataset(
        data.train, tokenizer, settings, data.label_list, for_distillation=for_distillation
    )
    return features, DataCollatorWithPadding(tokenizer)
