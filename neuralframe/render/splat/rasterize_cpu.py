"""Fast CPU Gaussian-splat rasterizer (Numba), with the semantics of `rasterize_ref.py`.

Stages, each a compiled function cached on disk (`cache=True`: a second process loads them instead of
compiling them again; `neuralframe bench splat` records both times in benchmarks/splat.json):

1. `_project` (parallel over Gaussians): EWA projection, culling and SH colour in float64 with the
   formulas of `ref.project` / `ref.visible` / `ref.sh_to_rgb`, rounded once to float32 records.
2. `radix_sort` (serial, `rasterize_cpu_sort.py`): a stable LSD radix sort of the visible Gaussians by
   their float32 depth bits (positive floats order like their bit patterns); three 11-bit passes, ~2n
   memory moves each.
3. `_pack` + `bin_by_tile` (serial counting sort): records gathered in depth order, then (tile, Gaussian)
   pairs grouped by tile; the depth order survives inside each tile, so no second sort is needed.
4. `_blend` (parallel over 32 x 32 work tiles in raster order, handed out one at a time; the image
   does not depend on the tiling, see `rasterize_ref.py`, and wider tiles mean fewer (tile, Gaussian) pairs and
   longer row spans than the reference's 16 x 16): each tile walks its
   Gaussians front to back and visits only the pixels inside the Gaussian's alpha >= 1/255 ellipse
   (row spans solved from the conic), skipping pixels (and rows) that have already stopped. Every
   pixel sees the same Gaussians in the same order as in the reference, so the picture is the same;
   the work is proportional to the splats' footprints instead of whole tiles. exp(-sigma) comes from
   multiplicative recurrences in float64 (one step per pixel or row, three exps per Gaussian and
   tile) instead of one exp per pixel.

Agreement with the reference: the Gaussian's value is exp of the exact (float64) exponent rather
than of its float32 rounding, and the transmittance product is kept in float32 (torch's cumprod
accumulates in float64): images differ by float32 rounding. A pixel whose alpha lands within that
distance of the 1/255 cut-off could differ by one contribution; the random-scene tests bound this
(mean <= 1e-5, max <= 1e-3 per channel).
"""

from __future__ import annotations

import math
import threading

import numba
import numpy as np
import torch
from numba import njit, prange

from neuralframe.backend.memo import LastResult
from neuralframe.render import interrupt
from neuralframe.render.camera import Camera
from neuralframe.render.output import RenderOutput
from neuralframe.render.splat import rasterize_ref as ref
from neuralframe.render.splat.rasterize_cpu_sort import bin_by_tile, radix_sort
from neuralframe.render.splat.gaussians import Gaussians

# Work tiles of the CPU kernel. The image does not depend on the tiling (see rasterize_ref.py), so the kernel
# uses wider tiles than the reference's 16 x 16: fewer (tile, Gaussian) pairs and longer row spans.
TW = 32
TH = 32
_F32 = np.float32
_ALPHA_MAX = _F32(ref.ALPHA_MAX)
_ALPHA_MIN = _F32(ref.ALPHA_MIN)
_T_MIN = _F32(ref.T_MIN)
_EPS2D = ref.EPS2D
_EXTEND_MAX = ref.EXTEND_MAX
_C0 = ref.C0
_C1 = ref.C1
_C2 = ref.C2
_C3 = ref.C3


@njit(cache=True, nogil=True, parallel=True)
def _world(means, quats, scales, logits, mean64, cov3, opac):  # pragma: no cover - compiled
    """The view-independent part of the projection, once per scene: float64 centres, world-space
    covariances Sigma = rot diag(exp(scales))^2 rot^T (upper triangle: xx, xy, xz, yy, yz, zz) and
    opacities sigmoid(logit), with the formulas of `ref.project`."""
    for i in prange(means.shape[0]):
        for a in range(3):
            mean64[i, a] = np.float64(means[i, a])
        qw, qx, qy, qz = (np.float64(quats[i, 0]), np.float64(quats[i, 1]), np.float64(quats[i, 2]),
                          np.float64(quats[i, 3]))
        qn = math.sqrt(qw * qw + qx * qx + qy * qy + qz * qz)
        qn = max(qn, 1e-12)
        qw, qx, qy, qz = qw / qn, qx / qn, qy / qn, qz / qn
        s0 = math.exp(np.float64(scales[i, 0]))
        s1 = math.exp(np.float64(scales[i, 1]))
        s2 = math.exp(np.float64(scales[i, 2]))
        # M = rot @ diag(s), by rows.
        m00 = (1 - 2 * (qy * qy + qz * qz)) * s0
        m01 = 2 * (qx * qy - qw * qz) * s1
        m02 = 2 * (qx * qz + qw * qy) * s2
        m10 = 2 * (qx * qy + qw * qz) * s0
        m11 = (1 - 2 * (qx * qx + qz * qz)) * s1
        m12 = 2 * (qy * qz - qw * qx) * s2
        m20 = 2 * (qx * qz - qw * qy) * s0
        m21 = 2 * (qy * qz + qw * qx) * s1
        m22 = (1 - 2 * (qx * qx + qy * qy)) * s2
        cov3[i, 0] = m00 * m00 + m01 * m01 + m02 * m02
        cov3[i, 1] = m00 * m10 + m01 * m11 + m02 * m12
        cov3[i, 2] = m00 * m20 + m01 * m21 + m02 * m22
        cov3[i, 3] = m10 * m10 + m11 * m11 + m12 * m12
        cov3[i, 4] = m10 * m20 + m11 * m21 + m12 * m22
        cov3[i, 5] = m20 * m20 + m21 * m21 + m22 * m22
        opac[i] = 1.0 / (1.0 + math.exp(-np.float64(logits[i])))


@njit(cache=True, nogil=True, parallel=True)
def _project(mean64, cov3, opac, sh, degree, viewmat, K, width, height, near, far, antialiased,
             campos, rec, span, rect, valid):  # pragma: no cover - compiled
    n = mean64.shape[0]
    R = viewmat[:3, :3]
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    tiles_x = (width + TW - 1) // TW
    tiles_y = (height + TH - 1) // TH
    eps2d = _EPS2D
    lim_x_pos = (width - cx) / fx + eps2d * (0.5 * width / fx)
    lim_x_neg = cx / fx + eps2d * (0.5 * width / fx)
    lim_y_pos = (height - cy) / fy + eps2d * (0.5 * height / fy)
    lim_y_neg = cy / fy + eps2d * (0.5 * height / fy)
    for i in prange(n):
        valid[i] = False
        m0, m1, m2 = mean64[i, 0], mean64[i, 1], mean64[i, 2]
        x = m0 * R[0, 0] + m1 * R[0, 1] + m2 * R[0, 2] + viewmat[0, 3]
        y = m0 * R[1, 0] + m1 * R[1, 1] + m2 * R[1, 2] + viewmat[1, 3]
        z = m0 * R[2, 0] + m1 * R[2, 1] + m2 * R[2, 2] + viewmat[2, 3]
        if not (z > near and z < far):
            continue
        # Camera-space covariance R Sigma R^T.
        w00, w01, w02, w11, w12, w22 = cov3[i, 0], cov3[i, 1], cov3[i, 2], cov3[i, 3], cov3[i, 4], cov3[i, 5]
        # P = R Sigma, then cov = P R^T.
        p00 = R[0, 0] * w00 + R[0, 1] * w01 + R[0, 2] * w02
        p01 = R[0, 0] * w01 + R[0, 1] * w11 + R[0, 2] * w12
        p02 = R[0, 0] * w02 + R[0, 1] * w12 + R[0, 2] * w22
        p10 = R[1, 0] * w00 + R[1, 1] * w01 + R[1, 2] * w02
        p11 = R[1, 0] * w01 + R[1, 1] * w11 + R[1, 2] * w12
        p12 = R[1, 0] * w02 + R[1, 1] * w12 + R[1, 2] * w22
        p20 = R[2, 0] * w00 + R[2, 1] * w01 + R[2, 2] * w02
        p21 = R[2, 0] * w01 + R[2, 1] * w11 + R[2, 2] * w12
        p22 = R[2, 0] * w02 + R[2, 1] * w12 + R[2, 2] * w22
        cov00 = p00 * R[0, 0] + p01 * R[0, 1] + p02 * R[0, 2]
        cov01 = p00 * R[1, 0] + p01 * R[1, 1] + p02 * R[1, 2]
        cov02 = p00 * R[2, 0] + p01 * R[2, 1] + p02 * R[2, 2]
        cov11 = p10 * R[1, 0] + p11 * R[1, 1] + p12 * R[1, 2]
        cov12 = p10 * R[2, 0] + p11 * R[2, 1] + p12 * R[2, 2]
        cov22 = p20 * R[2, 0] + p21 * R[2, 1] + p22 * R[2, 2]
        cov10, cov20, cov21 = cov01, cov02, cov12
        tx = z * min(max(x / z, -lim_x_neg), lim_x_pos)
        ty = z * min(max(y / z, -lim_y_neg), lim_y_pos)
        j00 = fx / z
        j02 = -fx * tx / (z * z)
        j11 = fy / z
        j12 = -fy * ty / (z * z)
        # cov2d = J cov J^T with J = [[j00, 0, j02], [0, j11, j12]].
        t00 = j00 * cov00 + j02 * cov20
        t01 = j00 * cov01 + j02 * cov21
        t02 = j00 * cov02 + j02 * cov22
        t10 = j11 * cov10 + j12 * cov20
        t11 = j11 * cov11 + j12 * cov21
        t12 = j11 * cov12 + j12 * cov22
        a = t00 * j00 + t02 * j02
        b01 = t01 * j11 + t02 * j12
        b10 = t10 * j00 + t12 * j02
        c = t11 * j11 + t12 * j12
        det_orig = a * c - b01 * b10
        a += eps2d
        c += eps2d
        b = 0.5 * (b01 + b10)
        det = a * c - b * b
        if not det > 0:
            continue
        o = opac[i]
        if antialiased:
            o = o * math.sqrt(max(det_orig / det, 1e-12))
        # float64 1/255, where `ref.visible` takes the float32-rounded ALPHA_MIN (2.3e-10 higher)
        if not o >= 1.0 / 255.0:
            continue
        mx = fx * x / z + cx
        my = fy * y / z + cy
        log_o = math.log(max(o * 255.0, 1.0))
        extend = min(math.sqrt(2.0 * log_o), _EXTEND_MAX)
        rx = math.ceil(extend * math.sqrt(a))
        ry = math.ceil(extend * math.sqrt(c))
        if not (mx + rx > 0 and mx - rx < width and my + ry > 0 and my - ry < height):
            continue
        valid[i] = True
        rec[i, 0] = mx
        rec[i, 1] = my
        rec[i, 2] = c / det
        rec[i, 3] = -b / det
        rec[i, 4] = a / det
        rec[i, 5] = o
        rec[i, 9] = z
        rect[i, 0] = min(max(math.floor((mx - rx) / TW), 0), tiles_x)
        rect[i, 1] = min(max(math.floor((my - ry) / TH), 0), tiles_y)
        rect[i, 2] = min(max(math.ceil((mx + rx) / TW), 0), tiles_x)
        rect[i, 3] = min(max(math.ceil((my + ry) / TH), 0), tiles_y)
        # Pixels with alpha >= 1/255 satisfy sigma <= ln(255 * opacity); a small margin covers the
        # float32 rounding of sigma, the exact test is made per pixel.
        # (the margin also covers the float32 rounding of the opacity the blending uses)
        thr = log_o * 1.001 + 1e-3
        # Row spans of the ellipse sigma <= thr and the steps of the exp(-sigma) recurrences, from
        # the float32 conic the blending uses.
        ca, cb, cc = np.float64(rec[i, 2]), np.float64(rec[i, 3]), np.float64(rec[i, 4])
        cdet = ca * cc - cb * cb
        span[i, 0] = cb / ca
        span[i, 1] = (cb * cb - ca * cc) / (ca * ca)
        span[i, 2] = 2.0 * thr / ca
        span[i, 3] = math.sqrt(2.0 * thr * ca / cdet) if cdet > 0 else 0.0
        span[i, 4] = math.exp(-ca)
        span[i, 5] = math.exp(-cb)
        span[i, 6] = math.exp(-cc)
        span[i, 7] = math.sqrt(2.0 * thr * cc / cdet) if cdet > 0 else 0.0
        # View-dependent colour from SH (the same basis as ref.sh_basis).
        dx_ = m0 - campos[0]
        dy_ = m1 - campos[1]
        dz_ = m2 - campos[2]
        dn = math.sqrt(dx_ * dx_ + dy_ * dy_ + dz_ * dz_)
        dn = max(dn, 1e-12)
        vx, vy, vz = dx_ / dn, dy_ / dn, dz_ / dn
        xx, yy, zz = vx * vx, vy * vy, vz * vz
        b1, b2, b3 = -_C1 * vy, _C1 * vz, -_C1 * vx
        b4, b5, b6 = _C2[0] * vx * vy, _C2[1] * vy * vz, _C2[2] * (2 * zz - xx - yy)
        b7, b8 = _C2[3] * vx * vz, _C2[4] * (xx - yy)
        b9, b10, b11 = _C3[0] * vy * (3 * xx - yy), _C3[1] * vx * vy * vz, _C3[2] * vy * (4 * zz - xx - yy)
        b12, b13 = _C3[3] * vz * (2 * zz - 3 * xx - 3 * yy), _C3[4] * vx * (4 * zz - xx - yy)
        b14, b15 = _C3[5] * vz * (xx - yy), _C3[6] * vx * (xx - 3 * yy)
        for ch in range(3):
            acc = _C0 * np.float64(sh[i, 0, ch])
            if degree >= 1:
                acc += b1 * np.float64(sh[i, 1, ch]) + b2 * np.float64(sh[i, 2, ch]) + b3 * np.float64(sh[i, 3, ch])
            if degree >= 2:
                acc += (b4 * np.float64(sh[i, 4, ch]) + b5 * np.float64(sh[i, 5, ch]) + b6 * np.float64(sh[i, 6, ch])
                        + b7 * np.float64(sh[i, 7, ch]) + b8 * np.float64(sh[i, 8, ch]))
            if degree >= 3:
                acc += (b9 * np.float64(sh[i, 9, ch]) + b10 * np.float64(sh[i, 10, ch])
                        + b11 * np.float64(sh[i, 11, ch]) + b12 * np.float64(sh[i, 12, ch])
                        + b13 * np.float64(sh[i, 13, ch]) + b14 * np.float64(sh[i, 14, ch])
                        + b15 * np.float64(sh[i, 15, ch]))
            rec[i, 6 + ch] = max(acc + 0.5, 0.0)


@njit(cache=True, nogil=True, parallel=True)
def _pack(order, rec, span, rect, rec_s, span_s, rect_s):  # pragma: no cover - compiled
    """Gather the visible Gaussians' records into depth order (the first len(order) rows of rec_s, span_s and
    rect_s), so the blending reads them in order.

    rec: [M, 10] float32 (mx, my, conic a, b, c, opacity, r, g, b, depth);
    span: [M, 8] float64 (b/a, (b^2 - ac)/a^2, 2 thr/a, half height, exp(-a), exp(-b), exp(-c),
    half width):
    the row spans of the ellipse sigma <= thr, dx = -(b/a) dy +- sqrt((b^2 - ac)/a^2 dy^2 + 2 thr/a),
    and the steps of the exp(-sigma) recurrences.
    """
    m = order.shape[0]
    for j in prange(m):
        i = order[j]
        for q in range(rec.shape[1]):
            rec_s[j, q] = rec[i, q]
        for q in range(span.shape[1]):
            span_s[j, q] = span[i, q]
        for q in range(4):
            rect_s[j, q] = rect[i, q]


@njit(cache=True, nogil=True, parallel=True)
def _blend(tile_order, pairs, offsets, tiles_x, width, height, rec, span,
           out_rgb, out_t, out_depth, evals):  # pragma: no cover - compiled
    one = _F32(1.0)
    zero = _F32(0.0)
    for w in prange(tile_order.shape[0]):
        t = tile_order[w]
        x0 = (t % tiles_x) * TW
        y0 = (t // tiles_x) * TH
        x1 = min(x0 + TW, width)
        y1 = min(y0 + TH, height)
        n_pix = (x1 - x0) * (y1 - y0)
        # Per-tile state: transmittance, colour + depth, and whether the pixel has stopped.
        # T[k] < 0 marks a pixel that has stopped (its transmittance is -T[k]).
        T = np.ones(TW * TH, np.float32)
        acc = np.zeros(TW * TH * 4, np.float32)
        row_done = np.zeros(TH, np.int64)
        tw = x1 - x0
        n_done = 0
        n_eval = 0
        for p in range(offsets[t], offsets[t + 1]):
            g = pairs[p]
            mx, my = rec[g, 0], rec[g, 1]
            o = rec[g, 5]
            cr, cg, cbl, cz = rec[g, 6], rec[g, 7], rec[g, 8], rec[g, 9]
            a, b, c = np.float64(rec[g, 2]), np.float64(rec[g, 3]), np.float64(rec[g, 4])
            bya, kk, mm, hy = span[g, 0], span[g, 1], span[g, 2], span[g, 3]
            qa, qb, qc, hx = span[g, 4], span[g, 5], span[g, 6], span[g, 7]
            mx64, my64 = np.float64(mx), np.float64(my)
            r0 = max(y0, int(math.ceil(my64 - hy - 0.5)))
            r1 = min(y1 - 1, int(math.floor(my64 + hy - 0.5)))
            # exp(-sigma) by recurrence instead of one exp per pixel. At an anchor pixel (arow, acol)
            # we keep ea = exp(-sigma), the column step ratio ra = E(col + 1) / E(col) and the row step
            # ratio sa = E(row + 1) / E(row); each step multiplies a ratio by exp(-a), exp(-b) or
            # exp(-c). In float64 over at most 16 + 16 steps this stays within 1e-14 relative.
            arow = -1
            acol = 0
            ea = 0.0
            ra = 0.0
            sa = 0.0
            for row in range(r0, r1 + 1):
                if row_done[row - y0] == tw:
                    continue
                dy = my64 - (row + 0.5)
                disc = kk * dy * dy + mm
                if disc < 0:
                    continue
                sq = math.sqrt(disc)
                # Pixel centres col + 0.5 = mx - dx for dx in the span.
                cen = mx64 + bya * dy - 0.5
                c0 = max(x0, int(math.ceil(cen - sq)))
                c1 = min(x1 - 1, int(math.floor(cen + sq)))
                if c1 < c0:
                    continue
                if arow >= 0:
                    while arow < row:
                        ea *= sa
                        sa *= qc
                        ra *= qb
                        arow += 1
                if arow < 0 or not (ea > 1e-200):  # first row, or the anchor underflowed: restart
                    # Anchor at the ellipse's leftmost column in this tile when that is not too far
                    # out, so later rows only step right (multiplications, no divisions).
                    acol = min(c0, max(x0, int(math.ceil(mx64 - hx - 0.5))))
                    if arow >= 0:
                        acol = c0
                    adx = mx64 - (acol + 0.5)
                    ea = math.exp(-(0.5 * (a * adx * adx + c * dy * dy) + b * adx * dy))
                    ra = math.exp(a * adx - 0.5 * a + b * dy)
                    sa = math.exp(c * dy - 0.5 * c + b * adx)
                    arow = row
                e = ea
                r = ra
                for _ in range(acol, c0):
                    e *= r
                    r *= qa
                for _ in range(c0, acol):
                    r /= qa
                    e /= r
                q = qa
                base = (row - y0) * TW - x0
                for col in range(c0, c1 + 1):
                    k = base + col
                    gauss = _F32(e)
                    e *= r
                    r *= q
                    tk = T[k]
                    if tk < zero:
                        continue
                    n_eval += 1
                    alpha = min(o * gauss, _ALPHA_MAX)
                    if alpha < _ALPHA_MIN:
                        continue
                    t_next = tk * (one - alpha)
                    if t_next <= _T_MIN:
                        T[k] = -tk
                        n_done += 1
                        row_done[row - y0] += 1
                        continue
                    vis = alpha * tk
                    k4 = 4 * k
                    acc[k4] += vis * cr
                    acc[k4 + 1] += vis * cg
                    acc[k4 + 2] += vis * cbl
                    acc[k4 + 3] += vis * cz
                    T[k] = t_next
            if n_done == n_pix:
                break
        evals[w] = n_eval
        for row in range(y0, y1):
            for col in range(x0, x1):
                k = (row - y0) * TW + col - x0
                out_rgb[row, col, 0] = acc[4 * k]
                out_rgb[row, col, 1] = acc[4 * k + 1]
                out_rgb[row, col, 2] = acc[4 * k + 2]
                out_t[row, col] = abs(T[k])
                out_depth[row, col] = acc[4 * k + 3]


def _numpy(t: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(t.detach().cpu().numpy(), dtype=np.float32)


def _world_arrays_of(means: torch.Tensor, quats: torch.Tensor, scales: torch.Tensor, opacities: torch.Tensor,
                    sh: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """float64 centres, world covariances, opacities and float32 SH of a scene."""
    means_, quats_, scales_ = _numpy(means), _numpy(quats), _numpy(scales)
    n = means_.shape[0]
    mean64, cov3, opac = np.empty((n, 3)), np.empty((n, 6)), np.empty(n)
    _world(means_, quats_, scales_, _numpy(opacities), mean64, cov3, opac)
    return mean64, cov3, opac, _numpy(sh)


# computed once per scene: a viewer renders the same Gaussians every frame
_world_arrays = LastResult(_world_arrays_of)


class _Workspace(threading.local):
    """Per-Gaussian scratch arrays of stages 1-3, kept from one frame to the next (per thread). A viewer renders
    the same scene every frame: fresh arrays would cost their page faults again each time (benchmarks/README.md,
    viewer.json), and none of them outlives the frame (the blending's outputs are new arrays)."""

    n = -1

    def get(self, n: int) -> tuple[np.ndarray, ...]:
        if self.n != n:
            self.arrays = (np.empty((n, 10), np.float32), np.empty((n, 8), np.float64), np.empty((n, 4), np.int32),
                           np.empty(n, np.bool_), np.empty((n, 10), np.float32), np.empty((n, 8), np.float64),
                           np.empty((n, 4), np.int32))
            self.n = n
        return self.arrays


_workspace = _Workspace()


def prepare(g: Gaussians, camera: Camera, sh_degree: int, antialiased: bool) -> dict:
    """Stages 1-3: projected Gaussians in depth order and per-tile lists (numpy arrays; `rec` and `span` are
    scratch arrays of this thread, valid until its next call)."""
    mean64, cov3, opac, sh = _world_arrays(g.means, g.quats, g.scales, g.opacities, g.sh)
    n = mean64.shape[0]
    rec, span, rect, valid, rec_s, span_s, rect_s = _workspace.get(n)
    viewmat = camera.viewmat.numpy().astype(np.float64)
    K = camera.K.numpy().astype(np.float64)
    campos = camera.position.numpy().astype(np.float64)
    _project(mean64, cov3, opac, sh, int(sh_degree), viewmat, K, camera.width, camera.height,
             float(camera.near), float(camera.far), bool(antialiased), campos, rec, span, rect, valid)
    interrupt.check()
    ids = np.flatnonzero(valid).astype(np.int32)
    # Depths of visible Gaussians are > near > 0, so their float32 bits sort like the values.
    order = radix_sort(np.ascontiguousarray(rec[ids, 9]).view(np.uint32), ids)
    interrupt.check()
    tiles_x = (camera.width + TW - 1) // TW
    tiles_y = (camera.height + TH - 1) // TH
    m = order.shape[0]
    _pack(order, rec, span, rect, rec_s, span_s, rect_s)
    pairs, offsets = bin_by_tile(rect_s[:m], tiles_x, tiles_y)
    return dict(rec=rec_s, span=span_s, order=order, pairs=pairs, offsets=offsets, tiles_x=tiles_x,
                tiles_y=tiles_y)


def rasterize(g: Gaussians, camera: Camera, *, sh_degree: int | None = None, background=None,
              antialiased: bool = False) -> RenderOutput:
    """Render `g` from `camera` on the CPU (same arguments and result as `ref.rasterize`)."""
    return rasterize_with_stats(g, camera, sh_degree=sh_degree, background=background,
                                antialiased=antialiased)[0]


def rasterize_with_stats(g: Gaussians, camera: Camera, *, sh_degree: int | None = None, background=None,
                         antialiased: bool = False) -> tuple[RenderOutput, dict]:
    """`rasterize`, plus counts: visible Gaussians, (32 x 32 work tile, Gaussian) pairs and
    pixel-Gaussian evaluations (alpha computed for a pixel that had not stopped)."""
    degree = g.sh_degree if sh_degree is None else int(sh_degree)
    s = prepare(g, camera, degree, antialiased)
    interrupt.check()
    W, H = camera.width, camera.height
    counts = np.diff(s["offsets"])
    busy = np.flatnonzero(counts)
    # Raster order, handed out one tile at a time: neighbouring tiles share Gaussians, so their records
    # are still in cache, and dynamic hand-out keeps both cores busy to the end.
    tile_order = busy.astype(np.int64)
    rgb = np.zeros((H, W, 3), np.float32)
    t_final = np.ones((H, W), np.float32)
    dep = np.zeros((H, W), np.float32)
    evals = np.zeros(len(tile_order), np.int64)
    with numba.parallel_chunksize(1):
        _blend(tile_order, s["pairs"], s["offsets"], s["tiles_x"], W, H, s["rec"], s["span"], rgb, t_final, dep,
               evals)
    rgb_t = torch.from_numpy(rgb)
    t_t = torch.from_numpy(t_final)
    alpha = 1.0 - t_t
    depth = torch.from_numpy(dep) / torch.clamp(alpha, min=1e-10)
    if background is not None:
        bg = torch.as_tensor(background, dtype=torch.float32)
        rgb_t = rgb_t + t_t[..., None] * bg
    stats = {"visible": int(len(s["order"])), "pairs": int(len(s["pairs"])), "evaluations": int(evals.sum())}
    return RenderOutput(rgb_t, alpha, depth), stats
