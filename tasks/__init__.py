"""Prefect tasks: one per pipeline stage, each a thin wrapper over a `distill.stages` body.

The wrapper adds what orchestration owns: content-keyed caching, retries that resume,
logs and artifacts for the Prefect UI.
"""
