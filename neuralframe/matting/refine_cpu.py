"""Fast CPU matte refinement: Numba kernels, rows split over cores, the GIL released.

Same signatures and semantics as `refine_ref.py`. The full-resolution work is one fused pass (sample
the four upsampled coefficient planes, dot with the pixel's colour, clamp) and one area downsample of
the frame; everything else runs at 1/scale of the frame. The 3x3 colour systems are solved in closed
form (the adjugate of a symmetric positive definite matrix) instead of a batched LU.
"""

from __future__ import annotations

import numba
import numpy as np
import torch

from neuralframe.backend.fused_cpu import _axis_table
from neuralframe.matting.refine_ref import low_size

_JIT = dict(parallel=True, cache=True, nogil=True, fastmath=False)
# Work at the working (1/scale) resolution is small: a parallel launch would cost more in thread wake-ups
# on a busy machine (decode and encode run beside us) than it saves.
_SERIAL = dict(cache=True, nogil=True, fastmath=False)


# bilinear source indices and weights with half-pixel centres, shared with the fused kernels
_axis = _axis_table


@numba.njit(**_JIT)
def _area_down(src, h, w):
    """uint8 [H, W, 3] -> float32 [3, h, w] in [0, 1], adaptive average pooling windows as torch's."""
    H, W, _ = src.shape
    out = np.empty((3, h, w), np.float32)
    for y in numba.prange(h):
        y0 = (y * H) // h
        y1 = ((y + 1) * H + h - 1) // h
        row = np.zeros((W, 3), np.float32)  # the window's rows summed first: contiguous, vectorisable
        for yy in range(y0, y1):
            for xx in range(W):
                for k in range(3):
                    row[xx, k] += np.float32(src[yy, xx, k])
        for x in range(w):
            x0 = (x * W) // w
            x1 = ((x + 1) * W + w - 1) // w
            s0 = np.float32(0.0)
            s1 = np.float32(0.0)
            s2 = np.float32(0.0)
            for xx in range(x0, x1):
                s0 += row[xx, 0]
                s1 += row[xx, 1]
                s2 += row[xx, 2]
            inv = np.float32(1.0) / (np.float32(255.0) * np.float32((y1 - y0) * (x1 - x0)))
            out[0, y, x] = s0 * inv
            out[1, y, x] = s1 * inv
            out[2, y, x] = s2 * inv
    return out


@numba.njit(**_SERIAL)
def _resize_plane(src, h, w, yi0, yi1, yw, xi0, xi1, xw):
    out = np.empty((h, w), np.float32)
    one = np.float32(1.0)
    for y in range(h):
        a, b, wy = yi0[y], yi1[y], yw[y]
        for x in range(w):
            c, d, wx = xi0[x], xi1[x], xw[x]
            out[y, x] = (one - wy) * ((one - wx) * src[a, c] + wx * src[a, d]) + wy * (
                (one - wx) * src[b, c] + wx * src[b, d])
    return out


@numba.njit(**_SERIAL)
def _box(x, r):
    """Clipped box mean over the last two axes of float32 [C, h, w]: running sums, rows then columns."""
    C, h, w = x.shape
    tmp = np.empty_like(x)
    out = np.empty_like(x)
    acc = np.zeros(w, np.float32)
    for c in range(C):
        acc[:] = 0.0
        for y in range(min(r, h)):
            acc += x[c, y]
        for y in range(h):
            if y + r < h:
                acc += x[c, y + r]
            if y - r - 1 >= 0:
                acc -= x[c, y - r - 1]
            n = np.float32(min(h, y + r + 1) - max(0, y - r))
            tmp[c, y] = acc / n
        for y in range(h):
            s = np.float32(0.0)
            for k in range(min(r, w)):
                s += tmp[c, y, k]
            for xx in range(w):
                if xx + r < w:
                    s += tmp[c, y, xx + r]
                if xx - r - 1 >= 0:
                    s -= tmp[c, y, xx - r - 1]
                out[c, y, xx] = s / np.float32(min(w, xx + r + 1) - max(0, xx - r))
    return out


@numba.njit(**_SERIAL)
def _moments(guide, p):
    """The 3 + 1 + 3 + 6 planes whose box means the filter needs: I, p, I p, and I_i I_j (i <= j)."""
    _, h, w = guide.shape
    m = np.empty((13, h, w), np.float32)
    for y in range(h):
        for x in range(w):
            r, g, b, v = guide[0, y, x], guide[1, y, x], guide[2, y, x], p[y, x]
            m[0, y, x] = r
            m[1, y, x] = g
            m[2, y, x] = b
            m[3, y, x] = v
            m[4, y, x] = r * v
            m[5, y, x] = g * v
            m[6, y, x] = b * v
            m[7, y, x] = r * r
            m[8, y, x] = r * g
            m[9, y, x] = r * b
            m[10, y, x] = g * g
            m[11, y, x] = g * b
            m[12, y, x] = b * b
    return m


@numba.njit(**_SERIAL)
def _solve(mm, eps):
    """Per pixel: A = (Sigma + eps I)^-1 cov(I, p), b = mean(p) - A . mean(I). Returns [4, h, w]."""
    _, h, w = mm.shape
    ab = np.empty((4, h, w), np.float32)
    for y in range(h):
        for x in range(w):
            mr, mg, mb, mp = mm[0, y, x], mm[1, y, x], mm[2, y, x], mm[3, y, x]
            cr = mm[4, y, x] - mr * mp
            cg = mm[5, y, x] - mg * mp
            cb = mm[6, y, x] - mb * mp
            a11 = mm[7, y, x] - mr * mr + eps
            a12 = mm[8, y, x] - mr * mg
            a13 = mm[9, y, x] - mr * mb
            a22 = mm[10, y, x] - mg * mg + eps
            a23 = mm[11, y, x] - mg * mb
            a33 = mm[12, y, x] - mb * mb + eps
            # adjugate of the symmetric matrix
            i11 = a22 * a33 - a23 * a23
            i12 = a13 * a23 - a12 * a33
            i13 = a12 * a23 - a13 * a22
            i22 = a11 * a33 - a13 * a13
            i23 = a12 * a13 - a11 * a23
            i33 = a11 * a22 - a12 * a12
            det = a11 * i11 + a12 * i12 + a13 * i13
            ar = (i11 * cr + i12 * cg + i13 * cb) / det
            ag = (i12 * cr + i22 * cg + i23 * cb) / det
            ab_ = (i13 * cr + i23 * cg + i33 * cb) / det
            ab[0, y, x] = ar
            ab[1, y, x] = ag
            ab[2, y, x] = ab_
            ab[3, y, x] = mp - ar * mr - ag * mg - ab_ * mb
    return ab


@numba.njit(parallel=True, cache=True, nogil=True, fastmath=True)
def _apply(src, coef, yi0, yi1, yw, xi0, xi1, xw):
    """q = A . I + b at full resolution, A and b sampled bilinearly from the working resolution.

    Per output row: the four coefficient planes are interpolated vertically (at the working width),
    then horizontally into full-width rows, then combined with the pixels in a loop the compiler
    vectorises (hence fastmath here: it only reorders these sums, about 1e-7)."""
    H, W, _ = src.shape
    w = coef.shape[2]
    out = np.empty((H, W), np.float32)
    one = np.float32(1.0)
    zero = np.float32(0.0)
    inv = np.float32(1.0 / 255.0)
    for y in numba.prange(H):
        a, b, wy = yi0[y], yi1[y], yw[y]
        row = np.empty((4, w), np.float32)
        for k in range(4):
            for x in range(w):
                row[k, x] = (one - wy) * coef[k, a, x] + wy * coef[k, b, x]
        full = np.empty((4, W), np.float32)
        for k in range(4):
            rk = row[k]
            for x in range(W):
                full[k, x] = (one - xw[x]) * rk[xi0[x]] + xw[x] * rk[xi1[x]]
        for x in range(W):
            q = full[3, x] + (full[0, x] * np.float32(src[y, x, 0]) + full[1, x] * np.float32(src[y, x, 1])
                              + full[2, x] * np.float32(src[y, x, 2])) * inv
            out[y, x] = min(max(q, zero), one)
    return out


@numba.njit(**_SERIAL)
def _stabilize(mask, prev, guide, prev_guide, rate, alpha_tol, image_tol):
    h, w = mask.shape
    out = np.empty((h, w), np.float32)
    third = np.float32(1.0 / 3.0)
    for y in range(h):
        for x in range(w):
            d = mask[y, x] - prev[y, x]
            m = (abs(guide[0, y, x] - prev_guide[0, y, x]) + abs(guide[1, y, x] - prev_guide[1, y, x])
                 + abs(guide[2, y, x] - prev_guide[2, y, x])) * third
            k = max(abs(d) / alpha_tol, m / image_tol)
            if k < rate:
                k = rate
            elif k > 1:
                k = np.float32(1.0)
            out[y, x] = prev[y, x] + k * d
    return out


def _np(t: torch.Tensor, dtype) -> np.ndarray:
    return np.ascontiguousarray(t.detach().cpu().numpy(), dtype=dtype)


def guided_coefficients(guide: torch.Tensor, p: torch.Tensor, radius: int, eps: float):
    mm = _box(_moments(_np(guide, np.float32), _np(p, np.float32)), int(radius))
    ab = _box(_solve(mm, np.float32(eps)), int(radius))
    t = torch.from_numpy(ab)
    return t[:3], t[3]


def guided_filter(image: torch.Tensor, mask: torch.Tensor, radius: int = 2, eps: float = 1e-3,
                  scale: int = 4) -> torch.Tensor:
    src = _np(image, np.uint8)
    H, W = src.shape[:2]
    h, w = low_size(H, W, scale)
    guide = _area_down(src, h, w)
    m = _np(mask, np.float32)
    p = _resize_plane(m, h, w, *_axis(m.shape[0], h), *_axis(m.shape[1], w))
    mm = _box(_moments(guide, p), int(radius))
    ab = _box(_solve(mm, np.float32(eps)), int(radius))
    return torch.from_numpy(_apply(src, ab, *_axis(h, H), *_axis(w, W)))


def stabilize(mask: torch.Tensor, prev_mask: torch.Tensor, guide: torch.Tensor, prev_guide: torch.Tensor,
              rate: float = 0.25, alpha_tol: float = 0.25, image_tol: float = 0.06) -> torch.Tensor:
    return torch.from_numpy(_stabilize(_np(mask, np.float32), _np(prev_mask, np.float32), _np(guide, np.float32),
                                       _np(prev_guide, np.float32), np.float32(rate), np.float32(alpha_tol),
                                       np.float32(image_tol)))


def area_downsample(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return torch.from_numpy(_area_down(_np(image, np.uint8), int(size[0]), int(size[1])))
