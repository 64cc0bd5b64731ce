"""Camera controls and adaptive resolution: plain state and arithmetic, no window.

`OrbitControls` turns mouse and key input into a camera the way web splat viewers do: left drag
orbits around a target, right/middle (or shift+left) drag pans, the wheel zooms, WASD/QE fly, R resets,
+/- change the field of view; where the camera sits is orbit math (`neuralframe.render.orbit`).
`AdaptiveResolution` picks the render scale: while the camera moves it holds a target frame time, and
shortly after it stops it asks for full resolution. `SplatBudget` picks how many Gaussians a moving frame
of a splat scene may draw (a cut through its level-of-detail tree), against the same frame time, and the
ladder of budgets the view refines through once the camera stops.
"""

from __future__ import annotations

import math
import time
from dataclasses import replace

import torch

from neuralframe.render.camera import Camera
from neuralframe.render.orbit import DEFAULT_UP, OrbitState
from neuralframe.render.scene import Bounds


class OrbitControls:
    """Orbit / pan / zoom / fly camera state for a window of `width` x `height` pixels.

    Args:
        start: the initial state (R returns to it).
        up: the scene's world up.
        scale: the scene's size (its radius): pan and fly speeds are relative to it.
    """

    ORBIT_DEG_PER_PX = 0.3
    ZOOM_PER_NOTCH = 0.9
    FLY_RADII_PER_S = 0.6

    def __init__(self, start: OrbitState, width: int, height: int, up=DEFAULT_UP, scale: float = 1.0):
        self.start = start
        self.state = start
        self.width, self.height = int(width), int(height)
        self.up = tuple(up)
        self.scale = float(scale)
        self.version = 0  # grows with every change, so a render can be matched to the input behind it
        self.last_change = 0.0
        self.pinned: Camera | None = None  # an exact camera to show until the first input moves away from it
        self.start_camera: Camera | None = None  # what R returns to, when the start was an exact camera

    @classmethod
    def framing(cls, bounds: Bounds, width: int, height: int, fov_x: float = 60.0, up=DEFAULT_UP,
                elevation: float = 10.0) -> "OrbitControls":
        """Controls whose start view shows the whole scene."""
        state = OrbitState.framing(bounds.center, bounds.radius, width, height, fov_x, elevation)
        return cls(state, width, height, up, bounds.radius)

    @classmethod
    def from_camera(cls, camera: Camera, bounds: Bounds, up=DEFAULT_UP) -> "OrbitControls":
        """Controls that start at a given camera, orbiting the point it looks at (at the scene's depth)."""
        state = OrbitState.from_camera(camera, bounds.center, bounds.radius, up)
        controls = cls(state, camera.width, camera.height, up, bounds.radius)
        controls.pinned = controls.start_camera = camera
        return controls

    # ---- the camera ----
    def camera(self, width: int | None = None, height: int | None = None) -> Camera:
        w, h = width or self.width, height or self.height
        if self.pinned is not None:
            return self.pinned if (w, h) == (self.pinned.width, self.pinned.height) else self.pinned.resized(w, h)
        return self.state.camera(w, h, self.up)

    def _set(self, state: OrbitState) -> None:
        if state != self.state or self.pinned is not None:
            self.pinned = None
            self.state = state
            self.version += 1
            self.last_change = time.perf_counter()

    # ---- input ----
    def orbit(self, dx: float, dy: float) -> None:
        """Drag by (dx, dy) pixels (pyglet: y up): right turns the view around the target, up raises it."""
        s = self.state
        elevation = max(-89.0, min(89.0, s.elevation - dy * self.ORBIT_DEG_PER_PX))
        self._set(replace(s, azimuth=(s.azimuth - dx * self.ORBIT_DEG_PER_PX) % 360.0, elevation=elevation))

    def pan(self, dx: float, dy: float) -> None:
        """Drag the scene by (dx, dy) pixels: the target moves in the image plane."""
        s = self.state
        cam = self.camera()
        per_px = 2.0 * s.distance * math.tan(math.radians(s.fov_x) / 2.0) / self.width
        right, down = cam.R[0], cam.R[1]
        # pyglet's dy is upward on screen; the camera's y axis points down
        shift = (-dx * right + (-dy) * -down) * per_px
        target = torch.as_tensor(s.target, dtype=torch.float64) + shift
        self._set(replace(s, target=tuple(float(v) for v in target)))

    def zoom(self, notches: float) -> None:
        """Mouse wheel: positive notches move closer."""
        s = self.state
        distance = s.distance * self.ZOOM_PER_NOTCH ** notches
        self._set(replace(s, distance=max(1e-3 * self.scale, min(1e3 * self.scale, distance))))

    def fly(self, forward: float, right: float, up: float, dt: float) -> None:
        """Move eye and target together (WASD/QE) for `dt` seconds at a speed relative to the scene."""
        s = self.state
        cam = self.camera()
        speed = self.FLY_RADII_PER_S * self.scale * dt
        u = torch.as_tensor(self.up, dtype=torch.float64)
        move = (forward * cam.R[2] + right * cam.R[0] + up * u) * speed
        target = torch.as_tensor(s.target, dtype=torch.float64) + move
        self._set(replace(s, target=tuple(float(v) for v in target)))

    def change_fov(self, delta_deg: float) -> None:
        s = self.state
        self._set(replace(s, fov_x=max(15.0, min(120.0, s.fov_x + delta_deg))))

    def reset(self) -> None:
        """Back to the start view (R)."""
        if self.state != self.start or self.pinned is not self.start_camera:
            self.state, self.pinned = self.start, self.start_camera
            self.version += 1
            self.last_change = time.perf_counter()

    def resize(self, width: int, height: int) -> None:
        if (width, height) != (self.width, self.height):
            self.width, self.height = int(width), int(height)
            self.version += 1
            self.last_change = time.perf_counter()


class AdaptiveResolution:
    """Chooses the render scale: holds `target_ms` per frame while the camera moves, full resolution
    once it has been still for `settle_s`.

    The model is the one a rasterizer follows: time = fixed + per_pixel * scale^2. Both terms are
    tracked from observed renders (exponential averages) and the moving scale solves for the target.
    """

    def __init__(self, target_ms: float = 33.0, min_scale: float = 0.2, settle_s: float = 0.2):
        self.target_ms = float(target_ms)
        self.min_scale = float(min_scale)
        self.settle_s = float(settle_s)
        self.moving_scale = 0.5
        self._full_ms: float | None = None  # time of a full-resolution render, estimated

    def observe(self, render_ms: float, scale: float) -> None:
        """Learn from one finished render at `scale`."""
        estimate = render_ms / max(scale * scale, 1e-4)  # pessimistic: assumes all cost is per pixel
        self._full_ms = estimate if self._full_ms is None else 0.7 * self._full_ms + 0.3 * estimate
        if scale < 1.0:
            # multiplicative correction towards the target frame time, damped to avoid oscillation
            ratio = math.sqrt(self.target_ms / max(render_ms, 1e-3))
            self.moving_scale = max(self.min_scale, min(1.0, self.moving_scale * ratio ** 0.5))
        elif self._full_ms is not None:
            self.moving_scale = max(self.min_scale, min(1.0, math.sqrt(self.target_ms / self._full_ms)))

    def moving(self, last_change: float, now: float | None = None) -> bool:
        """The camera changed within `settle_s`."""
        now = time.perf_counter() if now is None else now
        return now - last_change < self.settle_s

    def scale(self, last_change: float, now: float | None = None) -> float:
        """The scale to render at, given when the camera last changed."""
        now = time.perf_counter() if now is None else now
        if now - last_change < self.settle_s:
            return self.moving_scale
        return 1.0


class SplatBudget:
    """The most Gaussians a moving frame may draw, held at the target frame time, and the refinement ladder.

    A CPU rasterizer's small frame costs mostly per Gaussian (projection, sorting, per-tile set-up), so the
    budget is the moving frame's main knob: after each moving render whose cut the budget limited, it moves
    towards `target_ms` (a damped multiplicative step, as `AdaptiveResolution` moves the scale). At rest the
    view refines through `ladder()`: a few times the moving budget at full resolution, then every Gaussian.

    Args:
        start: the first moving budget.
        target_ms: render time to hold while moving.
        total: the scene's Gaussians (the budget never exceeds it).
        least: the smallest moving budget (at most `start`).
    """

    STEP = 4  # each rung of the refinement ladder draws this many times the one before

    def __init__(self, start: int, target_ms: float, total: int, least: int = 10_000):
        self.total = int(total)
        self.least = min(int(least), int(start), self.total)
        self.target_ms = float(target_ms)
        self.value = max(self.least, min(int(start), self.total))

    def observe(self, render_ms: float, drawn: int, budget: int | None) -> None:
        """Learn from a moving render that drew `drawn` Gaussians under `budget` (None: every one)."""
        if budget is None or drawn < 0.8 * budget:  # the cut stopped at its pixel error: the budget did not bind
            if budget is not None and render_ms > self.target_ms:
                self.value = max(self.least, min(self.value, int(drawn)))
            return
        ratio = math.sqrt(self.target_ms / max(render_ms, 1e-3))
        self.value = int(max(self.least, min(self.total, self.value * min(max(ratio, 0.5), 2.0))))

    def ladder(self) -> list[int | None]:
        """The budgets a still view renders one after another at full resolution; None (every Gaussian) last."""
        rungs: list[int | None] = []
        b = self.value * self.STEP
        while b < self.total // 2 and len(rungs) < 1:
            rungs.append(b)
            b *= self.STEP
        return rungs + [None]
