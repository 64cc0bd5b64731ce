"""The web `.splat`: 32 bytes per Gaussian: position f32x3, linear scale f32x3, RGBA u8x4 (colour =
0.5 + C0 * f_dc, alpha = sigmoid(opacity)), rotation u8x4 (w, x, y, z) = q * 128 + 128. Degree-0 colour
only; colours outside [0, 1] are clipped."""

from __future__ import annotations

import warnings

import numpy as np

from neuralframe.errors import InputError
from neuralframe.render.splat.formats.common import check_memory, gaussians, logit, sigmoid, u8
from neuralframe.render.splat.gaussians import SH_C0, Gaussians

_SPLAT_DTYPE = np.dtype([("pos", "<f4", 3), ("scale", "<f4", 3), ("rgba", "u1", 4), ("rot", "u1", 4)])


def read(data: bytes, name: str) -> Gaussians:
    if len(data) % 32:
        raise InputError(f"{name}: truncated or not a .splat file: {len(data)} bytes is not a multiple "
                         "of 32 (one Gaussian is 32 bytes)")
    v = np.frombuffer(data, dtype=_SPLAT_DTYPE)
    check_memory(len(v), name)
    scale = v["scale"].astype(np.float64)
    if not np.all(np.isfinite(scale)) or np.any(scale <= 0):
        bad = int(np.flatnonzero(~(np.isfinite(scale) & (scale > 0)).all(1))[0])
        raise InputError(f"{name}: Gaussian {bad} has a non-positive or non-finite scale")
    rgba = v["rgba"].astype(np.float64) / 255.0
    quats = (v["rot"].astype(np.float32) - 128.0) / 128.0
    sh = ((rgba[:, :3] - 0.5) / SH_C0)[:, None, :]
    # 0 and 255 stand for "below half a step" and "above"; keep the logit finite.
    opac = np.clip(rgba[:, 3], 0.5 / 255.0, 1.0 - 0.5 / 255.0)
    return gaussians(v["pos"], quats, np.log(scale), logit(opac), sh)


def encode(g: Gaussians, name: str) -> bytes:
    if g.sh_degree > 0:
        warnings.warn(f"{name}: .splat stores colour only; SH degree {g.sh_degree} terms are dropped",
                      stacklevel=3)
    out = np.zeros(g.n, _SPLAT_DTYPE)
    out["pos"] = g.means.numpy()
    out["scale"] = np.exp(g.scales.numpy().astype(np.float64))
    rgb = 0.5 + SH_C0 * g.sh[:, 0].numpy().astype(np.float64)
    alpha = sigmoid(g.opacities.numpy())
    out["rgba"] = u8(np.concatenate([rgb, alpha[:, None]], 1) * 255.0)
    q = g.quats.numpy().astype(np.float64)
    q = q / np.linalg.norm(q, axis=1, keepdims=True)
    out["rot"] = u8(q * 128.0 + 128.0)
    return out.tobytes()
