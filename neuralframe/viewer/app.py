"""The desktop viewer: a pyglet window over any scene, fed by the render pipeline.

The UI thread handles input, submits view requests and draws the newest finished frame as soon as it
lands (the render thread wakes the UI loop), and otherwise redraws at a steady `REDRAW_HZ`; rendering
runs on the pipeline's render thread (see `viewer.stage`), at a lower scheduling priority than the UI.

While the camera moves, two things keep input latency low on a CPU: adaptive resolution holds the render
time at `RENDER_SHARE` of the target frame time, and a splat scene with more Gaussians than
`moving_gaussians` renders a merged level of detail (`neuralframe.render.splat.lod`), since a small frame's
cost is per Gaussian more than per pixel. Input latency is about the render in flight plus the next render
plus the draw, so the render budget is a fraction of the frame time. When the camera stops, the view
refines to full resolution with every Gaussian.
However the window ends, `run()` joins every thread it started (the render and the level-of-detail build stop
at their next `render.interrupt` check): one left in torch at exit aborts the process ("terminate called").
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from neuralframe.errors import MissingDependencyError, OutputError
from neuralframe.streaming.outputs import check_folder
from neuralframe.render import interrupt
from neuralframe.viewer.controls import AdaptiveResolution, OrbitControls
from neuralframe.viewer.stage import MODES, RenderStage, RequestSource, ViewRequest


# 0.4 of 33 ms: 13 ms renders, so that the render in flight, the one that sees an input and the draw
# (slow on a software GL) stay within 50 ms of the input (benchmarks/viewer.json: input_latency_ms_p95).
RENDER_SHARE = 0.4
# The window redraws at least this often (HUD clock, expose) and at once when a new frame lands; on a
# software OpenGL (Xvfb, llvmpipe) every redraw of a 1280x720 window costs CPU the renderer needs.
REDRAW_HZ = 30.0
HUD_UPDATE_S = 0.25
# The render thread (and the kernel threads it starts) runs at this lower priority: when the UI thread, the
# GL driver's threads or the X server want a core, they get it at once, so a finished frame reaches the
# screen without waiting behind the next render.
RENDER_NICE = 10


@dataclass(frozen=True)
class ViewerSettings:
    """How the viewer opens.

    Args:
        width, height: window size (a `camera` sets it to the camera's size).
        target_fps: adaptive resolution holds this frame rate while the camera moves.
        min_scale: the lowest render scale adaptive resolution may use.
        moving_gaussians: while the camera moves, a splat scene with more Gaussians than this renders a merged
            level of detail with about this many (`neuralframe.render.splat.lod`); 0: always all of them.
        impl: renderer implementation.
        hud: show the overlay at start (H toggles it).
        screenshot: save the window's pixels here once the full-resolution frame is drawn, then exit.
        camera: start at exactly this camera instead of framing the scene.
        max_seconds: close after this long (benchmarks, tests).
        fov_x: horizontal field of view in degrees when framing the scene.
    """

    width: int = 1280
    height: int = 720
    target_fps: float = 30.0
    min_scale: float = 0.2
    moving_gaussians: int = 50_000
    impl: str = "auto"
    hud: bool = True
    screenshot: str | None = None
    camera: Any = None
    max_seconds: float | None = None
    fov_x: float = 60.0


@dataclass
class ViewerStats:
    """What happened in a viewer session (benchmarks and tests read it)."""

    draws: int = 0
    frames_shown: int = 0
    render_ms: list[float] = field(default_factory=list)
    scales: list[float] = field(default_factory=list)
    levels: list[int] = field(default_factory=list)  # level of detail of each frame shown (0: every Gaussian)
    input_latency_ms: list[float] = field(default_factory=list)
    seconds: float = 0.0
    screenshot: str | None = None
    implementation: str = ""
    renders_interrupted: int = 0  # renders dropped because a newer camera arrived while they ran

    def summary(self) -> dict[str, Any]:
        def med(v):
            return float(np.median(v)) if v else 0.0
        return {
            "seconds": round(self.seconds, 3),
            "draws": self.draws,
            "frames_shown": self.frames_shown,
            "fps_displayed": round(self.frames_shown / self.seconds, 2) if self.seconds else 0.0,
            "render_ms_median": round(med(self.render_ms), 2),
            "scale_median": round(med(self.scales), 3),
            "input_latency_ms_p95": round(float(np.percentile(self.input_latency_ms, 95)), 2)
            if self.input_latency_ms else 0.0,
            "implementation": self.implementation,
            "renders_interrupted": self.renders_interrupted,
        }


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


class ViewerApp:
    """A window on a scene. `run()` blocks until the window closes and returns the session's stats.

    Args:
        scene: a `neuralframe.render.scene.Scene`.
        settings: window and rendering settings.
        render_fn: replaces the scene's renderer (tests inject a slow one).
        script: `[(seconds, fn(app))]` run at those times after the first frame (tests, benchmarks).
    """

    def __init__(self, scene, settings: ViewerSettings = ViewerSettings(),
                 render_fn: Callable[..., Any] | None = None,
                 script: list[tuple[float, Callable[["ViewerApp"], None]]] | None = None):
        self.scene = scene
        self.settings = settings
        if settings.camera is not None:
            w, h = settings.camera.width, settings.camera.height
            start = settings.camera
        else:
            w, h = settings.width, settings.height
            start = scene.initial_camera(w, h, settings.fov_x)
        self.controls = OrbitControls.from_camera(start, scene.bounds(), scene.up)
        # the level of detail while the camera moves (scenes without levels: 0), built in the background at start
        level_for = getattr(scene, "level_for", None)
        self.moving_level = level_for(settings.moving_gaussians) if level_for is not None else 0
        self.size = (w, h)
        # Renders get RENDER_SHARE of the frame time: the rest goes to colourising, texture upload and drawing,
        # and input latency is up to two renders long (the one in flight, then the one that sees the input).
        self.adaptive = AdaptiveResolution(RENDER_SHARE * 1000.0 / settings.target_fps, settings.min_scale)
        self.render_fn = render_fn
        self.script = sorted(script or [], key=lambda s: s[0])
        self.mode = "rgb"
        self.hud_visible = settings.hud
        self.stats = ViewerStats()
        self.window = None
        self.error: BaseException | None = None
        self._texture = None
        self._shown: dict[str, Any] | None = None
        self._last_request: tuple | None = None
        self._pending_inputs: list[tuple[int, float]] = []  # (controls version, time of the input)
        self._serial = 0
        self._t_start = 0.0
        self._t_first = None
        self._waker = None
        self._last_draw = 0.0
        self._hud_key: tuple | None = None
        self._hud_time = 0.0
        self._detail_thread: threading.Thread | None = None
        self.detail_error: BaseException | None = None  # the level of detail could not be built (renders all)

    # ---- input (also called by scripts and tests, exactly as the window's events do) ----
    def _input(self, change: Callable[[], None]) -> None:
        before = self.controls.version
        change()
        if self.controls.version != before:
            self._pending_inputs.append((self.controls.version, time.perf_counter()))
            if self.window is not None:  # running: the render stage sees the new camera now, not next tick
                self._submit()

    def on_mouse_drag(self, x, y, dx, dy, buttons, modifiers):
        from pyglet.window import key, mouse

        if buttons & mouse.LEFT and not modifiers & key.MOD_SHIFT:
            self._input(lambda: self.controls.orbit(dx, dy))
        elif buttons & (mouse.RIGHT | mouse.MIDDLE) or (buttons & mouse.LEFT and modifiers & key.MOD_SHIFT):
            self._input(lambda: self.controls.pan(dx, dy))

    def on_mouse_scroll(self, x, y, scroll_x, scroll_y):
        self._input(lambda: self.controls.zoom(scroll_y))

    def on_key_press(self, symbol, modifiers):
        from pyglet.window import key

        if symbol == key.ESCAPE:
            self.close()
            return True  # handled: pyglet's default would close without our shutdown
        if symbol == key.R:
            self._input(self.controls.reset)
        elif symbol == key.H:
            self.hud_visible = not self.hud_visible
            self._redraw()
        elif symbol in (key._1, key._2, key._3, key.NUM_1, key.NUM_2, key.NUM_3):
            index = {key._1: 0, key._2: 1, key._3: 2, key.NUM_1: 0, key.NUM_2: 1, key.NUM_3: 2}[symbol]
            self.mode = MODES[index]
        elif symbol in (key.PLUS, key.EQUAL, key.NUM_ADD):
            self._input(lambda: self.controls.change_fov(-5.0))
        elif symbol in (key.MINUS, key.NUM_SUBTRACT):
            self._input(lambda: self.controls.change_fov(5.0))
        elif symbol == key.P:
            name = time.strftime("neuralframe-%Y%m%d-%H%M%S.png")
            self.stats.screenshot = str(save_png(self.read_pixels(), name))

    def on_resize(self, width, height):
        self.controls.resize(width, height)

    # ---- the loop ----
    def _tick(self, dt: float) -> None:
        if not self.pipeline.running:
            self.close()
            return
        keys = self._keys
        from pyglet.window import key

        fwd = keys[key.W] - keys[key.S]
        right = keys[key.D] - keys[key.A]
        up = keys[key.E] - keys[key.Q]
        if fwd or right or up:
            self._input(lambda: self.controls.fly(fwd, right, up, dt))
        now = time.perf_counter()
        while self.script and self._t_first is not None and now - self._t_first >= self.script[0][0]:
            _, fn = self.script.pop(0)
            fn(self)
        self._submit()
        self._take_frame()
        if self.settings.max_seconds is not None and time.perf_counter() - self._t_start >= self.settings.max_seconds:
            self.close()

    def _submit(self) -> None:
        scale = self.adaptive.scale(self.controls.last_change)
        moving = self.moving_level and scale < 1.0 and self.scene.has_detail(self.moving_level)
        level = self.moving_level if moving else 0
        key_ = (self.controls.version, round(scale, 3), self.mode, level)
        if key_ == self._last_request:
            return
        self._last_request = key_
        request = ViewRequest(self.controls.camera(*self.size), scale, self.mode, level, self.controls.version)
        self.requests.submit(request)

    def _take_frame(self) -> None:
        import pyglet

        if self.window is None:  # a wake-up that arrived after the window closed
            return
        frame, serial = self.sink.latest()
        if frame is None or serial == self._serial:
            return
        self._serial = serial
        image = frame.image.numpy()
        h, w = image.shape[:2]
        data = pyglet.image.ImageData(w, h, "RGB", image.tobytes(), pitch=-w * 3)
        self._texture = data.get_texture()
        meta = frame.metadata
        self._shown = meta
        self.stats.frames_shown += 1
        self.stats.render_ms.append(meta["render_ms"])
        self.stats.scales.append(meta["scale"])
        self.stats.levels.append(meta.get("level", 0))
        self.adaptive.observe(meta["render_ms"], meta["scale"])
        if self._t_first is None:
            self._t_first = time.perf_counter()
        self._redraw()  # on screen now, not at the next redraw tick
        version = meta["request"].version
        now = time.perf_counter()  # input latency: from the input to this frame on screen
        still = []
        for v, t in self._pending_inputs:
            if v <= version:
                self.stats.input_latency_ms.append(1000.0 * (now - t))
            else:
                still.append((v, t))
        self._pending_inputs = still

    def _redraw(self, dt: float = 0.0) -> None:
        if self.window is not None and not getattr(self, "_closing", False):
            self.window.draw(dt)

    def _heartbeat(self, dt: float) -> None:
        if time.perf_counter() - self._last_draw >= 0.9 / REDRAW_HZ:  # no new frame drew it just now
            self._redraw(dt)

    def on_draw(self):
        self._last_draw = time.perf_counter()
        win = self.window
        if self._texture is None:
            win.clear()
        else:  # covers the whole window: no clear first (on a software GL that is one more full-window fill)
            self._texture.blit(0, 0, width=win.width, height=win.height)
        self.stats.draws += 1
        if self.hud_visible and self._shown is not None:
            self._draw_hud()
        if self.settings.screenshot and self._full_frame_shown():
            self.stats.screenshot = str(save_png(self.read_pixels(), self.settings.screenshot))
            self.close()

    def _full_frame_shown(self) -> bool:
        meta = self._shown
        return (meta is not None and meta["scale"] >= 1.0 and meta["request"].version == self.controls.version
                and meta["request"].mode == self.mode)

    def _hud_lines(self) -> list[str]:
        meta = self._shown
        cam = meta["camera"]
        elapsed = max(time.perf_counter() - self._t_start, 1e-6)
        recent = self.stats.render_ms[-30:]
        fps = 1000.0 / max(float(np.mean(recent)), 1e-3) if recent else 0.0
        desc = self.scene.describe()
        count = desc.get("gaussians") or desc.get("parameters") or ""
        what = f"{desc.get('kind', '')} {count:,}" if isinstance(count, int) else f"{desc.get('kind', '')}"
        level = meta.get("level", 0)
        if level:
            what = f"{desc.get('kind', '')} {self.scene.detail(level).n:,} of {count:,} (detail level {level})"
        return [
            f"{fps:5.1f} FPS   render {meta['render_ms']:6.1f} ms",
            f"{cam.width}x{cam.height}  scale {meta['scale']:.2f}",
            what,
            f"impl {self.stats.implementation}   view {self.mode}",
            f"up {elapsed:5.0f} s   H: hide  1/2/3: rgb/depth/alpha",
        ]

    def _draw_hud(self) -> None:
        # Laying out the text costs the UI thread time: new figures 4 times a second (as a person reads
        # them), at once when the resolution, level of detail or view changes.
        meta = self._shown
        key_ = (meta["camera"].width, meta.get("level", 0), self.mode, self.window.height)
        now = time.perf_counter()
        if key_ != self._hud_key or now - self._hud_time >= HUD_UPDATE_S:
            self._hud_key, self._hud_time = key_, now
            self._hud_label.text = "\n".join(self._hud_lines())
            self._hud_box.height = self._hud_label.content_height + 12
            self._hud_box.y = self.window.height - self._hud_box.height - 6
            self._hud_label.y = self.window.height - 12
        self._hud_box.draw()
        self._hud_label.draw()

    def read_pixels(self) -> np.ndarray:
        """The window's current colour buffer as uint8 [H, W, 3] RGB, top row first."""
        import pyglet

        buffer = pyglet.image.get_buffer_manager().get_color_buffer().get_image_data()
        raw = np.frombuffer(buffer.get_data("RGB", buffer.width * 3), dtype=np.uint8)
        return np.ascontiguousarray(raw.reshape(buffer.height, buffer.width, 3)[::-1])

    def close(self) -> None:
        if self.window is not None and not getattr(self, "_closing", False):
            self._closing = True
            import pyglet

            self.requests.shutdown()
            pyglet.app.exit()

    def run(self) -> ViewerStats:
        """Open the window and run until it closes; raises the render pipeline's error if it failed."""
        require_display()
        import pyglet

        from neuralframe.streaming import Pipeline
        self.requests = RequestSource(*self.size)
        self._waker = _waker(self._take_frame)
        self.sink = _waking_sink(self._frame_ready)
        self.stats.implementation = self.scene.implementation(self.settings.impl)
        stage = self._stage = RenderStage(self.scene, self.settings.impl, self.render_fn,
                                          stale=self.requests.superseded, nice=RENDER_NICE,
                                          cancelled=lambda: self.requests.closed)
        self.pipeline = Pipeline(self.requests, [stage],
                                 self.sink, policy="latest")
        try:
            config = pyglet.gl.Config(double_buffer=True)
            self.window = pyglet.window.Window(*self.size, caption=f"neuralframe - {self.scene.name}",
                                               resizable=self.settings.camera is None and not self.settings.screenshot,
                                               config=config, vsync=False)
        except pyglet.window.NoSuchDisplayException as error:
            raise MissingDependencyError(f"cannot open a window ({error}): use 'neuralframe render' instead") from None
        except Exception as error:  # no OpenGL context (headless GL drivers missing)
            raise MissingDependencyError(
                f"cannot open an OpenGL window ({type(error).__name__}: {error}); use 'neuralframe render' instead"
            ) from None
        win = self.window
        self._keys = pyglet.window.key.KeyStateHandler()
        win.push_handlers(self._keys)
        win.push_handlers(on_draw=self.on_draw, on_mouse_drag=self.on_mouse_drag,
                          on_mouse_scroll=self.on_mouse_scroll, on_key_press=self.on_key_press,
                          on_resize=self.on_resize, on_close=self._on_close)
        self._hud_box = pyglet.shapes.Rectangle(6, 0, 330, 10, color=(0, 0, 0, 150))
        self._hud_label = pyglet.text.Label("", x=12, y=0, width=320, multiline=True, anchor_y="top",
                                            font_size=10, color=(255, 255, 255, 255))
        self._t_start = time.perf_counter()
        started = False
        try:
            if self.moving_level:
                self._detail_thread = threading.Thread(target=self._build_detail, name="nf-detail-levels")
                self._detail_thread.start()
            self.pipeline.start()
            started = True
            pyglet.clock.schedule_interval(self._tick, 1.0 / 120.0)
            pyglet.clock.schedule_interval(self._heartbeat, 1.0 / REDRAW_HZ)
            pyglet.app.run(None)  # draws: _take_frame (a new frame) and _heartbeat
        finally:
            pyglet.clock.unschedule(self._tick)
            pyglet.clock.unschedule(self._heartbeat)
            self.requests.shutdown()  # the render in flight and the detail build stop at their next check point
            try:
                if started:
                    self.pipeline.wait()  # raises the render's error
            finally:
                win.close()
                self.window = None
                if self._detail_thread is not None:
                    _join(self._detail_thread)
            self.stats.seconds = time.perf_counter() - self._t_start
            self.stats.renders_interrupted = self._stage.interrupted
        return self.stats

    def _build_detail(self) -> None:
        # On its own thread while the first frames render; stopped within a step of `lod.coarser` by closing.
        try:
            with interrupt.interruptible(lambda: self.requests.closed):
                self.scene.detail(self.moving_level)
        except interrupt.RenderInterrupted:
            pass
        except Exception as error:  # the viewer goes on rendering every Gaussian
            self.detail_error = error

    def _on_close(self):
        self.close()
        return True

    def _frame_ready(self) -> None:
        # Called on the render thread: wake the UI loop now instead of at its next tick (up to 8 ms later).
        import pyglet

        if self._waker is not None and not getattr(self, "_closing", False):
            pyglet.app.platform_event_loop.post_event(self._waker, "on_frame")


def _join(thread: threading.Thread) -> None:
    """Join `thread` (told to stop: it ends within a check point) even through Ctrl-C, which is raised after."""
    interrupted = None
    while thread.is_alive():
        try:
            thread.join()
        except KeyboardInterrupt as error:
            interrupted = error
    if interrupted is not None:
        raise interrupted


def _waker(on_frame: Callable[[], None]):
    """A pyglet event dispatcher whose "on_frame" event (posted from any thread) runs `on_frame` on the UI loop."""
    import pyglet

    class Waker(pyglet.event.EventDispatcher):
        pass

    Waker.register_event_type("on_frame")
    waker = Waker()
    waker.set_handler("on_frame", on_frame)
    return waker


def _waking_sink(notify: Callable[[], None]):
    """A `LatestFrameSink` that also calls `notify()` (on the writing thread) after each frame."""
    from neuralframe.streaming.sinks import LatestFrameSink

    class WakingSink(LatestFrameSink):
        def write(self, frame) -> None:
            super().write(frame)
            notify()

    return WakingSink()
