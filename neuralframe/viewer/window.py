"""Window plumbing: the display check, PNG output, and waking pyglet's loop from another thread."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np

from neuralframe.errors import MissingDependencyError, OutputError
from neuralframe.streaming.outputs import check_folder


def require_display(instead: str = "use 'neuralframe render SCENE -o out.mp4' to render a video instead") -> None:
    from neuralframe.backend.device import has_display

    if not has_display():
        raise MissingDependencyError(f"no display found (DISPLAY is not set): {instead}, or run under xvfb-run")


def save_png(image: np.ndarray, path: str | os.PathLike) -> Path:
    """Write uint8 [H, W, 3] RGB to a PNG through a temporary name."""
    import cv2

    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    check_folder(path)  # exists, and really takes a new file
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".partial.png", dir=str(parent))
    os.close(fd)
    try:
        if not cv2.imwrite(tmp, cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
            raise OutputError(f"could not write '{path}'")
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def waker(on_frame: Callable[[], None]):
    """A pyglet event dispatcher whose "on_frame" event (posted from any thread) runs `on_frame` on the UI loop."""
    import pyglet

    class Waker(pyglet.event.EventDispatcher):
        pass

    Waker.register_event_type("on_frame")
    waker = Waker()
    waker.set_handler("on_frame", on_frame)
    return waker


def waking_sink(notify: Callable[[], None]):
    """A `LatestFrameSink` that also calls `notify()` (on the writing thread) after each frame."""
    from neuralframe.streaming.sinks import LatestFrameSink

    class WakingSink(LatestFrameSink):
        def write(self, frame) -> None:
            super().write(frame)
            notify()

    return WakingSink()
