"""A bounded queue between two pipeline nodes, with a `block` or `latest` policy.

- `block` (offline work): a full queue makes the producer wait; nothing is lost.
- `latest` (live work): the queue holds one frame and a new frame replaces an unread one; the number
  replaced is counted as dropped.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Any

from neuralframe.errors import InputError
from neuralframe.streaming.frame import Frame

POLICIES = ("block", "latest")


class Cancelled(Exception):
    """Raised by `put` and `get` on a cancelled edge (and by `put` on a closed one)."""


EOS = object()  # what `get` returns once the producer closed the edge and it is empty


class Edge:
    """A bounded queue between two nodes, with a `block` or `latest` policy. No polling: waiters sleep
    on a condition that `put`, `get`, `close` and `cancel` all notify."""

    def __init__(self, capacity: int, policy: str):
        if policy not in POLICIES:
            raise InputError(f"unknown queue policy '{policy}': use block or latest")
        self.policy = policy
        self.capacity = 1 if policy == "latest" else max(1, int(capacity))
        self.dropped = 0
        self._items: deque[Frame] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self._cancelled = False

    def put(self, frame: Frame) -> int:
        """Queue a frame; returns how many older frames it replaced. Raises `Cancelled` (also on an edge
        closed from outside: the pipeline ended a stuck producer's stream without it)."""
        with self._cond:
            if self._closed:
                raise Cancelled
            replaced = 0
            if self.policy == "latest":
                while len(self._items) >= self.capacity:
                    self._items.popleft()
                    replaced += 1
                self.dropped += replaced
            else:
                while len(self._items) >= self.capacity and not self._cancelled:
                    self._cond.wait()
            if self._cancelled:
                raise Cancelled
            self._items.append(frame)
            self._cond.notify_all()
            return replaced

    def get(self) -> Any:
        """The next frame, or `EOS` once the producer closed and the queue is empty. Raises `Cancelled`."""
        with self._cond:
            while not self._items and not self._closed and not self._cancelled:
                self._cond.wait()
            if self._cancelled:
                raise Cancelled
            if self._items:
                frame = self._items.popleft()
                self._cond.notify_all()
                return frame
            return EOS

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def cancel(self) -> int:
        """Wake every waiter for good; returns the number of frames left unread."""
        with self._cond:
            self._cancelled = True
            left = len(self._items)
            self._items.clear()
            self._cond.notify_all()
            return left
