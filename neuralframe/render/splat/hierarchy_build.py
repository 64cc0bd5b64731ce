"""Compiled steps of building a splat hierarchy (`hierarchy.build`): Morton codes, the octree's topology one
level at a time, and the moment-matched merge of each new node's children.

The tree is an octree over Morton codes (21 bits per axis): at level l, frontier nodes whose codes agree above
bit 3 l share a cell and merge into one parent; a node alone in its cell goes up unchanged, so every internal
node has 2 to `MAX_FANOUT` children. Leaves with the same full code (duplicates) are grouped in eights at
level 0, repeated until each code is unique.

A node's moments are those of the mixture of its leaves (merging is associative): weight W = sum of the
leaves' opacity x cross-section (sigma_1 sigma_2, the two largest standard deviations), the W-weighted mean,
and the W-weighted covariances plus the spread of the centres. Its Gaussian takes that mean and covariance
(eigenvectors -> quaternion, eigenvalues -> log-scales), opacity q = W / (its own sigma_1 sigma_2) clamped to
`MAX_OPACITY`, and the W-weighted mean of the SH coefficients. When q is above what that opacity can draw (the
leaves overlap and cover their patch), its two large axes grow by sqrt(q / MAX_OPACITY), q capped at
`FILLED_INK`, so that a merged patch of a surface stays closed instead of breaking into a grid of dots.

`layout` then writes the node table (`NODE`) the cuts read: depth-first by child blocks, narrow chains widened.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

MAX_FANOUT = 8  # children of a node, at most
# A node takes over a merged child's children while it has at most this many (`layout`): fewer levels mean
# fewer jumps through memory per cut, wider nodes a coarser choice per expansion.
WIDEN_TO = 4
MAX_OPACITY = 0.99
MORTON_BITS = 21
# A filled patch (a square, a disc) with standard deviations sigma_1, sigma_2 has an area of about 12 sigma_1
# sigma_2, and a Gaussian of opacity o holds 2 pi sigma_1 sigma_2 o of ink (weights are opacity x sigma_1 sigma_2):
# a merged node draws at most 12 / (2 pi) weight per unit of its sigma_1 sigma_2, times 1.5 because its leaves
# reach past their centres' spread (1.5 gave the best pictures of surface_scene at a tenth to a third of its
# Gaussians; 1.0 left visible gaps between the merged cells, 2.5 blurred them).
FILLED_INK = 1.5 * 12.0 / (2.0 * math.pi)
# A Gaussian's culling sphere: the rasterizer's footprint reaches at most 3.33 standard deviations, and its
# Jacobian (clamped to 1.3 fields of view) stretches it by at most 1.3 against the sphere's projection.
CULL_SIGMAS = 3.33 * 1.3


@njit(cache=True, nogil=True, parallel=True)
def morton_codes(means, lo, scale):  # pragma: no cover - compiled
    """63-bit Morton codes of points [N, 3] quantised to 21 bits per axis: (p - lo) * scale in [0, 2^21)."""
    n = means.shape[0]
    codes = np.empty(n, np.uint64)
    top = (1 << MORTON_BITS) - 1
    for i in prange(n):
        code = np.uint64(0)
        for a in range(3):
            q = int((np.float64(means[i, a]) - lo[a]) * scale[a])
            q = min(max(q, 0), top)
            x = np.uint64(q)
            x = (x | (x << np.uint64(32))) & np.uint64(0x1F00000000FFFF)
            x = (x | (x << np.uint64(16))) & np.uint64(0x1F0000FF0000FF)
            x = (x | (x << np.uint64(8))) & np.uint64(0x100F00F00F00F00F)
            x = (x | (x << np.uint64(4))) & np.uint64(0x10C30C30C30C30C3)
            x = (x | (x << np.uint64(2))) & np.uint64(0x1249249249249249)
            code |= x << np.uint64(a)
        codes[i] = code
    return codes


@njit(cache=True, nogil=True)
def group_level(refs, codes, shift, children, first, count, n_nodes, n_children):  # pragma: no cover
    """One level of the octree: runs of frontier nodes whose codes agree above bit `shift` (at most
    MAX_FANOUT per run) become new parents, numbered from `n_nodes`; their children go to `children` from
    `n_children`. Returns (new frontier refs, their codes, new n_nodes, new n_children, whether a run was
    longer than MAX_FANOUT: then the same shift must run again). Refs: >= 0 an internal node, < 0 leaf -1-i."""
    n = refs.shape[0]
    out_refs = np.empty(n, np.int64)
    out_codes = np.empty(n, np.uint64)
    m = 0
    long_run = False
    i = 0
    sh = np.uint64(shift)
    while i < n:
        key = codes[i] >> sh
        j = i + 1
        while j < n and (codes[j] >> sh) == key:
            j += 1
        while i < j:
            end = min(j, i + MAX_FANOUT)
            if j - i > MAX_FANOUT:
                long_run = True
            if end - i == 1:
                out_refs[m] = refs[i]
            else:
                first[n_nodes] = n_children
                count[n_nodes] = end - i
                for k in range(i, end):
                    children[n_children] = refs[k]
                    n_children += 1
                out_refs[m] = n_nodes
                n_nodes += 1
            out_codes[m] = codes[i]
            m += 1
            i = end
    return out_refs[:m], out_codes[:m], n_nodes, n_children, long_run


@njit(cache=True, nogil=True, inline="always")
def _leaf_moments(i, means, quats, scales, logits, cov):  # pragma: no cover - compiled
    """Leaf i's covariance (upper triangle xx, xy, xz, yy, yz, zz into `cov`), weight and largest sigma."""
    qw, qx, qy, qz = (np.float64(quats[i, 0]), np.float64(quats[i, 1]), np.float64(quats[i, 2]),
                      np.float64(quats[i, 3]))
    qn = max(math.sqrt(qw * qw + qx * qx + qy * qy + qz * qz), 1e-12)
    qw, qx, qy, qz = qw / qn, qx / qn, qy / qn, qz / qn
    s0 = math.exp(np.float64(scales[i, 0]))
    s1 = math.exp(np.float64(scales[i, 1]))
    s2 = math.exp(np.float64(scales[i, 2]))
    m00 = (1 - 2 * (qy * qy + qz * qz)) * s0
    m01 = 2 * (qx * qy - qw * qz) * s1
    m02 = 2 * (qx * qz + qw * qy) * s2
    m10 = 2 * (qx * qy + qw * qz) * s0
    m11 = (1 - 2 * (qx * qx + qz * qz)) * s1
    m12 = 2 * (qy * qz - qw * qx) * s2
    m20 = 2 * (qx * qz - qw * qy) * s0
    m21 = 2 * (qy * qz + qw * qx) * s1
    m22 = (1 - 2 * (qx * qx + qy * qy)) * s2
    cov[0] = m00 * m00 + m01 * m01 + m02 * m02
    cov[1] = m00 * m10 + m01 * m11 + m02 * m12
    cov[2] = m00 * m20 + m01 * m21 + m02 * m22
    cov[3] = m10 * m10 + m11 * m11 + m12 * m12
    cov[4] = m10 * m20 + m11 * m21 + m12 * m22
    cov[5] = m20 * m20 + m21 * m21 + m22 * m22
    big = max(s0, s1, s2)
    small = min(s0, s1, s2)
    opacity = 1.0 / (1.0 + math.exp(-np.float64(logits[i])))
    return opacity * (s0 * s1 * s2 / small), big


@njit(cache=True, nogil=True)
def eigh3(c, vals, vecs):  # pragma: no cover - compiled
    """Eigen-decomposition of a symmetric 3x3 matrix (upper triangle `c`: xx, xy, xz, yy, yz, zz) by cyclic
    Jacobi rotations: eigenvalues into `vals` (descending), unit eigenvectors into the columns of `vecs`
    (a proper rotation, det +1)."""
    a = np.empty((3, 3))
    a[0, 0], a[0, 1], a[0, 2] = c[0], c[1], c[2]
    a[1, 0], a[1, 1], a[1, 2] = c[1], c[3], c[4]
    a[2, 0], a[2, 1], a[2, 2] = c[2], c[4], c[5]
    for r in range(3):
        for k in range(3):
            vecs[r, k] = 1.0 if r == k else 0.0
    for _ in range(32):
        off = a[0, 1] * a[0, 1] + a[0, 2] * a[0, 2] + a[1, 2] * a[1, 2]
        diag = a[0, 0] * a[0, 0] + a[1, 1] * a[1, 1] + a[2, 2] * a[2, 2]
        if off <= 1e-30 * diag or off == 0.0:
            break
        for p, q in ((0, 1), (0, 2), (1, 2)):
            apq = a[p, q]
            if apq == 0.0:
                continue
            theta = (a[q, q] - a[p, p]) / (2.0 * apq)
            t = 1.0 / (abs(theta) + math.sqrt(theta * theta + 1.0))
            if theta < 0.0:
                t = -t
            cs = 1.0 / math.sqrt(t * t + 1.0)
            sn = t * cs
            for r in range(3):  # A <- A J, then J^T A (J rotates columns p, q)
                arp, arq = a[r, p], a[r, q]
                a[r, p] = cs * arp - sn * arq
                a[r, q] = sn * arp + cs * arq
            for r in range(3):
                apr, aqr = a[p, r], a[q, r]
                a[p, r] = cs * apr - sn * aqr
                a[q, r] = sn * apr + cs * aqr
            for r in range(3):
                vrp, vrq = vecs[r, p], vecs[r, q]
                vecs[r, p] = cs * vrp - sn * vrq
                vecs[r, q] = sn * vrp + cs * vrq
    for k in range(3):
        vals[k] = a[k, k]
    for k in range(3):  # selection sort, descending
        best = k
        for j in range(k + 1, 3):
            if vals[j] > vals[best]:
                best = j
        if best != k:
            vals[k], vals[best] = vals[best], vals[k]
            for r in range(3):
                vecs[r, k], vecs[r, best] = vecs[r, best], vecs[r, k]
    det = (vecs[0, 0] * (vecs[1, 1] * vecs[2, 2] - vecs[1, 2] * vecs[2, 1])
           - vecs[0, 1] * (vecs[1, 0] * vecs[2, 2] - vecs[1, 2] * vecs[2, 0])
           + vecs[0, 2] * (vecs[1, 0] * vecs[2, 1] - vecs[1, 1] * vecs[2, 0]))
    if det < 0.0:
        for r in range(3):
            vecs[r, 2] = -vecs[r, 2]


@njit(cache=True, nogil=True, inline="always")
def _quaternion(v, out, row):  # pragma: no cover - compiled
    """(w, x, y, z) of the rotation matrix `v` into out[row] (Shepperd: the largest component first)."""
    tr = v[0, 0] + v[1, 1] + v[2, 2]
    if tr >= v[0, 0] and tr >= v[1, 1] and tr >= v[2, 2]:
        s = 2.0 * math.sqrt(max(1.0 + tr, 1e-300))
        w, x, y, z = 0.25 * s, (v[2, 1] - v[1, 2]) / s, (v[0, 2] - v[2, 0]) / s, (v[1, 0] - v[0, 1]) / s
    elif v[0, 0] >= v[1, 1] and v[0, 0] >= v[2, 2]:
        s = 2.0 * math.sqrt(max(1.0 + v[0, 0] - v[1, 1] - v[2, 2], 1e-300))
        w, x, y, z = (v[2, 1] - v[1, 2]) / s, 0.25 * s, (v[0, 1] + v[1, 0]) / s, (v[0, 2] + v[2, 0]) / s
    elif v[1, 1] >= v[2, 2]:
        s = 2.0 * math.sqrt(max(1.0 - v[0, 0] + v[1, 1] - v[2, 2], 1e-300))
        w, x, y, z = (v[0, 2] - v[2, 0]) / s, (v[0, 1] + v[1, 0]) / s, 0.25 * s, (v[1, 2] + v[2, 1]) / s
    else:
        s = 2.0 * math.sqrt(max(1.0 - v[0, 0] - v[1, 1] + v[2, 2], 1e-300))
        w, x, y, z = (v[1, 0] - v[0, 1]) / s, (v[0, 2] + v[2, 0]) / s, (v[1, 2] + v[2, 1]) / s, 0.25 * s
    if w < 0.0:
        w, x, y, z = -w, -x, -y, -z
    out[row, 0], out[row, 1], out[row, 2], out[row, 3] = w, x, y, z


@njit(cache=True, nogil=True, parallel=True)
def merge_nodes(start, stop, first, count, children,
                l_means, l_quats, l_scales, l_logits, l_sh,
                mass, mean64, cov64, means, quats, scales, logits, sh, size, center, radius):  # pragma: no cover
    """Moments, Gaussian parameters, size and bounding sphere of the internal nodes start..stop-1, whose
    children (leaves, or internal nodes merged earlier) are all done. Nodes: `mass` [M] (W), `mean64` [M, 3],
    `cov64` [M, 6] (float64, kept for their parents), the float32 Gaussian parameters, `size` (the largest
    standard deviation in the subtree), `center`/`radius` (a sphere holding every leaf's culling sphere)."""
    k_sh = l_sh.shape[1]
    for p in prange(start, stop):
        c0, nc = first[p], count[p]
        cov = np.empty(6)
        ws = np.empty(MAX_FANOUT)
        mus = np.empty((MAX_FANOUT, 3))
        covs = np.empty((MAX_FANOUT, 6))
        big = 0.0
        lo = np.full(3, np.inf)
        hi = np.full(3, -np.inf)
        rs = np.empty(MAX_FANOUT)
        cen = np.empty((MAX_FANOUT, 3))  # the children's bounding spheres: (cen, rs)
        total = 0.0
        for k in range(nc):
            ref = children[c0 + k]
            if ref < 0:
                i = -1 - ref
                w, sig = _leaf_moments(i, l_means, l_quats, l_scales, l_logits, cov)
                for a in range(6):
                    covs[k, a] = cov[a]
                for a in range(3):
                    mus[k, a] = np.float64(l_means[i, a])
                rs[k] = CULL_SIGMAS * sig
                for a in range(3):
                    cen[k, a] = mus[k, a]
                big = max(big, sig)
            else:
                w = mass[ref]
                for a in range(6):
                    covs[k, a] = cov64[ref, a]
                for a in range(3):
                    mus[k, a] = mean64[ref, a]
                rs[k] = np.float64(radius[ref])
                for a in range(3):
                    cen[k, a] = np.float64(center[ref, a])
                big = max(big, np.float64(size[ref]))
            ws[k] = w
            total += w
        uniform = not (total > 1e-300)  # every child invisible: merge their shapes evenly
        norm = float(nc) if uniform else total
        mu = np.zeros(3)
        for k in range(nc):
            t = (1.0 if uniform else ws[k]) / norm
            for a in range(3):
                mu[a] += t * mus[k, a]
        for a in range(6):
            cov[a] = 0.0
        for k in range(nc):
            t = (1.0 if uniform else ws[k]) / norm
            d0, d1, d2 = mus[k, 0] - mu[0], mus[k, 1] - mu[1], mus[k, 2] - mu[2]
            cov[0] += t * (covs[k, 0] + d0 * d0)
            cov[1] += t * (covs[k, 1] + d0 * d1)
            cov[2] += t * (covs[k, 2] + d0 * d2)
            cov[3] += t * (covs[k, 3] + d1 * d1)
            cov[4] += t * (covs[k, 4] + d1 * d2)
            cov[5] += t * (covs[k, 5] + d2 * d2)
            for a in range(3):
                lo[a] = min(lo[a], cen[k, a] - rs[k])
                hi[a] = max(hi[a], cen[k, a] + rs[k])
        for c in range(k_sh):
            for ch in range(3):
                acc = 0.0
                for k in range(nc):
                    ref = children[c0 + k]
                    v = np.float64(l_sh[-1 - ref, c, ch]) if ref < 0 else np.float64(sh[ref, c, ch])
                    acc += (1.0 if uniform else ws[k]) * v
                sh[p, c, ch] = acc / norm
        vals = np.empty(3)
        vecs = np.empty((3, 3))
        eigh3(cov, vals, vecs)
        floor = max(vals[0] * 1e-12, 1e-36)
        for a in range(3):
            vals[a] = max(vals[a], floor)
        # coverage: the leaves' ink, at most what a filled patch with these moments holds (FILLED_INK x sigma_1
        # sigma_2); beyond what 0.99 opacity can draw, the two large axes grow (by at most sqrt(1.93))
        q = min(total / math.sqrt(vals[0] * vals[1]), FILLED_INK)
        opacity = min(max(q, 1e-6), MAX_OPACITY)
        grow = max(q / MAX_OPACITY, 1.0)
        scales[p, 0] = 0.5 * math.log(vals[0] * grow)
        scales[p, 1] = 0.5 * math.log(vals[1] * grow)
        scales[p, 2] = 0.5 * math.log(vals[2])
        _quaternion(vecs, quats, p)
        logits[p] = math.log(opacity / (1.0 - opacity))
        mass[p] = total
        for a in range(3):
            mean64[p, a] = mu[a]
            means[p, a] = mu[a]
        for a in range(6):
            cov64[p, a] = cov[a]
        size[p] = max(big, math.sqrt(vals[0] * grow))
        r = 0.0
        for a in range(3):
            center[p, a] = 0.5 * (lo[a] + hi[a])
        for k in range(nc):
            d = math.sqrt((cen[k, 0] - center[p, 0]) ** 2 + (cen[k, 1] - center[p, 1]) ** 2
                          + (cen[k, 2] - center[p, 2]) ** 2)
            r = max(r, d + rs[k])
        radius[p] = r * (1.0 + 1e-6) + 1e-12  # float32 rounding must not make a child poke out


@njit(cache=True, nogil=True, parallel=True)
def leaf_radii(scales):  # pragma: no cover - compiled
    """Each leaf's culling-sphere radius, CULL_SIGMAS x its largest standard deviation."""
    n = scales.shape[0]
    out = np.empty(n, np.float32)
    for i in prange(n):
        out[i] = CULL_SIGMAS * math.exp(max(np.float64(scales[i, 0]), np.float64(scales[i, 1]),
                                            np.float64(scales[i, 2])))
    return out


NODE = np.dtype([("cx", np.float32), ("cy", np.float32), ("cz", np.float32), ("radius", np.float32),
                 ("size", np.float32), ("first", np.int32), ("count", np.int32), ("index", np.int32)])


@njit(cache=True, nogil=True)
def _place(nodes, pos, ref, count, size, center, radius, l_means, l_radius):  # pragma: no cover - compiled
    node = nodes[pos]
    if ref < 0:
        i = -1 - ref
        node.cx, node.cy, node.cz = l_means[i, 0], l_means[i, 1], l_means[i, 2]
        node.radius = l_radius[i]
        node.size = 0.0
        node.first = 0
        node.count = 0
        node.index = i
    else:
        node.cx, node.cy, node.cz = center[ref, 0], center[ref, 1], center[ref, 2]
        node.radius = radius[ref]
        node.size = size[ref]
        node.first = 0
        node.count = count[ref]
        node.index = ref


@njit(cache=True, nogil=True)
def layout(nodes, root, first, count, children, size, center, radius, l_means, l_radius):  # pragma: no cover
    """The node table in depth-first order of child blocks: the root at 0, each internal node's children
    contiguous from its `first`, then each child's own block and subtree, in order: a subtree is one range
    of the table, and a traversal in tree order reads it forwards. On the way, a node takes its largest
    merged child's children in that child's place while it has at most WIDEN_TO (the child is dropped).
    Returns the table's length."""
    _place(nodes, 0, root, count, size, center, radius, l_means, l_radius)
    if root < 0:
        return 1
    stack_ref = np.empty(64 * MAX_FANOUT + 8, np.int64)
    stack_pos = np.empty(64 * MAX_FANOUT + 8, np.int64)
    stack_ref[0], stack_pos[0] = root, 0
    sp = 1
    nxt = 1
    kids = np.empty(MAX_FANOUT, np.int64)
    while sp > 0:
        if sp + MAX_FANOUT > stack_ref.shape[0]:  # a deep chain of duplicates: grow the stack
            stack_ref = np.concatenate((stack_ref, np.empty_like(stack_ref)))
            stack_pos = np.concatenate((stack_pos, np.empty_like(stack_pos)))
        sp -= 1
        ref, pos = stack_ref[sp], stack_pos[sp]
        nc = count[ref]
        for k in range(nc):
            kids[k] = children[first[ref] + k]
        while True:
            best = -1
            for k in range(nc):
                c = kids[k]
                if c >= 0 and nc - 1 + count[c] <= WIDEN_TO and (best < 0 or size[c] > size[kids[best]]):
                    best = k
            if best < 0:
                break
            c = kids[best]
            extra = count[c] - 1
            for k in range(nc - 1, best, -1):  # make room after it, keeping the children in Morton order
                kids[k + extra] = kids[k]
            for k in range(count[c]):
                kids[best + k] = children[first[c] + k]
            nc += extra
        nodes[pos].first = nxt
        nodes[pos].count = nc
        for k in range(nc):
            _place(nodes, nxt + k, kids[k], count, size, center, radius, l_means, l_radius)
        for k in range(nc - 1, -1, -1):
            if kids[k] >= 0:
                stack_ref[sp], stack_pos[sp] = kids[k], nxt + k
                sp += 1
        nxt += nc
    return nxt


@njit(cache=True, nogil=True)
def table_ok(nodes, n, m):  # pragma: no cover - compiled
    """Whether a node table (from a file) is one `layout` could have made for n leaves and m merged nodes:
    indices in range, each Gaussian and merged row exactly once, every node but the root the child of exactly
    one node that comes before it (so a traversal ends)."""
    t = nodes.shape[0]
    if t != n + m:
        return False
    rows = np.zeros(m, np.uint8)
    gaussians = np.zeros(n, np.uint8)
    parents = np.zeros(t, np.uint8)
    for p in range(t):
        node = nodes[p]
        c, i = node.count, node.index
        if c == 0:
            if i < 0 or i >= n or gaussians[i]:
                return False
            gaussians[i] = 1
            continue
        if c < 2 or c > MAX_FANOUT or i < 0 or i >= m or rows[i] or node.first <= p or node.first > t - c:
            return False
        rows[i] = 1
        for k in range(node.first, node.first + c):
            if parents[k]:
                return False
            parents[k] = 1
    if t and parents[0]:
        return False
    for k in range(1, t):
        if not parents[k]:
            return False
    return True


@njit(cache=True, nogil=True, parallel=True)
def pack_rows(means, quats, scales, logits, sh, out):  # pragma: no cover - compiled
    """Gaussians' parameters into rows (`hierarchy.PARAMS`): means, quats, log-scales, logit, SH [3 K]."""
    for i in prange(out.shape[0]):
        for a in range(3):
            out[i, a] = means[i, a]
            out[i, 7 + a] = scales[i, a]
        for a in range(4):
            out[i, 3 + a] = quats[i, a]
        out[i, 10] = logits[i]
        for c in range(sh.shape[1]):
            out[i, 11 + c] = sh[i, c]
