"""Axes and node transforms for glTF splats: glTF's Left-Up-Front axes vs the Right-Down-Front axes of
INRIA .ply files (a half turn about z), and the affine map of a node's global matrix applied to means,
rotations, scales and spherical harmonics.

A map whose linear part is a signed diagonal (the axis change itself, a node without rotation) is applied
with sign flips only, so a float32 scene goes through it bit for bit. Any other linear part is applied in
float64: a similarity rotates the quaternions and adds log(scale); a non-uniform or sheared map is applied
to each Gaussian's covariance and refactored by SVD. Spherical harmonics are rotated per band by the
matrix that maps the coefficients of f to those of f(R^T d), fitted on fixed sample directions.
"""

from __future__ import annotations

import numpy as np
import torch

from neuralframe.render.splat.rasterize_ref import sh_basis

# glTF (x left, y up, z front) <-> INRIA (x right, y down, z front): a half turn about z, its own inverse.
LUF_TO_RDF = np.diag([-1.0, -1.0, 1.0, 1.0])


def node_matrix(node: dict) -> np.ndarray:
    """A glTF node's local 4x4 matrix (column-major `matrix`, or translation * rotation(xyzw) * scale)."""
    if "matrix" in node:
        return np.asarray(node["matrix"], np.float64).reshape(4, 4).T
    t = np.asarray(node.get("translation", (0.0, 0.0, 0.0)), np.float64)
    x, y, z, w = np.asarray(node.get("rotation", (0.0, 0.0, 0.0, 1.0)), np.float64)
    s = np.asarray(node.get("scale", (1.0, 1.0, 1.0)), np.float64)
    m = np.eye(4)
    m[:3, :3] = _quat_to_matrix(np.array([[w, x, y, z]]))[0] * s[None, :]
    m[:3, 3] = t
    return m


def apply(a: np.ndarray, means, quats, log_scales, sh):
    """The Gaussians (float32 arrays; quats w, x, y, z) under the 4x4 affine map `a`, as new arrays."""
    lin, t = a[:3, :3], a[:3, 3]
    if not np.any(lin - np.diag(np.diag(lin))) and np.all(np.abs(np.diag(lin)) == 1.0):
        d = np.diag(lin)
        means = (means * d.astype(np.float32) + t.astype(np.float32)).astype(np.float32)
        vec_sign = (np.linalg.det(lin) * d).astype(np.float32)  # a quaternion's vector part is axial
        quats = np.concatenate([quats[:, :1], quats[:, 1:] * vec_sign], 1)
        signs = np.diag(sh_matrix(lin, sh.shape[1])).astype(np.float32)
        return means, quats, log_scales.copy(), sh * signs[None, :, None]

    means = (means.astype(np.float64) @ lin.T + t).astype(np.float32)
    det = np.linalg.det(lin)
    if abs(det) < 1e-12:
        raise ValueError("the node transform is singular (it flattens the scene)")
    c = abs(det) ** (1.0 / 3.0)
    rot = lin / c
    q = quats.astype(np.float64)
    q = q / np.linalg.norm(q, axis=1, keepdims=True)
    if np.abs(rot.T @ rot - np.eye(3)).max() < 1e-6:  # a similarity: rotate, scale uniformly
        proper = rot * np.sign(det)  # a mirror is a half turn times -1, which an ellipsoid cannot tell apart
        q_r = _matrix_to_quat(proper[None])[0]
        quats = _quat_mul(np.broadcast_to(q_r, q.shape), q)
        log_scales = log_scales.astype(np.float64) + np.log(c)
    else:  # non-uniform scale or shear: factor lin R S = U diag(s) V^T, the covariance is U diag(s)^2 U^T
        u_vec, s_vals, _ = np.linalg.svd(lin[None] @ _quat_to_matrix(q) * np.exp(log_scales)[:, None, :])
        u_vec[np.linalg.det(u_vec) < 0, :, 2] *= -1.0
        quats = _matrix_to_quat(u_vec)
        log_scales = np.log(np.maximum(s_vals, 1e-38))
        u, _, vt = np.linalg.svd(lin)
        rot = u @ vt  # the rotation (or mirror) part, for the view-dependent colour
    d_sh = sh_matrix(rot, sh.shape[1])
    sh = np.einsum("ij,njc->nic", d_sh, sh.astype(np.float64))
    return means, quats.astype(np.float32), log_scales.astype(np.float32), sh.astype(np.float32)


def sh_matrix(rot: np.ndarray, k: int) -> np.ndarray:
    """[k, k]: the coefficients of d -> f(rot^T d) from those of f (block diagonal by band; entries within
    1e-9 of 0 or +-1 are snapped, so an axis flip is exact)."""
    degree = round(k ** 0.5) - 1
    dirs = np.random.default_rng(0).normal(size=(64, 3))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    basis = sh_basis(torch.from_numpy(dirs), degree).numpy()
    moved = sh_basis(torch.from_numpy(dirs @ rot), degree).numpy()  # rows: Y(rot^T d)
    out = np.zeros((k, k))
    for band in range(degree + 1):
        sl = slice(band * band, (band + 1) ** 2)
        out[sl, sl] = np.linalg.lstsq(basis[:, sl], moved[:, sl], rcond=None)[0]
    out[np.abs(out) < 1e-9] = 0.0
    ones = np.abs(np.abs(out) - 1.0) < 1e-9
    out[ones] = np.sign(out[ones])
    return out


def _quat_to_matrix(q: np.ndarray) -> np.ndarray:  # [n, 4] unit (w, x, y, z) -> [n, 3, 3]
    w, x, y, z = q.T
    return np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
        np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
        np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1)], 1)


def _matrix_to_quat(m: np.ndarray) -> np.ndarray:  # [n, 3, 3] proper rotations -> [n, 4] (w, x, y, z)
    # Each of 4|q_i|^2 from the diagonal; the largest is divided into the off-diagonal sums (Shepperd).
    tr = np.trace(m, axis1=1, axis2=2)
    cands = np.stack([1 + tr, 1 + 2 * m[:, 0, 0] - tr, 1 + 2 * m[:, 1, 1] - tr, 1 + 2 * m[:, 2, 2] - tr], 1)
    best = np.argmax(cands, 1)
    r = np.sqrt(np.maximum(cands[np.arange(len(m)), best], 1e-300))
    sym = {(0, 1): m[:, 2, 1] - m[:, 1, 2], (0, 2): m[:, 0, 2] - m[:, 2, 0], (0, 3): m[:, 1, 0] - m[:, 0, 1],
           (1, 2): m[:, 0, 1] + m[:, 1, 0], (1, 3): m[:, 0, 2] + m[:, 2, 0], (2, 3): m[:, 1, 2] + m[:, 2, 1]}
    q = np.zeros((len(m), 4))
    for i in range(4):
        here = best == i
        for j in range(4):
            q[here, j] = (r[here] / 2) if i == j else sym[min(i, j), max(i, j)][here] / (2 * r[here])
    return q


def _quat_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:  # Hamilton product, (w, x, y, z)
    aw, ax, ay, az = a.T
    bw, bx, by, bz = b.T
    return np.stack([aw * bw - ax * bx - ay * by - az * bz, aw * bx + ax * bw + ay * bz - az * by,
                     aw * by - ax * bz + ay * bw + az * bx, aw * bz + ax * by - ay * bx + az * bw], 1)
