"""A level-of-detail tree over a splat scene, cut per frame under a splat budget.

    tree = build(gaussians)                   # or hierarchy_cache.load_or_build(gaussians, source=path)
    c = tree.cut(camera, budget=200_000)      # Cut(gaussians, count, error, full, exact, merged)
    out = rasterize(c.gaussians, camera)

The leaves are the scene's Gaussians, unchanged (leaf i is Gaussian i). Above them an octree over the
leaves' Morton codes merges the Gaussians of each cell into one (`hierarchy_build`), as hierarchical 3DGS
builds its tree (Kerbl et al. 2024): the mean and covariance of the mixture of its leaves (eigenvectors ->
quaternion, eigenvalues -> log-scales), weighted by opacity x cross-section (the product of the two largest
standard deviations); colour and SH the weighted mean of the leaves'; opacity the leaves' weight over the
merged cross-section, at most 0.99, the two large axes growing instead (up to a limit) when the leaves hold
more coverage than that opacity can draw (a merged patch of a surface stays closed instead of breaking into
dots). A node has 2 to 8 children; chains of narrow nodes are widened to up to 4 children.

The tree is flat arrays, saved and loaded by `hierarchy_cache`: a node table (`hierarchy_build.NODE`: each
node's bounding sphere, size, children range and parameter row; the root first, children contiguous, each
subtree one range), the merged Gaussians' parameter rows and their weights.

A cut (`Hierarchy.cut`, `hierarchy_cut`) starts at the root and expands, largest first, the nodes
whose projected size (their subtree's largest standard deviation x focal length / distance to their
bounding sphere, in pixels) exceeds the allowed `error`, as long as the cut stays within `budget` Gaussians;
subtrees whose bounding sphere lies outside the view frustum (widened by 2 pixels, before `near` or beyond
`far`) are dropped whole. Culling is conservative: a culled leaf would not have touched the image. With no
budget and error 0 the cut is every leaf the frustum keeps, in the scene's order: the plain render's picture
(with `cull=False`, exactly the scene). `sh_degree` returns the whole cut at a lower SH degree (higher bands
dropped: fewer values to gather and to evaluate); the degree is not chosen per node. A tree remembers its
last cut's error and starts the next one from it (a camera path's frames are alike): that makes the cut
faster, and can change only which nodes of the last, partly opened bucket of projected size open.

Building for a large scene takes seconds: `build` calls `neuralframe.render.interrupt.check()` between
levels, so a viewer's background build stops within a level when the window closes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from neuralframe.errors import InputError
from neuralframe.render import interrupt
from neuralframe.render.camera import Camera
from neuralframe.render.splat.gaussians import Gaussians, sh_coeffs

VERSION = 1  # of the algorithm and the arrays: caches of another version are rebuilt
DEFAULT_ERROR = 0.5  # pixels: a merged node drawn at most this large (its largest standard deviation)

# The arrays of a tree (besides its leaves, the scene's): dtype and trailing shape ("P": PARAMS + 3 K).
ARRAYS = {"params": (np.float32, ("P",)), "mass": (np.float64, ())}
# A Gaussian's row of parameters, as `Gaussians` stores them: means 0:3, quats 3:7, log-scales 7:10, the opacity
# logit at 10, then the SH coefficients [K, 3] flattened. One row per Gaussian: a cut reads each from one place.
PARAMS = 11


def rows_of(g: Gaussians) -> np.ndarray:  # [N, PARAMS + 3 K]
    """The Gaussians' parameters as rows (float32, on the CPU)."""
    from neuralframe.render.splat.hierarchy_build import pack_rows

    n, k = g.n, g.sh.shape[1]
    out = np.empty((n, PARAMS + 3 * k), np.float32)
    pack_rows(_numpy(g.means), _numpy(g.quats), _numpy(g.scales), _numpy(g.opacities), _numpy(g.sh).reshape(n, 3 * k),
              out)
    return out


def _numpy(t: torch.Tensor) -> np.ndarray:
    """A tensor as a contiguous float32 CPU array (no copy when it already is one)."""
    return t.detach().to("cpu", torch.float32).contiguous().numpy()


@dataclass(frozen=True)
class Cut:
    """A cut through a hierarchy: what to draw for one camera.

    Args:
        gaussians: the Gaussians to render (a new `Gaussians`, contiguous tensors).
        count: how many (at most the budget).
        error: the largest projected size in pixels of a merged node in the cut (0: leaves only).
        full: every leaf, nothing merged or culled: the scene itself (its own tensors at its SH degree).
        exact: no merged node: the same picture as rendering every Gaussian (in the scene's order).
        merged: how many of the cut's Gaussians are merged nodes.
    """

    gaussians: Gaussians
    count: int
    error: float
    full: bool
    exact: bool
    merged: int


@dataclass(eq=False)
class Hierarchy:
    """A level-of-detail tree over `leaves`: T = N + M nodes (N leaves, M merged) in one table.

    Args:
        leaves: the scene's Gaussians (leaf i is Gaussian i).
        nodes: [T] `hierarchy_build.NODE` records, the root at 0: bounding sphere (cx, cy, cz, radius), size
            (the largest standard deviation in the subtree; 0 for a leaf), children nodes[first : first +
            count] (count 0: a leaf), and `index`: the leaf's Gaussian, or the merged node's row below.
            Children are contiguous and every subtree is one range (`hierarchy_build.layout`).
        params: [M, PARAMS + 3 K] float32, the merged Gaussians' rows (see `PARAMS`; `means`, `quats`,
            `scales`, `opacities`, `sh` are views of its columns).
        mass: [M] float64, the total weight (opacity x sigma_1 sigma_2) of each merged node's leaves.

    The leaves' rows are copied once (`rows_of`, as much memory again as the scene's Gaussians): a cut reads
    each Gaussian it draws from one row instead of five arrays.
    """

    leaves: Gaussians
    nodes: np.ndarray  # [T]
    params: np.ndarray  # [M, P]
    mass: np.ndarray  # [M]
    _rows: np.ndarray | None = field(default=None, repr=False)
    # the last cut's (budget, error reached): where the next cut starts looking (`hierarchy_cut.cut_refs`)
    _last: tuple = field(default=(0, 0.0), repr=False)

    def __post_init__(self) -> None:
        if self._rows is None:
            self._rows = rows_of(self.leaves)

    @property
    def means(self) -> np.ndarray:  # [M, 3]
        return self.params[:, 0:3]

    @property
    def quats(self) -> np.ndarray:  # [M, 4]
        return self.params[:, 3:7]

    @property
    def scales(self) -> np.ndarray:  # [M, 3]
        return self.params[:, 7:10]

    @property
    def opacities(self) -> np.ndarray:  # [M]
        return self.params[:, 10]

    @property
    def sh(self) -> np.ndarray:  # [M, K, 3]
        return self.params[:, PARAMS:].reshape(len(self.params), -1, 3)

    @property
    def n_leaves(self) -> int:
        return self.leaves.n

    @property
    def n_merged(self) -> int:
        return int(self.params.shape[0])

    def arrays(self) -> dict[str, np.ndarray]:
        """The tree's arrays by name (what `hierarchy_cache` saves; the leaves are the scene's)."""
        return {"nodes": self.nodes, **{name: getattr(self, name) for name in ARRAYS}}

    def cut(self, camera: Camera, budget: int | None = None, error: float = DEFAULT_ERROR, *, cull: bool = True,
            sh_degree: int | None = None, device=None) -> Cut:
        """The Gaussians to draw from `camera`: the cut with the smallest error at most `budget` Gaussians
        allow (see `hierarchy_cut`), never expanding a node whose projected size is at most `error` pixels.

        Args:
            camera: the view.
            budget: the most Gaussians to draw (None: no limit).
            error: pixels; 0 with no budget gives every leaf (in the frustum, with `cull`).
            cull: drop subtrees outside the view frustum.
            sh_degree: the SH degree of the result (default: the scene's); higher bands are dropped.
            device: where the result's tensors go (default: the scene's device).
        """
        if not isinstance(camera, Camera):
            raise InputError(f"cut expects a Camera, got {type(camera).__name__}")
        if budget is not None and not budget >= 0:
            raise InputError(f"the splat budget must be at least 0, got {budget}")
        if not error >= 0:
            raise InputError(f"the allowed error must be at least 0 pixels, got {error}")
        degree = self.leaves.sh_degree if sh_degree is None else int(sh_degree)
        if not 0 <= degree <= self.leaves.sh_degree:
            raise InputError(f"sh_degree must be from 0 to the scene's {self.leaves.sh_degree}, got {sh_degree}")
        from neuralframe.render.splat.hierarchy_build import MAX_FANOUT
        from neuralframe.render.splat.hierarchy_cut import cut_refs, view_tuple

        n = self.n_leaves
        device = self.leaves.device if device is None else torch.device(device)
        limit = n if budget is None else min(int(budget), n)
        room = limit + MAX_FANOUT
        refs = np.empty(room, np.int64)
        count, reached, merged = 0, 0.0, 0
        if n:
            last_budget, last_error = self._last
            hint = last_error * math.sqrt(last_budget / max(limit, 1)) if last_budget else 0.0
            count, reached, merged = cut_refs(
                self.nodes, view_tuple(camera.viewmat.numpy(), camera.K.numpy(), camera.width, camera.height,
                                       camera.near, camera.far), float(error), limit, bool(cull), refs, hint)
            self._last = (limit, reached) if merged else (0, 0.0)
        refs = refs[:count]
        full = merged == 0 and count == n
        if merged == 0 and not full:  # leaves only: in the scene's order, as a plain render draws them
            mask = np.zeros(n, bool)
            mask[-1 - refs] = True
            refs = -1 - np.flatnonzero(mask)
        k_out = sh_coeffs(degree)
        if full:
            g = self.leaves
            sh = g.sh if degree == g.sh_degree else g.sh[:, :k_out].contiguous()
            out = Gaussians(g.means, g.quats, g.scales, g.opacities, sh, g.antialiased).to(device)
        else:
            out = self._gather(refs, k_out, device)
        return Cut(out, int(count), float(reached), bool(full), merged == 0, int(merged))

    def _gather(self, refs: np.ndarray, k_out: int, device) -> Gaussians:
        from neuralframe.render.splat.hierarchy_cut import gather

        m = len(refs)
        o = {"means": np.empty((m, 3), np.float32), "quats": np.empty((m, 4), np.float32),
             "scales": np.empty((m, 3), np.float32), "opacities": np.empty(m, np.float32),
             "sh": np.empty((m, k_out, 3), np.float32)}
        gather(refs, k_out, self._rows, self.params, o["means"], o["quats"], o["scales"], o["opacities"],
               o["sh"].reshape(m, 3 * k_out))
        t = {k: torch.from_numpy(v) for k, v in o.items()}
        return Gaussians(**t, antialiased=self.leaves.antialiased).to(device)


def build(gaussians: Gaussians, progress: Callable[[float], None] | None = None) -> Hierarchy:
    """The hierarchy over `gaussians` (see the module docstring).

    Args:
        gaussians: the scene (any device; the tree is built and kept on the CPU).
        progress: called with the fraction done (0 to 1) after each step.
    """
    from neuralframe.render.splat.hierarchy_build import (NODE, group_level, layout, leaf_radii, merge_nodes,
                                                          morton_codes)

    if not isinstance(gaussians, Gaussians):
        raise InputError(f"build expects Gaussians, got {type(gaussians).__name__}")
    tell = progress or (lambda fraction: None)
    leaves = gaussians.detach()
    n, k = leaves.n, leaves.sh.shape[1]
    means, quats, scales = _numpy(leaves.means), _numpy(leaves.quats), _numpy(leaves.scales)
    logits, sh = _numpy(leaves.opacities), _numpy(leaves.sh)
    cap = max(n - 1, 0)
    merged = {"means": np.empty((cap, 3), np.float32), "quats": np.empty((cap, 4), np.float32),
              "scales": np.empty((cap, 3), np.float32), "opacities": np.empty(cap, np.float32),
              "sh": np.empty((cap, k, 3), np.float32), "mass": np.empty(cap)}
    size, center, radius = np.empty(cap, np.float32), np.empty((cap, 3), np.float32), np.empty(cap, np.float32)
    first, count = np.empty(cap, np.int32), np.empty(cap, np.int32)
    children = np.empty(max(2 * n, 1), np.int32)
    mean64, cov64 = np.empty((cap, 3)), np.empty((cap, 6))
    n_merged = n_children = 0
    if n > 1:
        lo = means.min(0).astype(np.float64)
        extent = np.maximum(means.max(0).astype(np.float64) - lo, 1e-30)
        codes = morton_codes(means, lo, (2.0 ** 21) * (1 - 1e-9) / extent)
        interrupt.check()
        order = np.argsort(codes, kind="stable")
        interrupt.check()
        refs, codes = -1 - order.astype(np.int64), codes[order]
        tell(0.1)
        shift = 0
        while len(refs) > 1:
            start = n_merged
            refs, codes, n_merged, n_children, long_run = group_level(refs, codes, shift, children, first, count,
                                                                      n_merged, n_children)
            merge_nodes(start, n_merged, first, count, children, means, quats, scales, logits, sh,
                        merged["mass"], mean64, cov64, merged["means"], merged["quats"], merged["scales"],
                        merged["opacities"], merged["sh"], size, center, radius)
            interrupt.check()
            if not long_run:
                shift = min(shift + 3, 63)
            tell(0.1 + 0.8 * shift / 63)
    nodes = np.zeros(n + n_merged, NODE)
    length = layout(nodes, n_merged - 1 if n_merged else -1, first, count, children, size, center, radius, means,
                    leaf_radii(scales)) if n else 0
    nodes = nodes[:length]
    # the merged nodes the table kept, their rows in table order
    inner = np.flatnonzero(nodes["count"] > 0)
    rows = nodes["index"][inner]
    nodes["index"][inner] = np.arange(len(inner))
    interrupt.check()
    params = np.concatenate([merged["means"][rows], merged["quats"][rows], merged["scales"][rows],
                             merged["opacities"][rows, None], merged["sh"][rows].reshape(len(rows), 3 * k)], 1)
    tell(1.0)
    return Hierarchy(leaves, nodes, params, merged["mass"][rows])
