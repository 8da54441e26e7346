"""Crashed runs shown as crashed: Prefect's flow-run heartbeats and the automation that acts on their absence.

A flow run's process that dies without a word (`kill -9`, the OOM killer, a lost machine) cannot
report its own end, so its run would stay `Running` for ever. Prefect's answer: the flow engine
sends a `prefect.flow-run.heartbeat` event every `PREFECT_FLOWS_HEARTBEAT_FREQUENCY` seconds
(30 at least), and a proactive automation marks any flow run `Crashed` whose heartbeat, or end,
has not been seen for a while. `distill run`, `distill ui` and `distill serve` turn heartbeats on
and create the automation on the server they use (once; it is kept by name).

A killed run is marked `Crashed` `CRASH_AFTER_S` seconds after its last heartbeat, so within
`HEARTBEAT_S + CRASH_AFTER_S` (2 minutes) of the kill, by a server that is up then: a `distill ui`
server or the user's own. A run's temporary server dies with it; the next server started on the
same database (the next run's, or `distill ui`) marks it within seconds of starting, because the
automation's pending windows are kept in that database.
"""

from __future__ import annotations

import os
from datetime import timedelta

HEARTBEAT_S = 30  # Prefect's minimum interval
CRASH_AFTER_S = 90  # three missed heartbeats: a busy machine delays one, not three
AUTOMATION_NAME = "distill: mark flow runs crashed when their heartbeats stop"
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
            f"A flow run that sends heartbeats (distill runs do, every {HEARTBEAT_S} s) and then neither sends "
            f"one nor ends for {crash_after_s} s has lost its process: it is marked Crashed."
        ),
        trigger=EventTrigger(
            match={"prefect.resource.id": "prefect.flow-run.*"},
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


def ensure_crash_automation(crash_after_s: int | None = None) -> None:
    """Create the automation on the server Prefect's settings point at, or bring its window up to date."""
    from prefect.client.orchestration import get_client

    if crash_after_s is None:
        crash_after_s = int(os.environ.get("DISTILL_CRASH_AFTER_SECONDS", CRASH_AFTER_S))
    wanted = crash_automation(crash_after_s)
    with get_client(sync_client=True) as client:
        existing = client.read_automations_by_name(AUTOMATION_NAME)
        if not existing:
            client.create_automation(wanted)
            return
        first, *duplicates = existing  # two runs starting at once may both have created it
        if first.trigger.within != wanted.trigger.within or not first.enabled:
            client.update_automation(first.id, wanted)
        for duplicate in duplicates:
            client.delete_automation(duplicate.id)
