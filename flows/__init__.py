"""Prefect flows: the order of stages and what passes between them. No maths here."""
