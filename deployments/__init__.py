"""Prefect deployments of the distillation flow: `prefect.yaml` for work pools, `serve.py` for one machine."""
