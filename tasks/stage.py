"""The mechanism every stage task shares: content keys, validated caching, retries, the stage directory.

Cache key = stage name + hash of the `distill` source the stage runs + its canonical
config + upstream manifest hashes + data fingerprint (+ model fingerprints). Records are
JSON under `<artifact_root>/_prefect/cache`, guarded by SERIALIZABLE isolation on flock
locks, so two concurrent runs never compute one stage twice.

A cache record is only as good as the directory it points to: before Prefect looks the
key up, `cache_key_fn` verifies `<root>/<stage>/<key>/` (marker, manifest, file hashes).
If it is broken and nobody is computing it right now, the stale record is removed and
the stage recomputes (resuming from its checkpoints if it had any).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prefect import Task, get_run_logger
from prefect.cache_policies import CacheKeyFnPolicy
from prefect.context import TaskRunContext
from prefect.tasks import exponential_backoff

from distill.artifacts import StageDirectory, StageResult, resolve_root
from distill.attempts import attempt
from distill.config import RunConfig
from distill.data.task_data import data_fingerprint
from distill.errors import DistillError
from distill.fingerprint import code_fingerprint, folder_fingerprint, hash_object
from distill.models.loading import resolve_model
from tasks.compute import compute_slot, process_slot
from tasks.locking import FlockLockManager

PREFECT_DIR = "_prefect"
# Metrics every computed stage records. A stage may take several attempts (retries, runs killed and re-run);
# each attempt resumes from the checkpoints of those before it.
STAGE_SECONDS = "stage_seconds"  # wall time of the stage's body in the attempt that completed it
STAGE_SECONDS_ALL_ATTEMPTS = "stage_seconds_all_attempts"  # wall time of the body over every attempt, killed included
STAGE_ATTEMPTS = "stage_attempts"  # attempts at this build of the stage, the completing one included


@dataclass(frozen=True)
class StageSpec:
    """What identifies a stage's output: its name, the core modules it runs, the config it reads."""

    name: str
    modules: tuple[str, ...]
    config_of: Callable[[RunConfig], Any]
    models_of: Callable[[RunConfig], list[str]] = field(default=lambda config: [])

    @property
    def slug(self) -> str:
        """Lowercase-dash form for Prefect artifact keys."""
        return self.name.replace("_", "-")


def model_fingerprint(name: str) -> str:
    """Content hash of a local model folder; id and revision stand in for hub models."""
    ref = resolve_model(name)
    if ref.local:
        return folder_fingerprint(ref.location, ("*.json", "*.safetensors", "*.txt", "*.model", "*.bin"))
    return f"hub:{ref.location}"


def stage_key(spec: StageSpec, config: RunConfig, upstream: Mapping[str, StageResult], extra: Any = None) -> str:
    """The content key; also the stage directory's name."""
    digest = hash_object(
        {
            "stage": spec.name,
            "code": code_fingerprint(spec.modules),
            "config": spec.config_of(config),
            "extra": extra,
            "upstream": {name: result.manifest_sha256 for name, result in sorted(upstream.items())},
            "data": data_fingerprint(config.data),
            "models": [model_fingerprint(m) for m in spec.models_of(config)],
        }
    )
    return f"{spec.slug}-{digest[:24]}"


# StageResult parameters that inform a stage without shaping its output, so they stay out of its key:
# the teacher's evaluation only gates distillation (min_teacher_metric), and holds timings that vary.
NOT_UPSTREAM = frozenset({"teacher_evaluation"})


def _split_parameters(parameters: Mapping[str, Any]) -> tuple[RunConfig, dict[str, StageResult], Any]:
    config = parameters["config"]
    if not isinstance(config, RunConfig):
        config = RunConfig.model_validate(config)
    upstream = {
        name: value for name, value in parameters.items() if isinstance(value, StageResult) and name not in NOT_UPSTREAM
    }
    return config, upstream, parameters.get("label")


def _cache_key_fn(spec: StageSpec, key_storage: Path, locks: FlockLockManager) -> Callable[..., str]:
    def cache_key(context: TaskRunContext, parameters: dict[str, Any]) -> str:
        config, upstream, extra = _split_parameters(parameters)
        with process_slot():  # hashing data and model files is CPU work: not beside a latency measurement
            key = stage_key(spec, config, upstream, extra)
        record = key_storage / key
        if record.exists() and not locks.is_locked(key):
            directory = StageDirectory(resolve_root(config.artifact_root), spec.name, key)
            check = directory.verify()
            if not check.ok:
                # The task run's own logger: the reason reaches the run's logs in the UI, whatever the
                # process's logging setup (a deployment's worker does not forward the `distill` logger).
                get_run_logger(context).warning(
                    "%s: cached result %s is not usable (%s); recomputing", spec.name, directory.path, check.reason
                )
                record.unlink(missing_ok=True)
        return key

    return cache_key


def retry_unless_user_error(task: Task, task_run: Any, state: Any) -> bool:
    """Retry crashes and transient failures; a bad config, file or model fails at once."""
    try:
        state.result()
    except DistillError:
        return False
    except Exception:
        return True
    return True


# Applied by @task in each stage module; caching is bound later, per artifact root (see `bind`).
STAGE_TASK_OPTIONS: dict[str, Any] = {
    "retries": 2,
    "retry_delay_seconds": exponential_backoff(backoff_factor=2),
    "retry_condition_fn": retry_unless_user_error,
}


def bind(task: Task, spec: StageSpec, config: RunConfig, *, refresh: bool = False) -> Task:
    """The task with content-keyed, persisted, lock-guarded caching under the run's artifact root."""
    root = resolve_root(config.artifact_root)
    key_storage = root / PREFECT_DIR / "cache"
    locks = FlockLockManager(root / PREFECT_DIR / "locks")
    key_storage.mkdir(parents=True, exist_ok=True)
    policy = CacheKeyFnPolicy(cache_key_fn=_cache_key_fn(spec, key_storage, locks)).configure(
        key_storage=key_storage, isolation_level="SERIALIZABLE", lock_manager=locks
    )
    return task.with_options(
        cache_policy=policy,
        persist_result=True,
        result_storage=root / PREFECT_DIR / "results",
        result_serializer="json",
        refresh_cache=refresh,
    )


def run_stage(
    spec: StageSpec,
    config: RunConfig,
    body: Callable[[StageDirectory], dict[str, Any]],
    *,
    upstream: Mapping[str, StageResult] | None = None,
    extra: Any = None,
) -> StageResult:
    """Compute a stage into its directory, or return it when a complete, intact copy is already there."""
    # Concurrent stages take turns on the CPU cores or the GPU (tasks/compute.py); that includes hashing
    # and verifying files here, which would otherwise run beside another stage's latency measurement.
    with compute_slot():
        return _run_stage(spec, config, body, dict(upstream or {}), extra)


def _run_stage(
    spec: StageSpec,
    config: RunConfig,
    body: Callable[[StageDirectory], dict[str, Any]],
    upstream: dict[str, StageResult],
    extra: Any,
) -> StageResult:
    logger = get_run_logger()
    key = stage_key(spec, config, upstream, extra)
    directory = StageDirectory(resolve_root(config.artifact_root), spec.name, key)
    context = TaskRunContext.get()
    if context is not None and context.task.refresh_cache:
        # An explicit refresh means recompute from scratch: no reuse, no resume.
        logger.info("%s: refresh requested; discarding %s", spec.name, directory.path)
        shutil.rmtree(directory.path, ignore_errors=True)
    else:
        check = directory.verify()
        if check.ok:
            # The cache record was lost (e.g. _prefect/ deleted) but the artifacts are intact: no recompute.
            logger.info("%s: complete output found at %s; reusing it", spec.name, directory.path)
            return directory.result()
        if directory.path.is_dir():  # e.g. a run killed while training or writing: say why it is redone
            logger.info("%s: %s is not usable (%s); recomputing", spec.name, directory.path, check.reason)
    directory.prepare()
    logger.info("%s: computing into %s", spec.name, directory.path)
    # The stage's own work (training, evaluation, writing its files), without the key, hashes, manifest or
    # Prefect around it: what the stage cost, and what orchestration overhead is measured against. Recorded
    # in the stage directory as it goes, so that a killed attempt's time is counted by the one that finishes.
    with attempt(directory.attempts) as current:
        metrics = body(directory)
        times = current.times()
    if times.attempts > 1:
        logger.info(
            "%s: completed on attempt %d: %.1f s in this one, %.1f s in all",
            spec.name,
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
        config={"stage": spec.config_of(config), "extra": extra},
        metrics=metrics,
        upstream={name: result.manifest_sha256 for name, result in upstream.items()},
        code_version=code_fingerprint(spec.modules),
    )
