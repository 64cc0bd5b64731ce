"""Benchmarks behind `neuralframe bench NAME [--json]`: each module has `run(...) -> dict` (the measures, one
JSON-able dict: what --json prints) and `print_summary(result)` (what the command prints without --json).

Every speed claim is a ratio measured side by side in one run, with the absolute figures beside it.
"""
