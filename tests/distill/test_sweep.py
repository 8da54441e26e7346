"""Sweeps without Prefect: the trials a sweep proposes, their configs, and the choice among them."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any

import pytest
import yaml

from distill.config import RunConfig, parse_config
from distill.config.sweep import SweepConfig, stage_field, trial_config
from distill.data.synthetic import synthetic_squad
from distill.data.task_data import load_task_data
from distill.errors import ConfigError
from distill.preflight import check_sweep_metrics
from distill.sweep import SweepDriver, best_trial
from tests.flows.conftest import TINY


def tiny_with_sweep(sweep: dict[str, Any]) -> RunConfig:
    raw = yaml.safe_load(TINY.read_text())
    raw["data"]["validation"] = {"path": "synthetic:qa", "split": "test"}
    raw["stages"][0]["sweep"] = sweep
    return parse_config(raw, source="tiny.yaml")


def run_driver(driver: SweepDriver, score: Any) -> list[dict[str, float]]:
    """Ask every trial, telling each its score; returns the params in ask order."""
    asked = []
    while not driver.done:
        trial = driver.ask()
        asked.append(trial.params)
        driver.tell(trial, score(trial))
    return asked


GRID = {"prediction_layer.temperature": [1.0, 2.0, 4.0], "prediction_layer.loss_weight": [0.5, 1.0]}


def test_grid_walks_the_product_in_order_and_trials_takes_a_prefix() -> None:
    whole = run_driver(SweepDriver(SweepConfig(method="grid", params=GRID), seed=0, configured={}), lambda t: 0.0)
    assert whole == [
        {"prediction_layer.temperature": t, "prediction_layer.loss_weight": w} for t in (1, 2, 4) for w in (0.5, 1)
    ]
    prefix = run_driver(
        SweepDriver(SweepConfig(method="grid", params=GRID, trials=4), seed=0, configured={}), lambda t: 0.0
    )
    assert prefix == whole[:4]


@pytest.mark.parametrize("method", ["tpe", "random"])
def test_samplers_try_the_configured_stage_first_then_stay_in_the_space(method: str) -> None:
    params = {
        "prediction_layer.temperature": {"low": 1.0, "high": 8.0, "log": True},
        "prediction_layer.loss_weight": [0.25, 0.5, 0.75, 1.0],
    }
    sweep = SweepConfig(method=method, params=params, trials=10)
    configured = {"prediction_layer.temperature": 2.0, "prediction_layer.loss_weight": 0.75}
    asked = run_driver(SweepDriver(sweep, seed=7, configured=configured), lambda t: random.Random(t.number).random())
    assert asked[0] == configured
    assert len(asked) == 10
    assert all(1.0 <= p["prediction_layer.temperature"] <= 8.0 for p in asked)
    assert all(p["prediction_layer.loss_weight"] in (0.25, 0.5, 0.75, 1.0) for p in asked)
    assert len({p["prediction_layer.temperature"] for p in asked}) > 5  # it does explore


def test_a_configured_value_outside_the_space_is_not_tried() -> None:
    sweep = SweepConfig(method="tpe", params={"prediction_layer.temperature": [4.0, 8.0]}, trials=2)
    asked = run_driver(SweepDriver(sweep, seed=1, configured={"prediction_layer.temperature": 2.0}), lambda t: 0.5)
    assert all(p["prediction_layer.temperature"] in (4.0, 8.0) for p in asked)


def test_tpe_replays_exactly_when_told_the_same_values_so_added_trials_extend_a_finished_sweep() -> None:
    """What makes a re-run, a resumed sweep and a longer sweep hit the cache: the same asks, in the same order."""
    params = {"prediction_layer.temperature": {"low": 1.0, "high": 8.0}, "prediction_layer.loss_weight": [0.5, 1.0]}

    def score(trial: Any) -> float:  # a deterministic landscape with an optimum inside the range
        return -abs(trial.params["prediction_layer.temperature"] - 3.0) + trial.params["prediction_layer.loss_weight"]

    configured = {"prediction_layer.temperature": 2.0, "prediction_layer.loss_weight": 0.5}
    first = run_driver(SweepDriver(SweepConfig(params=params, trials=6), seed=3, configured=configured), score)
    again = run_driver(SweepDriver(SweepConfig(params=params, trials=6), seed=3, configured=configured), score)
    longer = run_driver(SweepDriver(SweepConfig(params=params, trials=9), seed=3, configured=configured), score)
    assert again == first
    assert longer[:6] == first
    assert len(longer) == 9 and longer[6:] != first[:3]


def test_failed_trials_are_told_and_do_not_stop_the_sampler() -> None:
    sweep = SweepConfig(method="tpe", params={"prediction_layer.temperature": {"low": 1.0, "high": 4.0}}, trials=5)
    asked = run_driver(SweepDriver(sweep, seed=0, configured={}), lambda t: math.nan if t.number % 2 else 1.0)
    assert len(asked) == 5


def test_best_trial_is_the_highest_validation_value_earliest_on_ties_and_nan_never_wins() -> None:
    assert best_trial({0: 0.7, 1: 0.9, 2: 0.8}) == 1
    assert best_trial({0: 0.7, 1: 0.9, 2: 0.9}) == 1
    assert best_trial({0: math.nan, 1: 0.1}) == 1
    assert best_trial({0: math.nan, 1: math.nan}) == 0
    with pytest.raises(ValueError, match="no trials"):
        best_trial({})


def test_trial_config_sets_the_fields_validates_them_and_keeps_the_stage_name() -> None:
    config = tiny_with_sweep({"params": {"prediction_layer.temperature": [1.0, 4.0]}})
    trial = trial_config(
        config, "tiny-small", {"prediction_layer.temperature": 4.0, "intermediate_layer.training.learning_rate": 1e-4}
    )
    stage = trial.stages[0]
    assert stage.name == "tiny-small" and stage.sweep is None
    assert stage.prediction_layer.temperature == 4.0
    assert stage.intermediate_layer.training.learning_rate == 1e-4
    assert trial.stages[1] == config.stages[1]  # other stages untouched
    assert config.stages[0].prediction_layer.temperature == 2.0  # the run's config is not modified
    factor = trial_config(config, "tiny-small", {"augmentation.factor": 3.0})
    assert factor.augmentation.factor == 3 and isinstance(factor.augmentation.factor, int)
    assert stage_field(config, "tiny-small", "augmentation.factor") == 1
    assert stage_field(config, "tiny-small", "prediction_layer.training.epochs") == 3


def test_a_sweep_over_intermediate_fields_needs_the_intermediate_step() -> None:
    raw = yaml.safe_load(TINY.read_text())
    raw["data"]["validation"] = {"path": "synthetic:qa", "split": "test"}
    del raw["stages"][0]["intermediate_layer"]
    raw["stages"][0]["sweep"] = {"params": {"intermediate_layer.hidden_weight": [0.5, 1.0]}}
    with pytest.raises(Exception, match=r"stages\[0\].sweep.params.intermediate_layer.hidden_weight: the stage has no"):
        parse_config(raw, source="tiny.yaml")


def test_preflight_refuses_a_metric_the_validation_data_cannot_report(tmp_path: Path) -> None:
    """v1.1 data (inferred, not configured) has no no-answer odds, hence no best_f1: refused before compute."""
    files = {}
    for name, seed in (("train", 1), ("eval", 2), ("validation", 3)):
        files[name] = tmp_path / f"{name}.json"
        files[name].write_text(json.dumps(synthetic_squad(articles=1, paragraphs=2, unanswerable=False, seed=seed)))
    raw = yaml.safe_load(TINY.read_text())
    raw["data"].update({name: str(path) for name, path in files.items()})
    raw["stages"][0]["sweep"] = {"params": {"prediction_layer.temperature": [1.0, 2.0]}, "metric": "best_f1"}
    config = parse_config(raw, source="tiny.yaml")
    data = load_task_data(config.data)
    with pytest.raises(ConfigError, match=r"stages\[0\].sweep.metric: best_f1 .* v1.1"):
        check_sweep_metrics(config, data)
    raw["stages"][0]["sweep"]["metric"] = "f1"
    check_sweep_metrics(parse_config(raw, source="tiny.yaml"), data)
