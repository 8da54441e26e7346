"""The mechanism every stage task shares: content keys, caching from the artifact store, retries.

A stage task's parameters (the run config, upstream `StageResult`s, a label) go through its
planner (`distill.stages.plan`), which returns the stage's typed input: exactly what the body
reads. The cache key is the hash of that input plus the source of the code the stage runs, so
key and body cannot drift apart.

There is one cache, the artifact store: Prefect reads its cache records from the stage
directories themselves (`tasks/records.py`), so a stage is `Cached` exactly when
`<root>/<stage>/<key>/` is complete and intact. Runs computing one key at once serialise on
`flock` locks (`tasks/locking.py`), which the kernel releases if the holder dies.

With an object-store root (`s3://...`) the locks sit in this node's cache, so runs on one node
compute a key once; runs on different nodes may both compute it, and the store's conditional
commit makes one build win for all of them (`distill.store.remote`). Across nodes the locks only
save compute. On one node they also guard the cache: verifying a stage or losing its commit adopts
the committed build, which deletes and replaces files in the stage's local folder, so both happen
here only under the key's lock, never beside a run training that key on this node.
"""

from __future__ import annotations

import inspect
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefect import Task, get_run_logger
from prefect.cache_policies import CacheKeyFnPolicy
from prefect.context import TaskRunContext
from prefect.tasks import exponential_backoff

from distill.config import RunConfig
from distill.errors import DistillError, is_transient
from distill.stages.inputs import ArtifactRef, StageInput
from distill.stages.plan import artifact_ref
from distill.store.artifacts import StageDirectory, StageResult, resolve_root, stage_directory
from distill.store.attempts import attempt
from distill.store.fingerprint import code_fingerprint, hash_object
from tasks.compute import compute_slot, process_slot
from tasks.locking import FlockLockManager
from tasks.records import StageDirectoryRecords

PREFECT_DIR = "_prefect"
# Metrics every computed stage records. A stage may take several attempts (retries, runs killed and re-run);
# each attempt resumes from the checkpoints of those before it.
STAGE_SECONDS = "stage_seconds"  # wall time of the stage's body in the attempt that completed it
STAGE_SECONDS_ALL_ATTEMPTS = "stage_seconds_all_attempts"  # wall time of the body over every attempt, killed included
STAGE_ATTEMPTS = "stage_attempts"  # attempts at this build of the stage, the completing one included


@dataclass(frozen=True)
class StageSpec:
    """A stage kind and its planner: the function from the task's parameters to the stage's typed input."""

    plan: Callable[..., StageInput]
    input_type: type[StageInput]

    @property
    def name(self) -> str:
        return self.input_type.kind

    def inputs(self, parameters: Mapping[str, Any]) -> StageInput:
        """The typed input for a task run's parameters (those the planner takes; e.g. a gate is not one)."""
        accepted = inspect.signature(self.plan).parameters
        chosen = {
            name: artifact_ref(value) if isinstance(value, StageResult) else value
            for name, value in parameters.items()
            if name in accepted
        }
        return self.plan(**chosen | {"config": run_config(parameters)})


def run_config(parameters: Mapping[str, Any]) -> RunConfig:
    config = parameters["config"]
    return config if isinstance(config, RunConfig) else RunConfig.model_validate(config)


def stage_key(inputs: StageInput) -> str:
    """The content key; also the stage directory's name."""
    digest = hash_object(
        {"stage": inputs.kind, "code": code_fingerprint(inputs.modules), "input": inputs.key_payload()}
    )
    return f"{inputs.kind.replace('_', '-')}-{digest[:24]}"


def upstream_of(inputs: StageInput) -> dict[str, str]:
    """The upstream artifacts an input holds, by field: recorded in the manifest for provenance."""
    return {name: value.content for name, value in inputs if isinstance(value, ArtifactRef)}


def _cache_key_fn(spec: StageSpec) -> Callable[..., str]:
    def cache_key(context: TaskRunContext, parameters: dict[str, Any]) -> str:
        with process_slot():  # hashing data and model files is CPU work: not beside a latency measurement
            return stage_key(spec.inputs(parameters))

    return cache_key


def retry_transient(task: Task, task_run: Any, state: Any) -> bool:
    """Retry a failure that may pass (network, hub servers, a busy GPU; see distill.errors), nothing else.

    A user error fails at once: the same input fails the same way. So does a bug, and its traceback
    goes into the task run's log, where the UI shows it (Prefect's own failure line names only the
    exception). Prefect asks this only of a task that raised: a process that died is a crash, which
    `prefect flow-run retry` resumes from the stage's checkpoints.
    """
    try:
        state.result()
    except Exception as exc:  # noqa: BLE001 - classifying is the point
        if is_transient(exc):
            return True
        if not isinstance(exc, DistillError):
            trace = "".join(traceback.format_exception(exc))
            get_run_logger().error("%s failed with a bug (not retried):\n%s", task.name, trace)
        return False
    return False


# Applied by @task in each stage module; caching is bound later, per artifact root (see `bind`).
STAGE_TASK_OPTIONS: dict[str, Any] = {
    "retries": 2,
    "retry_delay_seconds": exponential_backoff(backoff_factor=2),
    "retry_condition_fn": retry_transient,
}


def bind(task: Task, spec: StageSpec, config: RunConfig, *, refresh: bool = False) -> Task:
    """The task with content-keyed, lock-guarded caching on the run's artifact store."""
    root = resolve_root(config.artifact_root)  # for an object store, this node's cache: the locks are per node
    records = StageDirectoryRecords.for_root(config.artifact_root)
    policy = CacheKeyFnPolicy(cache_key_fn=_cache_key_fn(spec)).configure(
        isolation_level="SERIALIZABLE", lock_manager=FlockLockManager(root / PREFECT_DIR / "locks")
    )
    return task.with_options(
        cache_policy=policy,
        persist_result=True,
        result_storage=records,
        result_serializer="json",
        refresh_cache=refresh,
    )


def run_stage(inputs: StageInput, artifact_root: str, body: Callable[[StageDirectory], dict[str, Any]]) -> StageResult:
    """Compute a stage into its directory, or return it when a complete, intact copy is already there."""
    # Concurrent stages take turns on the CPU cores or the GPU (tasks/compute.py); that includes hashing
    # and verifying files here, which would otherwise run beside another stage's latency measurement.
    # A stage training on N devices (`training.devices`) holds N slots.
    with compute_slot(inputs.devices):
        return _run_stage(inputs, artifact_root, body)


def resume_from_store(directory: StageDirectory, world_size: int = 1) -> Path | None:
    """Fetch the stage's newest remote checkpoint (an attempt elsewhere got further than any local one), so
    the body's Trainer resumes from it; None when the root is local or nothing newer is there."""
    if directory.remote is None:
        return None
    from distill.training.checkpoints import checkpoint_step, latest_valid_checkpoint  # here: loads transformers

    # Valid for the processes that will resume from it: a stage on N devices needs every rank's RNG state.
    local = latest_valid_checkpoint(directory.checkpoints, world_size)
    return directory.fetch_checkpoint(checkpoint_step(local) if local is not None else None)


def _run_stage(inputs: StageInput, artifact_root: str, body: Callable[[StageDirectory], dict[str, Any]]) -> StageResult:
    logger = get_run_logger()
    name = inputs.kind
    directory = stage_directory(artifact_root, name, stage_key(inputs))
    context = TaskRunContext.get()
    refresh = context is not None and context.task.refresh_cache
    if refresh:
        # An explicit refresh means recompute from scratch: no reuse, no resume (not even from a checkpoint an
        # attempt elsewhere uploads after the discard).
        logger.info("%s: refresh requested; discarding %s", name, directory.path)
        directory.discard()
    else:
        check = directory.verify()
        if check.ok:  # completed by another run since this one looked (or the task was called without caching)
            logger.info("%s: complete output found at %s; reusing it", name, directory.path)
            return directory.result()
        if directory.path.is_dir():  # e.g. a run killed while training or writing: say why it is redone
            logger.info("%s: %s is not usable (%s); recomputing", name, directory.path, check.reason)
    directory.prepare()
    fetched = None if refresh else resume_from_store(directory, inputs.devices)
    if fetched is not None:
        logger.info("%s: fetched %s from the artifact store to resume from", name, fetched.name)
    logger.info("%s: computing into %s", name, directory.path)
    # The stage's own work (training, evaluation, writing its files), without the key, hashes, manifest or
    # Prefect around it: what the stage cost, and what orchestration overhead is measured against. Recorded
    # in the stage directory as it goes, so that a killed attempt's time is counted by the one that finishes.
    with attempt(directory.attempts) as current:
        metrics = body(directory)
        times = current.times()
    if times.attempts > 1:
        logger.info(
            "%s: completed on attempt %d: %.1f s in this one, %.1f s in all",
            name,
            times.attempts,
            times.seconds,
            times.all_seconds,
        )
    metrics = {
        **metrics,
        STAGE_SECONDS: round(times.seconds, 2),
        STAGE_SECONDS_ALL_ATTEMPTS: round(times.all_seconds, 2),
        STAGE_ATTEMPTS: times.attempts,
    }
    return directory.finalize(
        config=inputs.key_payload(),
        metrics=metrics,
        upstream=upstream_of(inputs),
        code_version=code_fingerprint(inputs.modules),
    )
