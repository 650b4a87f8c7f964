"""Benchmarks: runnable as python -m bench.NAME; each prints one markdown table."""
