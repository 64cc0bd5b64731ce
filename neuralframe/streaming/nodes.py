"""The three contracts of a pipeline node (`Source`, `Stage`, `Sink`) and a stage from a plain function.

`neuralframe.streaming.pipeline` runs them, each on its own thread; its module docstring says what happens
on a failure, a stop, a Ctrl-C or SIGTERM, and to a node stuck in a call (`stop_timeout_s`).
"""

from __future__ import annotations

from typing import Callable

from neuralframe.streaming.frame import Frame, StreamInfo


class Source:
    """Produces frames. `open()` runs on the caller's thread (so a camera that will not open fails
    before any thread starts); `read()` runs on the source's worker thread and returns None at the
    end of the stream; `close()` always runs once. A source whose stream ended early for a reason the
    user should know (a camera unplugged) sets `end_reason`; the report carries it."""

    name = "source"
    end_reason: str | None = None
    stop_timeout_s: float | None = 5.0  # how long a read() may go on after a stop (pipeline.py); None: wait

    def open(self) -> StreamInfo:
        raise NotImplementedError

    def read(self) -> Frame | None:
        raise NotImplementedError

    def close(self) -> None:
        pass


class Stage:
    """Transforms frames on its own worker thread. `process()` may return None to filter a frame out
    (counted in the report). `setup()` runs on the caller's thread before any frame and returns the
    stream info after this stage (a stage that resizes changes it)."""

    name = "stage"
    stop_timeout_s: float | None = None  # how long a process() may go on after a stop (pipeline.py): wait

    def setup(self, info: StreamInfo) -> StreamInfo:
        return info

    def process(self, frame: Frame) -> Frame | None:
        raise NotImplementedError

    def reset(self) -> None:
        """Forget the per-stream state (recurrent state, caches, banks) so the next frame starts a new stream
        with the models still loaded; stateless stages have nothing to do."""

    def teardown(self) -> None:
        pass


class Sink:
    """Consumes frames. `open()` runs on the caller's thread (an unwritable path fails early);
    `write()` on the sink's worker thread; then exactly one of `close()` (success: finalise the output)
    or `abort()` (failure or cancellation: remove anything partial)."""

    name = "sink"
    stop_timeout_s: float | None = None  # how long a write() may go on after a stop (pipeline.py): wait

    def open(self, info: StreamInfo) -> None:
        pass

    def write(self, frame: Frame) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass

    @property
    def output(self) -> str | None:
        """Where the result went (a path), for reports."""
        return None


class FunctionStage(Stage):
    """A stage from a plain function `Frame -> Frame | None`."""

    def __init__(self, fn: Callable[[Frame], Frame | None], name: str | None = None):
        self.fn = fn
        self.name = name or getattr(fn, "__name__", "stage")

    def process(self, frame: Frame) -> Frame | None:
        return self.fn(frame)
