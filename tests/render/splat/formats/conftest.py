"""Shared by the scene-format tests: PlayCanvas splat-transform as the interop oracle, scenes to round-trip,
and the render comparison that tells whether two files show the same picture."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest



ROOT = Path(__file__).resolve().parents[4]
# .ci/run installs the tool here (npm --prefix .cache/npm); a splat-transform on PATH works too
LOCAL_TOOL = ROOT / ".cache" / "npm" / "node_modules" / ".bin" / "splat-transform"


def splat_transform_path() -> str | None:
    env = os.environ.get("NEURALFRAME_SPLAT_TRANSFORM")
    for candidate in (env, str(LOCAL_TOOL), shutil.which("splat-transform")):
        if candidate and Path(candidate).is_file() and shutil.which("node"):
            return candidate
    return None


@pytest.fixture(scope="session")
def splat_transform():
    """A function running PlayCanvas splat-transform (`tool(args...)`), or a skip that says why."""
    tool = splat_transform_path()
    if tool is None:
        pytest.skip("PlayCanvas splat-transform is not installed (.ci/run installs Node from Debian and "
                    "`npm install --prefix .cache/npm @playcanvas/splat-transform`)")

    def run(*args: str | Path, timeout: float = 300) -> subprocess.CompletedProcess:
        result = subprocess.run([tool, "--no-tty", "-q", "-w", *map(str, args)], capture_output=True, text=True,
                                timeout=timeout)
        assert result.returncode == 0, f"splat-transform {args} failed: {result.stderr[-2000:]}"
        return result

    return run


@pytest.fixture(scope="session")
def sh3_scene():
    """A small capture-like scene at SH degree 3 (flat Gaussians on surfaces, faint tails, SH terms)."""
    from neuralframe.render.splat.procedural import surface_scene

    return surface_scene(4000, seed=7, sh_degree=3)


@pytest.fixture(scope="session")
def motorcycle():
    from neuralframe.assets import asset
    from neuralframe.render.splat import load

    return load(asset("scenes", "motorcycle.ply"))
