"""Hash-grid NeRF (Instant-NGP): encoding, field, occupancy grid, ray marching, training.

    from neuralframe.render.nerf import HashGrid, NerfField, render, load_field
    field = load_field("scene.safetensors")
    out = render(field, camera)            # RenderOutput: rgb [H, W, 3], alpha [H, W], depth [H, W]

Importing this package compiles nothing: the Numba kernels load on the first call that needs them.
Dataset generation and training live in `neuralframe.render.nerf.data` and `.train`.
"""

from neuralframe.render.nerf.field import FieldConfig, NerfField
from neuralframe.render.nerf.hashgrid import HashGrid, HashGridConfig, hashgrid_encode, layout
from neuralframe.render.nerf.io import load_field
from neuralframe.render.nerf.renderer import render

__all__ = ["FieldConfig", "HashGrid", "HashGridConfig", "NerfField", "hashgrid_encode", "layout", "load_field",
           "render"]
