"""Pipelines: the stages wired together (the quickstart; later the daily DAGs)."""
