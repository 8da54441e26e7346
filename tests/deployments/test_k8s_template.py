"""deployments/k8s/base-job-template.json: a real Prefect server accepts it for a kubernetes work pool (and
rejects a broken one: its validation is exercised), and Prefect's own templating renders the GPU request, the
node selector and the artifact volume where Kubernetes reads them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "deployments" / "k8s" / "base-job-template.json"
PREFECT = str(Path(sys.executable).parent / "prefect")


def _create_pool(name: str, template: Path, api_url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PREFECT, "work-pool", "create", name, "--type", "kubernetes", "--base-job-template", str(template)],
        env=dict(os.environ, PREFECT_API_URL=api_url),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _render(values: dict[str, Any]) -> dict[str, Any]:
    """The job manifest a worker would submit for a deployment's job variables: Prefect's own path from a pool's
    template and a run's values (variable defaults, then `apply_values`; placeholders left without a value are
    dropped). prefect-kubernetes' KubernetesWorkerJobConfiguration runs this same method."""
    import asyncio

    from prefect.workers.base import BaseJobConfiguration

    class ManifestConfiguration(BaseJobConfiguration):
        job_manifest: dict[str, Any]

    template = json.loads(TEMPLATE.read_text())
    configuration = asyncio.run(ManifestConfiguration.from_template_and_values(template, values))
    return configuration.job_manifest


def test_a_kubernetes_pool_accepts_the_template_and_rejects_a_broken_one(prefect_server: str, tmp_path: Path) -> None:
    from prefect.client.orchestration import get_client

    created = _create_pool("distill-k8s", TEMPLATE, prefect_server)
    assert created.returncode == 0, created.stdout + created.stderr
    with get_client(sync_client=True) as client:
        pool = client.read_work_pool("distill-k8s")
    assert pool.type == "kubernetes"
    assert pool.base_job_template == json.loads(TEMPLATE.read_text())  # stored as written: it round-trips

    broken = json.loads(TEMPLATE.read_text())
    broken["job_configuration"]["job_manifest"]["spec"]["template"]["spec"]["priorityClassName"] = "{{ priority }}"
    (tmp_path / "broken.json").write_text(json.dumps(broken))
    rejected = _create_pool("distill-k8s-broken", tmp_path / "broken.json", prefect_server)
    assert rejected.returncode != 0
    assert "priority" in rejected.stdout + rejected.stderr  # the server names the placeholder without a variable


def test_job_variables_land_where_kubernetes_reads_them() -> None:
    values = {
        "image": "registry.example/distill:1",
        "gpu_count": 2,
        "node_selector": {"cloud.google.com/gke-accelerator": "nvidia-l4"},
        "artifact_volume_claim": "distill-runs",
        "artifact_mount_path": "/mnt/artifacts",
    }
    pod = _render(values)["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert container["image"] == "registry.example/distill:1"
    assert container["resources"]["limits"] == {"nvidia.com/gpu": 2}  # cpu/memory unset: dropped, not empty
    assert container["resources"]["requests"] == {"nvidia.com/gpu": 2}
    assert pod["nodeSelector"] == {"cloud.google.com/gke-accelerator": "nvidia-l4"}
    [volume] = pod["volumes"]
    assert volume["persistentVolumeClaim"] == {"claimName": "distill-runs"}
    assert container["volumeMounts"] == [{"name": volume["name"], "mountPath": "/mnt/artifacts"}]


def test_defaults_give_each_run_one_gpu_on_a_gpu_node_and_the_shared_volume() -> None:
    pod = _render({})["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert pod["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert pod["volumes"][0]["persistentVolumeClaim"]["claimName"] == "distill-artifacts"
    assert container["volumeMounts"][0]["mountPath"] == "/artifacts"


@pytest.mark.parametrize("variable", ["gpu_count", "node_selector", "tolerations", "artifact_volume_claim",
                                      "artifact_mount_path"])  # fmt: skip
def test_every_added_variable_is_documented_with_a_default(variable: str) -> None:
    schema = json.loads(TEMPLATE.read_text())["variables"]["properties"][variable]
    assert schema["description"] and "default" in schema
