"""The per-Gaussian stages of the CPU splat rasterizer (`rasterize_cpu.py`, stage 1), compiled with Numba:
the view-independent set-up (once per scene) and the projection (every frame), parallel over Gaussians."""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from neuralframe.render.splat import rasterize_ref as ref
from neuralframe.render.splat.rasterize_cpu_blend import (R_A, R_B, R_C, R_E, R_HX, R_HY, R_MX, R_MY, R_O, R_R, R_S,
                                                          R_UT, R_Z, TH, TW, fma)

_EPS2D = ref.EPS2D
_EXTEND_MAX = ref.EXTEND_MAX
_C0 = ref.C0
_C1 = ref.C1
_C2 = ref.C2
_C3 = ref.C3
_F32 = np.float32
_S2 = tuple(_F32(c) for c in _C2)
_S3 = tuple(_F32(c) for c in _C3)
_HALF32, _TWO, _THREE, _FOUR = _F32(0.5), _F32(2.0), _F32(3.0), _F32(4.0)


@njit(cache=True, nogil=True, parallel=True)
def world(quats, scales, logits, cov3, opac):  # pragma: no cover - compiled
    """The view-independent part of the projection, once per scene: world-space covariances
    Sigma = rot diag(exp(scales))^2 rot^T (upper triangle: xx, xy, xz, yy, yz, zz), and in `opac` the opacity
    o = sigmoid(logit), ln(max(255 o, 1)) and trace(Sigma) (a bound on its largest eigenvalue), in float64 with
    the formulas of `ref.project`."""
    for i in prange(quats.shape[0]):
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
        o = 1.0 / (1.0 + math.exp(-np.float64(logits[i])))
        opac[i, 0] = o
        opac[i, 1] = math.log(max(o * 255.0, 1.0))
        opac[i, 2] = cov3[i, 0] + cov3[i, 3] + cov3[i, 5]


@njit(cache=True, nogil=True, parallel=True)
def project(means, cov3, opac, sh, degree, viewmat, K, width, height, near, far, antialiased,
            campos, rec, rect, depth, valid):  # pragma: no cover - compiled
    """EWA projection and culling of every Gaussian in float64 with the formulas of `ref.project` /
    `ref.visible`, and SH colour as `ref.sh_to_rgb` in float32, rounded once into the float32 records `rec`
    (see rasterize_cpu_blend.py) of the visible ones (`valid`), with their work-tile rectangles `rect` and
    float32 depths `depth`."""
    n = means.shape[0]
    R = viewmat[:3, :3]
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    tiles_x = (width + TW - 1) // TW
    tiles_y = (height + TH - 1) // TH
    eps2d = _EPS2D
    lim_x_pos = (width - cx) / fx + eps2d * (0.5 * width / fx)
    lim_x_neg = cx / fx + eps2d * (0.5 * width / fx)
    lim_y_pos = (height - cy) / fy + eps2d * (0.5 * height / fy)
    lim_y_neg = cy / fy + eps2d * (0.5 * height / fy)
    shf = sh.reshape(-1)  # [N * K * 3], C-contiguous
    # |row of the Jacobian|^2 <= (f / z)^2 (1 + lim^2), lim: the clamp of x/z (y/z)
    kx = 1.0 + max(lim_x_pos, lim_x_neg) ** 2
    ky = 1.0 + max(lim_y_pos, lim_y_neg) ** 2
    for i in prange(n):
        valid[i] = False
        m0, m1, m2 = np.float64(means[i, 0]), np.float64(means[i, 1]), np.float64(means[i, 2])
        x = m0 * R[0, 0] + m1 * R[0, 1] + m2 * R[0, 2] + viewmat[0, 3]
        y = m0 * R[1, 0] + m1 * R[1, 1] + m2 * R[1, 2] + viewmat[1, 3]
        z = m0 * R[2, 0] + m1 * R[2, 1] + m2 * R[2, 2] + viewmat[2, 3]
        if not (z > near and z < far):
            continue
        o = opac[i, 0]
        # float64 1/255, where `ref.visible` takes the float32-rounded ALPHA_MIN (2.3e-10 higher)
        if not (antialiased or o >= 1.0 / 255.0):
            continue
        iz = 1.0 / z  # multiplications by 1/z instead of divisions: float64 rounding, not seen in float32
        mx = fx * x * iz + cx
        my = fy * y * iz + cy
        # Off-screen without the covariance: the projected variance is at most |row of J|^2 trace(Sigma)
        # + 0.3, so the footprint's half extent (below) is at most rx_max, ry_max (with margins for rounding).
        tr = opac[i, 2] * (1.0 + 1e-9)
        rx_max = _EXTEND_MAX * math.sqrt(fx * fx * iz * iz * kx * tr + eps2d) + 1.0
        ry_max = _EXTEND_MAX * math.sqrt(fy * fy * iz * iz * ky * tr + eps2d) + 1.0
        if not (mx + rx_max > 0 and mx - rx_max < width and my + ry_max > 0 and my - ry_max < height):
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
        tx = z * min(max(x * iz, -lim_x_neg), lim_x_pos)
        ty = z * min(max(y * iz, -lim_y_neg), lim_y_pos)
        j00 = fx * iz
        j02 = -fx * tx * (iz * iz)
        j11 = fy * iz
        j12 = -fy * ty * (iz * iz)
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
        log_o = opac[i, 1]
        if antialiased:
            o = o * math.sqrt(max(det_orig / det, 1e-12))
            if not o >= 1.0 / 255.0:
                continue
            log_o = math.log(max(o * 255.0, 1.0))
        extend = min(math.sqrt(2.0 * log_o), _EXTEND_MAX)
        rx = math.ceil(extend * math.sqrt(a))
        ry = math.ceil(extend * math.sqrt(c))
        if not (mx + rx > 0 and mx - rx < width and my + ry > 0 and my - ry < height):
            continue
        valid[i] = True
        rec[i, R_MX] = mx
        rec[i, R_MY] = my
        idet = 1.0 / det
        rec[i, R_A] = c * idet
        rec[i, R_B] = -b * idet
        rec[i, R_C] = a * idet
        rec[i, R_O] = o
        rec[i, R_Z] = z
        depth[i] = z
        rect[i, 0] = min(max(math.floor((mx - rx) / TW), 0), tiles_x)
        rect[i, 1] = min(max(math.floor((my - ry) / TH), 0), tiles_y)
        rect[i, 2] = min(max(math.ceil((mx + rx) / TW), 0), tiles_x)
        rect[i, 3] = min(max(math.ceil((my + ry) / TH), 0), tiles_y)
        # Pixels with alpha >= 1/255 satisfy sigma <= ln(255 * opacity); a margin covers the float32
        # rounding of sigma and of the opacity the blending uses (the exact test is made per pixel).
        thr = log_o * 1.001 + 1e-3
        # Extents and shape of the ellipse sigma <= thr, from the float32 conic the blending uses.
        ca, cb, cc = np.float64(rec[i, R_A]), np.float64(rec[i, R_B]), np.float64(rec[i, R_C])
        cdet = max(ca * cc - cb * cb, 0.0)
        thr2 = 2.0 * thr / cdet if cdet > 0 else 0.0
        hy = math.sqrt(thr2 * ca)
        rec[i, R_HX] = math.sqrt(thr2 * cc)
        rec[i, R_HY] = hy
        rec[i, R_S] = -cb / cc
        rec[i, R_E] = cdet / (cc * cc)
        rec[i, R_UT] = cb * hy / ca
        # View-dependent colour from SH (the same basis as ref.sh_basis), in float32 with fused multiply-adds:
        # a colour has no threshold to cross (only the clamp at 0, which is continuous), and float32 leaves it
        # within a few 1e-7 of the float64 sum.
        dx_ = m0 - campos[0]
        dy_ = m1 - campos[1]
        dz_ = m2 - campos[2]
        dn = math.sqrt(dx_ * dx_ + dy_ * dy_ + dz_ * dz_)
        dn = max(dn, 1e-12)
        vx, vy, vz = _F32(dx_ / dn), _F32(dy_ / dn), _F32(dz_ / dn)
        xx, yy, zz = vx * vx, vy * vy, vz * vz
        b1, b2, b3 = _F32(-_C1) * vy, _F32(_C1) * vz, _F32(-_C1) * vx
        b4, b5, b6 = _S2[0] * vx * vy, _S2[1] * vy * vz, _S2[2] * (_TWO * zz - xx - yy)
        b7, b8 = _S2[3] * vx * vz, _S2[4] * (xx - yy)
        b9, b10, b11 = _S3[0] * vy * (_THREE * xx - yy), _S3[1] * vx * vy * vz, _S3[2] * vy * (_FOUR * zz - xx - yy)
        b12, b13 = _S3[3] * vz * (_TWO * zz - _THREE * xx - _THREE * yy), _S3[4] * vx * (_FOUR * zz - xx - yy)
        b14, b15 = _S3[5] * vz * (xx - yy), _S3[6] * vx * (xx - _THREE * yy)
        base = np.uint64(i) * np.uint64(sh.shape[1] * 3)
        for ch in range(3):
            c = base + np.uint64(ch)
            acc = _F32(_C0) * shf[c]
            if degree >= 1:
                d1 = fma(b2, shf[c + np.uint64(6)], fma(b3, shf[c + np.uint64(9)], acc))
                acc = fma(b1, shf[c + np.uint64(3)], d1)
            if degree >= 2:
                d2 = fma(b4, shf[c + np.uint64(12)], fma(b5, shf[c + np.uint64(15)], b6 * shf[c + np.uint64(18)]))
                acc += fma(b7, shf[c + np.uint64(21)], fma(b8, shf[c + np.uint64(24)], d2))
            if degree >= 3:
                d3 = fma(b9, shf[c + np.uint64(27)], fma(b10, shf[c + np.uint64(30)], b11 * shf[c + np.uint64(33)]))
                d3 = fma(b12, shf[c + np.uint64(36)], fma(b13, shf[c + np.uint64(39)], d3))
                acc += fma(b14, shf[c + np.uint64(42)], fma(b15, shf[c + np.uint64(45)], d3))
            rec[i, R_R + ch] = max(acc + _HALF32, _F32(0.0))
