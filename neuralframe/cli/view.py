"""`neuralframe view`: a splat or NeRF scene in the desktop viewer (viewer/app.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from neuralframe.cli.options import (
    frame_size,
    FPS,
    GAUSSIANS,
    MOVING_GAUSSIANS_HELP,
    SCENE_FORMATS,
    SECONDS,
    parse_size,
    ranged,
)
from neuralframe.errors import InputError


def view(
    scene: Optional[str] = typer.Argument(None, help=f"A splat scene ({SCENE_FORMATS}) or a NeRF .safetensors "
                                                      "(default: the bundled motorcycle)."),
    screenshot: Optional[str] = typer.Option(None, help="Save the window's pixels to this PNG once the "
                                                        "full-resolution frame is drawn, then exit."),
    camera: Optional[str] = typer.Option(None, help="Start at the camera in this JSON file "
                                                    "({viewmat, K, width, height})."),
    size: str = frame_size("1280x720", help="Window size WIDTHxHEIGHT (a --camera sets its own)."),
    target_fps: float = ranged(30.0, within=FPS, help="Frame rate adaptive resolution holds while the camera moves."),
    impl: str = typer.Option("auto", help="Renderer: auto, cpu, reference or cuda."),
    moving_gaussians: int = ranged(50_000, within=GAUSSIANS, help=MOVING_GAUSSIANS_HELP),
    hud: bool = typer.Option(True, help="Show the overlay at start (H toggles it)."),
    seconds: Optional[float] = ranged(None, within=SECONDS, help="Close after this many seconds."),
) -> None:
    """Open a scene in a window: left drag orbits, right drag pans, wheel zooms, WASD/QE fly, R resets,
    +/- field of view, 1/2/3 rgb/depth/alpha, H overlay, P screenshot, Esc quits."""
    from neuralframe.render.camera import load_cameras
    from neuralframe.render.scene import default_scene_path
    from neuralframe.streaming.outputs import check_png_output
    from neuralframe.viewer.app import ViewerApp, ViewerSettings
    from neuralframe.viewer.window import require_display

    if screenshot:
        check_png_output(screenshot, scene)  # before a window opens or the scene loads
    require_display()
    path = Path(scene) if scene else default_scene_path()
    if not path.exists():  # before a window opens; the scene itself loads behind the window
        raise InputError(f"scene '{path}' does not exist")
    start = load_cameras(camera)[0] if camera else None
    h, w = parse_size(size)
    if moving_gaussians < 0:
        raise InputError(f"--moving-gaussians must be 0 or more, got {moving_gaussians}")
    settings = ViewerSettings(width=w, height=h, target_fps=target_fps, impl=impl, hud=hud and not screenshot,
                              screenshot=screenshot, camera=start, max_seconds=seconds,
                              moving_gaussians=moving_gaussians)
    stats = ViewerApp(path, settings).run()
    if screenshot:
        from neuralframe.console import console

        if not stats.screenshot:
            raise InputError("the window closed before the full-resolution frame was drawn: no screenshot saved")
        console.print(f"wrote [bold]{stats.screenshot}[/]", highlight=False)
