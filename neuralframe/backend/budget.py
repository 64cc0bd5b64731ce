"""Training budgets shared by every `neuralframe train ...`: a time and/or step budget, counted in total
across resumed runs; training stops at whichever is spent first."""

from __future__ import annotations

from neuralframe.errors import InputError


def check_budget(seconds: float | None, steps: int | None, default_seconds: float) -> tuple[float | None, int | None]:
    """The budget to use: `default_seconds` when neither is given; a non-positive one is a user error."""
    if seconds is None and steps is None:
        seconds = default_seconds
    if (seconds is not None and seconds <= 0) or (steps is not None and steps <= 0):
        raise InputError("the training budget (--seconds / --steps) must be positive")
    return seconds, steps


def budget_fraction(elapsed: float, step: int, seconds: float | None, steps: int | None) -> float:
    """How much of the budget is spent (>= 1.0: done)."""
    p = 0.0
    if seconds is not None:
        p = max(p, elapsed / seconds)
    if steps is not None:
        p = max(p, step / steps)
    return p
