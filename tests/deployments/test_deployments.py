"""`distill serve`'s deployments (deployments/serve.py).

The documented operator path (deploy prefect.yaml, process workers, triggered runs) runs on a PostgreSQL-backed
cluster in tests/deployments/test_local_cluster.py.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_serve_builds_one_deployment_per_config_with_its_schedule() -> None:
    from deployments.serve import build_deployments

    tiny, quickstart = build_deployments([ROOT / "configs/tiny.yaml", ROOT / "configs/quickstart.yaml"], "0 2 * * *")
    assert (tiny.name, quickstart.name) == ("tiny", "quickstart")
    assert tiny.parameters == {"config_path": str(ROOT / "configs/tiny.yaml")}
    assert tiny.schedules[0].schedule.cron == "0 2 * * *"
