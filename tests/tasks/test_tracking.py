"""MLflow end to end: a real `mlflow server` (SQLite, 127.0.0.1: tests/mlflow_server.py), a training stage run as
the flow runs it on the real Prefect server, then the MLflow run read back (name, tags, params, metrics) and the
Prefect link to it."""

from __future__ import annotations

from typing import Any

import pytest
from prefect import flow

from distill.config import RunConfig, TrackingConfig
from distill.training.tracking import FLOW_RUN_TAG, RUN_TAG, STAGE_KEY_TAG, STAGE_TAG
from tasks.stage import bind
from tasks.teacher import FINETUNE_TEACHER, finetune_teacher
from tests import prefect_api
from tests.flows.conftest import tiny_teacher

EXPERIMENT = "distill-tests"


def run_in_flow(config: RunConfig) -> Any:
    """The teacher stage, bound to the artifact store as the flow binds it, run in a flow; its final state."""
    bound = bind(finetune_teacher, FINETUNE_TEACHER, config)

    @flow(name="tracked-stage")
    def one_stage() -> Any:
        return bound(config, return_state=True)

    return one_stage()


@pytest.fixture(scope="module")
def tracked(mlflow_server: str, prefect_server: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[RunConfig, Any]:
    """The tiny teacher trained once with `tracking.mlflow` on the session's MLflow server."""
    artifacts = tmp_path_factory.mktemp("tracked") / "artifacts"
    config = tiny_teacher(artifacts).model_copy(
        update={"tracking": TrackingConfig(mlflow=mlflow_server, experiment=EXPERIMENT)}
    )
    state = run_in_flow(config)
    assert state.is_completed(), state
    return config, state


def runs_of(mlflow_server: str, flow_run_id: Any) -> list[Any]:
    from mlflow import MlflowClient

    client = MlflowClient(mlflow_server)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    assert experiment is not None
    return client.search_runs([experiment.experiment_id], filter_string=f"tags.`{FLOW_RUN_TAG}` = '{flow_run_id}'")


def test_a_stage_is_one_mlflow_run_named_and_tagged_with_its_flow_run(
    mlflow_server: str, tracked: tuple[RunConfig, Any]
) -> None:
    from mlflow import MlflowClient

    config, state = tracked
    result = state.result()
    flow_run_id = str(state.state_details.flow_run_id)
    [run] = runs_of(mlflow_server, flow_run_id)
    assert run.info.run_name == "finetune-teacher" and run.info.status == "FINISHED"
    tags = run.data.tags
    assert tags[FLOW_RUN_TAG] == flow_run_id
    assert tags[STAGE_TAG] == "finetune-teacher" and tags[RUN_TAG] == config.name == "tiny"
    assert tags[STAGE_KEY_TAG] == result.key  # the stage directory it trained into
    # Metrics at the steps the Trainer logged them; the final loss is the stage's own.
    history = MlflowClient(mlflow_server).get_metric_history(run.info.run_id, "loss")
    assert sorted(metric.step for metric in history) == [2, 4]
    assert run.data.metrics["train_loss"] == pytest.approx(result.metrics["train_loss"], rel=1e-6)
    assert float(run.data.params["learning_rate"]) == config.teacher.training.learning_rate
    assert run.data.params["max_steps"] == "4" and run.data.params["model_type"] == "bert"


def test_the_flow_run_links_to_the_stage_mlflow_run(mlflow_server: str, tracked: tuple[RunConfig, Any]) -> None:
    _, state = tracked
    flow_run_id = state.state_details.flow_run_id
    [run] = runs_of(mlflow_server, flow_run_id)
    artifacts = prefect_api.poll(
        lambda: prefect_api.flow_run_artifacts(flow_run_id), lambda found: "finetune-teacher-mlflow" in found, 15
    )
    expected = f"{mlflow_server}/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}"
    # create_link_artifact stores the link as markdown, which the UI renders as a link.
    assert artifacts["finetune-teacher-mlflow"].data == f"[MLflow run finetune-teacher]({expected})"


def test_tracking_leaves_the_stage_cached_and_a_cached_stage_makes_no_mlflow_run(
    mlflow_server: str, tracked: tuple[RunConfig, Any]
) -> None:
    config, first = tracked
    untracked = run_in_flow(config.model_copy(update={"tracking": None}))
    assert untracked.is_completed() and untracked.name == "Cached"  # same key without tracking
    again = run_in_flow(config)
    assert again.is_completed() and again.name == "Cached"
    assert again.result().key == first.result().key
    assert runs_of(mlflow_server, again.state_details.flow_run_id) == []  # nothing trained, nothing tracked
