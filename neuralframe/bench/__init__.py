"""Benchmarks behind `neuralframe bench NAME --json`: each module has `run(...) -> dict`.

Every speed claim is a ratio measured side by side in one run, with the absolute figures beside it.
"""
