"""Stage bodies read their typed input and nothing else, so the cache key (the input's hash) holds all they read."""

from __future__ import annotations

import ast
import inspect
import typing
from pathlib import Path

import pytest
from pydantic import ValidationError

import distill.stages
from distill.config import RunConfig, load_config
from distill.stages import augment, evaluate, intermediate, prediction, teacher
from distill.stages.inputs import STAGE_INPUTS, ArtifactRef, StageInput
from tasks.stage import stage_key
from tests.stage_inputs import TEACHER, every_input

BODIES = [
    teacher.finetune_teacher,
    augment.augment_training_data,
    evaluate.evaluate_model,
    evaluate.validate_model,
    intermediate.distill_intermediate_layers,
    prediction.distill_prediction_layer,
    prediction.train_baseline,
]
TINY = Path(__file__).resolve().parents[2] / "configs" / "tiny.yaml"


@pytest.mark.parametrize("body", BODIES, ids=lambda body: body.__name__)
def test_each_body_takes_one_typed_input_and_no_run_config(body) -> None:  # noqa: ANN001
    hints = typing.get_type_hints(body)
    first = next(iter(inspect.signature(body).parameters))
    assert issubclass(hints[first], StageInput), body.__name__
    assert RunConfig not in hints.values(), body.__name__


def test_no_stage_body_module_can_reach_the_run_config() -> None:
    """Only planning reads a RunConfig (inputs, names): a body that wanted a setting its input lacks cannot get it."""
    folder = Path(distill.stages.__file__).parent
    for path in sorted(folder.glob("*.py")):
        if path.name in ("plan.py", "identity.py"):
            continue
        names = {node.id for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.Name)}
        imported = {
            alias.name
            for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.ImportFrom)
            for alias in node.names
        }
        assert "RunConfig" not in names | imported, path.name


def test_every_stage_kind_is_planned_and_keys_differ() -> None:
    config = load_config(TINY)
    inputs = every_input(config, config.stages[0].name)
    assert {type(one) for one in inputs} == set(STAGE_INPUTS)
    assert len({stage_key(one) for one in inputs}) == len(inputs)


def test_an_artifact_is_keyed_by_its_content_not_its_place() -> None:
    config = load_config(TINY)
    stage = config.stages[0].name
    from distill.stages.plan import plan_baseline

    here = plan_baseline(config, TEACHER, stage)
    moved = plan_baseline(config, TEACHER.model_copy(update={"uri": "/elsewhere", "model_path": "/elsewhere/m"}), stage)
    other = plan_baseline(
        config, ArtifactRef(content="other bytes", uri=TEACHER.uri, model_path=TEACHER.model_path), stage
    )
    assert stage_key(here) == stage_key(moved) != stage_key(other)
    assert moved.teacher.model() == "/elsewhere/m"  # the body still finds the files where they are


def test_inputs_are_frozen_and_strict() -> None:
    config = load_config(TINY)
    one = every_input(config, config.stages[0].name)[0]
    with pytest.raises(ValidationError):
        one.seed = 1  # type: ignore[misc]
    with pytest.raises(AttributeError):
        one.artifact_root  # type: ignore[attr-defined]  # noqa: B018 - reading is the test
