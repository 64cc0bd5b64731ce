"""The viewer's frame pipeline: camera requests in, rendered images out, newest first.

    requests = RequestSource()                       # the UI thread submits what it wants to see
    pipeline = Pipeline(requests, [RenderStage(scene)], LatestFrameSink(), policy="latest")

The UI thread never renders: it submits a `ViewRequest` when the camera, the scale or the display
mode changes, and draws whatever newest frame the sink holds. A request that arrives while the render
stage is busy replaces any older unread one (the `latest` policy), so a slow render never builds a
backlog and input latency stays one render long.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch

from neuralframe.render import interrupt
from neuralframe.render.camera import Camera
from neuralframe.streaming.frame import Frame, StreamInfo
from neuralframe.streaming.pipeline import Source, Stage

MODES = ("rgb", "depth", "alpha")


@dataclass(frozen=True)
class ViewRequest:
    """What to render: a full-resolution camera, the scale to render it at, what to show, and for a splat
    scene with a level-of-detail tree the most Gaussians to draw (a cut through the tree; None: every one)."""

    camera: Camera
    scale: float = 1.0
    mode: str = "rgb"
    budget: int | None = None
    moving: bool = False  # the camera is moving (a splat cut drops view-dependent colour)
    version: int = 0  # the controls' version this camera came from
    submitted: float = field(default_factory=time.perf_counter)


class RequestSource(Source):
    """Frames that carry view requests; `read()` waits for the next request the UI submits."""

    name = "camera"

    def __init__(self, width: int, height: int) -> None:
        self._cond = threading.Condition()
        self._pending: ViewRequest | None = None
        self._latest: ViewRequest | None = None
        self._closed = False
        self._i = 0
        self._size = (width, height)

    def open(self) -> StreamInfo:
        return StreamInfo(width=self._size[0], height=self._size[1], fps=60.0, frames=None, name="viewer", live=True)

    @property
    def closed(self) -> bool:
        """The stream has ended (`shutdown`): nobody will look at a render still in flight."""
        return self._closed

    def superseded(self, request: ViewRequest) -> bool:
        """A newer request than `request` has been submitted (it may already be queued for rendering)."""
        return self._latest is not request

    def submit(self, request: ViewRequest) -> None:
        with self._cond:
            self._latest = request
            self._pending = request
            self._cond.notify_all()

    def shutdown(self) -> None:
        """End the stream: the pipeline drains and stops."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def read(self) -> Frame | None:
        with self._cond:
            self._cond.wait_for(lambda: self._pending is not None or self._closed)
            if self._closed:
                return None
            request, self._pending = self._pending, None
        frame = Frame(torch.empty((0, 0, 3), dtype=torch.uint8), self._i, time.perf_counter(),
                      metadata={"request": request})
        self._i += 1
        return frame


def colorize(output, mode: str) -> np.ndarray:
    """A RenderOutput as uint8 [H, W, 3] for display: colour, colour-mapped depth, or alpha."""
    if mode == "rgb":
        return output.to_uint8()
    if mode == "alpha":
        a = (output.alpha.detach().float().clamp(0, 1) * 255.0 + 0.5).to(torch.uint8).cpu().numpy()
        return np.repeat(a[..., None], 3, axis=2)
    if mode == "depth":
        import cv2

        depth = output.depth.detach().float().cpu().numpy()
        alpha = output.alpha.detach().float().cpu().numpy()
        valid = alpha > 0.5
        if valid.any():
            lo, hi = np.percentile(depth[valid], [2, 98])
        else:
            lo, hi = 0.0, 1.0
        norm = np.clip((depth - lo) / max(hi - lo, 1e-6), 0, 1)
        mapped = cv2.applyColorMap((255 - norm * 255).astype(np.uint8), cv2.COLORMAP_TURBO)[..., ::-1]
        mapped = (mapped * np.clip(alpha, 0, 1)[..., None]).astype(np.uint8)  # fade where nothing is
        return np.ascontiguousarray(mapped)
    raise ValueError(f"unknown display mode {mode!r}")


def lower_priority(by: int) -> None:
    """Lower the calling thread's scheduling priority by `by` (Linux: per thread; threads it starts inherit it)."""
    if by:
        tid = threading.get_native_id()
        try:
            os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + int(by))
        except (AttributeError, OSError):  # not Linux, or not allowed: the priority stays as it is
            pass


class RenderStage(Stage):
    """Renders each request with the scene's renderer at the requested scale.

    A render that a newer request makes stale stops at the renderer's next check point
    (`neuralframe.render.interrupt`) and is dropped, so a new camera waits for a fraction of a render
    instead of a whole one. Never twice in a row: under input faster than renders, every other render
    still reaches the screen. Once `cancelled()` is true (the window is closing) a render in flight stops at its
    next check point whatever came before, so that the render thread can be joined at once.

    Args:
        scene: anything with `render(camera, impl=...)` (see `neuralframe.render.scene`).
        impl: renderer implementation ("auto", "cpu", "reference", "cuda").
        render_fn: replaces `scene.render` (tests inject a slow renderer this way; it renders every request's
            budget as every Gaussian).
        stale: stale(request) is true once a newer request exists (`RequestSource.superseded`); None: never
            interrupt.
        nice: lower the rendering thread's scheduling priority by this much (Linux `nice`, per thread) before
            its first render, so that the threads the kernels start inherit it; None: leave it.
        cancelled: cancelled() is true once the stream is ending (`RequestSource.closed`); None: never.
        tree: tree() is the scene's level-of-detail tree (`render.splat.hierarchy.Hierarchy`) once it is ready,
            else None: a request's budget applies only then.
    """

    name = "render"

    def __init__(self, scene, impl: str = "auto", render_fn: Callable[..., Any] | None = None,
                 stale: Callable[[ViewRequest], bool] | None = None, nice: int | None = None,
                 cancelled: Callable[[], bool] | None = None, tree: Callable[[], Any] | None = None):
        self.scene = scene
        self.tree = tree or (lambda: None)
        self.total = int(getattr(scene, "describe", dict)().get("gaussians") or 0)
        self.nice = nice
        self._niced: set[int] = set()
        self.impl = impl
        self.render_fn = render_fn
        self.stale = stale
        self.cancelled = cancelled or (lambda: False)
        self.interrupted = 0
        self._last_interrupted = False

    def _lower_priority(self) -> None:
        tid = threading.get_native_id()
        if self.nice and tid not in self._niced:
            self._niced.add(tid)
            lower_priority(self.nice)

    def process(self, frame: Frame) -> Frame | None:
        self._lower_priority()
        request: ViewRequest = frame.metadata["request"]
        camera = request.camera if request.scale >= 1.0 else request.camera.scaled(request.scale)
        t0 = time.perf_counter()
        superseded = self.stale if self.stale is not None and not self._last_interrupted else None
        cancelled = self.cancelled

        def stale() -> bool:
            return cancelled() or (superseded is not None and superseded(request))

        tree = self.tree() if request.budget is not None and self.render_fn is None else None
        budget, drawn = (request.budget, 0) if tree is not None else (None, self.total)
        cut_ms = 0.0
        try:
            with interrupt.interruptible(stale):
                if self.render_fn is not None:
                    output = self.render_fn(camera)
                elif tree is not None:
                    from neuralframe.render import splat

                    # while moving (a reduced scale) without view-dependent colour: a third of the work to gather
                    cut = tree.cut(camera, budget, sh_degree=0 if request.moving else None)
                    drawn, cut_ms = cut.count, 1000.0 * (time.perf_counter() - t0)
                    output = splat.rasterize(cut.gaussians, camera, impl=self.impl)
                else:
                    output = self.scene.render(camera, impl=self.impl)
        except interrupt.RenderInterrupted:
            if cancelled():  # the window is closing: not a render a newer camera replaced
                return None
            self.interrupted += 1
            self._last_interrupted = True
            return None
        self._last_interrupted = False
        image = colorize(output, request.mode)
        ms = 1000.0 * (time.perf_counter() - t0)
        meta = {"request": request, "render_ms": ms, "scale": request.scale, "camera": camera, "budget": budget,
                "drawn": drawn, "cut_ms": cut_ms}
        return frame.replace(image=torch.from_numpy(image), metadata=meta)
