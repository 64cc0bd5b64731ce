"""`Source -> Stage -> ... -> Sink` on worker threads joined by bounded queues.

Each edge has a policy:
- `block` (offline work): a full queue makes the producer wait; nothing is lost.
- `latest` (live work): the queue holds one frame and a new frame replaces an unread one; the number
  replaced is counted as dropped.

The first error in any node cancels every queue (so no thread waits forever), the sink removes its
partial output, and `run()` raises a `PipelineError` naming the node. `stop()` (and Ctrl-C during
`run()`) ends the stream at the source and lets what is in flight drain into the sink, which then
finalises its output; `cancel()` drops everything and aborts the sink. Every frame the source emitted
is accounted for in the report: written, dropped by a `latest` edge, filtered by a stage, or discarded
by a cancellation or failure.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any, Callable, Sequence

from neuralframe import ctrlc
from neuralframe.errors import InputError, NeuralframeError, PipelineError
from neuralframe.streaming.frame import Frame, StreamInfo
from neuralframe.streaming.stats import Ledger, PipelineReport, StageStats

POLICIES = ("block", "latest")


class Source:
    """Produces frames. `open()` runs on the caller's thread (so a camera that will not open fails
    before any thread starts); `read()` runs on the source's worker thread and returns None at the
    end of the stream; `close()` always runs once. A source whose stream ended early for a reason the
    user should know (a camera unplugged) sets `end_reason`; the report carries it."""

    name = "source"
    end_reason: str | None = None

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


class _Cancelled(Exception):
    pass


_EOS = object()


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
        """Queue a frame; returns how many older frames it replaced. Raises `_Cancelled`."""
        with self._cond:
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
                raise _Cancelled
            self._items.append(frame)
            self._cond.notify_all()
            return replaced

    def get(self) -> Any:
        """The next frame, or `_EOS` once the producer closed and the queue is empty. Raises `_Cancelled`."""
        with self._cond:
            while not self._items and not self._closed and not self._cancelled:
                self._cond.wait()
            if self._cancelled:
                raise _Cancelled
            if self._items:
                frame = self._items.popleft()
                self._cond.notify_all()
                return frame
            return _EOS

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


class Pipeline:
    """Runs a source, stages and a sink, each on its own thread.

    Args:
        source: the frame producer.
        stages: zero or more transforms, in order.
        sink: the frame consumer.
        policy: "block" or "latest" for every edge, or one per edge (len(stages) + 1 of them).
        queue_size: capacity of `block` edges.
        max_frames: stop (gracefully) after the source emitted this many frames.
        on_frame: called on the sink's thread after each written frame (progress bars, previews).
    """

    def __init__(
        self,
        source: Source,
        stages: Sequence[Stage],
        sink: Sink,
        *,
        policy: str | Sequence[str] = "block",
        queue_size: int = 4,
        max_frames: int | None = None,
        on_frame: Callable[[Frame], None] | None = None,
    ):
        self.source = source
        self.stages = list(stages)
        self.sink = sink
        n_edges = len(self.stages) + 1
        policies = [policy] * n_edges if isinstance(policy, str) else list(policy)
        if len(policies) != n_edges:
            raise InputError(f"{n_edges} edge policies needed (stages + 1), got {len(policies)}")
        self.edges = [Edge(queue_size, p) for p in policies]
        self.max_frames = max_frames
        self.on_frame = on_frame
        self.info: StreamInfo | None = None
        self.ledger = Ledger()
        names = _unique_names([getattr(source, "name", "source")] + [getattr(s, "name", "stage") for s in self.stages]
                              + [getattr(sink, "name", "sink")])
        self.stats = [StageStats(names[0], "source")] + [StageStats(n, "stage") for n in names[1:-1]] + [
            StageStats(names[-1], "sink")]
        self._stop = threading.Event()
        self._cancel = threading.Event()
        self._error_lock = threading.Lock()
        self._error: tuple[str, BaseException] | None = None
        self._threads: list[threading.Thread] = []
        self._started = False
        self._t0 = 0.0
        self._sink_closed = False

    # control ---------------------------------------------------------------------------------------

    def stop(self) -> None:
        """End the stream at the source; frames in flight still reach the sink, which finalises."""
        self._stop.set()

    def cancel(self) -> None:
        """Drop everything in flight and abort the sink (its partial output is removed)."""
        self._cancel.set()
        self._cancel_edges()

    @property
    def running(self) -> bool:
        return any(t.is_alive() for t in self._threads)

    def _cancel_edges(self) -> None:
        for edge in self.edges:
            self.ledger.add("discarded", edge.cancel())

    def _fail(self, node: str, error: BaseException) -> None:
        with self._error_lock:
            if self._error is None:
                self._error = (node, error)
        self._cancel.set()
        self._cancel_edges()

    # running ---------------------------------------------------------------------------------------

    def start(self) -> "Pipeline":
        """Open the source, set up the stages and open the sink on this thread, then start the workers.
        Errors here (a missing file, a camera that will not open) raise directly and nothing is left open."""
        if self._started:
            raise RuntimeError("a pipeline runs once")
        self._started = True
        opened: list[Callable[[], None]] = []
        try:
            info = self.source.open()
            opened.append(self.source.close)
            for stage in self.stages:
                info = stage.setup(info)
                opened.append(stage.teardown)
            self.sink.open(info)
            opened.append(self.sink.abort)
        except BaseException:
            for undo in reversed(opened):
                try:
                    undo()
                except Exception:
                    pass
            raise
        self.info = info
        self._t0 = time.perf_counter()
        workers = [threading.Thread(target=self._run_source, name=f"nf-{self.stats[0].name}", daemon=True)]
        for i, stage in enumerate(self.stages):
            workers.append(threading.Thread(target=self._run_stage, args=(i, stage),
                                            name=f"nf-{self.stats[i + 1].name}", daemon=True))
        workers.append(threading.Thread(target=self._run_sink, name=f"nf-{self.stats[-1].name}", daemon=True))
        self._threads = workers
        for t in workers:
            t.start()
        return self

    def wait(self) -> PipelineReport:
        """Wait for the workers; Ctrl-C once stops gracefully, twice cancels. Raises `PipelineError`."""
        try:
            self._join()
        except KeyboardInterrupt:
            self.stop()
            try:
                self._join()
            except KeyboardInterrupt:
                self.cancel()
                self._join()
        return self._finish()

    def run(self) -> PipelineReport:
        """Start, wait and return the report (raises `PipelineError` on the first node failure)."""
        return self.start().wait()

    def _join(self) -> None:
        for t in self._threads:
            while t.is_alive():
                t.join(0.1)
                ctrlc.checkpoint()  # a Ctrl-C deferred while a job runs on Ray (neuralframe.ctrlc)

    def _finish(self) -> PipelineReport:
        wall = time.perf_counter() - self._t0
        if self._error is not None:
            status = "failed"
        elif self._cancel.is_set():
            status = "cancelled"
        elif self._stop.is_set():
            status = "stopped"
        else:
            status = "completed"
        p50, p95 = self.ledger.latency_ms()
        report = PipelineReport(
            status=status,
            wall_s=wall,
            frames_in=self.ledger.emitted,
            frames_out=self.ledger.written,
            dropped=sum(e.dropped for e in self.edges),
            filtered=self.ledger.filtered,
            discarded=self.ledger.discarded,
            latency_ms_p50=p50,
            latency_ms_p95=p95,
            nodes=[s.summary(wall) for s in self.stats],
            dropped_per_edge=[e.dropped for e in self.edges],
            policies=[e.policy for e in self.edges],
            output=self.sink.output if self._sink_closed else None,
            end_reason=getattr(self.source, "end_reason", None),
        )
        if self._error is not None:
            node, error = self._error
            report.error = f"{node}: {error}"
            self.report = report
            if isinstance(error, PipelineError):
                raise error
            raise PipelineError(node, error) from error
        self.report = report
        return report

    # workers ---------------------------------------------------------------------------------------

    def _run_source(self) -> None:
        stats = self.stats[0]
        out = self.edges[0]
        try:
            while not self._stop.is_set() and not self._cancel.is_set():
                if self.max_frames is not None and self.ledger.emitted >= self.max_frames:
                    break
                t = time.perf_counter()
                frame = self.source.read()
                if frame is None:
                    break
                stats.record(time.perf_counter() - t)
                self.ledger.add("emitted")
                try:
                    self.ledger.add("dropped", out.put(frame))
                except _Cancelled:
                    self.ledger.add("discarded")
                    break
        except BaseException as error:  # noqa: BLE001 - any failure is reported with the node's name
            self._fail(stats.name, error)
        finally:
            out.close()
            try:
                self.source.close()
            except Exception as error:  # noqa: BLE001
                self._fail(stats.name, error)

    def _run_stage(self, i: int, stage: Stage) -> None:
        stats = self.stats[i + 1]
        inp, out = self.edges[i], self.edges[i + 1]
        try:
            while True:
                item = inp.get()
                if item is _EOS:
                    break
                t = time.perf_counter()
                try:
                    result = stage.process(item)
                except BaseException:
                    self.ledger.add("discarded")
                    raise
                stats.record(time.perf_counter() - t)
                if result is None:
                    stats.filtered += 1
                    self.ledger.add("filtered")
                    continue
                try:
                    self.ledger.add("dropped", out.put(result))
                except _Cancelled:
                    self.ledger.add("discarded")
                    raise
        except _Cancelled:
            pass
        except BaseException as error:  # noqa: BLE001
            self._fail(stats.name, error)
        finally:
            out.close()
            try:
                stage.teardown()
            except Exception as error:  # noqa: BLE001
                self._fail(stats.name, error)

    def _run_sink(self) -> None:
        stats = self.stats[-1]
        inp = self.edges[-1]
        finished = False
        try:
            while True:
                try:
                    item = inp.get()
                except _Cancelled:
                    break
                if item is _EOS:
                    finished = True
                    break
                t = time.perf_counter()
                try:
                    self.sink.write(item)
                except BaseException:
                    self.ledger.add("discarded")
                    raise
                now = time.perf_counter()
                stats.record(now - t)
                self.ledger.written_one(now - item.born)
                if self.on_frame is not None:
                    self.on_frame(item)
            if finished and not self._cancel.is_set():
                self.sink.close()
                self._sink_closed = True
        except BaseException as error:  # noqa: BLE001
            self._fail(stats.name, error)
        finally:
            if not self._sink_closed:
                try:
                    self.sink.abort()
                except Exception:  # noqa: BLE001 - the first error is the one worth reporting
                    pass


def _unique_names(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for name in names:
        if name in seen:
            seen[name] += 1
            out.append(f"{name}#{seen[name]}")
        else:
            seen[name] = 1
            out.append(name)
    return out


def is_user_error(error: BaseException) -> bool:
    return isinstance(error, NeuralframeError)
