"""Abandoning a render that nobody will look at.

The viewer asks for a new camera while the last one is still rendering; finishing the old frame only
delays the new one. A renderer calls `check()` between its stages (after projecting, after sorting,
between marching rounds); inside `interruptible(stale)`, `check()` raises `RenderInterrupted` once
`stale()` is true. Outside such a block `check()` does nothing, so offline renders are unaffected.
"""

from __future__ import annotations

import contextlib
import contextvars
from typing import Callable, Iterator

_STALE: contextvars.ContextVar[Callable[[], bool] | None] = contextvars.ContextVar("render_stale", default=None)


class RenderInterrupted(Exception):
    """Raised inside `interruptible` when the render in progress is no longer wanted."""


def check() -> None:
    """Raise `RenderInterrupted` if the enclosing `interruptible` block says the render is stale."""
    stale = _STALE.get()
    if stale is not None and stale():
        raise RenderInterrupted()


@contextlib.contextmanager
def interruptible(stale: Callable[[], bool]) -> Iterator[None]:
    """Renders inside this block stop at their next `check()` once `stale()` returns true."""
    token = _STALE.set(stale)
    try:
        yield
    finally:
        _STALE.reset(token)
