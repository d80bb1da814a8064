"""Validation sweeps that chose the recipes (``benchmarks/RESULTS.md``, sections 2-3 and 7c)."""
