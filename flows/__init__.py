"""Prefect flows: ``retention_run`` (daily) wires the stages together."""
