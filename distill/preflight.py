"""Checks run before any compute, so bad input fails in seconds with one line, not mid-flow."""

from __future__ import annotations

from distill.artifacts import check_writable, resolve_root
from distill.config import RunConfig
from distill.models.loading import load_tokenizer
from distill.stages.common import load_task_data


def preflight(config: RunConfig) -> None:
    """Artifact root writable, data readable and valid, teacher (and augmentation resources) loadable."""
    check_writable(resolve_root(config.artifact_root))
    load_task_data(config, need_train=not config.teacher.finetuned)
    load_tokenizer(
        config.teacher.model, revision=config.teacher.revision, trust_remote_code=config.teacher.trust_remote_code
    )
    if config.augmentation is not None and config.stages:
        from distill.augment.runner import check_resources

        check_resources(config.augmentation)
