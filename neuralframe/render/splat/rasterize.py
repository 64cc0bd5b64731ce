"""`rasterize`: the public entry point, dispatching to the reference, CPU or CUDA implementation."""

from __future__ import annotations

import torch

from neuralframe.backend import dispatch
from neuralframe.backend.checks import check_shape
from neuralframe.backend.device import has_cuda
from neuralframe.errors import InputError
from neuralframe.render.camera import Camera
from neuralframe.render.output import RenderOutput
from neuralframe.render.splat.gaussians import Gaussians

rasterize_op = dispatch.op("splat.rasterize")
rasterize_op.register("reference", "neuralframe.render.splat.rasterize_ref:rasterize")
rasterize_op.register("cpu", "neuralframe.render.splat.rasterize_cpu:rasterize", requires=("numba",), device="cpu")
rasterize_op.register("cuda", "neuralframe.render.splat.rasterize_cuda:rasterize", requires=("gsplat",), device="cuda",
                      hint="pip install 'neuralframe[cuda]' on a GPU machine", available=has_cuda)


def rasterize(gaussians: Gaussians, camera: Camera, *, sh_degree: int | None = None, background=None,
              antialiased: bool = False, impl: str = "auto") -> RenderOutput:
    """Render a Gaussian-splat scene from one camera, with gsplat's semantics (see `rasterize_ref.py`).

    Args:
        gaussians: the scene; its device picks the implementations that can run ("auto": cuda on a
            CUDA device with gsplat, else the Numba CPU kernel, else the reference).
        camera: the view (OpenCV convention).
        sh_degree: SH degree to evaluate, 0 to the scene's degree (default: the scene's).
        background: [3] colour composited under the splats (default: none, i.e. black).
        antialiased: gsplat's antialiased mode (opacity compensation for the 0.3 px^2 dilation).
        impl: "auto", "reference", "cpu" or "cuda".

    Returns:
        RenderOutput(rgb [H, W, 3], alpha [H, W], depth [H, W]) on the scene's device, float32.
    """
    dispatch.check_impl(impl)
    if not isinstance(gaussians, Gaussians):
        raise InputError(f"rasterize expects Gaussians, got {type(gaussians).__name__}")
    if not isinstance(camera, Camera):
        raise InputError(f"rasterize expects a Camera, got {type(camera).__name__}")
    degree = gaussians.sh_degree if sh_degree is None else sh_degree
    if not isinstance(degree, int) or not 0 <= degree <= gaussians.sh_degree:
        raise InputError(f"sh_degree must be an integer from 0 to the scene's degree "
                         f"{gaussians.sh_degree}, got {sh_degree!r}")
    if background is not None:
        background = torch.as_tensor(background, dtype=torch.float32, device=gaussians.device)
        check_shape(background, [3], "background", what="an RGB colour")
    fn = rasterize_op.resolve(impl, gaussians.device)
    return fn(gaussians, camera, sh_degree=degree, background=background, antialiased=bool(antialiased))


def implementation_for(impl: str = "auto", device="cpu") -> str:
    """The implementation name `impl` resolves to on `device` (for a HUD or a benchmark)."""
    return rasterize_op.name_for(impl, device)
