"""The process behind `distill ui` and a run's temporary server: Prefect's API, its UI and its services.

    python -m distill_cli.prefect_server --port 4200 [--parent PID]

It is Prefect's own server application (`prefect.server.api.server:create_app`, what `prefect
server start` runs) under uvicorn on 127.0.0.1, with the UI on and every background service
running: the scheduler, late-run detection, and the automations that turn a flow run whose
heartbeats stopped into `Crashed` (Prefect's temporary server, used when `PREFECT_API_URL` is
unset, serves neither the UI nor those services).

With `--parent`, the server lives only as long as that process: a run killed with `kill -9`
leaves no server behind. On Linux the kernel sends SIGTERM when the parent dies
(`PR_SET_PDEATHSIG`); everywhere, a watchdog thread notices the parent is gone within a second
and does the same, then ends the process outright if a graceful shutdown has not finished in
`SHUTDOWN_GRACE_S`.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time

from distill.lifetime import die_with_parent

SHUTDOWN_GRACE_S = 10.0


def _watch_parent(parent: int) -> None:
    """SIGTERM ourselves once `parent` is gone (re-parented), then exit hard if shutdown hangs."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(SHUTDOWN_GRACE_S)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watchdog", daemon=True).start()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--parent", type=int, default=None, help="exit when this process does")
    args = parser.parse_args(argv)
    if args.parent is not None:
        if not die_with_parent(args.parent):  # the parent died before the signal was armed
            sys.exit(1)
        _watch_parent(args.parent)
    # Loopback only. The browser reaches the API on the same host and port as the page, so the UI is told
    # a relative API URL: one UI build (in PREFECT_HOME) serves servers on any port.
    os.environ.update(
        PREFECT_SERVER_API_HOST="127.0.0.1",
        PREFECT_SERVER_API_PORT=str(args.port),
        PREFECT_UI_ENABLED="true",
        PREFECT_UI_API_URL="/api",
    )
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    import uvicorn

    uvicorn.run(
        "prefect.server.api.server:create_app",
        factory=True,
        host="127.0.0.1",
        port=args.port,
        log_level="error",
        lifespan="on",
        timeout_graceful_shutdown=int(SHUTDOWN_GRACE_S) - 2,
    )


if __name__ == "__main__":
    main()
