"""Security defaults: no checkpoint code or pickle weights unless asked, secrets never readable, loopback servers."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import torch

from distill.config import parse_config
from distill.errors import ModelError
from distill.models import loading
from distill.preflight import preflight
from distill.store.artifacts import StageDirectory
from tests.cli.runner import cli

SECRETS = ("hunter2", "s3cr3t-token")


def run_config(teacher: Path | str, **teacher_options: Any) -> dict[str, Any]:
    """A small valid run: generated QA data, the tiny teacher, one student of its first layer."""
    return {
        "name": "secure",
        "data": {
            "task": "qa",
            "train": {"path": "synthetic:qa", "split": "train"},
            "eval": {"path": "synthetic:qa", "split": "validation"},
        },
        "teacher": {"model": str(teacher), **teacher_options},
        "stages": [{"name": "small", "student": {"layers": [0]}}],
    }


# --------------------------------------------------------------------------- (a) trust_remote_code


def _spy_loads(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Record the trust_remote_code every config/tokenizer/model load passes to transformers."""
    seen: list[bool] = []
    real = loading._from_pretrained

    def spy(loader: Any, ref: Any, what: str, **kwargs: Any) -> Any:
        seen.append(kwargs.get("trust_remote_code"))
        return real(loader, ref, what, **kwargs)

    monkeypatch.setattr(loading, "_from_pretrained", spy)
    monkeypatch.setattr(loading, "_WARNED_REMOTE_CODE", set())
    return seen


def test_trust_remote_code_is_off_unless_set_and_then_logged(
    tiny_qa_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    seen = _spy_loads(monkeypatch)
    with caplog.at_level(logging.WARNING, logger="distill"):
        preflight(parse_config({**run_config(tiny_qa_model), "artifact_root": str(tmp_path)}))
    assert seen and not any(seen)
    assert not [r for r in caplog.records if "trust_remote_code" in r.getMessage()]

    seen.clear()
    config = run_config(tiny_qa_model, trust_remote_code=True)
    with caplog.at_level(logging.WARNING, logger="distill"):
        preflight(parse_config({**config, "artifact_root": str(tmp_path)}))
    assert seen and all(seen)
    warnings = [r.getMessage() for r in caplog.records if "trust_remote_code" in r.getMessage()]
    # Once per model, though its config, tokenizer and weights are loaded separately.
    assert warnings == [
        f"trust_remote_code is on for model '{tiny_qa_model}': code shipped with the checkpoint will run"
    ]


# --------------------------------------------------------------------------- (b) pickle weights


def test_pickle_weights_load_only_with_the_option(tiny_qa_model: Path, tmp_path: Path) -> None:
    from safetensors.torch import load_file

    pickled = tmp_path / "pickled"
    shutil.copytree(tiny_qa_model, pickled)
    torch.save(load_file(pickled / "model.safetensors"), pickled / "pytorch_model.bin")
    (pickled / "model.safetensors").unlink()
    config = {**run_config(pickled), "artifact_root": str(tmp_path / "artifacts")}
    with pytest.raises(ModelError) as refused:
        preflight(parse_config(config))
    assert str(refused.value) == (
        f"model '{pickled}': no .safetensors weights in {pickled} "
        "(pickle weights load only with allow_pickle_weights: true, since they can run code)"
    )
    # Opted in, it passes (its students are saved as safetensors, like every model the run writes).
    preflight(parse_config({**config, "teacher": {"model": str(pickled), "allow_pickle_weights": True}}))


# --------------------------------------------------------------------------- (c) secrets redacted

SECRET_CONFIG = """
name: secrets
artifact_root: {artifacts}
data:
  task: qa
  train: "https://data.example.com/squad/train?access_token=${{DATA_TOKEN}}"
  eval: "https://bob:${{DATA_PASSWORD}}@data.example.com/squad/dev"
teacher: {{model: tiny-bert}}
"""


@pytest.fixture()
def secret_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DATA_PASSWORD", "hunter2")
    monkeypatch.setenv("DATA_TOKEN", "s3cr3t-token")
    path = tmp_path / "secrets.yaml"
    path.write_text(SECRET_CONFIG.format(artifacts=tmp_path / "artifacts"))
    return path


def test_validate_prints_secrets_as_stars(
    secret_config: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = cli(["validate", str(secret_config)], monkeypatch, capsys)
    assert code == 0, err
    assert not any(secret in out for secret in SECRETS)
    data = json.loads(out)["data"]
    assert data["train"]["path"] == "https://data.example.com/squad/train?access_token=***"
    assert data["eval"]["path"] == "https://***@data.example.com/squad/dev"


def test_error_lines_redact_the_value_they_quote(
    secret_config: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The eval source is a hub-style reference and the hub is offline: the error quotes it.
    code, _, err = cli(["run", str(secret_config)], monkeypatch, capsys)
    assert code == 2 and "https://***@data.example.com/squad/dev" in err, err
    assert not any(secret in err for secret in SECRETS)


@pytest.fixture(scope="module")
def config_with_secrets():  # noqa: ANN201
    url = "https://bob:hunter2@models.example.com/{}"
    return parse_config(
        {
            "name": "secrets",
            "data": {"task": "qa", "eval": "https://bob:hunter2@data.example.com/squad/dev"},
            "teacher": {"model": url.format("teacher")},
            "augmentation": {"mlm": url.format("mlm")},
            "stages": [{"name": "small", "student": {"model": url.format("student")}, "intermediate_layer": {}}],
        }
    )


def test_stage_manifests_and_flow_parameters_are_redacted(
    config_with_secrets: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import distill.stages.plan
    from flows.progressive import progressive_distillation
    from tests.stage_inputs import every_input

    # The models and data are unreachable URLs: stand-in fingerprints, since the manifests' text is under test.
    monkeypatch.setattr(distill.stages.plan, "model_fingerprint", lambda name, revision=None: "model-fingerprint")
    monkeypatch.setattr(distill.stages.plan, "data_fingerprint", lambda data: "data-fingerprint")
    inputs = every_input(config_with_secrets, "small")
    assert len(inputs) == 9  # every stage kind; export twice (fp32 and int8)
    for stage_input in inputs:
        # What tasks/stage.py hands to StageDirectory.finalize, which writes it into manifest.json.
        directory = StageDirectory(tmp_path, stage_input.kind, "key")
        directory.prepare()
        directory.finalize(config=stage_input.key_payload(), metrics={}, upstream={}, code_version="test")
        manifest = (directory.path / "manifest.json").read_text()
        assert "hunter2" not in manifest, stage_input.kind
    assert "https://***@models.example.com/teacher" in (tmp_path / "finetune_teacher/key/manifest.json").read_text()
    # Flow parameters are stored by the Prefect API and shown in its UI.
    shown = json.dumps(progressive_distillation.serialize_parameters({"config": config_with_secrets}))
    assert "hunter2" not in shown and "https://***@models.example.com/student" in shown


# --------------------------------------------------------------------------- (d) loopback servers


def test_cli_defaults_every_server_host_to_loopback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from prefect.settings import Settings

    import distill_cli.main as cli_main

    for name in ("PREFECT_SERVER_API_HOST", "PREFECT_RUNNER_SERVER_HOST"):
        monkeypatch.delenv(name, raising=False)
    seen: dict[str, str] = {}

    def command(**_: object) -> None:  # stands in for any command: what Prefect reads once a command imports it
        settings = Settings()
        seen.update(api=settings.server.api.host, runner=settings.runner.server.host)
        raise SystemExit(0)

    monkeypatch.setattr(cli_main, "app", command)
    cli([], monkeypatch, capsys)
    assert seen == {"api": "127.0.0.1", "runner": "127.0.0.1"}


def _listening_addresses(port: int) -> set[str]:
    """Local addresses of the sockets listening on `port`, from /proc/net/tcp and tcp6 (hex, as the kernel writes)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not Path(table).exists():
            continue
        for row in Path(table).read_text().splitlines()[1:]:
            local, state = row.split()[1], row.split()[3]
            address, port_hex = local.split(":")
            if state == "0A" and int(port_hex, 16) == port:  # 0A: LISTEN
                found.add(address)
    return found


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="needs Linux /proc/net/tcp")
def test_temporary_prefect_server_listens_on_loopback_only(prefect_server: str) -> None:
    # The harness starts Prefect's SubprocessASGIServer: the same temporary server `distill run` gets
    # when PREFECT_API_URL is unset. Shared with the flow tests, so it costs nothing extra in a full run.
    url = urlparse(prefect_server)
    assert url.hostname == "127.0.0.1"
    assert _listening_addresses(url.port) == {"0100007F"}  # 127.0.0.1, and no 0.0.0.0 or :: socket
