"""A sweep trial's steps are keyed by the settings they train with, and nothing else."""

from __future__ import annotations

from distill.config.sweep import trial_config
from distill.stages.plan import plan_baseline, plan_prediction
from tasks.stage import stage_key
from tests.distill.test_sweep import tiny_with_sweep
from tests.stage_inputs import TEACHER


def test_a_trial_with_the_configured_values_shares_the_plain_stage_s_cache_key() -> None:
    """The sweep itself is in no step's key: its configured trial is the stage as if it had no sweep."""
    config = tiny_with_sweep({"params": {"prediction_layer.temperature": [2.0, 4.0]}})
    plain = config.model_copy(update={"stages": [config.stages[0].model_copy(update={"sweep": None})]})
    same = trial_config(config, "tiny-small", {"prediction_layer.temperature": 2.0})
    other = trial_config(config, "tiny-small", {"prediction_layer.temperature": 4.0})

    def key(run, plan=plan_prediction):  # noqa: ANN001, ANN202
        return stage_key(plan(run, TEACHER, "tiny-small"))

    assert key(same) == key(plain) == key(config)
    assert key(other) != key(plain)
    assert key(other, plan_baseline) == key(plain, plan_baseline)
