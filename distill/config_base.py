"""The base of every config section, kept apart so section modules (e.g. `distill.augment.config`)
can define their models without importing the whole run config."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    """Base for every config section: unknown keys are errors, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)
