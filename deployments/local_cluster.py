"""A throwaway Prefect cluster on one machine: PostgreSQL, a Prefect server on it, a process work pool and
N process workers, each taking one flow run at a time (and, with --devices, one GPU each).

    python deployments/local_cluster.py up --workers 2 --state-dir /tmp/distill-cluster
    python deployments/local_cluster.py up --devices 0,1 --state-dir /tmp/distill-cluster   # worker i: GPU i
    python deployments/local_cluster.py status --state-dir /tmp/distill-cluster
    python deployments/local_cluster.py down --state-dir /tmp/distill-cluster

`up` initialises a PostgreSQL cluster in DIR/postgres (trust authentication, 127.0.0.1 and a unix socket in
that folder only, a free port), starts Prefect's server on it (`distill_cli.prefect_server`, as `distill ui`
runs it, on 127.0.0.1 and a free port), creates the work pool and starts the workers, then prints the API
URL. Every process it starts is recorded in DIR/cluster.json as it starts (pid, start time, command line),
so `down` stops exactly those, even after an `up` killed half-way; a failing or interrupted `up` stops them
itself. `down` removes no files: DIR keeps the database and the logs (DIR/logs) until you delete it.

Flow runs are not children `down` can reach through a process group: Prefect's process worker starts each
in its own session, and a worker that died leaves its runs behind. So every process `up` starts carries
DISTILL_CLUSTER=<this cluster's id> in its environment (recorded in cluster.json before the first start),
flow runs inherit it from their worker, and `down`, after stopping the workers, stops every process that
carries it. That sweep also covers a process started by an `up` killed (SIGKILL) before it recorded it.
Recording, finding and stopping processes is `deployments/processes.py`.

PostgreSQL refuses to run as root: as root, initdb and postgres run as the `postgres` user (DIR must then
be reachable by it). The binaries are found on PATH, in DISTILL_PG_BIN, or in /usr/lib/postgresql/*/bin.
Workers and their flow runs inherit this environment (DISTILL_DATA_DIR, PREFECT_WORKER_QUERY_SECONDS, ...).
"""

from __future__ import annotations

import argparse
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from deployments.processes import Process, marked_processes, running, start_time, stop
from distill_cli.server import free_port, healthy

STATE_FILE = "cluster.json"
DEFAULT_POOL = "distill-local"
STARTUP_TIMEOUT_S = 180.0  # the server migrates a fresh database first: ~20 s on 2 idle cores
SWEEP_GRACE_S = 10.0  # a marked process (a flow run) between SIGTERM and SIGKILL
MARKER_ENV = "DISTILL_CLUSTER"  # in every process `up` starts and every flow run they start
PREFECT = [sys.executable, "-m", "prefect"]


class ClusterError(RuntimeError):
    """`up` could not start the cluster (what it had started is stopped), or its state is unusable."""


@dataclass
class ClusterState:
    state_dir: str
    pool: str = DEFAULT_POOL
    marker: str | None = None  # the value of DISTILL_CLUSTER in its processes' environments
    postgres_port: int | None = None
    server_port: int | None = None
    api_url: str | None = None
    database_url: str | None = None
    workers: list[str] = field(default_factory=list)
    devices: list[str] | None = None
    processes: list[Process] = field(default_factory=list)

    def save(self) -> None:
        path = Path(self.state_dir) / STATE_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2))
        tmp.replace(path)

    @classmethod
    def load(cls, state_dir: Path) -> ClusterState | None:
        path = Path(state_dir) / STATE_FILE
        if not path.is_file():
            return None
        raw = json.loads(path.read_text())
        raw["processes"] = [Process(**process) for process in raw["processes"]]
        return cls(**raw)


# --- processes -------------------------------------------------------------------------------------------


def _postgres_user() -> dict:
    """Popen arguments that run PostgreSQL as `postgres` when we are root (it refuses root)."""
    if os.getuid() != 0:
        return {}
    try:
        user = pwd.getpwnam("postgres")
    except KeyError:
        raise ClusterError("PostgreSQL refuses to run as root and there is no `postgres` user to run it") from None
    return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}


_deferring: list[int] | None = None  # while a process is being started and recorded: the signals that came


@contextmanager
def _signals_deferred():
    """Hold back `_interrupt` (SIGINT, SIGTERM, SIGHUP in `main`) until the block ends, so that a process is
    never started and left unrecorded by an interruption between the two. SIGKILL cannot be held back: the
    DISTILL_CLUSTER sweep in `down` finds such a process."""
    global _deferring
    _deferring = []
    try:
        yield
    finally:
        came, _deferring = _deferring, None
    if came:
        raise KeyboardInterrupt(f"signal {came[0]}")


def _spawn(state: ClusterState, name: str, command: list[str], env: dict[str, str], **popen: object) -> Process:
    log = Path(state.state_dir) / "logs" / f"{name}.log"
    env = {**env, MARKER_ENV: state.marker or ""}
    with log.open("ab") as out, _signals_deferred():
        child = subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,  # its own process group: Ctrl-C on the terminal leaves it, `down` ends it all
            **popen,
        )
        started = start_time(child.pid)
        process = Process(name, child.pid, started if started is not None else -1, command, str(log))
        state.processes.append(process)
        state.save()  # recorded before anything else can fail
    return process


# --- PostgreSQL --------------------------------------------------------------------------------------------


def postgres_bin_dir() -> Path | None:
    """Where initdb and postgres are: DISTILL_PG_BIN, PATH, or Debian's /usr/lib/postgresql/<version>/bin."""
    if os.environ.get("DISTILL_PG_BIN"):
        return Path(os.environ["DISTILL_PG_BIN"])
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent  # Debian links initdb alone into PATH; the rest stays beside it
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    return candidates[-1].parent if candidates else None


def _start_on_a_free_port(
    state: ClusterState,
    name: str,
    command: Callable[[int], list[str]],
    ready: Callable[[int], bool],
    record: Callable[[int], None],
    env: dict[str, str],
    *,
    poll: float,
    failure: str,
    **popen: Any,
) -> int:
    """Start `name` on a free port (recorded before it starts) and wait until `ready(port)`; once more on another
    port if the first was taken between choosing and binding it. Returns the port."""
    for attempt in (1, 2):
        port = free_port()
        record(port)
        offset = _log_size(state, name)
        process = _spawn(state, name, command(port), env, **popen)
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not ready(port):
            if not running(process) or time.monotonic() > deadline:
                stop([process])
                if attempt == 1 and _bind_failed(process.log, offset):
                    break
                raise ClusterError(f"{failure}: {_tail(process.log)}")
            time.sleep(poll)
        else:
            return port
    raise AssertionError("unreachable: the second attempt returns or raises")


def _start_postgres(state: ClusterState, env: dict[str, str]) -> None:
    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        raise ClusterError("PostgreSQL not found (apt-get install postgresql, or set DISTILL_PG_BIN)")
    data = Path(state.state_dir) / "postgres"
    as_postgres = _postgres_user()
    if not (data / "PG_VERSION").is_file():
        data.mkdir(mode=0o700, exist_ok=True)
        if as_postgres:
            os.chown(data, as_postgres["user"], as_postgres["group"])
        initdb = subprocess.run(
            [str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"],
            cwd=data,
            env=env,
            capture_output=True,
            text=True,
            **as_postgres,
        )
        if initdb.returncode != 0:
            raise ClusterError(
                f"initdb failed in {data} (as root, the postgres user must be able to reach this folder): "
                f"{(initdb.stderr or initdb.stdout).strip()[-500:]}"
            )

    # pg_hba.conf from initdb allows local socket, 127.0.0.1/32 and ::1/128 only; we listen on 127.0.0.1.
    def command(port: int) -> list[str]:
        return [str(bin_dir / "postgres"), "-D", str(data), "-p", str(port),
                "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={data}"]  # fmt: skip

    def ready(port: int) -> bool:
        answer = [str(bin_dir / "pg_isready"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres"]
        return subprocess.run(answer, capture_output=True, env=env).returncode == 0

    def record(port: int) -> None:
        state.postgres_port = port

    port = _start_on_a_free_port(
        state, "postgres", command, ready, record, env, poll=0.3, failure="postgres did not start", cwd=data,
        **as_postgres,
    )  # fmt: skip
    created = subprocess.run(
        [str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "prefect"],
        capture_output=True, text=True, env=env,
    )  # fmt: skip
    if created.returncode != 0 and "already exists" not in created.stderr:
        raise ClusterError(f"createdb failed: {created.stderr.strip()}")
    state.database_url = f"postgresql+asyncpg://postgres@127.0.0.1:{port}/prefect"


# --- Prefect -----------------------------------------------------------------------------------------------


def _bind_failed(log: str, offset: int) -> bool:
    """The process's log, past `offset`, says its port was taken (free_port's port can be taken by another
    process before ours binds it): the caller tries once more on another port."""
    try:
        with open(log, "rb") as text:
            text.seek(offset)
            return b"address already in use" in text.read().lower()
    except OSError:
        return False


def _log_size(state: ClusterState, name: str) -> int:
    log = Path(state.state_dir) / "logs" / f"{name}.log"
    return log.stat().st_size if log.is_file() else 0


def _prefect_env(state: ClusterState) -> dict[str, str]:
    """This environment, pointed at the cluster's server and its own PREFECT_HOME (no profile leaks in)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "PREFECT_API_KEY", "PREFECT_PROFILE")}
    home = Path(state.state_dir) / "prefect-home"
    home.mkdir(exist_ok=True)
    env.update(
        PREFECT_HOME=str(home),
        PREFECT_SERVER_ANALYTICS_ENABLED=env.get("PREFECT_SERVER_ANALYTICS_ENABLED", "false"),
        PREFECT_WORKER_WEBSERVER_HOST="127.0.0.1",  # only if --with-healthcheck is ever added; loopback anyway
    )
    if state.api_url:
        env["PREFECT_API_URL"] = state.api_url
    return env


def _start_server(state: ClusterState) -> None:
    env = _prefect_env(state)
    env["PREFECT_SERVER_DATABASE_CONNECTION_URL"] = state.database_url or ""

    def record(port: int) -> None:
        state.server_port = port

    port = _start_on_a_free_port(
        state,
        "server",
        lambda port: [sys.executable, "-m", "distill_cli.prefect_server", "--port", str(port)],
        lambda port: healthy(f"http://127.0.0.1:{port}"),
        record,
        env,
        poll=0.5,
        failure="the Prefect server did not become healthy",
    )
    state.api_url = f"http://127.0.0.1:{port}/api"
    state.save()


def _online_workers(state: ClusterState) -> set[str]:
    import httpx

    response = httpx.post(f"{state.api_url}/work_pools/{state.pool}/workers/filter", json={}, timeout=10)
    response.raise_for_status()
    return {worker["name"] for worker in response.json() if worker.get("status") == "ONLINE"}


def _start_workers(state: ClusterState, count: int, devices: list[str] | None) -> None:
    env = _prefect_env(state)
    pool = subprocess.run(
        [*PREFECT, "work-pool", "create", state.pool, "--type", "process"], env=env, capture_output=True, text=True
    )
    if pool.returncode != 0 and "already exists" not in pool.stdout + pool.stderr:
        raise ClusterError(f"could not create work pool {state.pool}: {(pool.stdout + pool.stderr).strip()[-500:]}")
    processes = []
    for i in range(count):
        name = f"{state.pool}-worker-{i}"
        worker_env = dict(env)
        if devices is not None:
            worker_env["CUDA_VISIBLE_DEVICES"] = devices[i]  # worker i runs its flow runs on device i only
        command = [*PREFECT, "worker", "start", "--pool", state.pool, "--type", "process", "--limit", "1",
                   "--name", name]  # fmt: skip
        processes.append(_spawn(state, name, command, worker_env))
        state.workers.append(name)
    state.save()
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while _online_workers(state) < set(state.workers):  # `up` returns once every worker polls the pool
        for process in processes:
            if not running(process):
                raise ClusterError(f"{process.name} exited: {_tail(process.log)}")
        if time.monotonic() > deadline:
            raise ClusterError(f"workers not online after {STARTUP_TIMEOUT_S:.0f} s")
        time.sleep(0.5)


def _tail(log: str, lines: int = 5) -> str:
    try:
        return " | ".join(Path(log).read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return f"(no log at {log})"


# --- commands ----------------------------------------------------------------------------------------------


def up(
    state_dir: Path, workers: int | None = None, devices: list[str] | None = None, pool: str = DEFAULT_POOL
) -> ClusterState:
    """Start the cluster recorded in `state_dir`; on any failure (or interruption) stop what was started."""
    state_dir = Path(state_dir).resolve()
    if devices is not None and workers is not None and workers != len(devices):
        raise ClusterError(f"--workers {workers} but {len(devices)} devices: one worker per device")
    count = len(devices) if devices is not None else workers or 1
    previous = ClusterState.load(state_dir)
    if previous is not None and any(running(process) for process in previous.processes):
        raise ClusterError(f"a cluster recorded in {state_dir} is still running: `down` it first")
    if previous is not None and previous.marker:
        # Its recorded processes are gone, but flow runs of a worker that died may still carry its marker; the new
        # state file will not know it, so end them now.
        stop(marked_processes(f"{MARKER_ENV}={previous.marker}"), grace=SWEEP_GRACE_S)
    (state_dir / "logs").mkdir(parents=True, exist_ok=True)
    state = ClusterState(str(state_dir), pool=pool, devices=devices, marker=uuid.uuid4().hex)
    state.save()  # the marker is on disk before any process carries it
    try:
        _start_postgres(state, {k: v for k, v in os.environ.items() if not k.startswith("PG")})
        _start_server(state)
        _start_workers(state, count, devices)
    except BaseException:
        down(state_dir)
        raise
    return state


def down(state_dir: Path) -> list[str]:
    """Stop every process `up` recorded in `state_dir` that is still the one it started, and every process
    carrying its DISTILL_CLUSTER marker: the workers together, then their flow runs, then the server, then
    the database, then any other marked process. The names of those stopped (a marked one as `pid N (...)`).
    Idempotent; removes no files."""
    state = ClusterState.load(Path(state_dir).resolve())
    if state is None:
        return []
    workers = [process for process in state.processes if process.name not in ("postgres", "server")]
    stopped = stop(workers)
    # Flow runs: each leads its own session (the worker's graceful shutdown may not have ended them, and a
    # worker that died never will); the server's and PostgreSQL's processes carry the marker too: later.
    services = {process.pid for process in state.processes if process.name in ("postgres", "server")}
    if state.marker:
        stopped += stop(marked_processes(f"{MARKER_ENV}={state.marker}", exclude_groups=services), grace=SWEEP_GRACE_S)
    for name in ("server", "postgres"):
        stopped += stop([process for process in state.processes if process.name == name])
    if state.marker:
        stopped += stop(marked_processes(f"{MARKER_ENV}={state.marker}"), grace=SWEEP_GRACE_S)
    return stopped


def status(state_dir: Path) -> dict:
    state = ClusterState.load(Path(state_dir).resolve())
    if state is None:
        return {"state_dir": str(state_dir), "recorded": False}
    server_up = bool(state.api_url) and healthy(state.api_url.removesuffix("/api"))
    return {
        "state_dir": state.state_dir,
        "api_url": state.api_url,
        "pool": state.pool,
        "server_healthy": server_up,
        "online_workers": sorted(_online_workers(state)) if server_up else [],
        "processes": {p.name: ("running" if running(p) else "stopped") + f" (pid {p.pid})" for p in state.processes},
    }


def _interrupt(signum: int, frame: object) -> None:
    if _deferring is not None:  # a process is being started: raised once it is recorded
        _deferring.append(signum)
        return
    raise KeyboardInterrupt(f"signal {signum}")  # so `up` stops what it started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    start = commands.add_parser("up", help="start PostgreSQL, a Prefect server, a work pool and workers")
    start.add_argument("--workers", type=int, help="process workers (default: one per device, else 1)")
    start.add_argument("--devices", help="comma-separated CUDA device ids: worker i gets CUDA_VISIBLE_DEVICES=<i-th>")
    start.add_argument("--pool", default=DEFAULT_POOL, help="work pool name (type process)")
    for command in ("down", "status"):
        commands.add_parser(command, help=f"{command} the cluster recorded in --state-dir")
    for sub in commands.choices.values():
        sub.add_argument("--state-dir", type=Path, required=True, help="database, logs and cluster.json")
    args = parser.parse_args(argv)
    if args.command == "up":
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, _interrupt)
        devices = args.devices.split(",") if args.devices else None
        try:
            state = up(args.state_dir, args.workers, devices, args.pool)
        except ClusterError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        print(f"Prefect API: {state.api_url}  (UI: {state.api_url.removesuffix('/api')})")
        print(f"workers: {', '.join(state.workers)} on pool {state.pool}")
        print(f"export PREFECT_API_URL={state.api_url}")
    elif args.command == "down":
        stopped = down(args.state_dir)
        print(f"stopped: {', '.join(stopped) if stopped else 'nothing (already down)'}")
    else:
        print(json.dumps(status(args.state_dir), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
