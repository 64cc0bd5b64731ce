"""Pipeline semantics: ordering, drops, errors with the node's name, no deadlock, cancellation."""

import threading
import time

import pytest
import torch

from neuralframe.errors import InputError, PipelineError
from neuralframe.streaming import Frame, Pipeline, Sink, Source, StreamInfo
from neuralframe.streaming.pipeline import FunctionStage
from neuralframe.streaming.sinks import LatestFrameSink


class CountSource(Source):
    name = "count"

    def __init__(self, n=None, delay=0.0, fail_at=None):
        self.n, self.delay, self.fail_at = n, delay, fail_at
        self.i = 0
        self.closed = False

    def open(self):
        return StreamInfo(width=4, height=2, fps=30.0, frames=self.n)

    def read(self):
        if self.n is not None and self.i >= self.n:
            return None
        if self.fail_at is not None and self.i == self.fail_at:
            raise OSError("disk read error")
        if self.delay:
            time.sleep(self.delay)
        frame = Frame(torch.full((2, 4, 3), self.i % 256, dtype=torch.uint8), self.i, self.i / 30.0)
        self.i += 1
        return frame

    def close(self):
        self.closed = True


class ListSink(Sink):
    name = "collect"

    def __init__(self, delay=0.0, fail_at=None):
        self.indices = []
        self.delay, self.fail_at = delay, fail_at
        self.closed = self.aborted = False

    def write(self, frame):
        if self.fail_at is not None and len(self.indices) == self.fail_at:
            raise OSError("no space left on device")
        if self.delay:
            time.sleep(self.delay)
        self.indices.append(frame.index)

    def close(self):
        self.closed = True

    def abort(self):
        self.aborted = True


def slow(seconds):
    def fn(frame):
        time.sleep(seconds)
        return frame
    return fn


def _run_in_thread(pipeline, timeout=20.0, started=False):
    """Run (or, once started, wait for) a pipeline with a watchdog so a deadlock fails the test."""
    box = {}

    def target():
        try:
            box["report"] = pipeline.wait() if started else pipeline.run()
        except BaseException as error:  # noqa: BLE001
            box["error"] = error
    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(timeout)
    assert not t.is_alive(), "pipeline hung"
    return box


def test_block_mode_keeps_order_and_every_frame():
    sink = ListSink()
    stages = [FunctionStage(slow(0.002), "a"), FunctionStage(lambda f: f.replace(image=f.image + 1), "b")]
    report = Pipeline(CountSource(60), stages, sink, queue_size=2).run()
    assert sink.indices == list(range(60))
    assert sink.closed and not sink.aborted
    assert report.status == "completed"
    assert (report.frames_in, report.frames_out, report.dropped) == (60, 60, 0)
    assert report.accounted
    assert [n["name"] for n in report.nodes] == ["count", "a", "b", "collect"]
    assert all(n["frames"] == 60 for n in report.nodes)
    assert report.nodes[1]["ms_mean"] >= 2.0


def test_latest_mode_drops_for_a_slow_consumer_and_counts_them():
    sink = ListSink(delay=0.01)
    report = Pipeline(CountSource(100), [], sink, policy="latest").run()
    assert report.dropped > 0
    assert report.frames_out == len(sink.indices) < 100
    assert report.frames_out + report.dropped == 100
    assert report.accounted
    assert sink.indices == sorted(sink.indices)  # newest-first never reorders
    assert sink.indices[-1] == 99  # the last frame is never lost


def test_stage_filter_is_counted():
    sink = ListSink()
    report = Pipeline(CountSource(10), [FunctionStage(lambda f: f if f.index % 2 else None, "odd")], sink).run()
    assert sink.indices == [1, 3, 5, 7, 9]
    assert report.filtered == 5 and report.accounted


def test_stage_error_names_the_stage_and_aborts_the_sink():
    def boom(frame):
        if frame.index == 5:
            raise ValueError("bad pixel")
        return frame
    sink = ListSink()
    source = CountSource(1000)
    box = _run_in_thread(Pipeline(source, [FunctionStage(boom, "explode")], sink))
    error = box["error"]
    assert isinstance(error, PipelineError)
    assert error.stage == "explode"
    assert "stage 'explode' failed: ValueError: bad pixel" in str(error)
    assert sink.aborted and not sink.closed
    assert source.closed
    assert source.i < 1000  # the source stopped early


def test_first_error_wins_and_keeps_user_message():
    def user_error(frame):
        raise InputError("frame of the wrong size")
    box = _run_in_thread(Pipeline(CountSource(50), [FunctionStage(user_error, "check")], ListSink()))
    assert str(box["error"]) == "stage 'check' failed: frame of the wrong size"


def test_sink_failing_early_does_not_deadlock_a_fast_source():
    sink = ListSink(fail_at=2)
    pipeline = Pipeline(CountSource(None), [FunctionStage(lambda f: f, "id")], sink, queue_size=1)
    box = _run_in_thread(pipeline)
    assert box["error"].stage == "collect"
    assert "no space left on device" in str(box["error"])
    assert pipeline.report.accounted
    assert pipeline.report.status == "failed"


def test_source_error_is_reported_with_its_name():
    box = _run_in_thread(Pipeline(CountSource(10, fail_at=3), [], ListSink()))
    assert box["error"].stage == "count" and "disk read error" in str(box["error"])


def test_slow_source_does_not_hang_and_ends_cleanly():
    sink = ListSink()
    box = _run_in_thread(Pipeline(CountSource(5, delay=0.05), [FunctionStage(lambda f: f, "id")], sink))
    assert box["report"].status == "completed" and sink.indices == list(range(5))


def test_cancel_discards_in_flight_and_aborts_sink():
    sink = ListSink()
    pipeline = Pipeline(CountSource(None), [FunctionStage(slow(0.01), "slow")], sink, queue_size=3)
    pipeline.start()
    time.sleep(0.2)
    pipeline.cancel()
    box = _run_in_thread(pipeline, started=True)
    report = box["report"]
    assert report.status == "cancelled"
    assert sink.aborted and not sink.closed
    assert report.accounted, report.to_dict()


def test_stop_drains_and_finalises():
    sink = ListSink()
    pipeline = Pipeline(CountSource(None, delay=0.001), [FunctionStage(slow(0.005), "slow")], sink, queue_size=4)
    pipeline.start()
    time.sleep(0.2)
    pipeline.stop()
    report = _run_in_thread(pipeline, started=True)["report"]
    assert report.status == "stopped"
    assert sink.closed and not sink.aborted
    assert sink.indices == list(range(report.frames_in))  # nothing lost in block mode
    assert report.accounted


def test_max_frames_and_latest_sink_for_a_ui():
    sink = LatestFrameSink()
    report = Pipeline(CountSource(None), [], sink, max_frames=25).run()
    frame, serial = sink.latest()
    assert report.frames_in == 25 and serial == 25 and frame.index == 24


def test_open_errors_raise_before_threads_and_close_what_was_opened():
    class BadSink(ListSink):
        def open(self, info):
            raise InputError("cannot write there")
    source = CountSource(5)
    with pytest.raises(InputError, match="cannot write there"):
        Pipeline(source, [], BadSink()).run()
    assert source.closed


def test_edge_policies_are_checked():
    with pytest.raises(InputError, match="unknown queue policy"):
        Pipeline(CountSource(1), [], ListSink(), policy="drop")
    with pytest.raises(InputError, match="2 edge policies"):
        Pipeline(CountSource(1), [FunctionStage(lambda f: f)], ListSink(), policy=["block"])



def test_a_source_that_ends_early_keeps_the_output_and_says_why():
    class Unplugged(CountSource):
        def read(self):
            if self.i == 4:
                self.end_reason = "webcam 0 stopped delivering frames (unplugged?)"
                return None
            return super().read()
    sink = ListSink()
    report = Pipeline(Unplugged(None), [], sink).run()
    assert report.status == "completed" and sink.closed and sink.indices == [0, 1, 2, 3]
    assert report.end_reason == "webcam 0 stopped delivering frames (unplugged?)"
    assert report.to_dict()["end_reason"] == report.end_reason
