"""Serve distill runs from one long-lived process on a single machine: no work pool, no worker.

Each config becomes a deployment of `distill-config-file` named after the run, optionally
on a cron schedule; the process polls the Prefect server and runs what is due (or what is
triggered with `prefect deployment run 'distill-config-file/<name>'`). Ctrl-C stops it.

    python deployments/serve.py configs/quickstart.yaml --cron "0 2 * * *"
    distill serve configs/tiny.yaml configs/quickstart.yaml --cron "0 2 * * *"
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from deployments.crashes import enable_heartbeats
from distill.config import load_config

# Servers this project starts listen on the loopback interface only. Prefect's temporary API server
# (used when PREFECT_API_URL is unset) binds 127.0.0.1 by itself; these make the rest explicit: the
# runner's optional webserver under `serve` (PREFECT_RUNNER_SERVER_ENABLE; Prefect's default host,
# 'localhost', is whatever the hosts file says) and Prefect's API server host, for any server a child
# process starts from this environment.
LOOPBACK_SETTINGS = {"PREFECT_SERVER_API_HOST": "127.0.0.1", "PREFECT_RUNNER_SERVER_HOST": "127.0.0.1"}


def use_loopback() -> None:
    """Default every server host setting to 127.0.0.1 (an explicit setting wins); call before importing Prefect."""
    for name, value in LOOPBACK_SETTINGS.items():
        os.environ.setdefault(name, value)


def build_deployments(configs: list[str | Path], cron: str | None = None) -> list[Any]:
    """One runner deployment per config file (validated now, read again at every run)."""
    from flows.progressive import distill_config_file

    deployments = []
    for path in configs:
        config = load_config(path)  # a bad config fails here, not at 2 a.m.
        deployments.append(
            distill_config_file.to_deployment(
                name=config.name,
                cron=cron,
                parameters={"config_path": str(Path(path).resolve())},
                description=f"distill run '{config.name}' from {path}",
                tags=["distill"],
            )
        )
    return deployments


def serve_configs(configs: list[str | Path], cron: str | None = None) -> None:
    from prefect import serve

    serve(*build_deployments(configs, cron))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("configs", nargs="+", help="YAML run configs")
    parser.add_argument("--cron", help="schedule, e.g. '0 2 * * *' (UTC); none: run only when triggered")
    args = parser.parse_args()
    use_loopback()
    enable_heartbeats()  # before Prefect is imported, so the served runs send them
    serve_configs(args.configs, args.cron)


if __name__ == "__main__":
    main()
