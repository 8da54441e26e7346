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
