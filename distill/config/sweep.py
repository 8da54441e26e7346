"""Sweep config sections: which stage fields a sweep may set, the values or ranges to try, the metric;
and a trial as a config (the stage's own config with the trial's values set, validated like any).

The driver that runs a sweep (ask-and-tell, trial configs, the choice) is `distill.sweep`.
"""

from __future__ import annotations

import itertools
import math
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from distill.config.base import StrictModel, task_metric

if TYPE_CHECKING:
    from distill.config.run import RunConfig

# --------------------------------------------------------------------------- config

# Fields a sweep may set, as paths into the stage config (`augmentation.factor` is the run's augmentation:
# a trial with another factor augments anew, and that augmented data is cached per factor like any stage).
PREDICTION_FIELDS = (
    "prediction_layer.temperature",
    "prediction_layer.loss_weight",
    "prediction_layer.training.learning_rate",
    "prediction_layer.training.epochs",
)
INTERMEDIATE_FIELDS = (
    "intermediate_layer.embedding_weight",
    "intermediate_layer.hidden_weight",
    "intermediate_layer.attention_weight",
    "intermediate_layer.training.learning_rate",
    "intermediate_layer.training.epochs",
)
AUGMENTATION_FIELDS = ("augmentation.factor",)
SWEEPABLE_FIELDS = PREDICTION_FIELDS + INTERMEDIATE_FIELDS + AUGMENTATION_FIELDS

# Validation metrics a sweep may maximise, per task; the evaluation reports each as `validation_<name>`.
SWEEP_METRICS = {
    "classification": ("accuracy",),
    "qa": ("f1", "exact", "HasAns_f1", "HasAns_exact", "best_f1"),
}

SweepMethod = Literal["grid", "tpe", "random"]
DEFAULT_SAMPLED_TRIALS = 8


class SweepRange(StrictModel):
    """A continuous range for `tpe`/`random` (integers for `augmentation.factor`)."""

    low: float = Field(description="Smallest value tried.")
    high: float = Field(description="Largest value tried.")
    log: bool = Field(default=False, description="Sample on a log scale (learning rates).")

    @model_validator(mode="after")
    def _not_empty(self) -> SweepRange:
        if not self.low < self.high:
            raise ValueError(f"empty range: low ({self.low:g}) must be below high ({self.high:g})")
        if self.log and self.low <= 0:
            raise ValueError(f"a log range needs low > 0 (got {self.low:g})")
        return self

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high


SweepValues = list[float]


class SweepConfig(StrictModel):
    """Settings to try for one stage; the trial with the best validation metric becomes the stage's student."""

    method: SweepMethod = Field(
        default="tpe",
        description="'grid': every combination of the listed values, in order; 'tpe': Optuna's TPE sampler "
        "(the first trial is the stage as configured, then random ones until `startup_trials` are done, then "
        "guided); "
        "'random': Optuna's random sampler.",
    )
    params: dict[str, SweepValues | SweepRange] = Field(
        description="Stage field -> a list of values, or {low, high, log} (tpe/random only). Fields: "
        + ", ".join(SWEEPABLE_FIELDS)
        + "."
    )
    trials: int | None = Field(
        default=None,
        ge=1,
        description=f"Trials to run. None: the grid's size for 'grid', {DEFAULT_SAMPLED_TRIALS} for samplers. "
        "Raising it later computes only the new trials.",
    )
    metric: str | None = Field(
        default=None,
        description="Validation metric to maximise: 'accuracy' (classification); 'f1', 'exact', 'HasAns_f1', "
        "'HasAns_exact' or 'best_f1' (QA). None: the task's headline metric (accuracy or f1).",
    )
    startup_trials: int = Field(
        default=3,
        ge=1,
        description="tpe: trials before TPE takes over (the configured one, then random ones). Fixed rather than "
        "a share of `trials`, so that adding trials replays the earlier ones exactly.",
    )

    @field_validator("params", mode="before")
    @classmethod
    def _ranges_first(cls, params: Any) -> Any:
        # A mapping is a range: validate it as one, so its own problem is reported rather than "not a list".
        if not isinstance(params, dict):
            return params
        checked = {}
        for name, space in params.items():
            if isinstance(space, dict):
                try:
                    space = SweepRange.model_validate(space)
                except ValidationError as exc:
                    problem = exc.errors(include_url=False)[0]
                    where = ".".join(str(part) for part in problem["loc"])
                    message = problem["msg"].removeprefix("Value error, ")
                    raise ValueError(f"'{name}'{f' {where}' if where else ''}: {message}") from None
            checked[name] = space
        return checked

    @field_validator("params")
    @classmethod
    def _known_fields(cls, params: dict[str, Any]) -> dict[str, Any]:
        if not params:
            raise ValueError("give at least one field to sweep")
        for name, space in params.items():
            if name not in SWEEPABLE_FIELDS:
                raise ValueError(f"unknown field '{name}'; sweepable: {', '.join(SWEEPABLE_FIELDS)}")
            if isinstance(space, list) and not space:
                raise ValueError(f"'{name}': empty list of values")
            if isinstance(space, list) and len(set(space)) != len(space):
                raise ValueError(f"'{name}': repeated values {space}")
        return params

    @model_validator(mode="after")
    def _fits_method(self) -> SweepConfig:
        if self.method == "grid":
            ranged = [name for name, space in self.params.items() if isinstance(space, SweepRange)]
            if ranged:
                raise ValueError(f"method 'grid' needs a list of values for {ranged[0]} (ranges need tpe or random)")
            if self.trials is not None and self.trials > self.grid_size:
                raise ValueError(f"trials ({self.trials}) exceeds the grid's {self.grid_size} combinations")
        return self

    @property
    def grid_size(self) -> int:
        return math.prod(len(space) for space in self.params.values() if isinstance(space, list))

    @property
    def trial_count(self) -> int:
        if self.trials is not None:
            return self.trials
        return self.grid_size if self.method == "grid" else DEFAULT_SAMPLED_TRIALS

    def grid(self) -> list[dict[str, float]]:
        """Every combination of the listed values, the first field varying slowest."""
        names = list(self.params)
        values = itertools.product(*(self.params[name] for name in names))  # type: ignore[arg-type]
        return [dict(zip(names, combination, strict=True)) for combination in values]

    def corners(self) -> list[dict[str, float]]:
        """Every combination of each field's smallest and largest value."""
        ends = {
            name: sorted({space.low, space.high} if isinstance(space, SweepRange) else {min(space), max(space)})
            for name, space in self.params.items()
        }
        return [dict(zip(ends, combination, strict=True)) for combination in itertools.product(*ends.values())]

    def metric_name(self, task: str) -> str:
        return self.metric or task_metric(task)


def validation_key(metric: str) -> str:
    """The evaluation's metric holding `metric` on the validation set."""
    return f"validation_{metric}"


# --------------------------------------------------------------------------- trials as configs


def stage_field(config: RunConfig, stage_name: str, path: str) -> Any:
    """The current value of a sweepable field for the stage (None when its section is absent)."""
    node: Any = config if path.startswith("augmentation.") else _stage(config, stage_name)
    for part in path.split("."):
        node = getattr(node, part, None) if node is not None else None
    return node


def trial_config(config: RunConfig, stage_name: str, params: dict[str, Any]) -> RunConfig:
    """The run config with the stage's fields set to a trial's values, validated like any config.

    The stage keeps its name. No stage of the copy has a `sweep` (no step's key holds one, and a
    trial runs its own stage's steps only), so validating it never expands another stage's sweep:
    each of its steps is keyed by exactly the settings it trains with, and a trial equal to the
    stage as configured shares its cache entries.
    """
    from distill.config.run import RunConfig  # that module imports this one, for SweepConfig

    raw = config.model_dump(mode="python", round_trip=True)
    for each in raw["stages"]:
        each["sweep"] = None
    stage = next(s for s in raw["stages"] if s["name"] == stage_name)
    for path, value in params.items():
        node = raw if path.startswith("augmentation.") else stage
        *parents, leaf = path.split(".")
        for part in parents:
            node = node[part]
        node[leaf] = value
    return RunConfig.model_validate(raw)


def _stage(config: RunConfig, stage_name: str) -> Any:
    return next(stage for stage in config.stages if stage.name == stage_name)
