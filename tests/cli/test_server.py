"""Which server a run reports to: PREFECT_API_URL, else a live `distill ui` (found through its file), else its own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from distill_cli import server


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path))
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    return tmp_path


def test_a_set_api_url_wins_and_nothing_is_started(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")
    assert server.connect() is None
    assert os.environ["PREFECT_API_URL"] == "http://127.0.0.1:9/api"
    assert not (home / "distill-server.log").exists()


def test_a_file_left_by_a_dead_ui_server_is_ignored(home: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (home / "distill-ui.json").write_text(json.dumps({"url": "http://127.0.0.1:9", "pid": int(dead.stdout)}))
    assert server.find_ui_server() is None
    (home / "distill-ui.json").write_text("not json")
    assert server.find_ui_server() is None


def test_a_live_process_whose_server_does_not_answer_is_not_used(home: Path) -> None:
    record = {"url": f"http://127.0.0.1:{server.free_port()}", "pid": os.getpid()}
    (home / "distill-ui.json").write_text(json.dumps(record))
    assert server.find_ui_server() is None


def test_only_the_process_that_wrote_the_file_removes_it(home: Path) -> None:
    server.write_discovery(server.UiServer("http://127.0.0.1:4200"))
    assert json.loads((home / "distill-ui.json").read_text()) == {"url": "http://127.0.0.1:4200", "pid": os.getpid()}
    server.remove_discovery()
    assert not (home / "distill-ui.json").exists()
    (home / "distill-ui.json").write_text(json.dumps({"url": "http://127.0.0.1:4200", "pid": os.getpid() + 1}))
    server.remove_discovery()
    assert (home / "distill-ui.json").exists()  # another `distill ui` wrote it: not ours to remove


def test_a_taken_port_is_a_one_line_error(home: Path) -> None:
    import socket

    from distill.errors import DistillError

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(DistillError, match=f"port {port} on 127.0.0.1 is in use"):
            server.start_server(port)


def test_the_active_profile_api_url_counts_as_configured(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`prefect profile use local` / `prefect config set PREFECT_API_URL=...` write profiles.toml, not the env."""
    monkeypatch.delitem(sys.modules, "prefect.settings", raising=False)  # as in the CLI: Prefect not imported yet
    monkeypatch.delenv("PREFECT_PROFILE", raising=False)
    (home / "profiles.toml").write_text(
        'active = "local"\n\n[profiles.local]\nPREFECT_API_URL = "http://127.0.0.1:4200/api"\n\n[profiles.ephemeral]\n'
    )
    assert server.configured_api_url() == "http://127.0.0.1:4200/api"
    assert server.connect() is None
    monkeypatch.setenv("PREFECT_PROFILE", "ephemeral")
    assert server.configured_api_url() is None


def test_a_rejected_run_leaves_no_server_behind(tmp_path: Path) -> None:
    """The server starts before the input is checked (to hide its boot); a rejected input stops it."""
    config = tmp_path / "bad.yaml"
    config.write_text(
        "name: bad\nartifact_root: " + str(tmp_path / "artifacts") + "\n"
        "data: {task: classification, train: " + str(tmp_path / "missing.tsv") + ", eval: synthetic:sentiment}\n"
        "teacher: {model: tiny-bert}\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_HOME=str(tmp_path / "home"), HF_HUB_OFFLINE="1")
    process = subprocess.Popen(
        [sys.executable, "-m", "distill_cli.main", "run", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    out, err = process.communicate(timeout=300)
    assert process.returncode == 2, err
    assert "missing.tsv" in err and len(err.strip().splitlines()) == 1, err
    servers = subprocess.run(["pgrep", "-f", f"prefect_server .*--parent {process.pid}"], capture_output=True)
    assert servers.stdout == b"", "a server outlived the rejected run"
    assert (tmp_path / "home" / "distill-server.log").exists()  # one was started (and stopped)
