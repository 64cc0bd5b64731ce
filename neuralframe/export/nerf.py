"""Export entry for the hash-grid NeRF field: points x [N, 3] and unit view directions d [N, 3] in, density
sigma [N] and colour rgb [N, 3] out.

The graph is `ExportableField`, the field's math written for edge runtimes and checked against the
project's pure-torch reference (`NerfField(impl="reference")`, i.e. `render/nerf/hashgrid_ref.py`):

- the hash `x * 1 ^ y * 2654435761 ^ z * 805459861` needs a bitwise XOR, which TensorRT 10 does not
  take (BitwiseXor is unsupported, and opset 18 besides). Hashed levels have 2**T entries, so only the
  low T bits matter: each product is taken modulo 2**T (exact in int32 where it fits, else int64) and
  the three are XORed five bits at a time through a 32x32x32 lookup table (a Gather), digit by digit;
- the reference rounds `x * scale + 0.5` once in float64 (as CUDA's fmaf); the graph uses float32
  (TensorRT has no float64), which moves a point across a cell face only when it sits within one
  float32 rounding of it, where trilinear interpolation is continuous: the features change by
  rounding only;
- all levels are looked up at once ([N, L, 8] indices into one table), not level by level.

Without --model there is no bundled checkpoint: --random-weights exports the architecture (the default
FieldConfig) with seeded random table and MLP weights.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from neuralframe.errors import InputError
from neuralframe.export.specs import BuildOptions, Feed, Graph, check_model_path, reject_options

DIGIT_BITS = 5  # XOR by table: 3 digits of 5 bits index a 2**15-entry table
EXAMPLE_POINTS = 1 << 14  # the renderer's chunk of samples per network call


def _xor_table() -> Tensor:  # [2**(3 * DIGIT_BITS)] int64: a ^ b ^ c at a * 2**2k + b * 2**k + c
    n = 1 << DIGIT_BITS
    v = torch.arange(n, dtype=torch.int64)
    return (v[:, None, None] ^ v[None, :, None] ^ v[None, None, :]).reshape(-1)


class ExportableField(nn.Module):
    """A `NerfField`'s density and colour as a graph of edge-runtime operators (same weights, shared).

    Per level and axis only two grid coordinates matter (the cell's and the next), so coordinates,
    their hash products and XOR digits are computed on [N, L, 3, 2] and only combined over the 8 corners
    ([N, L, 2, 2, 2]) at the end, where the table lookups happen."""

    def __init__(self, field):
        super().__init__()
        from neuralframe.render.nerf.hashgrid import PRIMES

        enc = field.encoding
        cfg = enc.config
        lay = enc.layout
        self.density_net = field.density_net
        self.color_net = field.color_net
        self.params = enc.params  # [T_total, F]
        bits = cfg.log2_hashmap_size
        sizes = torch.from_numpy(lay.offsets[1:] - lay.offsets[:-1])  # [L] entries per level
        res = torch.from_numpy(lay.resolutions.copy())
        dense = res ** 3 <= sizes
        if not bool(torch.all(dense | (sizes == (1 << bits)))):  # the layout rule guarantees it
            raise InputError("hash-grid layout: a hashed level does not have 2**log2_hashmap_size entries")
        # int32 where every intermediate fits (TensorRT's and most CPUs' fast integer path), else int64:
        # hash products are below (resolution + 1) * 2**bits, dense indices below a level's size
        largest = max((int(res.max()) + 1) * (1 << bits), int(lay.offsets[-1]))
        self.itype = torch.int32 if largest < 2**31 else torch.int64
        it = self.itype
        self.bits = bits
        self.digits = math.ceil(bits / DIGIT_BITS)
        self.register_buffer("lo", field.aabb[:3].clone(), persistent=False)
        self.register_buffer("extent", (field.aabb[3:] - field.aabb[:3]).clone(), persistent=False)
        self.register_buffer("scales", torch.from_numpy(lay.scales.copy()).view(1, -1, 1), persistent=False)
        # dense index = sum_k g_k * stride_k; zero strides on hashed levels, whose dense index is unused
        strides = torch.stack([torch.ones_like(res), res, res * res], -1) * dense[:, None]
        self.register_buffer("strides", strides.to(it).view(1, -1, 3, 1), persistent=False)
        self.register_buffer("sizes", sizes.to(it).view(1, -1, 1, 1, 1), persistent=False)
        self.register_buffer("offsets", torch.from_numpy(lay.offsets[:-1].copy()).to(it).view(1, -1, 1, 1, 1),
                             persistent=False)
        self.register_buffer("dense", dense.view(1, -1, 1, 1, 1), persistent=False)
        self.register_buffer("step", torch.tensor([0, 1], dtype=it).view(1, 1, 1, 2), persistent=False)
        self.register_buffer("primes", torch.tensor([p % (1 << bits) for p in PRIMES], dtype=it).view(1, 1, 3, 1),
                             persistent=False)
        self.register_buffer("xor_table", _xor_table().to(it), persistent=False)
        self.geo_features = field.config.geo_features

    @staticmethod
    def _corners(v: Tensor) -> Tensor:  # [N, L, 3, 2] per-axis values -> [N, L, 2, 2, 2] (z, y, x order)
        return v[:, :, 2, :, None, None], v[:, :, 1, None, :, None], v[:, :, 0, None, None, :]

    def _hash(self, g: Tensor) -> Tensor:  # [N, L, 3, 2] grid coordinates -> [N, L, 2, 2, 2] hashed index
        base = 1 << DIGIT_BITS
        h = torch.remainder(g * self.primes, 1 << self.bits)  # low bits of each product: exact
        out = None
        place = 1
        for _ in range(self.digits):
            digit = torch.remainder(h, base)  # [N, L, 3, 2]
            dz, dy, dx = self._corners(digit)
            value = self.xor_table[dx * (base * base) + dy * base + dz]  # x ^ y ^ z of this digit
            out = value * place if out is None else out + value * place
            h = torch.div(h, base, rounding_mode="trunc")  # non-negative: floor
            place *= base
        return out

    def encode(self, x: Tensor) -> Tensor:  # [N, 3] world -> [N, L * F]
        u = ((x - self.lo) / self.extent).clamp(0.0, 1.0)
        pos = u[:, None, :] * self.scales + 0.5  # [N, L, 3]
        cell = torch.floor(pos)
        frac = (pos - cell)[..., None]  # [N, L, 3, 1]
        g = cell.to(self.itype)[..., None] + self.step  # [N, L, 3, 2]: the cell's coordinate and the next
        w = torch.cat([1.0 - frac, frac], -1)  # [N, L, 3, 2]
        wz, wy, wx = self._corners(w)
        weight = wz * wy * wx  # [N, L, 2, 2, 2]
        sz, sy, sx = self._corners(g * self.strides)
        dense_index = sz + sy + sx
        index = torch.remainder(torch.where(self.dense, dense_index, self._hash(g)), self.sizes) + self.offsets
        values = self.params[index.reshape(x.shape[0], -1, 8)]  # [N, L, 8, F]
        features = (weight.reshape(x.shape[0], -1, 8, 1) * values).sum(2)  # [N, L, F]
        return features.reshape(x.shape[0], -1)

    def forward(self, x: Tensor, d: Tensor) -> tuple[Tensor, Tensor]:  # [N, 3], [N, 3] -> [N], [N, 3]
        from neuralframe.render.nerf.field import sh_encode

        geo = self.density_net(self.encode(x))
        sigma = torch.exp(geo[:, 0])  # trunc_exp's forward (its clamp is for gradients)
        rgb = torch.sigmoid(self.color_net(torch.cat([geo, sh_encode(d)], -1)))
        return sigma, rgb


class ReferenceField(nn.Module):
    """The project's field on its pure-torch reference kernels, with the graph's call signature."""

    def __init__(self, field, impl: str = "reference"):
        super().__init__()
        self.field = field
        self.impl = impl

    def forward(self, x: Tensor, d: Tensor) -> tuple[Tensor, Tensor]:
        return self.field(x, d, impl=self.impl)


def random_field(seed: int = 0):
    """An untrained default field with seeded random table entries in [-1, 1] and random MLP weights."""
    from neuralframe.render.nerf.field import NerfField

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        field = NerfField(impl="reference")
        with torch.no_grad():
            field.encoding.params.uniform_(-1.0, 1.0)
    return field.eval()


def sample_points(field, n: int, seed: int = 0) -> tuple[Tensor, Tensor]:
    """Real samples: the points and directions the renderer evaluates along the rays of orbit cameras
    around the scene, marched through the field's occupancy grid (positions [n, 3], directions [n, 3])."""
    from neuralframe.render.camera import intrinsics
    from neuralframe.render.orbit import orbit
    from neuralframe.render.nerf import march as marching
    from neuralframe.render.nerf.renderer import camera_rays

    box = field.occupancy.occupied_box()
    if not bool((box[3:] > box[:3]).all()):
        box = field.aabb
    center = ((box[:3] + box[3:]) / 2).tolist()
    radius = float(torch.linalg.norm(field.aabb[3:] - field.aabb[:3])) * 0.9
    size = 48
    cams = orbit(center, radius, 4, intrinsics(size, size, 50.0), size, size, elevation_deg=20.0)
    gen = torch.Generator().manual_seed(seed)
    xs, ds = [], []
    for cam in cams:
        rays_o, rays_d, _ = camera_rays(cam)
        near, far = marching.ray_box(rays_o, rays_d, field.aabb)
        hit = torch.nonzero(near < far).squeeze(1)
        if hit.numel() == 0:
            continue
        rays_o, rays_d = rays_o[hit], rays_d[hit]
        u = torch.rand(hit.numel(), generator=gen)
        ray, t, _, _ = marching.march(rays_o, rays_d, near[hit].clamp(min=0.0), far[hit], field.occupancy.mask,
                                      field.aabb, field.step, u, None, 64, impl="reference")
        xs.append(rays_o[ray] + t[:, None] * rays_d[ray])
        ds.append(rays_d[ray])
    x, d = torch.cat(xs), torch.cat(ds)
    if x.shape[0] == 0:
        raise InputError("nerf-field: no camera ray reaches an occupied cell of the scene")
    pick = torch.randperm(x.shape[0], generator=gen)[:n]
    pick = pick.repeat(math.ceil(n / pick.numel()))[:n]
    return x[pick].contiguous(), d[pick].contiguous()


def build(options: BuildOptions) -> list[Graph]:
    reject_options(options, "nerf-field", ("ratios", "size"))
    path = check_model_path(options.model_path, (".safetensors",), "a NeRF checkpoint from `neuralframe train nerf`")
    if path is None and not options.random_weights:
        raise InputError("nerf-field: no NeRF checkpoint is bundled; pass --model SCENE.safetensors (train one with "
                         "`neuralframe train nerf`) or --random-weights to export the architecture")
    if path is not None:
        from neuralframe.render.nerf.io import load_field

        field, weights = load_field(path, impl="reference"), path.name
    else:
        field, weights = random_field(options.seed), f"random (seed {options.seed}): architecture only"
    for p in field.parameters():
        p.requires_grad_(False)
    module = ExportableField(field).eval()
    reference = ReferenceField(field, "reference").eval()
    timed = ReferenceField(field, "auto").eval()
    n = EXAMPLE_POINTS
    lo, hi = field.aabb[:3], field.aabb[3:]

    def unit(v: Tensor) -> Tensor:
        return v / v.norm(dim=-1, keepdim=True).clamp(min=1e-6)

    def random_inputs(gen: torch.Generator, dynamic: bool) -> Feed:
        m = 3001 if dynamic else n
        # a little beyond the box on each side: the graph must clamp as the field does
        x = lo - 0.05 * (hi - lo) + torch.rand(m, 3, generator=gen) * 1.1 * (hi - lo)
        return {"x": x, "d": unit(torch.randn(m, 3, generator=gen))}

    def real_inputs() -> list[Feed]:
        x, d = sample_points(field, n, seed=options.seed)
        return [{"x": x, "d": d}]

    cfg = field.config.grid
    return [Graph(
        name="nerf-field", module=module, reference=reference, timed=timed,
        inputs=("x", "d"), outputs=("sigma", "rgb"),
        example=lambda: random_inputs(torch.Generator().manual_seed(1), False),
        random_inputs=random_inputs, real_inputs=real_inputs,
        real_description=f"{n} samples the renderer takes along the rays of 4 orbit cameras (48x48), marched "
                         "through the field's occupancy grid",
        dynamic_axes={"x": {0: "N"}, "d": {0: "N"}, "sigma": {0: "N"}, "rgb": {0: "N"}},
        profile={"x": ((1, 3), (n, 3), (1 << 18, 3)), "d": ((1, 3), (n, 3), (1 << 18, 3))},
        weights=weights,
        # positions, hash and interpolation stay float32/integer; the MLPs are what float16 speeds up
        fp16_ops=("MatMul", "Gemm", "Relu", "Sigmoid"),
        notes=[f"hash grid: {cfg.n_levels} levels x {cfg.n_features_per_level} features, 2^{cfg.log2_hashmap_size} "
               f"entries per hashed level, table {tuple(field.encoding.params.shape)}",
               "hash XOR as a lookup table (TensorRT 10 has no BitwiseXor); float32 cell positions "
               "(the reference rounds once in float64)",
               "checked against the pure-torch reference (render/nerf/hashgrid_ref.py); torch_ms times the "
               "field as the renderer runs it (impl=auto)",
               "float16: the MLPs only; positions, hash and interpolation stay float32 and integer"],
    )]
