"""Fast CPU pre/post-processing: one Numba pass per op, rows split over cores, the GIL released.

Same signatures and semantics as `fused_ref.py` (see its docstring for the conventions). Each kernel
fuses what the reference does in several passes (resize + convert + normalise + layout change), so a
frame is read once and written once. Arithmetic is float32, as in the reference.
"""

from __future__ import annotations

import numba
import numpy as np
import torch

_JIT = dict(parallel=True, cache=True, nogil=True, fastmath=False)


@numba.njit(cache=True, nogil=True)
def _axis_table(n_in, n_out):
    """Source indices and weights for bilinear resampling with half-pixel centres, as torch does."""
    scale = np.float32(n_in) / np.float32(n_out)
    i0 = np.empty(n_out, np.int64)
    i1 = np.empty(n_out, np.int64)
    w1 = np.empty(n_out, np.float32)
    for o in range(n_out):
        src = scale * (np.float32(o) + np.float32(0.5)) - np.float32(0.5)
        if src < 0:
            src = np.float32(0.0)
        lo = int(src)
        if lo > n_in - 1:
            lo = n_in - 1
        i0[o] = lo
        i1[o] = lo + 1 if lo < n_in - 1 else lo
        w1[o] = src - np.float32(lo)
    return i0, i1, w1


@numba.njit(inline="always")
def _bilerp(src, ya, yb, wy, xa, xb, wx, c):
    one = np.float32(1.0)
    inv = np.float32(1.0 / 255.0)
    v00 = np.float32(src[ya, xa, c]) * inv
    v01 = np.float32(src[ya, xb, c]) * inv
    v10 = np.float32(src[yb, xa, c]) * inv
    v11 = np.float32(src[yb, xb, c]) * inv
    return (one - wy) * ((one - wx) * v00 + wx * v01) + wy * ((one - wx) * v10 + wx * v11)


@numba.njit(inline="always")
def _quant(v):
    if v < 0:
        v = np.float32(0.0)
    elif v > 1:
        v = np.float32(1.0)
    return np.uint8(np.floor(v * np.float32(255.0) + np.float32(0.5)))


@numba.njit(**_JIT)
def _to_float(src, mean, std):
    h, w, c = src.shape
    out = np.empty((c, h, w), np.float32)
    inv = np.float32(1.0 / 255.0)
    for y in numba.prange(h):
        for x in range(w):
            for k in range(c):
                out[k, y, x] = (np.float32(src[y, x, k]) * inv - mean[k]) / std[k]
    return out


@numba.njit(**_JIT)
def _to_uint8(src, mean, std):
    c, h, w = src.shape
    out = np.empty((h, w, c), np.uint8)
    for y in numba.prange(h):
        for x in range(w):
            for k in range(c):
                out[y, x, k] = _quant(src[k, y, x] * std[k] + mean[k])
    return out


@numba.njit(**_JIT)
def _resize(src, out_h, out_w, yi0, yi1, yw, xi0, xi1, xw):
    c = src.shape[2]
    out = np.empty((out_h, out_w, c), np.uint8)
    for y in numba.prange(out_h):
        for x in range(out_w):
            for k in range(c):
                out[y, x, k] = _quant(_bilerp(src, yi0[y], yi1[y], yw[y], xi0[x], xi1[x], xw[x], k))
    return out


@numba.njit(**_JIT)
def _preprocess(src, out_h, out_w, yi0, yi1, yw, xi0, xi1, xw, mean, std):
    c = src.shape[2]
    out = np.empty((c, out_h, out_w), np.float32)
    for y in numba.prange(out_h):
        for x in range(out_w):
            for k in range(c):
                v = _bilerp(src, yi0[y], yi1[y], yw[y], xi0[x], xi1[x], xw[x], k)
                out[k, y, x] = (v - mean[k]) / std[k]
    return out


@numba.njit(**_JIT)
def _color_resize(src, out_h, out_w, yi0, yi1, yw, xi0, xi1, xw, m, b):
    out = np.empty((out_h, out_w, 3), np.uint8)
    for y in numba.prange(out_h):
        for x in range(out_w):
            r = _bilerp(src, yi0[y], yi1[y], yw[y], xi0[x], xi1[x], xw[x], 0)
            g = _bilerp(src, yi0[y], yi1[y], yw[y], xi0[x], xi1[x], xw[x], 1)
            bl = _bilerp(src, yi0[y], yi1[y], yw[y], xi0[x], xi1[x], xw[x], 2)
            for k in range(3):
                out[y, x, k] = _quant(m[k, 0] * r + m[k, 1] * g + m[k, 2] * bl + b[k])
    return out


@numba.njit(**_JIT)
def _composite(fg, alpha, bg):
    h, w, c = fg.shape
    out = np.empty((h, w, c), np.uint8)
    inv = np.float32(1.0 / 255.0)
    one = np.float32(1.0)
    for y in numba.prange(h):
        for x in range(w):
            a = alpha[y, x]
            if a < 0:
                a = np.float32(0.0)
            elif a > 1:
                a = one
            for k in range(c):
                out[y, x, k] = _quant(np.float32(fg[y, x, k]) * inv * a + np.float32(bg[y, x, k]) * inv * (one - a))
    return out


def _np(t: torch.Tensor, dtype) -> np.ndarray:
    return np.ascontiguousarray(t.detach().cpu().numpy(), dtype=dtype)


def _vec(v, channels: int, default: float) -> np.ndarray:
    arr = np.asarray(default if v is None else v, dtype=np.float32).reshape(-1)
    return np.ascontiguousarray(np.broadcast_to(arr, (channels,)), dtype=np.float32)


def _tables(h: int, w: int, size: tuple[int, int]):
    yi0, yi1, yw = _axis_table(h, int(size[0]))
    xi0, xi1, xw = _axis_table(w, int(size[1]))
    return yi0, yi1, yw, xi0, xi1, xw


def to_float(image: torch.Tensor, mean=None, std=None) -> torch.Tensor:
    src = _np(image, np.uint8)
    return torch.from_numpy(_to_float(src, _vec(mean, src.shape[2], 0.0), _vec(std, src.shape[2], 1.0)))


def to_uint8(x: torch.Tensor, mean=None, std=None) -> torch.Tensor:
    src = _np(x, np.float32)
    return torch.from_numpy(_to_uint8(src, _vec(mean, src.shape[0], 0.0), _vec(std, src.shape[0], 1.0)))


def resize(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    src = _np(image, np.uint8)
    if tuple(src.shape[:2]) == tuple(size):
        return torch.from_numpy(src.copy())
    return torch.from_numpy(_resize(src, int(size[0]), int(size[1]), *_tables(src.shape[0], src.shape[1], size)))


def preprocess(image: torch.Tensor, size: tuple[int, int], mean=None, std=None) -> torch.Tensor:
    src = _np(image, np.uint8)
    c = src.shape[2]
    out = _preprocess(src, int(size[0]), int(size[1]), *_tables(src.shape[0], src.shape[1], size),
                      _vec(mean, c, 0.0), _vec(std, c, 1.0))
    return torch.from_numpy(out)


def color_resize(image: torch.Tensor, size: tuple[int, int], matrix, bias) -> torch.Tensor:
    src = _np(image, np.uint8)
    m = np.ascontiguousarray(np.asarray(matrix, dtype=np.float32).reshape(3, 3))
    b = _vec(bias, 3, 0.0)
    out = _color_resize(src, int(size[0]), int(size[1]), *_tables(src.shape[0], src.shape[1], size), m, b)
    return torch.from_numpy(out)


def composite(foreground: torch.Tensor, alpha: torch.Tensor, background: torch.Tensor) -> torch.Tensor:
    return torch.from_numpy(_composite(_np(foreground, np.uint8), _np(alpha, np.float32), _np(background, np.uint8)))
