"""Benchmark harness for the token endpoint: ``python -m benchmarks`` (see README.md)."""
