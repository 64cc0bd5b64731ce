"""Frame sources: video files (PyAV), image folders, webcams (OpenCV) and a moving test pattern.

Conversions from numpy/OpenCV/PyAV to `Frame` happen here and nowhere else. Every problem with the
input (missing, empty, not a video, a camera that does not open) raises an `InputError` whose message
names the input and says what to do.
"""

from __future__ import annotations

import io
import math
import os
import time
from pathlib import Path

import numpy as np
import torch

from neuralframe.backend.memory import check_allocation, check_image
from neuralframe.errors import InputError
from neuralframe.streaming.frame import Frame, StreamInfo
from neuralframe.streaming.pipeline import Source

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
VIDEO_EXTENSIONS = (".mp4", ".mkv", ".mov", ".avi", ".webm", ".m4v")


def _check_file(path: Path, what: str) -> None:
    if not path.exists():
        raise InputError(f"{what} '{path}' does not exist")
    if path.is_dir():
        raise InputError(f"{what} '{path}' is a folder, not a file")
    if not path.is_file():  # a device, a pipe or a socket: endless, or blocking on open
        raise InputError(f"{what} '{path}' is not a regular file (a device, pipe or socket): give a video file")
    if path.stat().st_size == 0:
        raise InputError(f"{what} '{path}' is empty (0 bytes)")


class VideoFileSource(Source):
    """Decodes a video file with PyAV into uint8 RGB frames.

    Args:
        path: any container/codec FFmpeg reads (mp4, mkv, mov, webm, ...).
        loop: start again at the end (for live demos on a file).
    """

    def __init__(self, path: str | os.PathLike, loop: bool = False):
        self.path = Path(path)
        self.loop = loop
        self.name = "decode"
        self._container = None
        self._frames = None
        self._index = 0
        self._fps = 30.0
        self._offset = 0.0

    def open(self) -> StreamInfo:
        import av

        _check_file(self.path, "input video")
        try:
            container = av.open(str(self.path), mode="r")
        except (av.error.InvalidDataError, UnicodeDecodeError) as error:
            raise InputError(f"input '{self.path}' is not a video file that FFmpeg can read ({_av_reason(error)})") from None
        except av.error.FFmpegError as error:
            raise InputError(f"input '{self.path}' could not be opened ({_av_reason(error)})") from None
        if not container.streams.video:
            container.close()
            raise InputError(f"input '{self.path}' has no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        self._fps = float(rate) if rate else 30.0
        width, height = stream.codec_context.width, stream.codec_context.height
        if not width or not height:
            container.close()
            raise InputError(f"input '{self.path}' has a video stream with no picture size (corrupt header?)")
        try:  # a decoded frame: the decoder's YUV pictures and the RGB copy, before the first is decoded
            check_allocation(width * height * 8, f"input '{self.path}': {width}x{height} frames",
                             "use a smaller video")
        except InputError:
            container.close()
            raise
        frames = int(stream.frames) if stream.frames else None
        self._container = container
        self._frames = container.decode(stream)
        return StreamInfo(width=width, height=height, fps=self._fps, frames=frames, name=self.path.name)

    def read(self) -> Frame | None:
        import av

        assert self._frames is not None, "open() first"
        try:
            decoded = next(self._frames)
        except StopIteration:
            if not self.loop or self._index == 0:
                return None
            self._offset = self._index / self._fps
            self._container.seek(0)
            self._frames = self._container.decode(self._container.streams.video[0])
            return self.read()
        except av.error.FFmpegError as error:
            raise InputError(f"input '{self.path}' is corrupt at frame {self._index} ({_av_reason(error)})") from None
        image = torch.from_numpy(decoded.to_ndarray(format="rgb24"))
        timestamp = float(decoded.time) + self._offset if decoded.time is not None else self._index / self._fps
        frame = Frame(image=image, index=self._index, timestamp=timestamp)
        self._index += 1
        return frame

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None


def _av_reason(error: BaseException) -> str:
    text = getattr(error, "strerror", None) or str(error)
    return text.split(": '", 1)[0].strip() or type(error).__name__


class ImageFolderSource(Source):
    """Reads the images of a folder in name order, as one stream at `fps`."""

    def __init__(self, folder: str | os.PathLike, fps: float = 30.0):
        self.folder = Path(folder)
        self.fps = float(fps)
        self.name = "images"
        self._files: list[Path] = []
        self._index = 0
        self._size: tuple[int, int] | None = None

    def open(self) -> StreamInfo:
        if not self.folder.exists():
            raise InputError(f"input folder '{self.folder}' does not exist")
        if not self.folder.is_dir():
            raise InputError(f"input '{self.folder}' is not a folder")
        self._files = sorted(p for p in self.folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
        if not self._files:
            raise InputError(f"input folder '{self.folder}' has no images ({', '.join(IMAGE_EXTENSIONS)})")
        first = self._load(self._files[0])
        self._size = (first.shape[0], first.shape[1])
        return StreamInfo(width=first.shape[1], height=first.shape[0], fps=self.fps, frames=len(self._files),
                          name=self.folder.name)

    def _load(self, path: Path) -> np.ndarray:
        import cv2

        data = np.fromfile(str(path), dtype=np.uint8)
        check_image(io.BytesIO(data.tobytes()), f"image '{path}'", 6, "use smaller images")  # BGR, then RGB
        image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
        if image is None:
            raise InputError(f"image '{path}' is empty or not an image OpenCV can read")
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)

    def read(self) -> Frame | None:
        if self._index >= len(self._files):
            return None
        path = self._files[self._index]
        image = self._load(path)
        if (image.shape[0], image.shape[1]) != self._size:
            raise InputError(
                f"image '{path.name}' is {image.shape[1]}x{image.shape[0]} but the first image is "
                f"{self._size[1]}x{self._size[0]}: a stream needs one size"
            )
        frame = Frame(image=torch.from_numpy(image), index=self._index, timestamp=self._index / self.fps,
                      metadata={"path": str(path)})
        self._index += 1
        return frame


class WebcamSource(Source):
    """A camera through OpenCV. Opens on `open()`, never at import.

    Args:
        index: the camera number (`webcam:1` on the command line).
        width, height, fps: requested capture settings (the camera may choose others; the stream
            info reports what it delivers).
    """

    def __init__(self, index: int = 0, width: int | None = 1280, height: int | None = 720, fps: float | None = 30.0):
        self.index = int(index)
        self.req = (width, height, fps)
        self.name = "webcam"
        self._cap = None
        self._i = 0
        self._t0 = 0.0
        self.end_reason: str | None = None

    def open(self) -> StreamInfo:
        import cv2

        from cv2.utils import logging as cv_log

        before = cv_log.getLogLevel()
        cv_log.setLogLevel(cv_log.LOG_LEVEL_ERROR)  # OpenCV's own warnings would bury our one-line message
        try:
            cap = cv2.VideoCapture(self.index)
        finally:
            cv_log.setLogLevel(before)
        if not cap.isOpened():
            cap.release()
            raise InputError(
                f"webcam {self.index} could not be opened: check that a camera is connected, that no other "
                f"program uses it and that you may access it (see 'neuralframe info' for cameras found)"
            )
        width, height, fps = self.req
        if width:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, width)
        if height:
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
        if fps:
            cap.set(cv2.CAP_PROP_FPS, fps)
        ok, first = cap.read()
        if not ok or first is None:
            cap.release()
            raise InputError(f"webcam {self.index} opened but delivered no frame: is it in use by another program?")
        self._cap = cap
        self._pending = first
        real_fps = cap.get(cv2.CAP_PROP_FPS) or fps or 30.0
        self._t0 = time.perf_counter()
        return StreamInfo(width=first.shape[1], height=first.shape[0], fps=float(real_fps), frames=None,
                          name=f"webcam {self.index}", live=True)

    def read(self) -> Frame | None:
        import cv2

        if self._pending is not None:
            image, self._pending = self._pending, None
        else:
            ok, image = self._cap.read()
            if not ok or image is None:
                # a camera that goes away ends the stream; what was recorded so far stays valid
                self.end_reason = f"webcam {self.index} stopped delivering frames (unplugged?); the stream ended there"
                return None
        rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        frame = Frame(image=torch.from_numpy(rgb), index=self._i, timestamp=time.perf_counter() - self._t0)
        self._i += 1
        return frame

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


class PatternSource(Source):
    """A built-in moving test pattern: colour bars, a scrolling gradient, a bouncing disc and a moving
    grid, so motion, colour and scaling problems are all visible.

    Args:
        width, height: frame size.
        fps: frame rate written into timestamps.
        frames: how many frames (None: endless).
        realtime: pace frames at `fps` like a live camera.
    """

    BARS = np.array([[235, 235, 235], [235, 235, 16], [16, 235, 235], [16, 235, 16],
                     [235, 16, 235], [235, 16, 16], [16, 16, 235], [16, 16, 16]], dtype=np.uint8)

    def __init__(self, width: int = 1280, height: int = 720, fps: float = 30.0, frames: int | None = 150,
                 realtime: bool = False):
        if width < 16 or height < 16:
            raise InputError(f"pattern size must be at least 16x16, got {width}x{height}")
        if fps <= 0:
            raise InputError(f"fps must be positive, got {fps}")
        # its planes (bars, float32 pixel coordinates made from int64 ones) and a frame's float32
        # temporaries: about 48 bytes a pixel, before any is made
        check_allocation(int(width) * int(height) * 48, f"a {width}x{height} test pattern", "use a smaller --size")
        self.width, self.height, self.fps = int(width), int(height), float(fps)
        self.frames = frames
        self.realtime = realtime
        self.name = "pattern"
        self._i = 0
        self._t0 = 0.0
        bar = (np.arange(self.width) * len(self.BARS) // self.width).astype(np.int64)
        self._bars = np.ascontiguousarray(np.broadcast_to(self.BARS[bar][None], (self.height, self.width, 3)))
        self._yy, self._xx = np.mgrid[0:self.height, 0:self.width].astype(np.float32)
        self._ramp = (np.arange(self.width, dtype=np.float32) / max(1, self.width - 1))

    def open(self) -> StreamInfo:
        self._t0 = time.perf_counter()
        return StreamInfo(width=self.width, height=self.height, fps=self.fps, frames=self.frames,
                          name="test pattern", live=self.realtime)

    def render(self, i: int) -> np.ndarray:
        """Frame `i` of the pattern as uint8 [H, W, 3]."""
        h, w = self.height, self.width
        img = self._bars.copy()
        # lower third: a gradient that scrolls one width every 4 seconds
        band = slice(2 * h // 3, h)
        phase = (self._ramp + i / (4.0 * self.fps)) % 1.0
        grad = np.stack([phase, 1.0 - phase, 0.5 + 0.5 * np.sin(2 * math.pi * phase)], axis=-1)
        img[band] = (grad * 255.0 + 0.5).astype(np.uint8)[None]
        # a moving grid of thin lines, two pixels a frame
        shift = (2 * i) % 32
        img[:, (np.arange(w) + shift) % 32 == 0] = 128
        # a bouncing disc
        t = i / self.fps
        r = 0.12 * min(h, w)
        cx = r + (w - 2 * r) * (0.5 + 0.5 * math.sin(2 * math.pi * t / 3.0))
        cy = r + (h - 2 * r) * abs(math.sin(2 * math.pi * t / 2.0))
        disc = (self._xx - cx) ** 2 + (self._yy - cy) ** 2 <= r * r
        img[disc] = (255, 200, 40)
        return img

    def read(self) -> Frame | None:
        if self.frames is not None and self._i >= self.frames:
            return None
        if self.realtime:
            due = self._t0 + self._i / self.fps
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
        frame = Frame(image=torch.from_numpy(self.render(self._i)), index=self._i, timestamp=self._i / self.fps)
        self._i += 1
        return frame


def parse_source(spec: str, *, frames: int | None = None, size: tuple[int, int] | None = None,
                 fps: float | None = None, loop: bool = False) -> Source:
    """A source from its command-line form: `pattern`, `webcam`, `webcam:N`, a video file or an image folder."""
    text = spec.strip()
    if text == "pattern":
        h, w = size or (720, 1280)
        return PatternSource(width=w, height=h, fps=fps or 30.0, frames=frames if frames is not None else 150)
    if text == "webcam" or text.startswith("webcam:"):
        suffix = text.partition(":")[2] or "0"
        if not suffix.isdigit():
            raise InputError(f"unknown webcam '{spec}': use webcam or webcam:N with N a camera number")
        h, w = size or (720, 1280)
        return WebcamSource(int(suffix), width=w, height=h, fps=fps or 30.0)
    path = Path(text)
    if path.is_dir():
        return ImageFolderSource(path, fps=fps or 30.0)
    if not path.exists():
        raise InputError(f"input '{spec}' does not exist (use a video file, an image folder, webcam[:N] or pattern)")
    return VideoFileSource(path, loop=loop)


class FrameListSource(Source):
    """Frames held in memory (uint8 [H, W, 3] tensors), played once, or forwards then back (`bounce`) for
    `frames` frames: the demo's clips, made by the project's own code.

    Args:
        images: the frames, all of one size.
        fps: frame rate written into timestamps.
        frames: how many frames to play (default: len(images)).
        bounce: past the end, play backwards, then forwards again.
        name: the source's name in reports.
    """

    def __init__(self, images: list, fps: float = 30.0, frames: int | None = None, bounce: bool = False,
                 name: str = "clip"):
        if not images:
            raise InputError("a frame list needs at least one frame")
        self.images, self.fps, self.bounce, self.name = list(images), float(fps), bounce, name
        self.frames = len(self.images) if frames is None else int(frames)
        if self.frames > len(self.images) and not bounce:
            raise InputError(f"{self.frames} frames asked of a list of {len(self.images)}; pass bounce=True to loop")
        self._i = 0

    def open(self) -> StreamInfo:
        height, width = self.images[0].shape[:2]
        return StreamInfo(width=int(width), height=int(height), fps=self.fps, frames=self.frames, name=self.name)

    def read(self) -> Frame | None:
        if self._i >= self.frames:
            return None
        n = len(self.images)
        k = self._i % (2 * n - 2) if n > 1 else 0
        image = self.images[k if k < n else 2 * n - 2 - k]
        frame = Frame(image=image, index=self._i, timestamp=self._i / self.fps)
        self._i += 1
        return frame
