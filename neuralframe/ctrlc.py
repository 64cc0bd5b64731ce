"""Ctrl-C that lands only where the code can take it.

Python raises `KeyboardInterrupt` at whatever bytecode the main thread runs when SIGINT arrives. Inside
a library with threads of its own and C++ callbacks (Ray), that can be anywhere: in a fork handler of
the `logging` module (the exception is swallowed there and logging's lock is never released, so the next
log call on any thread hangs), in the middle of starting a cluster, in a callback from C++. A Ray job
that got Ctrl-C in its first seconds was seen to hang, to die of SIGSEGV or to exit silently, leaving
its session folder behind.

    with ctrlc.deferred():        # Ctrl-C is recorded, not raised ...
        ...
        ctrlc.checkpoint()        # ... until the main thread reaches a checkpoint

Outside `deferred()`, `checkpoint()` does nothing and Ctrl-C raises as usual. A Ctrl-C recorded but not
taken by the end of the block raises there (once the block's own clean-up is done). Each Ctrl-C is one
`KeyboardInterrupt`, so "once stops gracefully, twice cancels" still works at checkpoints.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Iterator

_pending = 0
_active = False


def _record(signum, frame) -> None:
    global _pending
    _pending += 1


def pending() -> int:
    """Ctrl-C presses recorded and not yet raised."""
    return _pending


def checkpoint() -> None:
    """On the main thread, raise `KeyboardInterrupt` for one recorded Ctrl-C (no-op elsewhere)."""
    global _pending
    if _pending and threading.current_thread() is threading.main_thread():
        _pending -= 1
        raise KeyboardInterrupt


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Inside: Ctrl-C raises only at `checkpoint()` (see the module docstring). Nested blocks share the
    outer one; off the main thread, or where Ctrl-C is ignored (a background job), it changes nothing."""
    global _active, _pending
    if _active or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)
    if previous is signal.SIG_IGN or previous is None:
        yield
        return
    signal.signal(signal.SIGINT, _record)
    _active, _pending = True, 0
    try:
        yield
    except BaseException:
        _active, _pending = False, 0
        signal.signal(signal.SIGINT, previous)
        raise
    _active = False
    signal.signal(signal.SIGINT, previous)
    if _pending:
        _pending = 0
        raise KeyboardInterrupt
