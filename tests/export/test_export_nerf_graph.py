"""The NeRF field's export form against the reference kernels, in torch (no ONNX needed)."""

from __future__ import annotations

import pytest
import torch

from neuralframe.export.nerf import DIGIT_BITS, ExportableField, random_field, sample_points
from neuralframe.render.nerf.field import FieldConfig, NerfField, grid_for


def test_xor_by_table_equals_bitwise_xor():
    field = ExportableField(random_field(0))
    gen = torch.Generator().manual_seed(0)
    h = torch.randint(0, 1 << field.bits, (500, 1, 3, 2), generator=gen, dtype=torch.int64)
    g = h.to(field.itype)
    # _hash multiplies by the primes first: feed coordinates whose products we know by dividing them out
    field.primes.fill_(1)
    got = field._hash(g)  # [500, 1, 2, 2, 2]: corners (z, y, x)
    for bz in range(2):
        for by in range(2):
            for bx in range(2):
                want = h[:, 0, 0, bx] ^ h[:, 0, 1, by] ^ h[:, 0, 2, bz]
                assert torch.equal(got[:, 0, bz, by, bx].long(), want)
    assert field.digits * DIGIT_BITS >= field.bits


@pytest.mark.parametrize("config,itype", [
    (FieldConfig(), torch.int32),  # the default: 16 levels, 2^17 entries per hashed level
    # hash products up to 2049 * 2^20 overflow int32: the graph computes in int64
    (FieldConfig(grid=grid_for(2048, n_levels=4, log2_hashmap_size=20), aabb=(-1.0, -2.0, -0.5, 1.0, 2.0, 0.5)),
     torch.int64),
])
def test_encoding_and_outputs_match_the_reference(config, itype):
    torch.manual_seed(0)
    field = NerfField(config, impl="reference").eval()
    with torch.no_grad():
        field.encoding.params.uniform_(-1.0, 1.0)
    graph = ExportableField(field).eval()
    assert graph.itype == itype
    gen = torch.Generator().manual_seed(1)
    lo, hi = field.aabb[:3], field.aabb[3:]
    x = lo - 0.1 * (hi - lo) + torch.rand(4000, 3, generator=gen) * 1.2 * (hi - lo)  # some outside: clamped
    d = torch.nn.functional.normalize(torch.randn(4000, 3, generator=gen), dim=-1)
    with torch.no_grad():
        want = field.encoding(field.normalize(x), impl="reference")
        got = graph.encode(x)
        # float32 cell positions vs the reference's single float64 rounding: within a few ulps of the
        # finest level's position, times the table's slope
        finest = float(field.encoding.layout.scales[-1])
        torch.testing.assert_close(got, want, atol=8 * finest * 2**-23 * 2, rtol=0)
        sigma, rgb = graph(x, d)
        sigma_ref, rgb_ref = field(x, d, impl="reference")
    torch.testing.assert_close(sigma, sigma_ref, atol=1e-4, rtol=1e-3)
    torch.testing.assert_close(rgb, rgb_ref, atol=1e-5, rtol=1e-4)


def test_real_samples_lie_in_the_scene_box():
    field = random_field(0)
    x, d = sample_points(field, 2000, seed=0)
    assert x.shape == d.shape == (2000, 3)
    lo, hi = field.aabb[:3] - 1e-4, field.aabb[3:] + 1e-4
    assert bool(((x >= lo) & (x <= hi)).all())
    torch.testing.assert_close(d.norm(dim=-1), torch.ones(2000), atol=1e-5, rtol=0)
    assert len({tuple(v) for v in d[:200].tolist()}) > 20  # many rays, not one
