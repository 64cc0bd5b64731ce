"""The desktop viewer: a pyglet window over any scene, fed by the render pipeline.

The UI thread handles input, submits view requests and draws the newest finished frame as soon as it
lands (the render thread wakes the UI loop), and otherwise redraws at a steady `REDRAW_HZ`; rendering
runs on the pipeline's render thread (see `viewer.stage`), at a lower scheduling priority than the UI.

While the camera moves, two things keep input latency low on a CPU: adaptive resolution holds the render
time at `RENDER_SHARE` of the target frame time, and a splat scene with more Gaussians than
`moving_gaussians` draws a cut through its level-of-detail tree (`neuralframe.render.splat.hierarchy`) under
a splat budget that `SplatBudget` holds at the same frame time, since a small frame's cost is per Gaussian
more than per pixel. Input latency is about the render in flight plus the next render plus the draw, so the
render budget is a fraction of the frame time. When the camera stops, the view refines at full resolution
through a larger budget to every Gaussian (the plain render's picture).

A scene given as a path opens behind the window (`viewer.loading.SceneLoader`): the window is up at once and
says what it is doing while the file is read and its tree is built or read from the cache; frames start as
soon as the file is read (every Gaussian until the tree is there).
However the window ends, `run()` joins every thread it started (the render stops at its next
`render.interrupt` check, the loader within a step of the tree build): one left in torch at exit aborts the
process ("terminate called").
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from neuralframe.errors import MissingDependencyError
from neuralframe.viewer.controls import AdaptiveResolution, OrbitControls, SplatBudget
from neuralframe.viewer.hud import HUD_UPDATE_S, hud_lines
from neuralframe.viewer.loading import SceneLoader
from neuralframe.viewer.stage import MODES, RenderStage, RequestSource, ViewRequest
from neuralframe.viewer.window import require_display, save_png, waker, waking_sink


# 0.4 of 33 ms: 13 ms renders, so that the render in flight, the one that sees an input and the draw
# (slow on a software GL) stay within 50 ms of the input (benchmarks/viewer.json: input_latency_ms_p95).
RENDER_SHARE = 0.4
# The window redraws at least this often (HUD clock, expose) and at once when a new frame lands; on a
# software OpenGL (Xvfb, llvmpipe) every redraw of a 1280x720 window costs CPU the renderer needs.
REDRAW_HZ = 30.0
# The render thread (and the kernel threads it starts) runs at this lower priority: when the UI thread, the
# GL driver's threads or the X server want a core, they get it at once, so a finished frame reaches the
# screen without waiting behind the next render.
RENDER_NICE = 10
# The scene loader (the level-of-detail tree's build) lower still: it takes what the renders leave.
LOADER_NICE = 15


@dataclass(frozen=True)
class ViewerSettings:
    """How the viewer opens.

    Args:
        width, height: window size (a `camera` sets it to the camera's size).
        target_fps: adaptive resolution holds this frame rate while the camera moves.
        min_scale: the lowest render scale adaptive resolution may use.
        moving_gaussians: while the camera moves, a splat scene with more Gaussians than this draws a cut of its
            level-of-detail tree under a splat budget that starts at this many and follows the frame time
            (`neuralframe.render.splat.hierarchy`); 0: always every Gaussian (and no tree is built).
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
    drawn: list[int] = field(default_factory=list)  # Gaussians drawn in each frame shown
    budgets: list[int | None] = field(default_factory=list)  # its splat budget (None: every Gaussian)
    cut_ms: list[float] = field(default_factory=list)  # of its render time, choosing the cut (0: no cut)
    shown_at: list[float] = field(default_factory=list)  # when each frame reached the screen (perf_counter)
    first_frame_s: float | None = None  # from run() (the window opening, the scene loading) to the first frame
    load_s: float | None = None  # reading the scene file (a scene given as a path)
    tree_s: float | None = None  # building or reading its level-of-detail tree
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
            "time_to_first_frame_s": round(self.first_frame_s, 3) if self.first_frame_s is not None else None,
        }


class ViewerApp:
    """A window on a scene. `run()` blocks until the window closes and returns the session's stats.

    Args:
        scene: a `neuralframe.render.scene.Scene`, or the path of a scene file to open behind the window.
        settings: window and rendering settings.
        render_fn: replaces the scene's renderer (tests inject a slow one).
        script: `[(seconds, fn(app))]` run at those times after the first frame (tests, benchmarks).
    """

    def __init__(self, scene, settings: ViewerSettings = ViewerSettings(),
                 render_fn: Callable[..., Any] | None = None,
                 script: list[tuple[float, Callable[["ViewerApp"], None]]] | None = None):
        self.settings = settings
        self.loader = SceneLoader(scene, detail=settings.moving_gaussians > 0, nice=LOADER_NICE)
        self.scene = self.loader.scene
        self.size = ((settings.camera.width, settings.camera.height) if settings.camera is not None
                     else (settings.width, settings.height))
        self.controls: OrbitControls | None = None
        self.budget: SplatBudget | None = None  # the moving splat budget (a scene with a tree only)
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
        self.shown_image: np.ndarray | None = None
        self._last_request: tuple | None = None
        self._pending_inputs: list[tuple[int, float]] = []  # (controls version, time of the input)
        self._serial = 0
        self._t_start = 0.0
        self._t_first = None
        self._waker = None
        self._last_draw = 0.0
        self._hud_key: tuple | None = None
        self._hud_time = 0.0
        self.pipeline = None
        self._ladder: tuple[int, list[int | None], int] = (-1, [None], 0)  # (version, rungs, rung) at rest
        if self.scene is not None:
            self._scene_ready()

    def _scene_ready(self) -> None:
        """The scene is open: frame it and choose the moving budget."""
        scene, settings = self.scene, self.settings
        start = settings.camera if settings.camera is not None else scene.initial_camera(*self.size, settings.fov_x)
        self.controls = OrbitControls.from_camera(start, scene.bounds(), scene.up)
        total = int(scene.describe().get("gaussians") or 0)
        if self.loader.detail and 0 < settings.moving_gaussians < total:
            self.budget = SplatBudget(settings.moving_gaussians, RENDER_SHARE * 1000.0 / settings.target_fps, total)

    @property
    def detail_error(self) -> BaseException | None:
        """Why the level-of-detail tree could not be built (the viewer renders every Gaussian)."""
        return self.loader.detail_error

    # ---- input (also called by scripts and tests, exactly as the window's events do) ----
    def _input(self, change: Callable[[], None]) -> None:
        if self.controls is None:  # the scene is still loading
            return
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
        if self.controls is not None:
            self.controls.resize(width, height)

    # ---- the loop ----
    def _tick(self, dt: float) -> None:
        if self.pipeline is None:
            if self.loader.error is not None:
                self.close()
                return
            if self.loader.scene is None:
                return
            self._start_rendering()
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
        if self.pipeline is None:
            return
        scale = self.adaptive.scale(self.controls.last_change)
        moving = self.adaptive.moving(self.controls.last_change)
        budget = None
        if self.budget is not None and self.loader.tree is not None:
            budget = self.budget.value if moving else self._rung()
        key_ = (self.controls.version, round(scale, 3), self.mode, budget, moving)
        if key_ == self._last_request:
            return
        self._last_request = key_
        request = ViewRequest(self.controls.camera(*self.size), scale, self.mode, budget, moving,
                              self.controls.version)
        self.requests.submit(request)

    def _rung(self) -> int | None:
        """The budget of the still view's refinement: a larger budget first, then every Gaussian."""
        version, rungs, i = self._ladder
        if version != self.controls.version:
            self._ladder = (self.controls.version, self.budget.ladder(), 0)
            version, rungs, i = self._ladder
        return rungs[i]

    def _refined(self, meta: dict) -> None:
        """A still frame is on screen: go on to the next rung of the refinement."""
        version, rungs, i = self._ladder
        if (meta["request"].version == version == self.controls.version and meta["scale"] >= 1.0
                and meta["budget"] == rungs[i] and i + 1 < len(rungs)):
            self._ladder = (version, rungs, i + 1)
            self._submit()

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
        self.shown_image = image  # what is on screen now (benchmarks compare it with plain renders)
        self.stats.frames_shown += 1
        self.stats.render_ms.append(meta["render_ms"])
        self.stats.scales.append(meta["scale"])
        self.stats.drawn.append(meta["drawn"])
        self.stats.cut_ms.append(meta["cut_ms"])
        self.stats.budgets.append(meta["budget"])
        self.stats.shown_at.append(time.perf_counter())
        self.adaptive.observe(meta["render_ms"], meta["scale"])
        if self.budget is not None and meta["request"].moving:
            self.budget.observe(meta["render_ms"], meta["drawn"], meta["budget"])
        if self._t_first is None:
            self._t_first = time.perf_counter()
            self.stats.first_frame_s = self._t_first - self._t_start
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
        if self.budget is not None:
            self._refined(meta)

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
        status = self.loader.status()
        if (self.hud_visible and self._shown is not None) or status:
            self._draw_hud(status)
        if self.settings.screenshot and self._full_frame_shown():
            self.stats.screenshot = str(save_png(self.read_pixels(), self.settings.screenshot))
            self.close()

    def _full_frame_shown(self) -> bool:
        meta = self._shown
        return (meta is not None and meta["scale"] >= 1.0 and meta["request"].version == self.controls.version
                and meta["request"].mode == self.mode and meta["budget"] is None)

    def _hud_lines(self) -> list[str]:
        return hud_lines(self)

    def _draw_hud(self, status: str = "") -> None:
        # Laying out the text costs the UI thread time: new figures 4 times a second (as a person reads
        # them), at once when the resolution, budget or view changes.
        meta = self._shown
        key_ = (meta["camera"].width, meta["budget"], self.mode, self.window.height) if meta else None
        now = time.perf_counter()
        if key_ != self._hud_key or now - self._hud_time >= HUD_UPDATE_S:
            self._hud_key, self._hud_time = key_, now
            lines = self._hud_lines() if meta is not None and self.hud_visible else []
            self._hud_label.text = "\n".join(lines + ([status] if status else []))
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
            self.loader.stop()
            pyglet.app.exit()

    def _start_rendering(self) -> None:
        """The scene is open: start the render pipeline (on the UI thread, from `_tick` or `run`)."""
        from neuralframe.streaming import Pipeline

        self.scene = self.loader.scene
        if self.controls is None:
            self._scene_ready()
        self.stats.load_s = self.loader.loaded_s
        self.stats.implementation = self.scene.implementation(self.settings.impl)
        if self.window is not None:
            self.window.set_caption(f"neuralframe - {self.scene.name}")
        self._stage = RenderStage(self.scene, self.settings.impl, self.render_fn, stale=self.requests.superseded,
                                  nice=RENDER_NICE, cancelled=lambda: self.requests.closed,
                                  tree=lambda: self.loader.tree)
        pipeline = Pipeline(self.requests, [self._stage], self.sink, policy="latest")
        pipeline.start()
        self.pipeline = pipeline
        self._submit()

    def run(self) -> ViewerStats:
        """Open the window and run until it closes; raises the render pipeline's error, or the scene's when it
        could not be opened."""
        require_display()
        import pyglet

        self._t_start = time.perf_counter()
        self.requests = RequestSource(*self.size)
        self._waker = waker(self._take_frame)
        self.sink = waking_sink(self._frame_ready)
        name = self.scene.name if self.scene is not None else self.loader.path.name
        try:
            config = pyglet.gl.Config(double_buffer=True)
            self.window = pyglet.window.Window(*self.size, caption=f"neuralframe - {name}",
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
        try:
            self.loader.start()
            if self.scene is not None:
                self._start_rendering()
            pyglet.clock.schedule_interval(self._tick, 1.0 / 120.0)
            pyglet.clock.schedule_interval(self._heartbeat, 1.0 / REDRAW_HZ)
            pyglet.app.run(None)  # draws: _take_frame (a new frame) and _heartbeat
        finally:
            pyglet.clock.unschedule(self._tick)
            pyglet.clock.unschedule(self._heartbeat)
            self.requests.shutdown()  # the render in flight stops at its next check point
            self.loader.stop()  # the tree build too; reading a file ends by itself
            try:
                if self.pipeline is not None:
                    self.pipeline.wait()  # raises the render's error
            finally:
                win.close()
                self.window = None
                self.loader.join()
            self.stats.seconds = time.perf_counter() - self._t_start
            self.stats.tree_s = self.loader.tree_s
            self.stats.renders_interrupted = self._stage.interrupted if self.pipeline is not None else 0
        if self.loader.error is not None:
            raise self.loader.error
        return self.stats

    def _on_close(self):
        self.close()
        return True

    def _frame_ready(self) -> None:
        # Called on the render thread: wake the UI loop now instead of at its next tick (up to 8 ms later).
        import pyglet

        if self._waker is not None and not getattr(self, "_closing", False):
            pyglet.app.platform_event_loop.post_event(self._waker, "on_frame")
