"""Fault injection in the frame pipeline and the products (issue 33, Build item 3).

What must hold whatever goes wrong:
- interrupted (Ctrl-C: exit 130, SIGTERM: exit 143): the frames written so far are finalised under the output
  name, a playable video whose frame count is the number written; interrupted before any frame, nothing;
- failed (a stage raising, a sink failing mid-write as on a full disk): nothing at the output (the temporary
  file removed) and a file already there byte-identical; exit 1 and one line naming the failed stage;
- a source that stalls does not keep Ctrl-C or SIGTERM from ending the run;
- no worker thread is left (in-process), no process is left (the command ends within a timeout).
"""

from __future__ import annotations

import errno
import os
import random
import resource
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from neuralframe import ctrlc
from neuralframe.errors import PipelineError
from neuralframe.streaming import Frame, Pipeline, Source, StreamInfo
from neuralframe.streaming.pipeline import FunctionStage
from neuralframe.streaming.sinks import VideoFileSink
from neuralframe.streaming.sources import PatternSource

ROOT = Path(__file__).resolve().parents[2]
SCENE = str(ROOT / "assets" / "scenes" / "motorcycle.ply")
OLD = b"the user's own video, which no failure may touch\n" * 200


@pytest.fixture(autouse=True)
def python_signals():
    """Python's own Ctrl-C handler and SIGTERM's default action, whatever this process inherited (a background
    job ignores SIGINT); and, after each test, no pipeline worker left running."""
    sigint = signal.signal(signal.SIGINT, signal.default_int_handler)
    sigterm = signal.signal(signal.SIGTERM, signal.SIG_DFL)
    before = set(threading.enumerate())
    yield
    signal.signal(signal.SIGINT, sigint)
    signal.signal(signal.SIGTERM, sigterm)
    assert _threads_left(before) == []


def _threads_left(before: set, timeout: float = 5.0) -> list[str]:
    # not Thread.is_alive(): a Ctrl-C inside Thread.join can leave it saying False for a running thread
    # (CPython 3.11); a thread leaves threading.enumerate() only when it has really ended
    deadline = time.monotonic() + timeout
    while True:
        left = [t for t in threading.enumerate() if t not in before]
        if not left or time.monotonic() > deadline:
            return [t.name for t in left]
        time.sleep(0.02)


def _signal_later(signum: int, delay: float) -> threading.Timer:
    timer = threading.Timer(delay, os.kill, (os.getpid(), signum))
    timer.start()
    return timer


def _frames_in(path: Path) -> int:
    import av

    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def _leftovers(folder: Path, keep: tuple[str, ...] = ()) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name not in keep)


def _pattern(frames=None, delay: float = 0.0) -> Source:
    source = PatternSource(64, 48, frames=frames)
    if delay:
        read = source.read

        def slow_read():
            time.sleep(delay)
            return read()
        source.read = slow_read
    return source


class StalledSource(Source):
    """Gives `good` frames, then blocks in read() until released (a camera or a network mount that hangs)."""

    name = "camera"
    stop_timeout_s = 0.5

    def __init__(self, good: int):
        self.good = good
        self.i = 0
        self.release = threading.Event()
        self.stalled = threading.Event()

    def open(self) -> StreamInfo:
        return StreamInfo(width=64, height=48, fps=30.0, frames=None)

    def read(self) -> Frame | None:
        if self.i >= self.good:
            self.stalled.set()
            self.release.wait(30)
            return None
        frame = Frame(torch.full((48, 64, 3), 10 * self.i, dtype=torch.uint8), self.i, self.i / 30.0)
        self.i += 1
        return frame


class DiskFullSink(VideoFileSink):
    """A video sink whose disk fills up after `ok` frames (on write), or when it finalises (`at_close`)."""

    def __init__(self, path, ok: int = 5, at_close: bool = False):
        super().__init__(path, fps=30.0)
        self.ok, self.at_close = ok, at_close

    def write(self, frame: Frame) -> None:
        if not self.at_close and self.frames_written >= self.ok:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        super().write(frame)

    def close(self) -> None:
        if self.at_close:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        super().close()


# ---- failures: nothing at the output, an existing file untouched -----------------------------------------

def _boom_at(n: int):
    def fn(frame: Frame) -> Frame:
        if frame.index == n:
            raise RuntimeError("the model blew up")
        return frame
    return fn


@pytest.mark.parametrize("at", [0, 7])
def test_a_stage_raising_mid_stream_leaves_the_existing_file_as_it_was(tmp_path, at):
    out = tmp_path / "out.mp4"
    out.write_bytes(OLD)
    pipeline = Pipeline(_pattern(40), [FunctionStage(_boom_at(at), "restyle")], VideoFileSink(out))
    with pytest.raises(PipelineError) as caught:
        pipeline.run()
    assert caught.value.stage == "restyle" and "the model blew up" in str(caught.value)
    assert out.read_bytes() == OLD and _leftovers(tmp_path) == ["out.mp4"]
    assert pipeline.report.status == "failed" and pipeline.report.accounted


@pytest.mark.parametrize("at_close", [False, True], ids=["mid-write", "at-close"])
def test_a_full_disk_leaves_nothing_and_the_existing_file_as_it_was(tmp_path, at_close):
    out = tmp_path / "out.mp4"
    out.write_bytes(OLD)
    pipeline = Pipeline(_pattern(30), [FunctionStage(lambda f: f, "id")], DiskFullSink(out, at_close=at_close))
    with pytest.raises(PipelineError) as caught:
        pipeline.run()
    assert caught.value.stage == "encode" and "No space left on device" in str(caught.value)
    assert out.read_bytes() == OLD and _leftovers(tmp_path) == ["out.mp4"]
    assert pipeline.report.accounted


# ---- interruptions: the frames so far, finalised -------------------------------------------------------

def _check_interrupted(tmp_path: Path, out: Path, interrupt: BaseException) -> int:
    """The output is a valid video of exactly the frames written, or absent when none was; nothing else."""
    report = getattr(interrupt, "report", None)
    written = report.frames_out if report is not None else 0
    if written:
        assert report.output == str(out) and report.status == "stopped"
        assert _frames_in(out) == written
        assert report.accounted, report.to_dict()
        assert _leftovers(tmp_path) == ["out.mp4"]
    else:
        assert _leftovers(tmp_path) == []
    return written


@pytest.mark.parametrize("seed", range(6))
def test_ctrl_c_at_a_random_point_keeps_a_valid_video_of_the_frames_so_far(tmp_path, seed):
    delay = random.Random(seed).uniform(0.0, 0.8)
    out = tmp_path / "out.mp4"
    pipeline = Pipeline(_pattern(None, delay=0.002), [FunctionStage(lambda f: f, "id")], VideoFileSink(out))
    timer = _signal_later(signal.SIGINT, delay)
    try:
        with pytest.raises(KeyboardInterrupt) as caught:
            pipeline.run()  # endless: only the Ctrl-C ends it
    finally:
        timer.join()
    _check_interrupted(tmp_path, out, caught.value)


def test_sigterm_is_a_graceful_stop_like_ctrl_c(tmp_path):
    out = tmp_path / "out.mp4"
    pipeline = Pipeline(_pattern(None, delay=0.002), [], VideoFileSink(out))
    timer = _signal_later(signal.SIGTERM, 0.5)
    try:
        with ctrlc.graceful_sigterm(), pytest.raises(ctrlc.Terminated) as caught:
            pipeline.run()
    finally:
        timer.join()
    assert _check_interrupted(tmp_path, out, caught.value) > 0
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # restored


def test_ctrl_c_twice_cancels_and_leaves_nothing(tmp_path):
    out = tmp_path / "out.mp4"
    out.write_bytes(OLD)
    # a slow stage with a full queue in front of it: the drain after the first Ctrl-C takes a while
    pipeline = Pipeline(_pattern(None), [FunctionStage(lambda f: time.sleep(0.2) or f, "slow")],
                        VideoFileSink(out), queue_size=8)
    first, second = _signal_later(signal.SIGINT, 0.6), _signal_later(signal.SIGINT, 0.9)
    try:
        with pytest.raises(KeyboardInterrupt):
            pipeline.run()
    finally:
        first.join()
        second.join()
    assert pipeline.report.status == "cancelled" and pipeline.report.accounted
    assert out.read_bytes() == OLD and _leftovers(tmp_path) == ["out.mp4"]


def test_an_interrupt_before_any_frame_leaves_nothing_and_is_no_error(tmp_path):
    """Ctrl-C while a model warms up (its stage has passed no frame on yet): an interrupt with nothing at the
    output, not the sink's "no frames reached the video writer"."""
    out = tmp_path / "out.mp4"
    warming = threading.Event()

    def warm_up(frame):
        warming.set()
        time.sleep(0.05)
        return None  # not ready: no frame out yet
    pipeline = Pipeline(_pattern(None), [FunctionStage(warm_up, "restyle")], VideoFileSink(out))
    timer = threading.Thread(target=lambda: (warming.wait(10), os.kill(os.getpid(), signal.SIGINT)))
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt) as caught:
            pipeline.run()
    finally:
        timer.join()
    report = caught.value.report
    assert report.status == "stopped" and report.frames_out == 0 and report.error is None and report.accounted
    assert report.output is None and _leftovers(tmp_path) == []


# ---- a source that stalls ------------------------------------------------------------------------------

@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_stalled_source_does_not_keep_a_signal_from_ending_the_run(tmp_path, signum):
    out = tmp_path / "out.mp4"
    source = StalledSource(good=6)
    pipeline = Pipeline(source, [FunctionStage(lambda f: f, "id")], VideoFileSink(out))
    watchdog = threading.Timer(20, source.release.set)  # a hang fails the test instead of blocking it
    watchdog.start()
    timer = threading.Thread(target=lambda: (source.stalled.wait(10), time.sleep(0.2),
                                             os.kill(os.getpid(), signum)))
    timer.start()
    t0 = time.monotonic()
    try:
        with ctrlc.graceful_sigterm(), pytest.raises(KeyboardInterrupt) as caught:
            pipeline.run()
        took = time.monotonic() - t0
    finally:
        timer.join()
        source.release.set()  # the stalled read returns; its thread ends
        watchdog.cancel()
    assert took < 5.0, took
    assert isinstance(caught.value, ctrlc.Terminated) == (signum == signal.SIGTERM)
    assert _check_interrupted(tmp_path, out, caught.value) == 6
    assert "source 'camera' stalled" in (caught.value.report.end_reason or "")


def test_a_failure_downstream_of_a_stalled_source_ends_the_run(tmp_path):
    out = tmp_path / "out.mp4"
    out.write_bytes(OLD)
    source = StalledSource(good=3)

    def late_failure(frame):
        if frame.index == 2:
            source.stalled.wait(5)  # fail only once the source hangs
            raise RuntimeError("the model blew up")
        return frame
    pipeline = Pipeline(source, [FunctionStage(late_failure, "restyle")], VideoFileSink(out))
    watchdog = threading.Timer(20, source.release.set)
    watchdog.start()
    t0 = time.monotonic()
    try:
        with pytest.raises(PipelineError, match="restyle"):
            pipeline.run()
        took = time.monotonic() - t0
    finally:
        source.release.set()
        watchdog.cancel()
    assert took < 5.0, took
    assert out.read_bytes() == OLD and _leftovers(tmp_path) == ["out.mp4"]


def test_a_slow_source_is_not_cut_without_a_signal(tmp_path):
    """No stall timeout: a source slower than its stop timeout still delivers every frame (a file on a slow
    disk, a camera in low light)."""

    class Slow(StalledSource):
        def read(self):
            if self.i < 3:
                time.sleep(0.7)  # each read longer than stop_timeout_s
            return super().read() if self.i < 3 else None
    out = tmp_path / "out.mp4"
    report = Pipeline(Slow(good=3), [], VideoFileSink(out)).run()
    assert report.status == "completed" and _frames_in(out) == 3


# ---- the command line: exit codes, one line, the file -----------------------------------------------------

def test_a_stage_failure_in_a_command_is_exit_1_and_one_line_naming_the_stage(tmp_path, monkeypatch, capsys):
    import neuralframe.apps.render as render
    from neuralframe.cli import main

    process = render.SceneRenderStage.process

    def failing(self, frame):
        if frame.index == 3:
            raise RuntimeError("out of registers")
        return process(self, frame)
    monkeypatch.setattr(render.SceneRenderStage, "process", failing)
    out = tmp_path / "out.mp4"
    out.write_bytes(OLD)
    code = main(["render", SCENE, "-o", str(out), "--frames", "10", "--size", "64x48"])
    err = capsys.readouterr().err
    assert code == 1, err
    last = [line for line in err.splitlines() if line.strip()][-1]
    assert "stage 'render' failed" in last and "out of registers" in last, err
    assert out.read_bytes() == OLD and _leftovers(tmp_path) == ["out.mp4"]


@pytest.mark.parametrize("seed", range(3))
def test_ctrl_c_at_a_random_point_of_a_command(tmp_path, capsys, seed):
    from neuralframe.cli import main

    out = tmp_path / "out.mp4"
    timer = _signal_later(signal.SIGINT, random.Random(seed).uniform(0.0, 1.5))
    try:
        code = main(["render", SCENE, "-o", str(out), "--frames", "3000", "--size", "32x24"])
    finally:
        timer.join()
    err = capsys.readouterr().err
    assert code == 130, err
    assert "interrupted" in err and "Traceback" not in err
    if out.exists():
        assert _frames_in(out) >= 1
    assert _leftovers(tmp_path, keep=("out.mp4",)) == []


def _command(out: Path, *extra: str, preexec=None) -> subprocess.Popen:
    """`neuralframe render` of the bundled scene into `out`, its output in log.txt beside it (a file, not a
    pipe: nothing the command writes can block it), Ctrl-C's default action even when the suite runs as a
    background job (whose children inherit SIGINT ignored)."""
    env = {**os.environ, "COLUMNS": "200", "PYTHONUNBUFFERED": "1"}
    with open(out.parent / "log.txt", "w") as log:
        return subprocess.Popen([sys.executable, "-m", "neuralframe.cli", "render", SCENE, "-o", str(out),
                                 "--size", "64x48", *extra], cwd=ROOT, env=env, stdout=log, stderr=log,
                                preexec_fn=preexec or (lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)))


def _log(out: Path) -> str:
    return (out.parent / "log.txt").read_text()


@pytest.mark.slow
@pytest.mark.parametrize("signum, code, word", [(signal.SIGINT, 130, "interrupted"),
                                                (signal.SIGTERM, 143, "terminated")], ids=["ctrl-c", "sigterm"])
def test_a_signal_to_the_command_keeps_the_frames_so_far(tmp_path, signum, code, word):
    out = tmp_path / "orbit.mp4"
    proc = _command(out, "--frames", "3000")  # more than it renders before the signal
    try:
        deadline = time.monotonic() + 120  # a cold Numba cache compiles the renderer first
        while not _encoding(tmp_path) and time.monotonic() < deadline:
            assert proc.poll() is None, _log(out)
            time.sleep(0.1)
        time.sleep(1.0)  # a few more frames
        proc.send_signal(signum)
        proc.wait(timeout=30)  # and no process left behind
    finally:
        if proc.poll() is None:
            proc.kill()
    text = _log(out)
    assert proc.returncode == code, text
    assert word in text.splitlines()[-1] and "Traceback" not in text, text
    assert 1 <= _frames_in(out) < 3000
    assert _leftovers(tmp_path, keep=("orbit.mp4", "log.txt")) == []


def _encoding(folder: Path) -> bool:
    """The first frame reached the video writer: its temporary file has a header (until the end, the muxer
    keeps small frames in its buffer, so the size says no more than that)."""
    return any(p.stat().st_size > 0 for p in folder.glob(".orbit.*.partial.mp4"))


def _full_disk(limit: int):
    def preexec():
        # files this process writes cannot grow past `limit` bytes: writes fail as on a full disk
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return preexec


@pytest.mark.slow
def test_a_full_disk_in_a_command_is_one_line_and_leaves_the_existing_file(tmp_path):
    out = tmp_path / "orbit.mp4"
    out.write_bytes(OLD)
    # 60 frames of 64x48 make about 8 kB; the log goes to a pipe, which the limit does not touch
    result = subprocess.run([sys.executable, "-m", "neuralframe.cli", "render", SCENE, "-o", str(out), "--size",
                             "64x48", "--frames", "60"], cwd=ROOT, env={**os.environ, "COLUMNS": "200"},
                            capture_output=True, text=True, timeout=120, preexec_fn=_full_disk(4_000))
    assert result.returncode == 1, result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert "Traceback" not in result.stderr and "stage 'encode' failed" in lines[-1], result.stderr
    assert out.read_bytes() == OLD and _leftovers(tmp_path) == ["orbit.mp4"]
