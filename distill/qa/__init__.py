"""Extractive question answering: window features and span post-processing."""
