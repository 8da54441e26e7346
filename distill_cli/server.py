"""Which Prefect server a `distill run` reports to, and starting one with the UI when there is none.

In order:
1. `PREFECT_API_URL`, when set (in the environment or the active Prefect profile, as
   `prefect config set` writes it): the user's server (or Prefect Cloud); nothing is started.
2. A server started by `distill ui`: it writes `$PREFECT_HOME/distill-ui.json`, and every later run
   on this machine finds it there, so runs are watched, and crashes marked, in one place.
3. Otherwise a temporary server with the UI, on 127.0.0.1 and a free port, for the length of the
   run (`--keep-ui` leaves it up afterwards). It is tied to the run's process: killed with it.

The server starts while the run imports torch and checks its inputs (both take seconds), and is
stopped at once if the input is rejected. Nothing here imports Prefect: the environment is set
before Prefect reads its settings.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from distill.errors import DistillError

STARTUP_TIMEOUT_S = 180.0  # a fresh database is migrated first: ~20 s on 2 idle cores, far more under load
STOP_TIMEOUT_S = 15.0


def prefect_home() -> Path:
    return Path(os.environ.get("PREFECT_HOME") or "~/.prefect").expanduser()


def discovery_file() -> Path:
    """Where `distill ui` says which server it runs, for later runs to find."""
    return prefect_home() / "distill-ui.json"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def healthy(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/api/health", timeout=timeout) as response:
            return response.status == 200
    except (OSError, urllib.error.URLError, ValueError):
        return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def configured_api_url() -> str | None:
    """The API URL Prefect would use: the environment's, else the active profile's (read without importing
    Prefect); when Prefect is already imported (a test harness, a program embedding distill), its settings."""
    if os.environ.get("PREFECT_API_URL"):
        return os.environ["PREFECT_API_URL"]
    settings = sys.modules.get("prefect.settings")
    if settings is not None:
        return settings.get_current_settings().api.url
    path = Path(os.environ.get("PREFECT_PROFILES_PATH") or prefect_home() / "profiles.toml").expanduser()
    try:
        profiles = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError):
        return None
    active = os.environ.get("PREFECT_PROFILE") or profiles.get("active")
    url = profiles.get("profiles", {}).get(active, {}).get("PREFECT_API_URL")
    return str(url) if url else None


def find_ui_server() -> str | None:
    """The URL of a `distill ui` server that is up, or None (a stale file from a dead one is ignored)."""
    try:
        record = json.loads(discovery_file().read_text())
        url, pid = str(record["url"]), int(record["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return url if _alive(pid) and healthy(url) else None


@dataclass
class UiServer:
    """A Prefect server with the UI: one this process started (`process` set), or one found running."""

    url: str  # the UI, e.g. http://127.0.0.1:4200; the API is under /api
    process: subprocess.Popen | None = None
    log: Path | None = None
    started: float = field(default_factory=time.monotonic)

    @property
    def api_url(self) -> str:
        return f"{self.url}/api"

    def wait_healthy(self, timeout: float = STARTUP_TIMEOUT_S) -> None:
        """Block until the API answers; a server that exits or never answers is a one-line error."""
        deadline = self.started + timeout
        while not healthy(self.url, timeout=1.0):
            what = f"the Prefect server at {self.url}"
            if self.process is not None and self.process.poll() is not None:
                raise DistillError(f"{what} exited with {self.process.returncode}{self._tail()}")
            if time.monotonic() > deadline:
                self.stop()
                raise DistillError(f"{what} did not answer within {timeout:.0f} s{self._tail()}")
            time.sleep(0.2)

    def stop(self) -> None:
        """Stop a server this process started (SIGTERM, then SIGKILL), once Prefect has sent it the logs and
        events still queued; one found running is left alone."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        drain_prefect()
        process.terminate()
        try:
            process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def _tail(self) -> str:
        if self.log is None or not self.log.is_file():
            return ""
        lines = [line for line in self.log.read_text(errors="replace").splitlines() if line.strip()]
        return f" (its log, {self.log}: {lines[-1].strip()})" if lines else f" (its log: {self.log})"


def drain_prefect(timeout: float = 10.0) -> None:
    """Send what Prefect still queues for the API (it batches logs every 2 s and flushes at exit): stopping the
    server first would lose the run's last lines and leave Prefect retrying a dead server for a minute."""
    if "prefect.logging.handlers" in sys.modules:
        from prefect.logging.handlers import APILogWorker

        APILogWorker.drain_all(timeout=timeout)
    if "prefect.events.worker" in sys.modules:
        from prefect.events.worker import EventsWorker

        EventsWorker.drain_all(timeout=timeout)


def start_server(port: int | None = None, *, tie_to_parent: bool = True) -> UiServer:
    """Start Prefect's server with the UI on 127.0.0.1 in a child process; returns at once (see `wait_healthy`).

    `tie_to_parent`: the server exits when this process does, however it ends (`kill -9` included).
    """
    port = port or free_port()
    if not port_free(port):
        raise DistillError(f"port {port} on 127.0.0.1 is in use (choose another with --port)")
    log = prefect_home() / "distill-server.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "distill_cli.prefect_server", "--port", str(port)]
    if tie_to_parent:
        command += ["--parent", str(os.getpid())]
    env = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "PREFECT_UI_URL")}
    with log.open("ab") as out:
        # A session of its own: Ctrl-C on the terminal interrupts the run, which then reports itself Crashed to
        # the server, rather than the server too. It still dies with its parent (prefect_server.py).
        process = subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
    return UiServer(f"http://127.0.0.1:{port}", process, log)


def connect(*, start: bool = True) -> UiServer | None:
    """The server a run reports to (see the module docstring); None when an API URL is configured.

    Sets `PREFECT_API_URL` for this process (before Prefect is imported) when it finds or starts one.
    """
    if configured_api_url():
        return None
    url = find_ui_server()
    server = UiServer(url) if url else start_server() if start else None
    if server is not None:
        os.environ["PREFECT_API_URL"] = server.api_url
    return server


def write_discovery(server: UiServer) -> None:
    path = discovery_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"url": server.url, "pid": os.getpid()}))
    tmp.replace(path)


def remove_discovery() -> None:
    """Remove the discovery file if it names this process (another `distill ui` may have replaced it)."""
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        if int(json.loads(discovery_file().read_text())["pid"]) == os.getpid():
            discovery_file().unlink()
