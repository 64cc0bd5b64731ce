"""Frames that will not fit in memory are refused before the first is made: by the pipeline (the source's
size, and each stage's output size, queued and worked on through to the sink) and by the sources that
allocate at their size (the test pattern, image files judged by their headers). One line, no output."""

from __future__ import annotations

import time

import pytest
import torch

from neuralframe.backend.memory import LIMIT_ENV
from neuralframe.errors import InputError
from neuralframe.streaming import Frame, Pipeline, Sink, Source, StreamInfo
from neuralframe.streaming.sources import ImageFolderSource, PatternSource
from neuralframe.streaming.stages import ColorResize

from backend.test_memory import png_header


class SizedSource(Source):
    name = "sized"

    def __init__(self, width, height, n=2):
        self.width, self.height, self.n, self.i = width, height, n, 0
        self.closed = False

    def open(self):
        return StreamInfo(width=self.width, height=self.height, fps=30.0, frames=self.n, name="sized")

    def read(self):
        if self.i >= self.n:
            return None
        self.i += 1
        return Frame(torch.zeros((self.height, self.width, 3), dtype=torch.uint8), self.i - 1, 0.0)

    def close(self):
        self.closed = True


class RecordingSink(Sink):
    name = "record"

    def __init__(self):
        self.opened, self.frames = False, 0

    def open(self, info):
        self.opened = True

    def write(self, frame):
        self.frames += 1


def test_frames_too_large_for_memory_are_refused_before_the_sink_opens(monkeypatch):
    monkeypatch.setenv(LIMIT_ENV, "64M")
    source, sink = SizedSource(4000, 3000), RecordingSink()
    with pytest.raises(InputError) as info:
        Pipeline(source, [], sink, memory_advice="use a smaller --size").run()
    assert str(info.value).startswith("4000x3000 frames (sized): about ")
    assert str(info.value).endswith("of memory needed, 64.0 MB available; use a smaller --size")
    assert not sink.opened and source.closed and source.i == 0


def test_a_stage_that_enlarges_frames_is_judged_at_its_output_size(monkeypatch):
    monkeypatch.setenv(LIMIT_ENV, "64M")
    source, sink = SizedSource(64, 48), RecordingSink()
    with pytest.raises(InputError, match=r"^2000x2000 frames \(sized\): about .* 64.0 MB available; use a smaller"):
        Pipeline(source, [ColorResize((2000, 2000))], sink).run()
    assert not sink.opened and source.closed


def test_frames_that_fit_run_as_before(monkeypatch):
    monkeypatch.setenv(LIMIT_ENV, "64M")
    sink = RecordingSink()
    report = Pipeline(SizedSource(64, 48, n=3), [ColorResize((96, 128))], sink).run()
    assert report.status == "completed" and sink.frames == 3


def test_a_huge_test_pattern_is_refused_before_its_planes_are_made(monkeypatch):
    monkeypatch.setenv(LIMIT_ENV, "1G")
    start = time.perf_counter()
    with pytest.raises(InputError, match=r"^a 16000x16000 test pattern: about 11.4 GB of memory needed, 1.0 GB "
                                         r"available; use a smaller --size$"):
        PatternSource(width=16000, height=16000)
    assert time.perf_counter() - start < 1.0


def test_an_image_whose_header_declares_too_many_pixels_is_not_decoded(tmp_path, monkeypatch):
    monkeypatch.setenv(LIMIT_ENV, "1G")
    folder = tmp_path / "frames"
    folder.mkdir()
    (folder / "0001.png").write_bytes(png_header(60_000, 60_000))
    start = time.perf_counter()
    with pytest.raises(InputError, match=r"image '.*0001.png': about 20.1 GB of memory needed, 1.0 GB available; "
                                         r"use smaller images"):
        ImageFolderSource(folder).open()
    assert time.perf_counter() - start < 1.0


def test_a_video_is_judged_by_its_container_before_a_frame_is_decoded(tmp_path, monkeypatch):
    from neuralframe.streaming.sinks import VideoFileSink
    from neuralframe.streaming.sources import VideoFileSource

    clip = tmp_path / "clip.mp4"
    Pipeline(PatternSource(width=96, height=64, frames=2), [], VideoFileSink(clip)).run()
    monkeypatch.setenv(LIMIT_ENV, "10K")
    source = VideoFileSource(clip)
    with pytest.raises(InputError, match=r"^input '.*clip.mp4': 96x64 frames: about 48.0 kB of memory needed, "
                                         r"10.0 kB available; use a smaller video$"):
        source.open()
    assert source._container is None
