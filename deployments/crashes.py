"""Crashed runs shown as crashed: Prefect's flow-run heartbeats and the automation that acts on their absence.

A flow run's process that dies without a word (`kill -9`, the OOM killer, a lost machine) cannot
report its own end, so its run would stay `Running` for ever. Prefect's answer: the flow engine
sends a `prefect.flow-run.heartbeat` event every `PREFECT_FLOWS_HEARTBEAT_FREQUENCY` seconds
(30 at least), and a proactive automation marks any flow run `Crashed` whose heartbeat, or end,
has not been seen for a while. `distill run`, `distill ui` and `distill serve` turn heartbeats on
and create the automation on the server they use (once; it is kept by name). It watches distill's
flows only.

A killed run is marked `Crashed` `CRASH_AFTER_S` seconds after its last heartbeat, so within
`HEARTBEAT_S + CRASH_AFTER_S` (2 minutes) of the kill, by a server that is up then: a `distill ui`
server or the user's own. A run's temporary server dies with it; the next server started on the
same database (the next run's, or `distill ui`) marks it within seconds of starting, because the
automation's pending windows are kept in that database.
"""

from __future__ import annotations

import logging
import os
from datetime import timedelta

HEARTBEAT_S = 30  # Prefect's minimum interval (its default is 180 s)
CRASH_AFTER_S = 90  # three missed heartbeats: a busy machine delays one, not three
AUTOMATION_NAME = "distill: mark flow runs crashed when their heartbeats stop"
# Only distill's own flows, whose runs send heartbeats every HEARTBEAT_S: another flow on the same server may
# send them every 180 s (Prefect's default), or be paused for hours, and is none of this automation's business.
DISTILL_FLOWS = ["progressive-distillation", "distill-config-file"]
# Events that show a flow run is alive, or has ended on its own: any of them closes the window.
_ALIVE_OR_ENDED = [
    "prefect.flow-run.heartbeat",
    "prefect.flow-run.Completed",
    "prefect.flow-run.Failed",
    "prefect.flow-run.Cancelled",
    "prefect.flow-run.Crashed",
]


def enable_heartbeats() -> None:
    """Flow runs started by this process send heartbeats (an explicit setting wins); call before importing Prefect."""
    os.environ.setdefault("PREFECT_FLOWS_HEARTBEAT_FREQUENCY", str(HEARTBEAT_S))


def crash_automation(crash_after_s: int = CRASH_AFTER_S):  # noqa: ANN201 - prefect's AutomationCore
    from prefect.client.schemas.objects import StateType
    from prefect.events.actions import ChangeFlowRunState
    from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture

    return AutomationCore(
        name=AUTOMATION_NAME,
        description=(
            f"A run of distill's flows ({', '.join(DISTILL_FLOWS)}) sends a heartbeat every {HEARTBEAT_S} s; "
            f"one that neither sends one nor ends for {crash_after_s} s has lost its process: it is marked Crashed."
        ),
        trigger=EventTrigger(
            match={"prefect.resource.id": "prefect.flow-run.*"},
            match_related={"prefect.resource.role": "flow", "prefect.resource.name": DISTILL_FLOWS},
            after={"prefect.flow-run.heartbeat"},
            expect=set(_ALIVE_OR_ENDED),
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=timedelta(seconds=crash_after_s),
        ),
        actions=[
            ChangeFlowRunState(
                state=StateType.CRASHED,
                message=f"No heartbeat for {crash_after_s} s: the process running this flow run died.",
            )
        ],
    )


def _trigger(automation: object) -> dict:
    """The trigger as data, its sets sorted (their order is a process's hash seed's)."""
    dumped = automation.trigger.model_dump(mode="json", exclude={"id"})  # type: ignore[attr-defined]
    return {key: sorted(value) if key in ("after", "expect", "for_each") else value for key, value in dumped.items()}


def crash_window() -> int:
    """DISTILL_CRASH_AFTER_SECONDS if set; else 90 s, or three heartbeats when a longer interval is set."""
    if os.environ.get("DISTILL_CRASH_AFTER_SECONDS"):
        return int(os.environ["DISTILL_CRASH_AFTER_SECONDS"])
    heartbeat = int(os.environ.get("PREFECT_FLOWS_HEARTBEAT_FREQUENCY") or HEARTBEAT_S)
    return max(CRASH_AFTER_S, 3 * heartbeat)


def ensure_crash_automation(crash_after_s: int | None = None) -> bool:
    """Create the automation on the server Prefect's settings point at, or bring its trigger up to date; one a
    user disabled stays disabled. Best effort: a server that refuses (Prefect Cloud without the permission, a
    server without automations) gets a warning, and the run goes on. True when the automation is in place."""
    from prefect.client.orchestration import get_client

    wanted = crash_automation(crash_window() if crash_after_s is None else crash_after_s)
    try:
        with get_client(sync_client=True) as client:
            existing = client.read_automations_by_name(AUTOMATION_NAME)
            if not existing:
                client.create_automation(wanted)
                return True
            first, *duplicates = existing  # two runs starting at once may both have created it
            # Updating resets the trigger's pending windows (a dead run not yet marked would never be): only when
            # the trigger itself changed.
            if _trigger(first) != _trigger(wanted):
                client.update_automation(first.id, wanted.model_copy(update={"enabled": first.enabled}))
            for duplicate in duplicates:
                client.delete_automation(duplicate.id)
            return first.enabled
    except Exception as exc:  # noqa: BLE001 - a missing automation costs crash detection, not the run
        from distill.errors import first_line

        logging.getLogger("distill").warning(
            "could not set up the automation that marks dead runs Crashed on this Prefect server (%s); "
            "a run whose process is killed will stay Running there",
            first_line(exc),
        )
        return False
