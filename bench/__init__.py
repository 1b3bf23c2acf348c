"""Benchmarks: each writes bench/results/<name>.md with the command that made it."""
