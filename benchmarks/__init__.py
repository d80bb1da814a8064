"""Benchmarks of videodd: run from the repository root as modules (``python -m benchmarks.tables.NAME``)."""
