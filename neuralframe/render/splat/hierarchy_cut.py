"""Compiled per-frame steps of a hierarchy cut (`Hierarchy.cut`): the budgeted traversal and the gather of
the chosen nodes' parameters.

A node's projected size is its size (the largest standard deviation in its subtree) x the focal length / the
distance from the camera to its bounding sphere (at least `near`); it never grows from a parent to a child.
`traverse` starts the cut as the root. Its merged nodes larger than the allowed error wait in buckets of
projected size (8 per factor of 2, a priority queue without a heap): the largest bucket is opened whole, its
nodes replaced by the children the view frustum keeps (each child looked at once), as long as the cut stays
within the budget; the bucket that would pass it is opened node by node while they fit, and the cut stops
there. The result is, to within a bucket's width (9%), the cut a threshold on projected size gives at the
smallest threshold the budget allows: the largest error is always opened first.

Buckets visit the tree in order of projected size, all over the table; a depth-first walk reads it forwards
(`hierarchy_build.layout` keeps every subtree in one range) and runs several times faster, but needs the
threshold first. `cut_refs` takes it from the last cut (a viewer's or a camera path's previous frame): it
explores depth first down to a little below that error, counts what each bucket would add, and picks the same
cut out of what it explored (`_explore`, `_select`).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

# Pixels the frustum is widened by on each side: the rasterizer's 0.3 px^2 dilation widens every footprint
# by up to 3.33 sqrt(0.3) = 1.8 px.
CULL_MARGIN_PX = 2.0
PER_OCTAVE = 8  # buckets of projected size per factor of 2
BUCKET_ZERO = 24 * PER_OCTAVE  # the bucket of 1 pixel: buckets span 2^-24 to 2^40 pixels
BUCKETS = 64 * PER_OCTAVE
CLOSED = -(1 << 40)  # the gain of an entry not opened while exploring


@njit(cache=True, nogil=True, inline="always")
def _look(nodes, t, cam, cull):  # pragma: no cover - compiled
    """(whether node t's bounding sphere is in the frustum, its projected size in pixels: 0 for a leaf).
    `cam`: `view_tuple`'s scalars, kept in registers."""
    node = nodes[t]
    px, py, pz, r = np.float64(node.cx), np.float64(node.cy), np.float64(node.cz), np.float64(node.radius)
    x = cam[0] * px + cam[1] * py + cam[2] * pz + cam[3]
    y = cam[4] * px + cam[5] * py + cam[6] * pz + cam[7]
    z = cam[8] * px + cam[9] * py + cam[10] * pz + cam[11]
    near = cam[20]
    if cull:
        if z + r <= near or z - r >= cam[21]:
            return False, 0.0
        # planes: unit (a, b) per side; a point is inside when a * (x or y) + b * z >= 0
        if (cam[12] * x + cam[13] * z < -r or cam[14] * x + cam[15] * z < -r
                or cam[16] * y + cam[17] * z < -r or cam[18] * y + cam[19] * z < -r):
            return False, 0.0
    if node.count == 0:
        return True, 0.0
    dist = max(math.sqrt(x * x + y * y + z * z) - r, near)
    return True, np.float64(node.size) * cam[22] / dist


@njit(cache=True, nogil=True, inline="always")
def _ref(nodes, t):  # pragma: no cover - compiled
    """Table node t as the cut lists it: its merged row (>= 0), or -1 - its Gaussian (a leaf)."""
    node = nodes[t]
    return node.index if node.count > 0 else -1 - node.index


@njit(cache=True, nogil=True, inline="always")
def _bucket(e):  # pragma: no cover - compiled
    return min(max(int(math.floor(math.log2(e) * PER_OCTAVE)) + BUCKET_ZERO, 0), BUCKETS - 1)


@njit(cache=True, nogil=True)
def traverse(nodes, cam, error, budget, cull, out, hist):  # pragma: no cover - compiled
    """The cut by buckets into `out` (room for `budget` + MAX_FANOUT): merged rows (>= 0) and leaves (-1 - the
    Gaussian); returns (its length, the largest projected size of a merged node in it, how many are merged,
    whether it is complete: no node above `error` left unopened). `hist[b]` gets what opening the nodes of
    bucket b added to the cut."""
    t_all, room = nodes.shape[0], out.shape[0]
    pool_t, pool_e, pool_next = np.empty(t_all, np.int64), np.empty(t_all), np.empty(t_all, np.int64)
    pool_r, pool_c, ents = np.empty(t_all, np.int64), np.empty(t_all, np.int64), np.empty(room, np.int64)
    buf_t, buf_e, buf_r = np.empty(8 * room, np.int64), np.empty(8 * room), np.empty(8 * room, np.int64)
    heads = np.full(BUCKETS, -1, np.int64)
    n_pool = 0
    n_out = 0
    live = 0  # candidates in the buckets: merged nodes of the cut above `error`
    reached = 0.0
    merged = 0
    top = -1
    seen, e = _look(nodes, 0, cam, cull)
    if seen and budget > 0:
        if nodes[0].count > 0 and e > error:
            top = _bucket(e)
            pool_t[0], pool_e[0], pool_next[0], pool_r[0] = 0, e, -1, nodes[0].index
            heads[top] = 0
            n_pool = live = 1
        else:
            out[0] = _ref(nodes, 0)
            n_out = 1
            if nodes[0].count > 0:
                merged, reached = 1, e
    full = False
    while top >= 0 and not full:
        j = heads[top]
        if j < 0:
            top -= 1
            continue
        heads[top] = -1  # this bucket's nodes, detached: children that land in it start a new list
        m = 0
        while j >= 0:
            ents[m] = j
            m += 1
            j = pool_next[j]
        gain = 0
        nb = 0
        for q in range(m):  # look at their children once, keeping what was seen
            node = nodes[pool_t[ents[q]]]
            kept = 0
            for k in range(node.count):
                t = node.first + k
                s, ce = _look(nodes, t, cam, cull)
                child = nodes[t]
                buf_t[nb] = t if s else -1
                buf_e[nb] = ce
                buf_r[nb] = child.index if child.count > 0 else -1 - child.index
                nb += 1
                kept += s
            pool_c[ents[q]] = node.count
            gain += kept - 1
        full = n_out + live + gain > budget  # then expand in order while the budget allows, and stop
        nb = 0
        for q in range(m):
            j = ents[q]
            count = pool_c[j]
            expand = True
            if full:
                kept = 0
                for k in range(count):
                    kept += buf_t[nb + k] >= 0
                expand = n_out + live + kept - 1 <= budget
            if expand:
                live -= 1
                hist[top] += count - 1
                for k in range(count):
                    ct, ce, cr = buf_t[nb + k], buf_e[nb + k], buf_r[nb + k]
                    if ct < 0:
                        hist[top] -= 1
                        continue
                    if cr >= 0 and ce > error:
                        b = _bucket(ce)
                        pool_t[n_pool], pool_e[n_pool], pool_next[n_pool], pool_r[n_pool] = ct, ce, heads[b], cr
                        heads[b] = n_pool
                        n_pool += 1
                        live += 1
                    else:
                        out[n_out] = cr
                        n_out += 1
                        if cr >= 0:
                            merged += 1
                            reached = max(reached, ce)
            else:
                out[n_out] = pool_r[j]
                n_out += 1
                live -= 1
                merged += 1
                reached = max(reached, pool_e[j])
            nb += count
    complete = live == 0
    for b in range(BUCKETS):  # what is left in the buckets stays in the cut
        j = heads[b]
        while j >= 0:
            out[n_out] = pool_r[j]
            n_out += 1
            merged += 1
            reached = max(reached, pool_e[j])
            j = pool_next[j]
    return n_out, reached, merged, complete


@njit(cache=True, nogil=True)
def _explore(nodes, cam, tau, cull, cap, v_t, v_e, v_parent, v_gain, hist):  # pragma: no cover - compiled
    """Depth first from the root, opening every merged node above `tau`: each node seen (in the frustum) is an
    entry (its table node, projected size, parent entry, what opening it added: `v_gain`, left as it was for a
    node not opened), parents before children. Returns the number of entries, or -1 past `cap`. `hist[b]` gets
    what opening the nodes of bucket b added."""
    seen, e = _look(nodes, 0, cam, cull)
    if not seen:
        return 0
    v_t[0], v_e[0], v_parent[0], v_gain[0] = 0, e, -1, CLOSED
    n = 1
    stack = np.empty(64 * 8, np.int64)  # entries to open
    sp = 0
    if nodes[0].count > 0 and e > tau:
        stack[0] = 0
        sp = 1
    while sp > 0:
        sp -= 1
        i = stack[sp]
        node = nodes[v_t[i]]
        if n + node.count > cap:
            return -1
        if sp + node.count > stack.shape[0]:
            stack = np.concatenate((stack, np.empty_like(stack)))
        first = n
        for k in range(node.count):
            c = node.first + k
            seen, ce = _look(nodes, c, cam, cull)
            if seen:
                v_t[n], v_e[n], v_parent[n], v_gain[n] = c, ce, i, CLOSED
                n += 1
        v_gain[i] = n - first - 1
        hist[_bucket(v_e[i])] += n - first - 1
        for j in range(n - 1, first - 1, -1):  # popped in table order: memory is read forwards
            if v_e[j] > tau and nodes[v_t[j]].count > 0:
                stack[sp] = j
                sp += 1
    return n


@njit(cache=True, nogil=True)
def _select(nodes, n, v_t, v_e, v_parent, v_gain, opened, full_from, total, budget, out):  # pragma: no cover
    """The cut out of explored entries: the opened nodes of buckets `full_from` and above opened again, those of
    the bucket below in order while the cut (`total` Gaussians once the full buckets are open) stays within
    `budget`. Returns (its length, the largest projected size of a merged node in it, how many are merged)."""
    n_out = 0
    reached = 0.0
    merged = 0
    for i in range(n):
        p = v_parent[i]
        opened[i] = False
        if p >= 0 and not opened[p]:
            continue  # not in the cut: its parent stays closed
        e = v_e[i]
        if v_gain[i] != CLOSED:  # opened while exploring: its children are entries
            b = _bucket(e)
            if b >= full_from:
                opened[i] = True
            elif b == full_from - 1 and total + v_gain[i] <= budget:
                opened[i] = True
                total += v_gain[i]
        if not opened[i]:
            node = nodes[v_t[i]]
            out[n_out] = node.index if node.count > 0 else -1 - node.index
            n_out += 1
            if node.count > 0:
                merged += 1
                reached = max(reached, e)
    return n_out, reached, merged


@njit(cache=True, nogil=True)
def cut_refs(nodes, cam, error, budget, cull, out, hint):  # pragma: no cover - compiled
    """The cut (as `traverse` gives it, into `out`: room for `budget` + MAX_FANOUT). With a `hint` (the projected
    size a cut of a nearby view reached, > 0), the tree is explored depth first down to a little below it (the
    table keeps subtrees in one range: memory is read forwards, several times faster than by buckets); the
    explored nodes' gains by bucket then fix the threshold the budget allows, and the cut is picked out of the
    explored entries: the same cut as by buckets, but for the order in which the last bucket is filled.
    A hint that explores too little or far too much is moved (bisection) and the exploration made again, at
    most three times; then, and without a hint, `traverse` makes the cut."""
    hist = np.zeros(BUCKETS, np.int64)
    if not hint > 0.0 or budget <= 1024:
        n, reached, merged, complete = traverse(nodes, cam, error, budget, cull, out, hist)
        return n, reached, merged
    tau = hint / 2.0 ** (2.0 / PER_OCTAVE)
    cap = 3 * budget + 64
    v_t, v_e = np.empty(cap, np.int64), np.empty(cap)
    v_parent, v_gain = np.empty(cap, np.int64), np.empty(cap, np.int64)
    fits, over = math.inf, 0.0  # thresholds known to explore too little, too much
    for _ in range(3):
        tau = max(tau, error)
        hist[:] = 0
        m = _explore(nodes, cam, tau, cull, cap, v_t, v_e, v_parent, v_gain, hist)
        if m >= 0:
            low = _bucket(tau) if tau > 0.0 else 0
            total = 1
            full_from = BUCKETS
            for b in range(BUCKETS - 1, low - 1, -1):
                if total + hist[b] > budget:
                    break
                total += hist[b]
                full_from = b
            if full_from > low or tau <= error:  # the budget stops within what was explored, or nothing is left
                if full_from == low:
                    full_from = 0
                n, reached, merged = _select(nodes, m, v_t, v_e, v_parent, v_gain, np.empty(m, np.bool_),
                                             full_from, total, budget, out)
                return n, reached, merged
            fits = tau
        else:
            over = tau
        if fits < math.inf and over > 0.0:
            tau = math.sqrt(fits * over)
        elif over > 0.0:
            tau = over * 2.0 ** (2.0 / PER_OCTAVE)
        else:
            tau = fits / 2.0 ** (4.0 / PER_OCTAVE)
        if fits / max(over, 1e-300) < 2.0 ** (1.0 / PER_OCTAVE):
            break  # no threshold between: a bucket holds more than the budget's slack
    n, reached, merged, complete = traverse(nodes, cam, error, budget, cull, out, hist)
    return n, reached, merged


@njit(cache=True, nogil=True, parallel=True)
def gather(refs, k_out, leaf_rows, node_rows, o_means, o_quats, o_scales, o_logits, o_sh):  # pragma: no cover
    """The Gaussians of the cut `refs` (merged rows >= 0, leaves -1 - i) from their parameter rows
    (`hierarchy.PARAMS`), with the first `k_out` SH coefficients (`o_sh` flattened to [M, 3 k_out])."""
    for j in prange(refs.shape[0]):
        ref = refs[j]
        src = leaf_rows[-1 - ref] if ref < 0 else node_rows[ref]
        for a in range(3):
            o_means[j, a] = src[a]
            o_scales[j, a] = src[7 + a]
        for a in range(4):
            o_quats[j, a] = src[3 + a]
        o_logits[j] = src[10]
        for c in range(3 * k_out):
            o_sh[j, c] = src[11 + c]


def view_tuple(viewmat: np.ndarray, K: np.ndarray, width: int, height: int, near: float, far: float) -> tuple:
    """What `traverse` takes of a camera: the world-to-camera rows (12), the frustum planes (8), near, far, the
    focal length (the larger of fx, fy)."""
    planes = frustum_planes(K, width, height)
    return (*(float(v) for v in viewmat[:3].reshape(-1)), *(float(v) for v in planes.reshape(-1)), float(near),
            float(far), float(max(K[0, 0], K[1, 1])))


def frustum_planes(K: np.ndarray, width: int, height: int) -> np.ndarray:
    """[4, 2] unit (a, b): the left, right, top and bottom planes of the image widened by CULL_MARGIN_PX, each
    as a (x or y) + b z >= 0 for camera-space points inside."""
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    m = CULL_MARGIN_PX
    left, right = (-m - cx) / fx, (width + m - cx) / fx  # x / z at the widened edges
    top, bottom = (-m - cy) / fy, (height + m - cy) / fy
    planes = np.array([[1.0, -left], [-1.0, right], [1.0, -top], [-1.0, bottom]])
    return planes / np.sqrt((planes ** 2).sum(1, keepdims=True))
