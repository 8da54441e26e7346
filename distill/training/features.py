"""Training features as `datasets.Dataset`s the Trainer consumes."""

from __future__ import annotations

from typing import Any

from datasets import Dataset
from transformers import DataCollatorWithPadding, default_data_collator

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
    """Windows with start/end positions, padded to max_seq_length (QA windows are mostly full anyway)."""
    features = prepare_train_features(
        columns(dataset.examples()), tokenizer, max_seq_length=settings.max_seq_length, doc_stride=settings.doc_stride
    )
    rows = {name: features[name] for name in _QA_COLUMNS if name in features}
    if for_distillation:
        rows["feature_index"] = list(range(len(rows["input_ids"])))
        rows["kd_mask"] = features["kd_mask"]
    return Dataset.from_dict(rows)


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
        return features, default_data_collator  # windows are padded to max_seq_length already
    features = classification_train_dataset(
        data.train, tokenizer, settings, data.label_list, for_distillation=for_distillation
    )
    return features, DataCollatorWithPadding(tokenizer)
