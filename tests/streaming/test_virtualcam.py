"""`--out virtualcam`: frames reach pyvirtualcam as uint8 RGB at the stream's size and rate, paced by their
timestamps; a missing package or device is one clear line from the command line."""

import importlib.machinery
import os
import subprocess
import sys
import time
import types

import numpy as np
import pytest
import torch

from neuralframe.errors import InputError, MissingDependencyError, OutputError
from neuralframe.streaming.frame import Frame, StreamInfo
from neuralframe.streaming.sinks import VirtualCamSink, parse_sink

# what pyvirtualcam 0.15 raises on Linux when no v4l2loopback device exists
NO_DEVICE = ("'v4l2loopback' backend: No v4l2 loopback device found at /dev/video[0-99]. Did you run "
             "'modprobe v4l2loopback'? See also pyvirtualcam's documentation.")


def _fake_pyvirtualcam(fail: str | None = None) -> types.ModuleType:
    """A stand-in for pyvirtualcam with its API (Camera, PixelFormat, send's checks) that records what it gets."""
    import enum

    module = types.ModuleType("pyvirtualcam")
    module.__spec__ = importlib.machinery.ModuleSpec("pyvirtualcam", None)  # found, as an installed one is
    module.PixelFormat = enum.Enum("PixelFormat", {"RGB": "raw ", "BGR": "24BG"})
    module.cameras = []

    class Camera:
        def __init__(self, width, height, fps, *, fmt=module.PixelFormat.RGB, device=None, backend=None,
                     print_fps=False):
            if fail:
                raise RuntimeError(fail)
            self.width, self.height, self.fps, self.fmt = width, height, fps, fmt
            self.device = device or "/dev/video7"
            self.frames, self.times, self.closed = [], [], False
            module.cameras.append(self)

        def send(self, frame):
            if frame.dtype != np.uint8:
                raise TypeError(f"unexpected frame dtype: {frame.dtype} != uint8")
            if frame.shape != (self.height, self.width, 3):
                raise ValueError(f"unexpected frame shape: {frame.shape} != {(self.height, self.width, 3)}")
            assert not self.closed and frame.flags["C_CONTIGUOUS"]
            self.frames.append(frame.copy())
            self.times.append(time.perf_counter())

        def close(self):
            self.closed = True

    module.Camera = Camera
    return module


@pytest.fixture
def fake(monkeypatch):
    module = _fake_pyvirtualcam()
    monkeypatch.setitem(sys.modules, "pyvirtualcam", module)
    return module


def test_pattern_reaches_the_camera_as_rgb(fake):
    from neuralframe.streaming import Pipeline
    from neuralframe.streaming.sources import PatternSource

    sink = parse_sink("virtualcam")
    assert isinstance(sink, VirtualCamSink)
    report = Pipeline(PatternSource(160, 96, fps=25.0, frames=3), [], sink).run()
    assert report.frames_out == 3 and report.status == "completed"
    (cam,) = fake.cameras
    assert (cam.width, cam.height, cam.fps, cam.fmt) == (160, 96, 25.0, fake.PixelFormat.RGB)
    assert cam.closed and len(cam.frames) == 3
    expected = PatternSource(160, 96, fps=25.0)
    for i, sent in enumerate(cam.frames):
        assert sent.dtype == np.uint8 and sent.shape == (96, 160, 3)
        np.testing.assert_array_equal(sent, expected.render(i))  # pixel for pixel, RGB order kept
    assert report.output == "virtual camera /dev/video7"


def test_strided_frames_are_sent_contiguous_and_first_size_wins(fake):
    sink = VirtualCamSink(device="/dev/video3", fps=30.0, pace=False)
    sink.open(StreamInfo(width=320, height=180, fps=60.0))
    assert (fake.cameras[0].width, fake.cameras[0].height, fake.cameras[0].device) == (320, 180, "/dev/video3")
    base = torch.arange(192 * 320 * 3, dtype=torch.int64).remainder(251).to(torch.uint8).reshape(192, 320, 3)
    image = base[::2, ::2]  # a strided view [96, 160, 3]
    sink.write(Frame(image, 0, 0.0))
    # the first frame is smaller than announced: the camera was reopened at its size
    first, cam = fake.cameras
    assert first.closed and (cam.width, cam.height, cam.fps) == (160, 96, 30.0)
    np.testing.assert_array_equal(cam.frames[0], base.numpy()[::2, ::2])
    with pytest.raises(InputError, match="frame 1 is 320x192 but the virtual camera runs at 160x96"):
        sink.write(Frame(base, 1, 1 / 30))
    sink.close()
    assert cam.closed and len(cam.frames) == 1


def test_frames_are_paced_by_their_timestamps(fake):
    sink = VirtualCamSink()
    sink.open(StreamInfo(width=32, height=16, fps=10.0))
    image = torch.zeros((16, 32, 3), dtype=torch.uint8)
    t0 = time.perf_counter()
    for i in range(3):
        sink.write(Frame(image, i, i * 0.1))
    sink.close()
    times = np.array(fake.cameras[0].times) - t0
    assert times[2] - times[0] >= 0.19  # 0.2 s of video takes 0.2 s, not as long as encoding takes
    assert times[0] < 0.1


def test_missing_and_unopenable_devices_raise_clear_errors(monkeypatch):
    monkeypatch.setitem(sys.modules, "pyvirtualcam", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'neuralframe\[virtualcam\]'"):
        VirtualCamSink().open(StreamInfo(width=32, height=16, fps=30.0))
    monkeypatch.setitem(sys.modules, "pyvirtualcam", _fake_pyvirtualcam(fail="'v4l2loopback' backend: Device "
                                                                            "/dev/video9 does not exist."))
    with pytest.raises(OutputError, match="could not open '/dev/video9'.*does not exist"):
        parse_sink("virtualcam:/dev/video9").open(StreamInfo(width=32, height=16, fps=30.0))


def _stream_to_virtualcam(prelude: str):
    """`neuralframe stream --source pattern --size 160x96 --out virtualcam` in a fresh process after `prelude`."""
    code = (f"import sys\n{prelude}\nfrom neuralframe.cli import main\n"
            "sys.exit(main(['stream', '--source', 'pattern', '--size', '160x96', '--frames', '3', '--out', "
            "'virtualcam']))")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "COLUMNS": "200"})


def _one_line(result, *fragments):
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_cli_without_pyvirtualcam_says_what_to_install():
    result = _stream_to_virtualcam("sys.modules['pyvirtualcam'] = None  # as if not installed")
    _one_line(result, "--out virtualcam needs the 'pyvirtualcam' package", "pip install 'neuralframe[virtualcam]'")


def test_cli_without_a_device_says_what_to_do():
    prelude = ("import types, importlib.machinery\n"
               "m = types.ModuleType('pyvirtualcam')\n"
               "m.__spec__ = importlib.machinery.ModuleSpec('pyvirtualcam', None)\n"
               "m.PixelFormat = types.SimpleNamespace(RGB='raw ')\n"
               "def camera(*args, **kwargs):\n"
               f"    raise RuntimeError({NO_DEVICE!r})\n"
               "m.Camera = camera\n"
               "sys.modules['pyvirtualcam'] = m")
    result = _stream_to_virtualcam(prelude)
    hint = "v4l2loopback" if sys.platform.startswith("linux") else "OBS Studio"
    _one_line(result, "could not open a virtual camera", "No v4l2 loopback device found", hint)
