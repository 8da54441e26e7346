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

import math
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from distill.config.sweep import AUGMENTATION_FIELDS, SweepConfig, SweepRange, SweepValues

if TYPE_CHECKING:
    pass

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
