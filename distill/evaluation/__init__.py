"""Scoring models: running them over a dataset (`evaluate`), the metrics (`metrics`), the shared scorer
(`scorer`, one label rule for the evaluate stage and `distill evaluate`) and their cost (`profiling`)."""
