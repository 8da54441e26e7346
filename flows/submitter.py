"""How the flows submit stage tasks: bound to the run's cache, remembered in order for the run's summary."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from prefect import Task
from prefect.futures import PrefectFuture, wait

from distill.config import RunConfig
from distill.stages.identity import StageId, evaluation
from distill.store.artifacts import StageResult
from tasks.evaluate import EVALUATE, evaluate_model
from tasks.stage import StageSpec, bind


@dataclass(frozen=True)
class Model:
    """A model the chain has produced (or will): its name, its stage future and its evaluation future."""

    name: str
    result: PrefectFuture
    evaluation: PrefectFuture


class StageSubmitter:
    """Submits stage tasks bound to the run's cache, and remembers them in order for the summary.

    `concurrent` (a GPU is present): independent stages run side by side and take turns on the
    GPU; otherwise each submitted stage is waited for, so nothing runs beside a latency measurement.
    """

    def __init__(self, config: RunConfig, refresh: set[str], *, concurrent: bool) -> None:
        self.config, self.refresh, self.concurrent = config, refresh, concurrent
        self.submitted: list[tuple[str, PrefectFuture]] = []

    def __call__(
        self,
        stage: StageId,
        task: Task,
        spec: StageSpec | None,
        *args: Any,
        config: RunConfig | None = None,
        **kwargs: Any,
    ) -> PrefectFuture:
        """Submit `task` as `stage` (its task run is named `stage.slug`); `config` replaces the run's (a sweep
        trial's). `refresh` names recompute it: its own name, or its kind (every stage of that kind)."""
        config = config or self.config
        if spec is not None:
            refresh = bool({spec.name, stage.name} & self.refresh)
            task = bind(task, spec, config, refresh=refresh)
        task = task.with_options(task_run_name=stage.slug)
        future = task.submit(config, *args, **kwargs)
        self.submitted.append((stage.name, future))
        if not self.concurrent:
            future.wait()  # CPU only: one stage at a time, so nothing runs beside a latency measurement
        return future

    def evaluate(self, model: PrefectFuture, label: str) -> PrefectFuture:
        return self(evaluation(label), evaluate_model, EVALUATE, model, label=label)

    def outcomes(self, deferred: frozenset[str] = frozenset()) -> tuple[list[dict[str, Any]], list[Exception]]:
        """Each stage's status ('completed' or 'cached'), uri and metrics; raises the first failure, in order.

        A failure among the `deferred` stages is returned instead (each once, upstream first), so the caller can
        report what did finish before raising it.
        """
        wait([future for _, future in self.submitted])
        stages, failures = [], []
        for name, future in self.submitted:
            if name in deferred and not future.state.is_completed():
                if not future.state.is_pending():  # failed, crashed or cancelled; pending: a successor it stopped
                    failures.append(_exception(future))
                continue
            result: StageResult = future.result()  # upstream stages come first, so this raises the root cause
            stages.append({"name": name, "status": status_of(future), "uri": result.uri, "metrics": result.metrics})
        return stages, failures


def status_of(future: PrefectFuture) -> str:
    """'cached' when the stage was served from the cache, else 'completed'."""
    return "cached" if future.state.name == "Cached" else "completed"


def _exception(future: PrefectFuture) -> Exception:
    try:
        future.result()
    except Exception as exc:  # noqa: BLE001 - handed back to be raised after the report
        return exc
    return RuntimeError(f"task run {future.task_run_id} ended {future.state.name} without an error")
