"""The several-workers path for real: `deployments/local_cluster.py up` (PostgreSQL, a Prefect server on it, two
process workers, one per device), the documented prefect.yaml deployed onto it, runs triggered through it,
then `down`.

- Two configs sharing their teacher, triggered at once: each worker takes one run (`--limit 1`), each run sees
  its worker's CUDA_VISIBLE_DEVICES, and the shared stages are computed once (the other run finds them Cached).
- The `tiny` deployment re-runs the session's finished tiny chain (tests/tiny_chain_run.py) from the cache, as a
  nightly re-run of an unchanged config does: another process, on another server, filled that cache.
- `down`, with a flow run in flight on each worker and one worker killed, leaves no process (recorded, in a
  recorded group, or carrying the cluster's DISTILL_CLUSTER marker) and no listening port behind.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from deployments.local_cluster import MARKER_ENV, ClusterState, down, postgres_bin_dir, up
from deployments.processes import marked_processes, running
from distill.reporting.files import LEADERBOARD_CSV
from tests import prefect_api
from tests.tiny_chain_run import TEST_TIMEOUT_S, TinyChainRun

ROOT = Path(__file__).resolve().parents[2]
PREFECT = str(Path(sys.executable).parent / "prefect")
TINY = ROOT / "configs" / "tiny.yaml"
POOL = "distill-cpu"  # the pool deployments/prefect.yaml names
DEVICES = ["0", "1"]
FINAL = ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")
RUN_TIMEOUT_S = 600


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() not in ("", "0", "false")


def _skip_without_postgres() -> None:
    if postgres_bin_dir() is None:
        reason = "needs PostgreSQL's initdb (apt-get install postgresql; .ci/run does)"
        if _in_ci():
            pytest.fail(f"CI must run the cluster tests: {reason}")
        pytest.skip(reason)


def _state_dir() -> Path:
    # Not under pytest's tmp_path: as root, PostgreSQL runs as `postgres`, which must reach its folder.
    state_dir = Path(tempfile.mkdtemp(prefix="distill-cluster-"))
    state_dir.chmod(0o755)
    return state_dir


@pytest.fixture(scope="module")
def cluster() -> Iterator[ClusterState]:
    """Two process workers on a PostgreSQL-backed server; prefect.yaml deployed onto it."""
    _skip_without_postgres()
    state_dir = _state_dir()
    saved = os.environ.get("PREFECT_WORKER_QUERY_SECONDS")
    os.environ["PREFECT_WORKER_QUERY_SECONDS"] = "2"  # workers poll often: the tests wait on them
    try:
        state = up(state_dir, devices=DEVICES, pool=POOL)
    finally:
        os.environ.pop("PREFECT_WORKER_QUERY_SECONDS") if saved is None else os.environ.update(
            PREFECT_WORKER_QUERY_SECONDS=saved
        )
    try:
        deploy = _prefect("--no-prompt", "deploy", "--prefect-file", "deployments/prefect.yaml", "--all", state=state)
        assert deploy.returncode == 0, deploy.stdout + deploy.stderr
        yield state
    finally:
        down(state_dir)
        shutil.rmtree(state_dir, ignore_errors=True)


@pytest.fixture()
def on_cluster(cluster: ClusterState) -> Iterator[ClusterState]:
    """In-process API reads (tests/prefect_api.py) go to the cluster's server."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: cluster.api_url}):
        yield cluster


def _prefect(*args: str, state: ClusterState) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PREFECT_API_URL=state.api_url, DISTILL_REPO=str(ROOT), HF_HUB_OFFLINE="1")
    return subprocess.run([PREFECT, *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)


def _trigger(state: ClusterState, *params: str) -> str:
    """`prefect deployment run 'distill-config-file/tiny'` with parameters; the new flow run's id."""
    args = [arg for param in params for arg in ("--param", param)]
    triggered = _prefect("deployment", "run", "distill-config-file/tiny", *args, state=state)
    assert triggered.returncode == 0, triggered.stdout + triggered.stderr
    return re.search(r"UUID: ([0-9a-f-]{36})", triggered.stdout).group(1)


def _wait(flow_run_ids: list[str]) -> list:
    runs = prefect_api.poll(
        lambda: [prefect_api.flow_run(run_id) for run_id in flow_run_ids],
        lambda runs: all(run.state.type.value in FINAL for run in runs),
        RUN_TIMEOUT_S,
        interval=3,
    )
    return runs


def _chain(flow_run_id: str) -> tuple[object, dict[str, str]]:
    """The progressive_distillation subflow run the deployment's flow run started, and its task runs' states."""
    [chain] = prefect_api.child_flow_runs(flow_run_id)
    return chain, {run.name: run.state.name for run in prefect_api.task_runs(chain.id)}


def _worker_logs(state: ClusterState) -> str:
    return "\n".join(Path(p.log).read_text(errors="replace")[-3000:] for p in state.processes if "worker" in p.name)


def _processes_in_groups(groups: set[int]) -> list[int]:
    """Live processes in these process groups (each process `up` starts leads one: its children are in it)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) in groups and fields[0] not in ("Z", "X"):
            found.append(int(stat.parent.name))
    return found


def _listening(port: int) -> bool:
    """Something accepts connections on 127.0.0.1:port (a closed port may stay unbindable in TIME_WAIT for a
    minute; what matters is that nothing listens)."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except OSError:
        return False
    return True


def _check_registered(state: ClusterState) -> None:
    """The deployments carry the intended entrypoint, parameters, pool, schedule and pull step."""
    deployments = prefect_api.deployments()
    assert {"tiny", "quickstart-nightly"} <= set(deployments)
    tiny, nightly = deployments["tiny"], deployments["quickstart-nightly"]
    assert tiny.entrypoint == "flows/progressive.py:distill_config_file"
    assert tiny.parameters == {"config_path": "configs/tiny.yaml"} and tiny.work_pool_name == POOL
    assert nightly.parameters == {"config_path": "configs/quickstart.yaml"}
    [schedule] = nightly.schedules
    assert schedule.schedule.cron == "0 2 * * *" and schedule.active is False
    assert tiny.pull_steps[0]["prefect.deployments.steps.set_working_directory"]["directory"] == str(ROOT)


def _shared_teacher_config(path: Path, artifact_root: Path, student_layers: int) -> Path:
    """tiny.yaml's data and teacher (4 steps), one stage distilling (prediction layer only, 4 steps) a student of
    `student_layers` layers, no augmentation, baseline or exports: two of these share the teacher stage and its
    evaluation, and each has its own student stages."""
    raw = yaml.safe_load(TINY.read_text())
    raw["artifact_root"] = str(artifact_root)
    raw.pop("augmentation")
    raw["export"] = None
    raw["teacher"]["training"].update(max_steps=4, logging_steps=2, save_steps=100)
    stage = raw["stages"][0]
    stage.update(name=f"student-{student_layers}l", baseline=False)
    stage["student"]["fresh"]["num_layers"] = student_layers
    stage["intermediate_layer"] = None  # one training step per student is enough to show what is shared
    stage["prediction_layer"]["training"].update(max_steps=4, logging_steps=2, save_steps=100)
    raw["stages"] = [stage]
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.timeout(RUN_TIMEOUT_S + 300)
def test_two_workers_share_two_runs_and_compute_their_teacher_once(on_cluster: ClusterState, tmp_path: Path) -> None:
    cluster = on_cluster
    _check_registered(cluster)
    artifacts = tmp_path / "artifacts"
    configs = [_shared_teacher_config(tmp_path / f"student-{n}.yaml", artifacts, n) for n in (1, 2)]
    flow_run_ids = [_trigger(cluster, f"config_path={config}") for config in configs]
    runs = _wait(flow_run_ids)
    assert [run.state.type.value for run in runs] == ["COMPLETED"] * 2, _worker_logs(cluster)

    # Both were queued before either finished, so with `--limit 1` the worker running one could not take
    # the other: each worker ran one (the worker records its name on the flow run). Whether they also ran
    # at the same moment depends on when the second worker polls on a loaded machine: not asserted.
    assert max(run.created for run in runs) < min(run.end_time for run in runs)
    workers = [run.labels["prefect.worker.name"] for run in runs]
    assert sorted(workers) == sorted(cluster.workers), workers
    # Each run saw its own worker's device.
    chains = [_chain(run_id) for run_id in flow_run_ids]
    for run, (chain, _) in zip(runs, chains, strict=True):
        device = DEVICES[cluster.workers.index(run.labels["prefect.worker.name"])]
        lines = [line for line in prefect_api.flow_run_logs(chain.id) if line.startswith("devices: ")]
        assert lines == [f"devices: CUDA_VISIBLE_DEVICES={device}, 0 GPU(s) visible"], lines

    # The stages both runs share (teacher fine-tune, teacher evaluation) were computed by one run and found
    # Cached by the other; each run's own student stages were computed by it.
    (_, states_a), (_, states_b) = chains
    shared = set(states_a) & set(states_b)
    assert {"finetune-teacher"} < shared, (states_a, states_b)
    for name in shared:
        assert sorted([states_a[name], states_b[name]]) == ["Cached", "Completed"], (name, states_a, states_b)
    own = (set(states_a) | set(states_b)) - shared
    assert own and all((states_a | states_b)[name] == "Completed" for name in own), (states_a, states_b)
    assert len(list((artifacts / "finetune_teacher").iterdir())) == 1  # one build of the teacher


@pytest.mark.timeout(TEST_TIMEOUT_S)  # the first user of tiny_chain_run starts its server and runs the chain
def test_tiny_deployment_reruns_the_finished_chain_from_cache(
    on_cluster: ClusterState, tiny_chain_run: TinyChainRun
) -> None:
    artifacts = tiny_chain_run.artifact_root
    flow_run_id = _trigger(on_cluster, f"artifact_root={artifacts}")
    [run] = _wait([flow_run_id])
    assert run.state.type.value == "COMPLETED", _worker_logs(on_cluster)
    # Every stage came from the cache; only the report (a new one, named after this flow run) was written.
    chain, states = _chain(flow_run_id)
    assert len(states) == len(tiny_chain_run.summary["stages"]) + 1, states
    stages = {name: state for name, state in states.items() if not name.startswith("report-")}
    assert stages == dict.fromkeys(stages, "Cached"), states
    rows = len(tiny_chain_run.summary["leaderboard"])  # 5 models and the final student's 2 exports
    assert len((artifacts / "runs" / chain.name / LEADERBOARD_CSV).read_text().splitlines()) == 1 + rows


@pytest.mark.timeout(400)
def test_down_stops_what_up_started_and_the_flow_runs_in_flight(on_cluster: ClusterState, tmp_path: Path) -> None:
    """Last in this module: the cluster is gone afterwards (the fixture's own `down` then finds nothing).

    Two runs in flight, one per worker; one worker then dies (SIGKILL) and leaves its run behind. Flow runs
    lead their own sessions, so only the DISTILL_CLUSTER marker in their environment leads `down` to them."""
    cluster = on_cluster
    ports = [cluster.postgres_port, cluster.server_port]
    assert all(running(process) for process in cluster.processes)
    recorded_groups = {process.pid for process in cluster.processes}
    flow_run_ids = [_trigger(cluster, f"artifact_root={tmp_path / f'artifacts-{i}'}") for i in (1, 2)]
    runs = prefect_api.poll(  # fresh artifact roots: each run trains its teacher for a while
        lambda: [prefect_api.flow_run(run_id) for run_id in flow_run_ids],
        lambda runs: all(run.state.type.value in ("RUNNING", *FINAL) for run in runs),
        240,
        interval=1,
    )
    assert [run.state.type.value for run in runs] == ["RUNNING"] * 2, _worker_logs(cluster)
    # The flow runs carry the marker (inherited from their worker) and sit outside every recorded group.
    assert len(marked_processes(f"{MARKER_ENV}={cluster.marker}", exclude_groups=recorded_groups)) >= 2
    dead = next(p for p in cluster.processes if p.name == runs[0].labels["prefect.worker.name"])
    os.kill(dead.pid, signal.SIGKILL)  # a worker that died: nothing but `down` will stop its flow run
    assert not prefect_api.poll(lambda: running(dead), lambda alive: not alive, 10, interval=0.1)

    started = time.monotonic()
    stopped = down(Path(cluster.state_dir))
    took = time.monotonic() - started
    names = sorted(p.name for p in cluster.processes if p is not dead)
    assert sorted(name for name in stopped if not name.startswith("pid ")) == names, stopped
    assert any(name.startswith("pid ") for name in stopped), stopped  # the flow runs, found by their marker
    assert not any(running(process) for process in cluster.processes)
    assert _processes_in_groups(recorded_groups) == []  # nor their children
    assert marked_processes(f"{MARKER_ENV}={cluster.marker}") == []  # nor any flow run or its children
    assert not any(_listening(port) for port in ports)
    assert down(Path(cluster.state_dir)) == []  # idempotent
    print(f"down took {took:.1f} s: {stopped}")


@pytest.mark.timeout(300)
def test_an_interrupted_up_leaves_no_process_behind() -> None:
    """`up` killed (SIGTERM) once PostgreSQL and the server are running: it stops them before it exits."""
    _skip_without_postgres()
    state_dir = _state_dir()
    try:
        command = [sys.executable, "-m", "deployments.local_cluster", "up", "--workers", "1"]
        command += ["--state-dir", str(state_dir)]
        process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        state = prefect_api.poll(
            lambda: ClusterState.load(state_dir),
            lambda state: state is not None and state.api_url is not None,  # server healthy; workers next
            240,
        )
        assert state is not None and state.api_url, process.communicate(timeout=60)[0]
        process.terminate()
        output = process.communicate(timeout=120)[0]
        assert process.returncode != 0, output
        state = ClusterState.load(state_dir)
        assert {"postgres", "server"} <= {p.name for p in state.processes}
        assert not any(running(p) for p in state.processes), output
        assert _processes_in_groups({p.pid for p in state.processes}) == []
        assert not any(_listening(port) for port in (state.postgres_port, state.server_port))
    finally:
        down(state_dir)
        shutil.rmtree(state_dir, ignore_errors=True)


def test_stop_reports_only_what_it_stopped(monkeypatch: pytest.MonkeyPatch) -> None:
    """`stop` names a process only once it is gone: one that outlives SIGKILL (here: signals that never
    arrive) is not reported stopped."""
    from deployments import processes

    sleeper = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        process = processes.Process("sleep", sleeper.pid, processes.start_time(sleeper.pid), [], "")
        monkeypatch.setattr(processes, "KILL_WAIT_S", 0.5)
        with monkeypatch.context() as patched:
            patched.setattr(processes, "_signal", lambda process, sig: None)
            assert processes.stop([process], grace=0.5) == []
        assert running(process)
        assert processes.stop([process], grace=5) == ["sleep"]
        assert processes.stop([process], grace=5) == []  # already gone
    finally:
        sleeper.kill()
        sleeper.wait()


@pytest.mark.timeout(300)
def test_postgres_retries_once_on_a_taken_port(monkeypatch: pytest.MonkeyPatch) -> None:
    """free_port's port can be taken before PostgreSQL binds it: `up` then starts it once more on another."""
    from deployments import local_cluster

    _skip_without_postgres()
    state_dir = _state_dir()
    taken = socket.socket()
    try:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        ports = iter([taken.getsockname()[1], local_cluster.free_port()])
        monkeypatch.setattr(local_cluster, "free_port", lambda: next(ports))
        (state_dir / "logs").mkdir()
        state = ClusterState(str(state_dir), marker="test-retry")
        local_cluster._start_postgres(state, {k: v for k, v in os.environ.items() if not k.startswith("PG")})
        first, second = state.processes
        assert not running(first) and running(second)
        assert state.postgres_port != taken.getsockname()[1] and _listening(state.postgres_port)
        assert "address already in use" in Path(first.log).read_text().lower()
    finally:
        taken.close()
        down(state_dir)
        shutil.rmtree(state_dir, ignore_errors=True)
