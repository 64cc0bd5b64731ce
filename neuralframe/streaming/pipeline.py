"""`Source -> Stage -> ... -> Sink` on worker threads joined by bounded queues.

The nodes' contracts are in `nodes.py`; each edge (`edge.py`) is `block` (offline work: lossless,
back-pressure) or `latest` (live work: a slow consumer sees only the newest frame; the rest is dropped).

The first error in any node cancels every queue (so no thread waits forever), the sink removes its
partial output, and `run()` raises a `PipelineError` naming the node. `stop()` ends the stream at the
source and lets what is in flight drain into the sink, which then finalises its output; `cancel()` drops
everything and aborts the sink. Every frame the source emitted is accounted for in the report: written,
dropped by a `latest` edge, filtered by a stage, or discarded by a cancellation or failure.

Interrupts. A Ctrl-C (`KeyboardInterrupt`) or a SIGTERM taken as one (`neuralframe.ctrlc.Terminated`) that
lands on the caller's thread while the pipeline runs stops it as `stop()` does, so the output holds the
frames so far, finalised (a stream stopped before any frame was written leaves nothing); a second one
cancels. Then the interrupt is raised again, carrying the report as `.report`: the command exits as
interrupted (130, or 143 for SIGTERM), with a valid file.

Stuck nodes. A call into a node that has not returned `stop_timeout_s` (the node's attribute) after a stop,
a cancel or a failure is left behind: its thread is a daemon that ends when the call returns, the frame in
its hands is discarded, and the rest of the pipeline ends without it (the frames already past it still
reach the sink). A source's `read` gets 5 s, so a camera or a network mount that hangs cannot keep Ctrl-C
or SIGTERM from ending the run; stages and sinks compute or write, and are waited for (None), as is a source
whose reads end by themselves (Ray's units): a thread left inside C++ code when the process exits can abort
it. There is no stall timeout while the stream runs: a read that takes long is not an error by itself (a
file on a slow or sleeping disk, a camera in low light, a Ray unit rendering); a source that can tell a
dead input from a slow one says so itself (a webcam that stops delivering ends the stream with an
`end_reason`). A regular file cannot stall for ever; FIFOs and devices (whose size reads 0) are refused as
video inputs before any work.
"""

from __future__ import annotations

import threading
import time
from typing import Callable, NoReturn, Sequence

from neuralframe import ctrlc
from neuralframe.errors import InputError, NeuralframeError, PipelineError
from neuralframe.streaming.edge import EOS as _EOS
from neuralframe.streaming.edge import POLICIES, Edge
from neuralframe.streaming.edge import Cancelled as _Cancelled
from neuralframe.streaming.frame import Frame, StreamInfo
from neuralframe.streaming.nodes import FunctionStage, Sink, Source, Stage
from neuralframe.streaming.stats import Ledger, PipelineReport, StageStats

# the contracts and the edge policies, imported from here by the nodes and products
__all__ = ["POLICIES", "FunctionStage", "Pipeline", "Sink", "Source", "Stage", "is_user_error"]


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
        memory_advice: what the user can do when the frames will not fit in memory (checked in `start`,
            after the source opens and after each stage's setup, before the sink opens).
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
        memory_advice: str = "use a smaller frame size",
    ):
        self.source = source
        self.memory_advice = memory_advice
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
        self.report: PipelineReport | None = None
        nodes = [source, *self.stages, sink]
        self._timeouts = [getattr(node, "stop_timeout_s", 5.0 if node is source else None) for node in nodes]
        self._busy_since: list[float | None] = [None] * len(nodes)  # when each node's call in progress began
        self._left: set[int] = set()  # nodes left behind, stuck in a call (module docstring)
        # set by each worker as it ends: waited on instead of Thread.join, which a Ctrl-C can leave believing
        # a running thread has ended (CPython 3.11's bpo-45274 fix releases the thread's own lock)
        self._done = [threading.Event() for _ in nodes]
        self._left_notes: list[str] = []
        self._node_lock = threading.Lock()
        self._ending_at: float | None = None  # when the first stop, cancel or failure came

    # control ---------------------------------------------------------------------------------------

    def stop(self) -> None:
        """End the stream at the source; frames in flight still reach the sink, which finalises (a stream
        stopped before any frame was written leaves nothing)."""
        self._ending()
        self._stop.set()

    def cancel(self) -> None:
        """Drop everything in flight and abort the sink (its partial output is removed)."""
        self._ending()
        self._cancel.set()
        self._cancel_edges()

    def _ending(self) -> None:
        if self._ending_at is None:
            self._ending_at = time.perf_counter()

    @property
    def running(self) -> bool:
        return bool(self._threads) and not all(done.is_set() for done in self._done)

    def _cancel_edges(self) -> None:
        for edge in self.edges:
            self.ledger.add("discarded", edge.cancel())

    def _fail(self, k: int, error: BaseException) -> None:
        """Node `k` failed: the first failure is the one reported; a node left behind fails unheard."""
        if k in self._left:
            return
        with self._error_lock:
            if self._error is None:
                self._error = (self.stats[k].name, error)
        self._ending()
        self._cancel.set()
        self._cancel_edges()

    def _returned(self, k: int) -> bool:
        """Node `k`'s call returned (or raised); True when the pipeline left it behind meanwhile."""
        with self._node_lock:
            self._busy_since[k] = None
            return k in self._left

    def _leave_stuck(self) -> None:
        """Leave behind each node whose call has gone on for its `stop_timeout_s` since the stop, cancel or
        failure (module docstring): what it already passed on still reaches the sink, what is queued for it
        is discarded, and the rest of the pipeline ends without it."""
        if self._ending_at is None:
            return
        now, last = time.perf_counter(), len(self._threads) - 1
        for k in range(len(self._threads)):
            timeout = self._timeouts[k]
            with self._node_lock:
                since = self._busy_since[k]
                if (k in self._left or since is None or timeout is None or self._done[k].is_set()
                        or now - max(since, self._ending_at) < timeout):
                    continue
                self._left.add(k)
            what = "read()" if k == 0 else "write()" if k == last else "process()"
            why = "failure" if self._error is not None else "cancel" if self._cancel.is_set() else "stop"
            self._left_notes.append(f"{self.stats[k].kind} '{self.stats[k].name}' stalled: its {what} did not "
                                    f"return within {timeout:g} s of the {why}; the stream ended without it")
            if k > 0:
                self.ledger.add("discarded")  # the frame in its hands
            for edge in self.edges[:k]:  # nothing upstream can reach the sink any more
                self.ledger.add("discarded", edge.cancel())
            if k < last:
                self.edges[k].close()  # what it passed on before it stalled still reaches the sink

    # running ---------------------------------------------------------------------------------------

    def start(self) -> "Pipeline":
        """Open the source, set up the stages and open the sink on this thread, then start the workers.
        Errors here (a missing file, a camera that will not open) raise directly and nothing is left open."""
        if self._started:
            raise RuntimeError("a pipeline runs once")
        self._started = True
        opened: list[Callable[[], None]] = []
        started = 0
        try:
            info = self.source.open()
            opened.append(self.source.close)
            need = self._check_memory(0, 0, info)
            for i, stage in enumerate(self.stages):
                info = stage.setup(info)
                opened.append(stage.teardown)
                need = self._check_memory(need, i + 1, info)
            self.sink.open(info)
            opened.append(self.sink.abort)
            self.info = info
            self._t0 = time.perf_counter()
            bodies = [(self._run_source,)] + [(self._run_stage, i, stage) for i, stage in enumerate(self.stages)] \
                + [(self._run_sink,)]
            workers = [threading.Thread(target=self._worker, args=(k, *body), name=f"nf-{self.stats[k].name}",
                                        daemon=True) for k, body in enumerate(bodies)]
            with ctrlc.deferred():  # a Ctrl-C or SIGTERM while the workers start is raised once they all run
                self._threads = workers
                for t in workers:
                    t.start()
                    started += 1
        except BaseException as error:
            if isinstance(error, KeyboardInterrupt) and started and started == len(self._threads):
                self.interrupted(error)  # every worker runs: stop them gracefully, keep the frames so far
            if started:  # a thread that would not start: end those that did (they close their own nodes)
                for done in self._done[started:]:
                    done.set()
                self.cancel()
                self._join_to_the_end()
            for undo in reversed(opened[started:]):
                try:
                    undo()
                except Exception:
                    pass
            raise
        return self

    def _check_memory(self, spent: int, node: int, info: StreamInfo) -> int:
        """The memory frames take up to node `node` (0: the source; the last stage brings the sink): `spent`
        for the nodes before it, plus its frames of `info`'s size, worked on and queued on its outgoing edge.
        An InputError when that will not fit (`backend.memory`), before the first frame is made."""
        from neuralframe.backend.memory import check_allocation, pipeline_bytes

        nodes = 2 if node == len(self.stages) else 1
        need = spent + pipeline_bytes(info.width, info.height, nodes, self.edges[node].capacity)
        where = f" ({info.name})" if info.name else ""
        check_allocation(need, f"{info.width}x{info.height} frames{where}", self.memory_advice)
        return need

    def wait(self) -> PipelineReport:
        """Wait for the workers and return the report; raises `PipelineError` on the first node failure. A
        Ctrl-C or SIGTERM meanwhile stops the stream, then is raised again (`interrupted`)."""
        try:
            self._join()
        except KeyboardInterrupt as interrupt:
            self.interrupted(interrupt)
        return self._finish()

    def run(self) -> PipelineReport:
        """Start, wait and return the report (raises `PipelineError` on the first node failure, and a Ctrl-C
        or SIGTERM again once the output holds the frames so far)."""
        self.start()
        try:
            return self.wait()
        except KeyboardInterrupt as interrupt:  # also one that landed between start() and wait()
            self.interrupted(interrupt)

    def interrupted(self, interrupt: KeyboardInterrupt) -> NoReturn:
        """End the run after `interrupt` (a Ctrl-C, or a SIGTERM as `ctrlc.Terminated`) landed on the caller's
        thread, in `wait()` or around it: stop, let what is in flight reach the sink, which finalises (a
        second interrupt cancels), then raise `interrupt` again with the report as `.report` (a
        `PipelineError` instead when a node failed meanwhile). Callers that do more between `start()` and
        `wait()` (a progress bar) call it when an interrupt lands there."""
        if self.report is None and self._threads:
            self.stop()
            try:
                self._join()
            except KeyboardInterrupt:
                self.cancel()
                self._join_to_the_end()
            self._finish()
        interrupt.report = self.report
        raise interrupt

    def _join(self) -> None:
        """Wait for every worker, or leave a stuck one behind (`_leave_stuck`)."""
        for k in range(len(self._threads)):
            while k not in self._left and not self._done[k].wait(0.1):
                ctrlc.checkpoint()  # a Ctrl-C deferred while a job runs on Ray (neuralframe.ctrlc)
                self._leave_stuck()

    def _join_to_the_end(self) -> None:
        """`_join`, deaf to more interrupts: after a cancel every worker ends, or is left behind, soon."""
        while True:
            try:
                return self._join()
            except KeyboardInterrupt:
                continue

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
            end_reason="; ".join(r for r in [getattr(self.source, "end_reason", None), *self._left_notes] if r)
            or None,
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

    # workers (node k: 0 the source, then the stages, the sink last) ------------------------------------

    def _worker(self, k: int, body: Callable, *args) -> None:
        try:
            body(*args)
        finally:
            self._done[k].set()

    def _run_source(self) -> None:
        stats = self.stats[0]
        out = self.edges[0]
        try:
            while not self._stop.is_set() and not self._cancel.is_set():
                if self.max_frames is not None and self.ledger.emitted >= self.max_frames:
                    break
                t = self._busy_since[0] = time.perf_counter()
                try:
                    frame = self.source.read()
                finally:
                    left = self._returned(0)
                if left or frame is None:
                    break  # a frame read after the pipeline left the source behind was never emitted
                stats.record(time.perf_counter() - t)
                self.ledger.add("emitted")
                try:
                    self.ledger.add("dropped", out.put(frame))
                except _Cancelled:
                    self.ledger.add("discarded")
                    break
        except BaseException as error:  # noqa: BLE001 - any failure is reported with the node's name
            self._fail(0, error)
        finally:
            out.close()
            try:
                self.source.close()
            except Exception as error:  # noqa: BLE001
                self._fail(0, error)

    def _run_stage(self, i: int, stage: Stage) -> None:
        k = i + 1
        stats = self.stats[k]
        inp, out = self.edges[i], self.edges[k]
        try:
            while True:
                item = inp.get()
                if item is _EOS:
                    break
                t = self._busy_since[k] = time.perf_counter()
                try:
                    result = stage.process(item)
                except BaseException:
                    if not self._returned(k):
                        self.ledger.add("discarded")
                    raise
                if self._returned(k):
                    break  # left behind: its frame was counted then
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
            self._fail(k, error)
        finally:
            out.close()
            try:
                stage.teardown()
            except Exception as error:  # noqa: BLE001
                self._fail(k, error)

    def _run_sink(self) -> None:
        k = len(self.stats) - 1
        stats = self.stats[k]
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
                t = self._busy_since[k] = time.perf_counter()
                try:
                    self.sink.write(item)
                except BaseException:
                    if not self._returned(k):
                        self.ledger.add("discarded")
                    raise
                if self._returned(k):
                    return  # left behind: its frame was counted then; the partial output goes (finally)
                now = time.perf_counter()
                stats.record(now - t)
                self.ledger.written_one(now - item.born)
                if self.on_frame is not None:
                    self.on_frame(item)
            # finalise, unless cancelled, or stopped before any frame was written (nothing worth keeping)
            if finished and not self._cancel.is_set() and (self.ledger.written or not self._stop.is_set()):
                self._busy_since[k] = time.perf_counter()
                try:
                    self.sink.close()
                finally:
                    self._returned(k)
                self._sink_closed = True
        except BaseException as error:  # noqa: BLE001
            self._fail(k, error)
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
