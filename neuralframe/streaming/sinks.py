"""Frame sinks: H.264 video files (PyAV), image folders, a virtual camera (pyvirtualcam), null (stats only)
and latest-frame (for a UI).

Outputs are written under a temporary name beside the target and renamed into place only when the
stream finished well, so a failure or a cancel never leaves a partial file where the user looks.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import threading
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

from neuralframe.errors import InputError, MissingDependencyError, OutputError
from neuralframe.streaming.frame import Frame, StreamInfo
from neuralframe.streaming.outputs import check_folder, check_output, names_a_path
from neuralframe.streaming.pipeline import Sink

VIDEO_FORMATS = {".mp4": "mp4", ".mkv": "matroska", ".mov": "mov"}


def _temporary(path: Path, make, **names) -> Path:
    """A temporary file or folder beside `path` (`make` is mkstemp or mkdtemp); a folder that refuses it
    (gone since the check, full, read-only) is an OutputError."""
    try:
        made = make(dir=str(path.parent) or ".", **names)
    except OSError as error:
        raise OutputError(f"cannot write '{path}': {error.strerror or error}") from None
    if isinstance(made, tuple):
        os.close(made[0])
        made = made[1]
    return Path(made)


def _publish(tmp: Path, final: Path) -> None:
    """Give a temporary file or folder the usual permissions (mkstemp makes it private), then rename it."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, (0o777 if tmp.is_dir() else 0o666) & ~umask)
    os.replace(tmp, final)


def _image_u8(frame: Frame, where: str) -> np.ndarray:
    image = frame.image
    if getattr(image, "dtype", None) is None or str(image.dtype) not in ("torch.uint8", "uint8") or image.ndim != 3 \
            or image.shape[2] != 3:
        raise InputError(
            f"{where} needs uint8 [H, W, 3] frames, got {getattr(image, 'dtype', type(image))} {list(image.shape)} "
            f"at frame {frame.index}"
        )
    array = image.detach().cpu().numpy() if hasattr(image, "numpy") else np.asarray(image)
    return np.ascontiguousarray(array)


class VideoFileSink(Sink):
    """Encodes frames to H.264 (yuv420p) with PyAV, at the stream's frame rate.

    Timestamps follow the frames' own, so dropped frames in a live stream keep real time. Odd sizes are
    padded by one pixel (H.264 4:2:0 needs even sizes) by repeating the last row/column.

    Args:
        path: .mp4, .mkv or .mov.
        fps: frame rate; default: the source's.
        crf: constant rate factor (lower is better quality; 18 is visually lossless).
        preset: x264 speed preset.
        threads: encoder threads (0: FFmpeg's choice).
        fragmented: write a fragmented MP4/MOV (a keyframe and a fragment every `fps` frames), playable while
            it grows: what a long generation job needs to be watched before it ends.
    """

    def __init__(self, path: str | os.PathLike, fps: float | None = None, crf: int = 18, preset: str = "veryfast",
                 threads: int = 0, fragmented: bool = False):
        self.path = Path(path)
        if self.path.suffix.lower() not in VIDEO_FORMATS:
            raise OutputError(
                f"cannot write video '{self.path}': use a .mp4, .mkv or .mov name (or a folder for images)"
            )
        self.fps = fps
        self.crf = int(crf)
        self.preset = preset
        self.threads = int(threads)
        self.fragmented = bool(fragmented)
        self.name = "encode"
        self._tmp: Path | None = None
        self._container = None
        self._stream = None
        self._rate: Fraction | None = None
        self._t0: float | None = None
        self._last_pts = -1
        self.frames_written = 0

    @property
    def output(self) -> str | None:
        return str(self.path)

    def open(self, info: StreamInfo) -> None:
        check_folder(self.path)  # exists, and really takes a new file (os.access says yes under /proc)
        fps = self.fps or info.fps or 30.0
        self._rate = Fraction(fps).limit_denominator(1001)
        self._tmp = _temporary(self.path, tempfile.mkstemp, prefix=f".{self.path.stem}.",
                               suffix=f".partial{self.path.suffix}")

    def _start(self, height: int, width: int) -> None:
        import av

        fmt = VIDEO_FORMATS[self.path.suffix.lower()]
        options = {"movflags": "frag_keyframe+empty_moov+default_base_moof"} if self.fragmented and fmt != "matroska" \
            else {}
        self._container = av.open(str(self._tmp), mode="w", format=fmt, options=options)
        stream = self._container.add_stream("libx264", rate=self._rate)
        stream.width = width + (width % 2)
        stream.height = height + (height % 2)
        stream.pix_fmt = "yuv420p"
        stream.codec_context.time_base = 1 / self._rate
        stream.codec_context.options = {"crf": str(self.crf), "preset": self.preset}
        if self.fragmented:  # a keyframe (and so a fragment) about every second, no look-ahead delay
            stream.codec_context.options = {**stream.codec_context.options, "g": str(max(1, round(float(self._rate)))),
                                            "tune": "zerolatency"}
        if self.threads:
            stream.codec_context.thread_count = self.threads
        self._stream = stream

    def write(self, frame: Frame) -> None:
        import av

        image = _image_u8(frame, "the video writer")
        h, w = image.shape[:2]
        if self._container is None:
            self._start(h, w)
            self._size = (h, w)
        elif (h, w) != self._size:
            raise InputError(f"frame {frame.index} is {w}x{h} but the video is {self._size[1]}x{self._size[0]}")
        if h % 2 or w % 2:
            image = np.pad(image, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
        if self._t0 is None:
            self._t0 = frame.timestamp
        pts = int(round((frame.timestamp - self._t0) * float(self._rate)))
        pts = max(pts, self._last_pts + 1)  # strictly increasing, whatever the source's clock did
        self._last_pts = pts
        # converted to the stream's yuv420p here: left to the encoder, PyAV's implicit conversion gave other
        # bytes for the same frames in about half of the runs (PyAV 18, some content); converted first, the
        # same frames give the same file far more often (libx264 itself still differs now and then)
        vf = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="yuv420p")
        vf.pts = pts
        for packet in self._stream.encode(vf):
            self._container.mux(packet)
        self.frames_written += 1

    def close(self) -> None:
        if self._container is None:
            self.abort()
            raise InputError("no frames reached the video writer; nothing was written")
        for packet in self._stream.encode(None):
            self._container.mux(packet)
        self._container.close()
        self._container = None
        _publish(self._tmp, self.path)
        self._tmp = None

    def abort(self) -> None:
        if self._container is not None:
            try:
                self._container.close()
            except Exception:  # noqa: BLE001 - the file is being thrown away
                pass
            self._container = None
        if self._tmp is not None and self._tmp.exists():
            self._tmp.unlink()
        self._tmp = None


class ImageFolderSink(Sink):
    """Writes each frame as `NNNNNN.png` (or .jpg) named by its index, into a new or empty folder.

    The images go to a hidden temporary folder beside the target, renamed to the target at the end.
    Subclasses that write another kind of image override `write` and the labels in messages.
    """

    what = "images"  # "cannot write {what} to ..."
    folder_label = "output folder"  # "{folder_label} '...' is not empty"
    writer_label = "image writer"  # "no frames reached the {writer_label}"

    def __init__(self, folder: str | os.PathLike, ext: str = ".png"):
        self.folder = Path(folder)
        self.ext = ext if ext.startswith(".") else f".{ext}"
        if self.ext.lower() not in (".png", ".jpg", ".jpeg", ".bmp"):
            raise OutputError(f"unknown image format '{ext}': use png, jpg or bmp")
        self.name = "images"
        self._tmp: Path | None = None
        self.frames_written = 0

    @property
    def output(self) -> str | None:
        return str(self.folder)

    def open(self, info: StreamInfo) -> None:
        if self.folder.exists():
            if not self.folder.is_dir():
                raise OutputError(f"cannot write {self.what} to '{self.folder}': it is a file")
            if any(self.folder.iterdir()):
                raise OutputError(f"{self.folder_label} '{self.folder}' is not empty: choose a new folder or empty it")
        check_folder(self.folder)
        self._tmp = _temporary(self.folder, tempfile.mkdtemp, prefix=f".{self.folder.name}.", suffix=".partial")

    def write(self, frame: Frame) -> None:
        import cv2

        image = _image_u8(frame, "the image writer")
        path = self._tmp / f"{frame.index:06d}{self.ext}"
        if not cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
            raise OutputError(f"could not write '{path.name}' (disk full?)")
        self.frames_written += 1

    def close(self) -> None:
        if self.frames_written == 0:
            self.abort()
            raise InputError(f"no frames reached the {self.writer_label}; nothing was written")
        if self.folder.exists():
            self.folder.rmdir()  # checked empty in open()
        _publish(self._tmp, self.folder)
        self._tmp = None

    def abort(self) -> None:
        if self._tmp is not None and self._tmp.exists():
            shutil.rmtree(self._tmp, ignore_errors=True)
        self._tmp = None


class NullSink(Sink):
    """Discards frames: for measuring, and for a stream whose results are shown elsewhere."""

    name = "null"

    def __init__(self) -> None:
        self.frames_written = 0

    def write(self, frame: Frame) -> None:
        self.frames_written += 1


class LatestFrameSink(Sink):
    """Keeps the newest frame for a UI thread to draw (`latest()`), and wakes a waiter when one arrives."""

    name = "display"

    def __init__(self) -> None:
        self._frame: Frame | None = None
        self._cond = threading.Condition()
        self._serial = 0

    def write(self, frame: Frame) -> None:
        with self._cond:
            self._frame = frame
            self._serial += 1
            self._cond.notify_all()

    def latest(self) -> tuple[Frame | None, int]:
        """The newest frame and its serial number (which grows by one per frame written)."""
        with self._cond:
            return self._frame, self._serial

    def wait_newer(self, serial: int, timeout: float | None = None) -> tuple[Frame | None, int]:
        with self._cond:
            self._cond.wait_for(lambda: self._serial > serial, timeout=timeout)
            return self._frame, self._serial


VIRTUALCAM = "virtualcam"


def _pyvirtualcam():
    """pyvirtualcam, imported on first use (it loads a native library), or a clear error saying what to install."""
    from neuralframe.backend.device import import_optional

    try:
        return import_optional("pyvirtualcam", "virtualcam", "--out virtualcam")
    except ImportError as error:  # there, but its native part does not load
        raise MissingDependencyError(f"--out virtualcam: pyvirtualcam is installed but does not load ({error}); "
                                     "reinstall it with pip install --force-reinstall 'neuralframe[virtualcam]'") from None


def _virtualcam_help() -> str:
    """What to do when no virtual camera device opens, for this system."""
    if sys.platform.startswith("linux"):
        return ("load a v4l2loopback device (sudo modprobe v4l2loopback exclusive_caps=1, from the "
                "v4l2loopback-dkms package) and try again")
    return "install OBS Studio (28 or newer), start its virtual camera once, then try again"


class VirtualCamSink(Sink):
    """Sends frames to a virtual camera, so video-call and streaming apps see the stream as a webcam.

    Through pyvirtualcam (`pip install 'neuralframe[virtualcam]'`, imported on first use): a v4l2loopback
    device on Linux, OBS Studio's virtual camera on macOS and Windows. The camera opens in `open()`, at the
    stream's size and frame rate, so a missing package or device fails before the first frame; if the first
    frame has another size, the camera is reopened at that size. Frames are sent as uint8 RGB [H, W, 3] and,
    with `pace`, held until their timestamp, so a video file plays at its own speed instead of as fast as it
    decodes (a live source is already paced; a late frame goes at once and the clock starts again from it,
    so a stall is never followed by a burst).

    Args:
        device: the device to use (/dev/videoN, "OBS Virtual Camera"); None: the first free one.
        fps: the frame rate announced to the camera; default: the stream's.
        pace: hold each frame until its timestamp.
    """

    def __init__(self, device: str | None = None, fps: float | None = None, pace: bool = True):
        self.device = device or None
        self.fps = fps
        self.pace = pace
        self.name = VIRTUALCAM
        self.frames_written = 0
        self.device_name: str | None = None
        self._cam = None
        self._module = None
        self._size: tuple[int, int] | None = None
        self._rate = 30.0
        self._clock: tuple[float, float] | None = None  # (perf_counter, frame timestamp) of the pacing anchor

    @property
    def output(self) -> str | None:
        return f"virtual camera {self.device_name or self.device or ''}".rstrip()

    def open(self, info: StreamInfo) -> None:
        self._module = _pyvirtualcam()
        self._rate = float(self.fps or info.fps or 30.0)
        self._open(info.height, info.width)

    def _open(self, height: int, width: int) -> None:
        module = self._module
        try:
            self._cam = module.Camera(width=int(width), height=int(height), fps=self._rate,
                                      fmt=module.PixelFormat.RGB, device=self.device)
        except RuntimeError as error:  # pyvirtualcam's way of saying no backend could open a device
            reason = "; ".join(line.strip() for line in str(error).splitlines() if line.strip())
            which = f"'{self.device}'" if self.device else "a virtual camera"
            raise OutputError(f"could not open {which} for --out virtualcam ({reason or 'no device'}): "
                              f"{_virtualcam_help()}") from None
        self._size = (int(height), int(width))
        try:
            self.device_name = str(self._cam.device)
        except Exception:  # noqa: BLE001 - the name is for reports only
            self.device_name = self.device

    def write(self, frame: Frame) -> None:
        image = _image_u8(frame, "the virtual camera")
        h, w = image.shape[:2]
        if (h, w) != self._size:
            if self.frames_written:
                raise InputError(f"frame {frame.index} is {w}x{h} but the virtual camera runs at "
                                 f"{self._size[1]}x{self._size[0]}")
            self._close_camera()
            self._open(h, w)
        if self.pace:
            self._wait_for(frame.timestamp)
        try:
            self._cam.send(image)
        except (RuntimeError, OSError) as error:
            raise OutputError(f"the virtual camera {self.device_name or ''} stopped taking frames ({error})") from None
        self.frames_written += 1

    def _wait_for(self, timestamp: float) -> None:
        now = time.perf_counter()
        if self._clock is not None:
            delay = self._clock[0] + (timestamp - self._clock[1]) - now
            if 0 < delay <= 1.0:
                time.sleep(delay)
                return
        # the first frame, a late one, or a jump in the source's clock: start the clock again here
        self._clock = (now, timestamp)

    def _close_camera(self) -> None:
        cam, self._cam = self._cam, None
        if cam is not None:
            cam.close()

    def close(self) -> None:
        self._close_camera()

    def abort(self) -> None:
        try:
            self._close_camera()
        except Exception:  # noqa: BLE001 - the stream already failed; that error is the one to report
            pass


IMAGES_ACCEPTS = "a folder for PNG images (a new name without an extension, or an empty folder)"
SINK_ACCEPTS = f"a .mp4, .mkv or .mov video, or {IMAGES_ACCEPTS}"


def parse_sink(spec: str | None, *, fps: float | None = None) -> Sink:
    """A sink from its command-line form: a video name (.mp4/.mkv/.mov), a folder, `virtualcam[:DEVICE]`, or
    nothing (null)."""
    if spec is None or spec == "":
        return NullSink()
    if spec == VIRTUALCAM or spec.startswith(VIRTUALCAM + ":"):
        return VirtualCamSink(device=spec.partition(":")[2] or None, fps=fps)
    path = Path(spec)
    if path.suffix.lower() in VIDEO_FORMATS:
        return VideoFileSink(path, fps=fps)
    if path.suffix and not path.is_dir():  # no writer owns it: not a folder of images named "out.docx"
        raise OutputError(f"cannot write '{spec}': '{path.suffix}' is not a format written here; write {SINK_ACCEPTS}")
    return ImageFolderSink(path)


def check_video_output(out: str | os.PathLike, *inputs: str | None) -> Path:
    """`check_output` for one video file (what `VideoFileSink` writes)."""
    return check_output(out, tuple(VIDEO_FORMATS), accepts="a .mp4, .mkv or .mov video", inputs=inputs)


def check_sink_output(spec: str | None, *inputs: str | None, images_only: bool = False) -> None:
    """One clear line, before any work, where `parse_sink(spec)` (or, `images_only`, an image folder sink)
    could not write: an input, an extension no writer owns, a folder that is missing, cannot take files or is
    not empty. A window, a virtual camera and no output pass."""
    if not names_a_path(spec):
        return
    formats = () if images_only else tuple(VIDEO_FORMATS)
    path = check_output(spec, formats, accepts=IMAGES_ACCEPTS if images_only else SINK_ACCEPTS, folder=True,
                        inputs=inputs)
    if path.is_dir() and any(path.iterdir()):
        raise OutputError(f"output folder '{spec}' is not empty: choose a new folder or empty it")
