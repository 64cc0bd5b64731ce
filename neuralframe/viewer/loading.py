"""Opening a scene behind a live window.

    loader = SceneLoader("capture.ply").start()   # reads the file, then builds (or reads) its detail tree
    loader.status()                                # "loading capture.ply (496 MB) 1.2 s", for the window
    loader.scene, loader.tree                      # set as each is ready; loader.error: the file was bad

A capture-sized scene takes seconds to read and, the first time, seconds more to build its level-of-detail
tree (`neuralframe.render.splat.hierarchy`; cached on disk after that): on one background thread, so the
window opens at once, stays responsive and says what it is doing. The viewer renders every Gaussian as soon
as the scene is read and switches to cuts under a splat budget once the tree is there.

The thread runs at a lower scheduling priority than the window and the renders (`nice`): the tree build's
kernel threads (an OpenMP team per calling thread, created with its priority) take only the CPU they leave.
`stop()` asks the thread to end: the tree build stops at its next `render.interrupt` check; reading a file
cannot be interrupted and ends by itself. `join()` waits (the window's `run()` always joins it: a thread left
in torch when the interpreter exits aborts the process).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from neuralframe.render import interrupt
from neuralframe.viewer.stage import lower_priority


class SceneLoader:
    """A scene (or a scene file to open) and its level-of-detail tree, made ready on a background thread.

    Args:
        scene: an opened scene, or the path of a scene file.
        detail: also build the scene's level-of-detail tree (splat scenes with `hierarchy()`).
        nice: lower the thread's priority by this much (Linux `nice`, per thread); 0: leave it.
    """

    def __init__(self, scene: Any, detail: bool = True, nice: int = 0):
        self.nice = int(nice)
        self.path: Path | None = None
        self.scene = None
        if isinstance(scene, (str, Path)):
            self.path = Path(scene)
        else:
            self.scene = scene
        self.detail = detail and (self.scene is None or hasattr(self.scene, "hierarchy"))
        self.tree = None
        self.error: BaseException | None = None  # the scene could not be opened (raised by the window's run())
        self.detail_error: BaseException | None = None  # no tree: the viewer renders every Gaussian
        self.fraction: float | None = None  # of the tree built
        self.stage = "opening"
        self.loaded_s: float | None = None  # seconds to read the file
        self.tree_s: float | None = None  # seconds to build or read the tree
        self._t0 = time.perf_counter()
        self._stop = False
        self._thread: threading.Thread | None = None

    @property
    def done(self) -> bool:
        """Nothing more will arrive (the scene and, where asked for, its tree are ready, or failed)."""
        return self._thread is None or not self._thread.is_alive()

    def start(self) -> "SceneLoader":
        if self.scene is not None and not self.detail:
            return self
        self._thread = threading.Thread(target=self._run, name="nf-scene-loader", daemon=False)
        self._thread.start()
        return self

    def status(self) -> str:
        """One line for the window while the scene is not yet fully ready."""
        elapsed = time.perf_counter() - self._t0
        if self.scene is None and self.path is not None:
            size = f" ({self.path.stat().st_size / 1e6:,.0f} MB)" if self.path.is_file() else ""
            return f"loading {self.path.name}{size}  {elapsed:4.1f} s"
        if self.detail and self.tree is None and self.detail_error is None and not self.done:
            share = f" {100 * self.fraction:3.0f}%" if self.fraction is not None else ""
            return f"building the level-of-detail tree{share}  {elapsed:4.1f} s"
        return ""

    def _run(self) -> None:
        lower_priority(self.nice)
        with interrupt.interruptible(lambda: self._stop):
            if self.scene is None:
                from neuralframe.render.scene import open_scene

                try:
                    self.scene = open_scene(self.path)
                except Exception as error:  # shown by the window's run() once the window is closed
                    self.error = error
                    return
                self.loaded_s = time.perf_counter() - self._t0
                self.detail = self.detail and hasattr(self.scene, "hierarchy")
            if not self.detail or self._stop:
                return
            t0 = time.perf_counter()
            self.stage = "detail"
            try:
                self.tree = self.scene.hierarchy(progress=self._progress)
                self.tree_s = time.perf_counter() - t0
            except interrupt.RenderInterrupted:
                pass
            except Exception as error:  # the viewer goes on rendering every Gaussian
                self.detail_error = error

    def _progress(self, fraction: float) -> None:
        self.fraction = float(fraction)

    def stop(self) -> None:
        self._stop = True

    def join(self) -> None:
        """Wait for the thread (told to `stop()` first), even through Ctrl-C, which is raised after."""
        if self._thread is not None:
            join(self._thread)


def join(thread: threading.Thread) -> None:
    """Join `thread` (told to stop: it ends within a check point) even through Ctrl-C, which is raised after."""
    interrupted = None
    while thread.is_alive():
        try:
            thread.join()
        except KeyboardInterrupt as error:
            interrupted = error
    if interrupted is not None:
        raise interrupted

