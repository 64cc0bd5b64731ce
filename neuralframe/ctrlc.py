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

SIGTERM (what a service manager, a container runtime or `kill` sends) kills a Python process at once by
default, leaving half-written temporary files. Inside `graceful_sigterm()` (the command line's `main`) it
raises `Terminated` instead, a `KeyboardInterrupt`, so every place that stops gracefully on Ctrl-C (a
pipeline finalising the frames so far, a Ray job shutting its cluster down) does the same for SIGTERM; the
command then exits 143 instead of 130. Inside `deferred()` a SIGTERM is recorded and raised at a checkpoint
like a Ctrl-C.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Iterator

_pending: list[type[KeyboardInterrupt]] = []  # the interrupts recorded inside `deferred()`, oldest first
_active = False


class Terminated(KeyboardInterrupt):
    """A SIGTERM, taken like a Ctrl-C (see the module docstring); a command ends with exit code 143."""

    exit_code = 143


def _record(signum, frame) -> None:
    _pending.append(Terminated if signum == signal.SIGTERM else KeyboardInterrupt)


def _terminate(signum, frame) -> None:
    raise Terminated


def pending() -> int:
    """Ctrl-C presses (and SIGTERMs) recorded and not yet raised."""
    return len(_pending)


def checkpoint() -> None:
    """On the main thread, raise one recorded interrupt: `KeyboardInterrupt`, or `Terminated` for a SIGTERM
    (no-op elsewhere)."""
    if _pending and threading.current_thread() is threading.main_thread():
        raise _pending.pop(0)


@contextlib.contextmanager
def graceful_sigterm() -> Iterator[None]:
    """Inside: SIGTERM raises `Terminated` on the main thread instead of killing the process. Off the main
    thread, or where SIGTERM is ignored or already handled by someone else, it changes nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)
    if previous is not signal.SIG_DFL:
        yield
        return
    signal.signal(signal.SIGTERM, _terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Inside: Ctrl-C (and a graceful SIGTERM) raises only at `checkpoint()` (see the module docstring). Nested
    blocks share the outer one; off the main thread, or where Ctrl-C is ignored (a background job), it changes
    nothing for Ctrl-C."""
    global _active
    if _active or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {}
    sigint = signal.getsignal(signal.SIGINT)
    if sigint is not signal.SIG_IGN and sigint is not None:
        previous[signal.SIGINT] = sigint
    if signal.getsignal(signal.SIGTERM) is _terminate:
        previous[signal.SIGTERM] = _terminate
    if not previous:
        yield
        return
    for signum in previous:
        signal.signal(signum, _record)
    _active = True
    _pending.clear()
    try:
        yield
    except BaseException:
        _active = False
        _pending.clear()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        raise
    _active = False
    for signum, handler in previous.items():
        signal.signal(signum, handler)
    if _pending:
        first = _pending[0]
        _pending.clear()
        raise first
