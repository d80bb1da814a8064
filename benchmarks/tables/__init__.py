"""Scripts that produce the tables of ``benchmarks/RESULTS.md``."""
