"""Distillation sweeps: which settings to try for a stage, and which trial won, on validation data only.

A stage's `sweep:` names stage fields (temperature, loss weight, learning rates, ...) and the
values or ranges to try. `SweepDriver` proposes trials one at a time, ask-and-tell: `grid`
walks the product of the listed values in order; `tpe` and `random` ask Optuna's samplers.
Each trial is the stage's own config with the trial's values set (`trial_config`), so a
trial is an ordinary stage run, content-cached like any other: re-running a sweep, or
adding trials to it, replays the finished trials from the cache and computes only the new
ones. That replay is exact because the samplers are seeded and told the same values, read
back from the same manifests, in the same order.

The choice (`best_trial`) sees validation metrics only; the test set (`data.eval`) never
reaches this module.
"""

from __future__ import annotations

import itertools
import math
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from distill.config_base import StrictModel

if TYPE_CHECKING:
    from distill.config import RunConfig

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
        return self.metric or ("f1" if task == "qa" else "accuracy")


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
    from distill.config import RunConfig  # the run config imports this module for SweepConfig

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


# --------------------------------------------------------------------------- ask and tell


@dataclass(frozen=True)
class Trial:
    """One proposed trial: its number (0-based, in ask order) and the values it sets."""

    number: int
    params: dict[str, float]


class SweepDriver:
    """Proposes trials and is told their validation values; `grid` needs no Optuna, the samplers do.

    `configured` holds the stage's current value of each swept field: `tpe`/`random` try it first
    (where it lies in the space), so a sweep never reports a best below the stage as written.
    """

    def __init__(self, sweep: SweepConfig, *, seed: int, configured: dict[str, Any]) -> None:
        self.sweep = sweep
        self._asked = 0
        self._pending: dict[int, Any] = {}
        self._grid: list[dict[str, float]] | None = None
        self._study: Any = None
        if sweep.method == "grid":
            self._grid = sweep.grid()
        else:
            self._study, self._distributions = _optuna_study(sweep, seed)
            start = {name: value for name, value in configured.items() if _inside(sweep.params[name], value)}
            if start:
                self._study.enqueue_trial(start)

    @property
    def done(self) -> bool:
        return self._asked >= self.sweep.trial_count

    def ask(self) -> Trial:
        if self.done:
            raise RuntimeError(f"all {self.sweep.trial_count} trials were asked for")
        number = self._asked
        self._asked += 1
        if self._grid is not None:
            return Trial(number, {name: _typed(name, value) for name, value in self._grid[number].items()})
        optuna_trial = self._study.ask(self._distributions)
        self._pending[number] = optuna_trial
        return Trial(number, {name: _typed(name, optuna_trial.params[name]) for name in self.sweep.params})

    def tell(self, trial: Trial, value: float) -> None:
        if self._study is not None:
            # A failed or NaN metric is a poor trial, not a crash: the sampler learns to avoid it.
            finite = value if math.isfinite(value) else None
            self._study.tell(self._pending.pop(trial.number), finite, state=None if finite is not None else _fail())


def _typed(name: str, value: Any) -> Any:
    """Integer fields as ints (a factor of 4, not 4.0), so tables and configs show what is run."""
    return int(value) if name in AUGMENTATION_FIELDS else value


def _fail() -> Any:
    import optuna

    return optuna.trial.TrialState.FAIL


def _inside(space: SweepValues | SweepRange, value: Any) -> bool:
    if value is None:
        return False
    return value in space if isinstance(space, list) else space.contains(float(value))


def _optuna_study(sweep: SweepConfig, seed: int) -> tuple[Any, dict[str, Any]]:
    try:
        import optuna
    except ImportError as exc:  # a core dependency; this names it when an environment lacks it
        raise ImportError(f"sweep method '{sweep.method}' needs optuna: pip install optuna") from exc
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the sweep table reports trials; Optuna's lines repeat it
    distributions: dict[str, Any] = {}
    for name, space in sweep.params.items():
        if isinstance(space, list):
            distributions[name] = CategoricalDistribution(space)
        elif name in AUGMENTATION_FIELDS:  # an integer field
            distributions[name] = IntDistribution(math.ceil(space.low), math.floor(space.high), log=space.log)
        else:
            distributions[name] = FloatDistribution(space.low, space.high, log=space.log)
    if sweep.method == "tpe":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # multivariate TPE is marked experimental; it is Optuna's advice for this
            sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=sweep.startup_trials, multivariate=True)
    else:
        sampler = optuna.samplers.RandomSampler(seed=seed)
    return optuna.create_study(direction="maximize", sampler=sampler), distributions


# --------------------------------------------------------------------------- choosing


def best_trial(values: dict[int, float]) -> int:
    """The trial number with the highest validation value; the earliest on ties; NaN never wins."""
    if not values:
        raise ValueError("no trials to choose from")
    finite = {number: value for number, value in values.items() if math.isfinite(value)}
    if not finite:
        return min(values)
    return min(finite, key=lambda number: (-finite[number], number))
