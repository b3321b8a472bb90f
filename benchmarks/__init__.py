"""Benchmarks of medops against the raw libraries it builds on; run with `python -m benchmarks`."""
