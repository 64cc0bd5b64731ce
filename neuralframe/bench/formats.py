"""`neuralframe bench formats`: every scene format that writes, on the bundled scene and on a capture-sized
one, side by side in one run.

Per scene and format: bytes per Gaussian, save and load seconds (the best of `repeats` timed runs, the
same for every format), the count read back, and the PSNR of the read-back scene's render against the
source's from one camera close on the scene (`render_psnr_db`; null with `identical_render` true when the
renders are the same to the bit). Scenes: the bundled
motorcycle (92,500 Gaussians, SH degree 0) and a procedural capture-like scene at SH degree 3
(`render.splat.procedural.surface_scene`, 2,000,000 Gaussians; `--quick`: 200,000).

Checks (each an absolute floor): every format reads back every Gaussian; the lossless formats (ply, gltf as .glb)
render at >= 45 dB; each quantised format at or above the floor its precision allows (`PSNR_FLOORS`).
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
import time
import warnings
from pathlib import Path
from typing import Callable

LOSSLESS_DB = 45.0
# measured floors a little under what each format gave on both scenes (benchmarks/formats.json)
PSNR_FLOORS = {"ply": LOSSLESS_DB, "gltf": LOSSLESS_DB, "spz": 40.0, "compressed-ply": 50.0, "sog": 37.0,
               "splat": 36.0}
EXTENSIONS = {"ply": ".ply", "gltf": ".glb", "spz": ".spz", "compressed-ply": ".compressed.ply", "sog": ".sog",
              "splat": ".splat"}


def _psnr(source, other) -> float | None:
    """Render PSNR at 320x240 (`render.splat.compare`), rounded; None when the renders are identical."""
    from neuralframe.render.splat.compare import render_psnr

    db = render_psnr(source, other, 320, 240)
    return None if math.isinf(db) else round(db, 2)


def _best(fn: Callable[[], object], repeats: int) -> tuple[float, object]:
    best, value = math.inf, None
    for _ in range(repeats):
        start = time.perf_counter()
        value = fn()
        best = min(best, time.perf_counter() - start)
    return best, value


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size


def run(quick: bool = False, repeats: int = 2, progress: Callable[[str], None] | None = None,
        gaussians: int | None = None) -> dict:
    """Run the benchmark and return its JSON-serialisable result (see the module docstring); `gaussians`
    sizes the capture-like scene (default 2,000,000, 200,000 with `quick`)."""
    from neuralframe.assets import asset
    from neuralframe.backend.device import machine_info
    from neuralframe.render.splat.formats import FORMATS, load, save
    from neuralframe.render.splat.procedural import surface_scene

    say = progress or (lambda message: None)
    names = [f.name for f in FORMATS if f.writes and f.name in EXTENSIONS]
    big = gaussians or (200_000 if quick else 2_000_000)
    scenes = {"motorcycle": lambda: load(asset("scenes", "motorcycle.ply")),
              f"surface_{big // 1000}k_sh3": lambda: surface_scene(big, seed=0, sh_degree=3)}
    result: dict = {"machine": machine_info(), "repeats": repeats, "formats": names, "scenes": {}}
    work = Path(tempfile.mkdtemp(prefix="nf-bench-formats-"))
    try:
        for scene_name, make in scenes.items():
            say(f"{scene_name}: building")
            g = make()
            rows = {}
            for name in names:
                path = work / f"{scene_name}{EXTENSIONS[name]}"
                say(f"{scene_name}: {name} save")
                warnings.filterwarnings("ignore", message=".*stores colour only")  # .splat drops SH: measured anyway
                save_s, _ = _best(lambda: save(g, path), repeats)
                say(f"{scene_name}: {name} load")
                load_s, back = _best(lambda: load(path), repeats)
                say(f"{scene_name}: {name} render")
                rows[name] = {"bytes_per_gaussian": round(_size(path) / g.n, 2), "save_s": round(save_s, 3),
                              "load_s": round(load_s, 3), "gaussians_read": back.n,
                              "render_psnr_db": (db := _psnr(g, back)), "identical_render": db is None}
                shutil.rmtree(path) if path.is_dir() else path.unlink()
            result["scenes"][scene_name] = {"gaussians": g.n, "sh_degree": g.sh_degree, "results": rows}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    checks = {}
    for scene_name, scene in result["scenes"].items():
        for name, row in scene["results"].items():
            checks[f"{scene_name}_{name}_all_gaussians_read"] = row["gaussians_read"] == scene["gaussians"]
            checks[f"{scene_name}_{name}_psnr_at_least_{PSNR_FLOORS.get(name, 0)}"] = (
                row["identical_render"] or row["render_psnr_db"] >= PSNR_FLOORS.get(name, 0))
    result["checks"] = checks
    result["all_checks_pass"] = all(checks.values())
    result["load_average"] = os.getloadavg()[0]
    return result


def print_summary(result: dict) -> None:
    """`result` as `neuralframe bench formats` prints it: a table per scene, then the checks."""
    from rich.table import Table

    from neuralframe.console import console

    for scene_name, scene in result["scenes"].items():
        table = Table(title=f"{scene_name}: {scene['gaussians']:,} Gaussians, SH degree {scene['sh_degree']}")
        for column in ("format", "bytes/Gaussian", "save s", "load s", "read back", "render PSNR dB"):
            table.add_column(column, justify="right" if column != "format" else "left")
        for name, row in scene["results"].items():
            table.add_row(name, f"{row['bytes_per_gaussian']:.2f}", f"{row['save_s']:.3f}", f"{row['load_s']:.3f}",
                          f"{row['gaussians_read']:,}",
                          "identical" if row["identical_render"] else f"{row['render_psnr_db']:.2f}")
        console.print(table)
    failed = [name for name, ok in result["checks"].items() if not ok]
    console.print("all checks pass" if not failed else f"[red]failed checks[/]: {', '.join(failed)}", highlight=False)
