"""`Gaussians`: a 3D Gaussian-splat scene, parameterised as the INRIA 3DGS .ply stores it."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from neuralframe.backend.checks import check_shape
from neuralframe.errors import InputError

SH_C0 = 0.28209479177387814  # the degree-0 spherical-harmonic basis constant, 1 / (2 sqrt(pi))
MAX_SH_DEGREE = 3


def sh_coeffs(degree: int) -> int:
    """Number of SH coefficients per channel for a degree: (degree + 1)^2."""
    return (degree + 1) ** 2


def sh_degree_for(k: int) -> int:
    """The SH degree with `k` coefficients per channel; raises for a count that is not a square."""
    d = math.isqrt(max(k, 0)) - 1
    if k < 1 or sh_coeffs(d) != k or d > MAX_SH_DEGREE:
        raise InputError(f"{k} SH coefficients per channel do not match any degree 0-{MAX_SH_DEGREE} "
                         "(expected 1, 4, 9 or 16)")
    return d


def rgb_to_sh0(rgb: torch.Tensor) -> torch.Tensor:
    """The DC coefficient that renders as colour `rgb` (before the +0.5 offset and clamp)."""
    return (rgb - 0.5) / SH_C0


def sh0_to_rgb(sh0: torch.Tensor) -> torch.Tensor:
    return sh0 * SH_C0 + 0.5


@dataclass
class Gaussians:
    """N anisotropic 3D Gaussians with view-dependent spherical-harmonic colour.

    Args:
        means: [N, 3] centres in world coordinates.
        quats: [N, 4] rotations as quaternions (w, x, y, z); normalised on use.
        scales: [N, 3] log standard deviations along the rotated axes.
        opacities: [N] opacity logits (opacity = sigmoid(opacities)).
        sh: [N, K, 3] SH coefficients per colour channel, K = (degree + 1)^2, `sh[:, 0]` the DC term;
            colour = max(sum_k sh_k * Y_k(view direction) + 0.5, 0) as in INRIA 3DGS and gsplat.
        antialiased: the scene was trained with gsplat's antialiased mode (a hint for renderers;
            .spz stores it, the other formats do not).
    """

    means: torch.Tensor  # [N, 3]
    quats: torch.Tensor  # [N, 4]
    scales: torch.Tensor  # [N, 3]
    opacities: torch.Tensor  # [N]
    sh: torch.Tensor  # [N, K, 3]
    antialiased: bool = False

    def __post_init__(self) -> None:
        sizes: dict[str, int] = {}
        for name, dims in (("means", ["N", 3]), ("quats", ["N", 4]), ("scales", ["N", 3]), ("opacities", ["N"]),
                           ("sh", ["N", "K", 3])):
            sizes = check_shape(getattr(self, name), dims, f"Gaussians.{name}", sizes)
        sh_degree_for(sizes["K"])

    # ---- properties ----
    @property
    def n(self) -> int:
        return int(self.means.shape[0])

    def __len__(self) -> int:
        return self.n

    @property
    def sh_degree(self) -> int:
        return sh_degree_for(self.sh.shape[1])

    @property
    def device(self) -> torch.device:
        return self.means.device

    @property
    def dtype(self) -> torch.dtype:
        return self.means.dtype

    def tensors(self) -> dict[str, torch.Tensor]:
        return {"means": self.means, "quats": self.quats, "scales": self.scales,
                "opacities": self.opacities, "sh": self.sh}

    # ---- conversions ----
    def _map(self, fn) -> "Gaussians":
        return Gaussians(**{k: fn(v) for k, v in self.tensors().items()}, antialiased=self.antialiased)

    def to(self, device=None, dtype=None) -> "Gaussians":
        return self._map(lambda t: t.to(device=device, dtype=dtype))

    def cpu(self) -> "Gaussians":
        return self._map(lambda t: t.cpu())

    def detach(self) -> "Gaussians":
        return self._map(lambda t: t.detach())

    def clone(self) -> "Gaussians":
        return self._map(lambda t: t.clone())

    def __getitem__(self, index) -> "Gaussians":
        """A subset: `g[mask]`, `g[indices]` or `g[a:b]`."""
        return self._map(lambda t: t[index])

    def with_sh_degree(self, degree: int) -> "Gaussians":
        """The same scene with SH truncated, or zero-padded, to `degree`."""
        k = sh_coeffs(degree)
        sh = self.sh[:, :k]
        if sh.shape[1] < k:
            pad = torch.zeros(self.n, k - sh.shape[1], 3, dtype=sh.dtype, device=sh.device)
            sh = torch.cat([sh, pad], 1)
        return Gaussians(self.means, self.quats, self.scales, self.opacities, sh, self.antialiased)

    @staticmethod
    def cat(items: "list[Gaussians]") -> "Gaussians":
        degree = max(g.sh_degree for g in items)
        items = [g.with_sh_degree(degree) for g in items]
        return Gaussians(**{k: torch.cat([g.tensors()[k] for g in items]) for k in items[0].tensors()},
                         antialiased=items[0].antialiased)

    @staticmethod
    def from_colors(means, rgb, scales, quats=None, opacities=None, sh_degree: int = 0) -> "Gaussians":
        """Gaussians from plain values: colours `rgb` [N, 3] in [0, 1], linear `scales` [N, 3] (or
        [N] for isotropic), opacities in (0, 1) [N] (default 0.99), quats [N, 4] (default identity).
        """
        means = torch.as_tensor(means, dtype=torch.float32)
        n = means.shape[0]
        rgb = torch.as_tensor(rgb, dtype=torch.float32).reshape(n, 3)
        scales = torch.as_tensor(scales, dtype=torch.float32)
        if scales.ndim == 1:
            scales = scales[:, None].expand(n, 3)
        if quats is None:
            quats = torch.zeros(n, 4)
            quats[:, 0] = 1.0
        opac = torch.full((n,), 0.99) if opacities is None else torch.as_tensor(opacities, dtype=torch.float32)
        sh = torch.zeros(n, sh_coeffs(sh_degree), 3)
        sh[:, 0] = rgb_to_sh0(rgb)
        return Gaussians(means, torch.as_tensor(quats, dtype=torch.float32), torch.log(scales).contiguous(),
                         torch.logit(opac.clamp(1e-6, 1 - 1e-6)), sh)

    def check_finite(self, source: str = "Gaussians") -> None:
        """Raise an `InputError` naming `source` when any value is NaN or infinite."""
        for name, tensor in self.tensors().items():
            if bool(torch.isfinite(tensor.sum())):  # a NaN or infinity makes the sum one (an overflow only
                continue                             # sends us on to the element-wise check)
            bad = ~torch.isfinite(tensor)
            if bad.any():
                rows = bad.reshape(bad.shape[0], -1).any(1).nonzero().flatten()
                raise InputError(f"{source}: {int(rows.numel())} Gaussian(s) have NaN or infinite "
                                 f"{name} (first at index {int(rows[0])})")
        norms = self.quats.detach().norm(dim=1)
        if (norms == 0).any():
            first = int((norms == 0).nonzero()[0])
            raise InputError(f"{source}: Gaussian {first} has a zero rotation quaternion")

    def __repr__(self) -> str:
        return f"Gaussians(n={self.n}, sh_degree={self.sh_degree}, device={self.device}, dtype={self.dtype})"
