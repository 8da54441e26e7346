"""The `distill` command line. It sits above every layer: `run` drives the Prefect flow,
while `score`, `evaluate` and `validate` call the core package directly."""
