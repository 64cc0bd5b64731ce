"""Sources and sinks: files round-trip, bad input gets one clear error and leaves nothing behind."""

import os

import numpy as np
import pytest
import torch

from neuralframe.errors import InputError, OutputError, PipelineError
from neuralframe.streaming import Frame, Pipeline
from neuralframe.streaming.pipeline import FunctionStage
from neuralframe.streaming.sinks import ImageFolderSink, NullSink, VideoFileSink, parse_sink
from neuralframe.streaming.sources import ImageFolderSource, PatternSource, VideoFileSource, WebcamSource, \
    parse_source


def _read_all(source):
    info = source.open()
    frames = []
    try:
        while (f := source.read()) is not None:
            frames.append(f)
    finally:
        source.close()
    return info, frames


def _psnr(a, b):
    mse = ((a.float() - b.float()) ** 2).mean().item()
    return 10 * np.log10(255.0**2 / max(mse, 1e-10))


def test_mp4_round_trip(tmp_path):
    pattern = PatternSource(width=320, height=240, fps=25.0, frames=40)
    out = tmp_path / "clip.mp4"
    report = Pipeline(pattern, [], VideoFileSink(out, crf=16)).run()
    assert report.frames_out == 40 and report.output == str(out)
    assert [p.name for p in tmp_path.iterdir()] == ["clip.mp4"]  # no temporary file left
    assert oct(out.stat().st_mode & 0o777) != oct(0o600)  # readable by others, like any written file
    info, frames = _read_all(VideoFileSource(out))
    assert (info.width, info.height, info.fps, info.frames) == (320, 240, 25.0, 40)
    assert len(frames) == 40
    assert [f.index for f in frames] == list(range(40))
    assert frames[10].timestamp == pytest.approx(10 / 25.0)
    expected = PatternSource(width=320, height=240, fps=25.0, frames=40)
    for f in (frames[0], frames[17], frames[39]):
        original = torch.from_numpy(expected.render(f.index))
        err = (f.image.float() - original.float()).abs()
        # H.264 4:2:0 halves the colour resolution: the pattern's one-pixel colour edges blur, the rest is
        # within a level or two
        assert err.median() <= 2 and err.mean() < 6 and _psnr(f.image, original) > 24


def test_odd_size_is_padded_and_mkv_works(tmp_path):
    out = tmp_path / "odd.mkv"
    Pipeline(PatternSource(width=101, height=57, frames=5), [], VideoFileSink(out)).run()
    info, frames = _read_all(VideoFileSource(out))
    assert (info.width, info.height) == (102, 58) and len(frames) == 5


def test_image_folder_round_trip(tmp_path):
    out = tmp_path / "frames"
    Pipeline(PatternSource(width=64, height=48, frames=6), [], ImageFolderSink(out)).run()
    names = sorted(p.name for p in out.iterdir())
    assert names == [f"{i:06d}.png" for i in range(6)]
    info, frames = _read_all(ImageFolderSource(out, fps=12))
    assert (info.width, info.height, info.frames, info.fps) == (64, 48, 6, 12)
    assert torch.equal(frames[3].image, torch.from_numpy(PatternSource(64, 48).render(3)))  # PNG is lossless
    assert [p.name for p in tmp_path.iterdir()] == ["frames"]


def test_failed_stream_leaves_no_partial_video(tmp_path):
    def boom(frame):
        if frame.index == 20:
            raise RuntimeError("stage crashed")
        return frame
    out = tmp_path / "never.mp4"
    with pytest.raises(PipelineError, match="stage crashed"):
        Pipeline(PatternSource(64, 48, frames=100), [FunctionStage(boom, "boom")], VideoFileSink(out)).run()
    assert list(tmp_path.iterdir()) == []


def test_failed_stream_leaves_no_partial_image_folder(tmp_path):
    def boom(frame):
        if frame.index == 3:
            raise RuntimeError("stage crashed")
        return frame
    with pytest.raises(PipelineError):
        Pipeline(PatternSource(64, 48, frames=10), [FunctionStage(boom, "boom")],
                 ImageFolderSink(tmp_path / "out")).run()
    assert list(tmp_path.iterdir()) == []


def test_frame_of_the_wrong_size_is_a_clear_error(tmp_path):
    def grow(frame):
        return frame.replace(image=torch.zeros((50, 64, 3), dtype=torch.uint8)) if frame.index == 2 else frame
    with pytest.raises(PipelineError, match="frame 2 is 64x50 but the video is 64x48"):
        Pipeline(PatternSource(64, 48, frames=5), [FunctionStage(grow, "grow")], VideoFileSink(tmp_path / "a.mp4")).run()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("content,message", [
    (None, "does not exist"),
    (b"", "is empty"),
    (b"this is not a video at all" * 100, "not a video file"),
])
def test_bad_video_inputs(tmp_path, content, message):
    path = tmp_path / "input.mp4"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(InputError, match=message):
        VideoFileSource(path).open()


def test_truncated_video_is_corrupt_not_a_crash(tmp_path):
    good = tmp_path / "good.mp4"
    Pipeline(PatternSource(160, 120, frames=30), [], VideoFileSink(good)).run()
    data = good.read_bytes()
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(data[: len(data) // 3])
    # either refused at open or ended early with a clear error: never a traceback from FFmpeg
    try:
        info, frames = _read_all(VideoFileSource(bad))
        assert len(frames) < 30
    except InputError as error:
        assert "bad.mp4" in str(error)


def test_image_folder_errors(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        ImageFolderSource(tmp_path / "nope").open()
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="has no images"):
        ImageFolderSource(tmp_path / "empty").open()
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "a.png").write_bytes(b"not a png")
    with pytest.raises(InputError, match="not an image"):
        ImageFolderSource(tmp_path / "bad").open()


def test_unwritable_outputs(tmp_path):
    with pytest.raises(OutputError, match="does not exist"):
        VideoFileSink(tmp_path / "missing" / "a.mp4").open(PatternSource(32, 32).open())
    with pytest.raises(OutputError, match=r"use a \.mp4, \.mkv or \.mov"):
        VideoFileSink(tmp_path / "a.gif")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x.png").write_bytes(b"x")
    with pytest.raises(OutputError, match="is not empty"):
        ImageFolderSink(tmp_path / "full").open(PatternSource(32, 32).open())
    if os.geteuid() != 0:  # root can write anywhere
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o500)
        with pytest.raises(OutputError, match="cannot hold new files"):
            VideoFileSink(ro / "a.mp4").open(PatternSource(32, 32).open())


def test_webcam_that_does_not_open():
    with pytest.raises(InputError, match="webcam 7 could not be opened"):
        WebcamSource(7).open()


def test_parse_source_and_sink(tmp_path):
    assert isinstance(parse_source("pattern", frames=3), PatternSource)
    assert isinstance(parse_source("webcam:2"), WebcamSource) and parse_source("webcam:2").index == 2
    with pytest.raises(InputError, match="unknown webcam"):
        parse_source("webcam:front")
    with pytest.raises(InputError, match="does not exist"):
        parse_source(str(tmp_path / "x.mp4"))
    assert isinstance(parse_sink(None), NullSink)
    assert isinstance(parse_sink(str(tmp_path / "o.mp4")), VideoFileSink)
    assert isinstance(parse_sink(str(tmp_path / "dir")), ImageFolderSink)
    for name in ("o.webm", "o.docx"):  # no writer owns them: not a folder of images under that name
        with pytest.raises(OutputError, match=r"is not a format written here; write a \.mp4, \.mkv or \.mov"):
            parse_sink(str(tmp_path / name))
    assert isinstance(parse_sink(str(tmp_path)), ImageFolderSink)  # an existing folder, whatever its name


def test_pattern_moves():
    p = PatternSource(width=128, height=96, fps=30.0, frames=3)
    a, b = p.render(0), p.render(15)
    assert a.shape == (96, 128, 3) and a.dtype == np.uint8
    assert (a != b).any(axis=-1).mean() > 0.05  # something visibly moved


def test_frame_replace_keeps_identity():
    f = Frame(torch.zeros((2, 2, 3), dtype=torch.uint8), 7, 0.25, {"k": 1})
    g = f.replace(image=torch.ones((2, 2, 3), dtype=torch.uint8))
    assert (g.index, g.timestamp, g.metadata, g.born) == (7, 0.25, {"k": 1}, f.born)


class _FakeCapture:
    """Stands in for cv2.VideoCapture: a camera that delivers `frames` frames, then is unplugged."""

    def __init__(self, index, frames=8):
        self.left = frames

    def isOpened(self):
        return True

    def set(self, prop, value):
        return True

    def get(self, prop):
        return 30.0

    def read(self):
        if self.left == 0:
            return False, None
        self.left -= 1
        return True, np.full((48, 64, 3), 40 * self.left % 256, np.uint8)

    def release(self):
        pass


def test_webcam_unplugged_mid_stream_ends_cleanly_with_a_valid_file(tmp_path, monkeypatch):
    import cv2

    monkeypatch.setattr(cv2, "VideoCapture", _FakeCapture)
    out = tmp_path / "cam.mp4"
    report = Pipeline(WebcamSource(0), [], VideoFileSink(out), policy="block").run()
    assert report.status == "completed" and report.frames_out == 8
    assert "unplugged" in report.end_reason
    info, frames = _read_all(VideoFileSource(out))
    assert len(frames) == 8 and (info.width, info.height) == (64, 48)
