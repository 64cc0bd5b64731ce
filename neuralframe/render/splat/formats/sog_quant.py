"""The quantisers behind the .sog writer (numpy only, seeded, with bounded iteration counts):

- `codebook_1d`: 256-entry codebooks for pooled scalar columns (log scales, DC colour, palette SH values):
  1-D k-means, solved exactly, over a histogram whose bins are weighted by sqrt(count) so that sparse
  tails (the few very large Gaussians) keep codebook entries of their own, as splat-transform's does.
- `palette`: the higher-order SH palette, k-means over whole SH vectors. A flat k-means with 65,536
  centres over two million 45-dimensional vectors costs ~6e12 operations a pass, so the palette is built
  as a balanced tree: k-means (k-means++ seeds) into about K^(1/levels) groups, levels = ceil(log_256 K),
  the leaves shared out in proportion to each group's size, recursing until a group's leaves are one
  k-means. Each point meets at most `BRANCH` centres a level: N * BRANCH * depth instead of N * K.
- `morton_order`: the texel order, along a 3-D Morton curve so that neighbouring texels hold nearby
  Gaussians and the lossless WebP images compress.
"""

from __future__ import annotations

import math

import numba
import numpy as np
import torch

BRANCH = 256  # centres one k-means step considers (the tree's fan-out)
TRAIN_PER_CENTRE = 32  # k-means trains on at most this many points per centre (a seeded subsample)
ITERATIONS = 8  # Lloyd iterations per k-means (bounded: the writer's cost must not depend on convergence)
HIST_BINS = 1024  # histogram bins of the 1-D quantiser (its exact k-means costs k * HIST_BINS^2)
CHUNK = 1 << 16  # points per distance block (65,536 x 256 floats = 64 MB)


def codebook_1d(values: np.ndarray, k: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """A k-entry sorted codebook (float32) for the pooled `values`, and each value's nearest entry (uint8
    for k <= 256, shaped like `values`).

    The values are binned (`HIST_BINS` bins, by a blend of rank and value), each bin weighted by
    sqrt(its count), and the weighted 1-D
    k-means over the bin centres is solved exactly by dynamic programming over contiguous runs of bins."""
    flat = np.asarray(values, np.float64).ravel()
    if flat.size == 0:
        return np.zeros(k, np.float32), np.zeros(values.shape, np.uint8)
    lo, hi = float(flat.min()), float(flat.max())
    if hi - lo < 1e-20:
        return np.full(k, lo, np.float32), np.zeros(values.shape, np.uint8)
    # a value's bin is its place in a blend of the data's own distribution (rank: resolves the dense centre)
    # and the even one over lo..hi (keeps bins in sparse tails); ranks interpolated from 4,097 quantiles
    steps = np.linspace(0.0, 1.0, 4097)
    quantiles = np.quantile(flat, steps)
    q1, q3 = quantiles[1024], quantiles[3072]
    blend = min(0.999, max(0.5, 1.0 - (q3 - q1) / (hi - lo)))  # long tails: lean on ranks
    place = blend * np.interp(flat, quantiles, steps) + (1.0 - blend) * (flat - lo) / (hi - lo)
    bins = np.minimum((place * HIST_BINS).astype(np.int64), HIST_BINS - 1)
    del place
    counts = np.bincount(bins, minlength=HIST_BINS).astype(np.float64)
    sums = np.bincount(bins, weights=flat, minlength=HIST_BINS)
    full = counts > 0
    x, w = sums[full] / counts[full], np.sqrt(counts[full])
    if len(x) <= k:  # no more occupied bins than entries: each bin is an entry
        book = np.concatenate([x, np.full(k - len(x), x[-1])])
    else:
        book = _kmeans_1d_exact(x, w, k)
    book = book.astype(np.float32)
    labels = nearest_sorted(book, flat).reshape(values.shape)
    return book, labels.astype(np.uint8)


def _kmeans_1d_exact(x: np.ndarray, w: np.ndarray, k: int) -> np.ndarray:
    """The k centres (sorted) minimising sum w (x - centre)^2 over sorted points x (more than k): clusters of
    sorted points are runs, found by dynamic programming (`_runs`)."""
    origin = float(np.average(x, weights=w))
    x = x - origin  # centred: the prefix sums of squares lose less to cancellation
    pw = np.concatenate([[0.0], np.cumsum(w)])
    px = np.concatenate([[0.0], np.cumsum(w * x)])
    pxx = np.concatenate([[0.0], np.cumsum(w * x * x)])
    return _runs(pw, px, pxx, k) + origin


@numba.njit(cache=True, nogil=True)
def _runs(pw, px, pxx, k):  # pragma: no cover - compiled
    """cost[m][j]: least weighted squared error of points 0..j in m + 1 runs = min over s of cost[m-1][s] +
    sse(s+1..j); the best s never decreases with j (the cost is Monge), which bounds the search."""
    h = len(pw) - 1
    cost = np.empty(h)
    for j in range(h):
        cost[j] = pxx[j + 1] - px[j + 1] ** 2 / pw[j + 1]
    splits = np.zeros((k, h), np.int64)
    new = np.empty(h)
    for m in range(1, k):
        new[:m] = np.inf
        start = m - 1
        for j in range(m, h):
            best, arg = np.inf, start
            for s in range(start, j):
                sw, sx = pw[j + 1] - pw[s + 1], px[j + 1] - px[s + 1]
                c = cost[s] + (pxx[j + 1] - pxx[s + 1] - sx * sx / sw if sw > 0 else 0.0)
                if c < best:
                    best, arg = c, s
            new[j], splits[m, j], start = best, arg, arg
        cost[:] = new
    centres = np.empty(k)
    j = h - 1
    for m in range(k - 1, -1, -1):
        s = splits[m, j] if m > 0 else -1
        centres[m] = (px[j + 1] - px[s + 1]) / (pw[j + 1] - pw[s + 1])
        j = s
    return np.sort(centres)


def nearest_sorted(book: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Index of the entry of sorted `book` nearest each of `x` (the first of equal entries)."""
    b = book.astype(np.float64)
    return np.searchsorted((b[1:] + b[:-1]) * 0.5, np.asarray(x, np.float64), side="left")


def palette_size(n: int) -> int:
    """The palette size splat-transform chooses (1,024 .. 65,536, a power of two), or `n` below that."""
    if n < 1024:
        return n
    return min(64, 2 ** int(np.floor(np.log2(n / 1024)))) * 1024


def palette(x: np.ndarray, k: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """k-means of the rows of `x` ([N, D]) into at most `k` centres: (centres [K, D] float32, labels [N]
    int64). With N <= k every row is its own centre (exact)."""
    x = np.ascontiguousarray(x, np.float32)
    n = len(x)
    if n <= k:
        return x.copy(), np.arange(n, dtype=np.int64)
    rng = np.random.default_rng(seed)
    labels = np.empty(n, np.int64)
    out: list = [0]  # the leaf count, then the leaf centres
    threads = torch.get_num_threads()
    # one thread: these are many small products, and BLAS threads waiting on each other (worse on a busy
    # machine) cost more than a second core gains (measured: 0.2 ms vs 10 ms a 400 x 256 block)
    torch.set_num_threads(1)
    try:
        with torch.no_grad():
            _tree(torch.from_numpy(x), np.arange(n), k, rng, labels, out)
    finally:
        torch.set_num_threads(threads)
    return torch.cat(out[1:]).numpy().astype(np.float32), labels


def _tree(x, idx, k, rng, labels, out) -> None:
    """Share `k` leaves among the points `idx` of `x`: appends leaf centres to `out` (a leaf's label is its
    row over all of `out`, counted in `out[0]`). A group gets about k^(1/levels) children, levels =
    ceil(log_BRANCH k), so the tree is balanced and each k-means meets at most BRANCH centres."""
    first = out[0]
    if k <= 1 or len(idx) <= 1:
        labels[idx] = first
        out.append(x[torch.from_numpy(idx)].mean(dim=0, keepdim=True))
        out[0] += 1
        return
    if len(idx) <= k:
        labels[idx] = first + np.arange(len(idx))
        out.append(x[torch.from_numpy(idx)])
        out[0] += len(idx)
        return
    levels = math.ceil(math.log(k) / math.log(BRANCH) - 1e-9)
    groups = min(k, BRANCH, math.ceil(k ** (1.0 / levels) - 1e-9))
    c, lab = _kmeans(x[torch.from_numpy(idx)], groups, rng)
    lab = lab.numpy()
    if groups == k:
        labels[idx] = first + lab
        out.append(c)
        out[0] += k
        return
    members = np.bincount(lab, minlength=groups)
    share = _apportion(members, k)
    order = np.argsort(lab, kind="stable")
    starts = np.concatenate([[0], np.cumsum(members)])
    for g in range(groups):
        if members[g]:
            _tree(x, idx[order[starts[g]:starts[g + 1]]], int(share[g]), rng, labels, out)


def _apportion(members: np.ndarray, k: int) -> np.ndarray:
    """Split k leaves among groups: one for each non-empty group, the rest in proportion to the points
    beyond each group's first (largest remainder), so no group gets more leaves than points. Needs
    k >= the non-empty groups and k < the points."""
    share = (members > 0).astype(np.int64)
    beyond = members - share
    ideal = beyond / beyond.sum() * (k - share.sum())
    extra = np.floor(ideal).astype(np.int64)
    left = k - int(share.sum() + extra.sum())
    extra[np.argsort(extra - ideal, kind="stable")[:left]] += 1  # largest fractions first
    return share + extra


def _kmeans(x: torch.Tensor, k: int, rng, iterations: int = ITERATIONS) -> tuple[torch.Tensor, torch.Tensor]:
    """Lloyd's k-means of `x` into k centres (k-means++ seeds): trained on a seeded subsample, then every
    point assigned and
    the centres moved to their members' means once. Empty centres are re-seeded at the worst-fitted
    points."""
    n = len(x)
    train = x if n <= TRAIN_PER_CENTRE * k else x[rng.choice(n, TRAIN_PER_CENTRE * k, replace=False)]
    c = _seeds(train, k, rng)
    for _ in range(iterations):
        lab, dist = _assign(train, c)
        c = _means(train, lab, c, dist)
    lab, dist = _assign(x, c)
    return _means(x, lab, c, dist), lab


def _seeds(x: torch.Tensor, k: int, rng) -> torch.Tensor:
    """k-means++ seeding: each next centre drawn with probability proportional to the squared distance to
    the nearest centre so far (so separate clusters each get a centre)."""
    pick = [int(rng.integers(len(x)))]
    d = ((x - x[pick[0]]) ** 2).sum(dim=1).double()
    for u in rng.random(k - 1):
        cum = torch.cumsum(d, 0)
        i = int(torch.searchsorted(cum, torch.tensor([u * float(cum[-1])], dtype=torch.float64)).clamp(max=len(x) - 1))
        pick.append(i)
        d = torch.minimum(d, ((x - x[i]) ** 2).sum(dim=1).double())
    return x[pick].clone()


def _assign(x: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest centre of each row, and the squared distance to it (blocked matrix products)."""
    cc = (c * c).sum(dim=1)
    lab = torch.empty(len(x), dtype=torch.int64)
    dist = torch.empty(len(x))
    for s in range(0, len(x), CHUNK):
        b = x[s:s + CHUNK]
        d = torch.addmm(cc[None, :], b, c.T, alpha=-2.0)
        best = d.min(dim=1)
        lab[s:s + CHUNK] = best.indices
        dist[s:s + CHUNK] = best.values + (b * b).sum(dim=1)
    return lab, dist


def _means(x: torch.Tensor, lab: torch.Tensor, c: torch.Tensor, dist: torch.Tensor) -> torch.Tensor:
    count = torch.bincount(lab, minlength=len(c))
    total = torch.zeros(c.shape, dtype=torch.float64).index_add_(0, lab, x.double())
    moved = torch.where(count[:, None] > 0, total / count.clamp(min=1)[:, None], c.double()).float()
    empty = torch.nonzero(count == 0).flatten()
    if len(empty):  # re-seed at the worst-fitted points
        worst = torch.argsort(dist, descending=True)[:len(empty)]
        moved[empty[:len(worst)]] = x[worst]
    return moved


def _part1by2(v: np.ndarray) -> np.ndarray:
    """Spread the low 21 bits of v so that two zero bits follow each (for 63-bit 3-D Morton codes)."""
    v = v.astype(np.uint64) & np.uint64(0x1FFFFF)
    for shift, mask in ((32, 0x1F00000000FFFF), (16, 0x1F0000FF0000FF), (8, 0x100F00F00F00F00F),
                        (4, 0x10C30C30C30C30C3), (2, 0x1249249249249249)):
        v = (v | (v << np.uint64(shift))) & np.uint64(mask)
    return v


def morton_order(means: np.ndarray) -> np.ndarray:
    """The permutation that sorts Gaussians along a 3-D Morton curve (21 bits an axis) over their bounds."""
    p = np.asarray(means, np.float64)
    if len(p) == 0:
        return np.zeros(0, np.int64)
    lo, extent = p.min(axis=0), np.ptp(p, axis=0)
    q = ((p - lo) / np.where(extent > 0, extent, 1.0) * (2**21 - 1)).round().astype(np.uint64)
    code = _part1by2(q[:, 0]) | (_part1by2(q[:, 1]) << np.uint64(1)) | (_part1by2(q[:, 2]) << np.uint64(2))
    return np.argsort(code, kind="stable")
