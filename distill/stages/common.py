"""Helpers the stage bodies share: loading the run's data for its task."""

from __future__ import annotations

from distill.config import QADataConfig, RunConfig
from distill.data.task_data import ClassificationData, QAData, load_classification_data, load_qa_data


def load_task_data(config: RunConfig, *, need_train: bool = True) -> QAData | ClassificationData:
    if isinstance(config.data, QADataConfig):
        return load_qa_data(config.data, need_train=need_train)
    return load_classification_data(config.data, need_train=need_train)
