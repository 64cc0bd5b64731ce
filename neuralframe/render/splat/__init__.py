"""3D Gaussian splats: the scene type, file formats and the rasterizer.

    from neuralframe.render import splat
    g = splat.load("scene.ply")
    out = splat.rasterize(g, camera)      # RenderOutput(rgb, alpha, depth)

Importing this package loads torch but compiles nothing: the Numba kernel (`rasterize_cpu.py`) and gsplat
(`rasterize_cuda.py`) are imported by the dispatcher on first use.
"""

from neuralframe.render.output import RenderOutput
from neuralframe.render.splat.gaussians import Gaussians
from neuralframe.render.splat.io import load, save
from neuralframe.render.splat.rasterize import rasterize, rasterize_op

__all__ = ["Gaussians", "RenderOutput", "load", "save", "rasterize", "rasterize_op"]
