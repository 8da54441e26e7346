"""Stage bodies: what each pipeline stage computes, with no orchestration.

`tasks/` wraps each of these in a Prefect task (caching, retries, artifacts, logging).
"""
