"""PlayCanvas compressed PLY: round trip within the format's quantisation, interop with splat-transform both
ways, content sniffing of a compressed PLY named .ply, and hostile files."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from splat_compare import psnr

from neuralframe.errors import InputError
from neuralframe.render.splat.formats import load, ply, save
from neuralframe.render.splat.formats.compressed_ply import CHUNK, detect, morton_order
from neuralframe.render.splat.gaussians import SH_C0

# Render PSNR floors, set below what was measured (splat-transform 2.7.1, CPU rasterizer, 160x120):
# motorcycle written by splat-transform 58.7 dB, by neuralframe 60.6 dB; the SH-3 scene 47.4 and 48.0 dB
# (its SH terms keep 8 bits over [-4, 4]).
MOTORCYCLE_FLOOR_DB = 55.0
SH3_FLOOR_DB = 45.0


def _chunk_halfstep(values: np.ndarray, bits: np.ndarray) -> np.ndarray:
    """Per Gaussian (in file order) and column: half a quantisation step of its chunk's range."""
    n = len(values)
    pad = np.concatenate([values, np.repeat(values[-1:], -n % CHUNK, 0)]).reshape(-1, CHUNK, values.shape[1])
    span = (pad.max(1) - pad.min(1)).repeat(CHUNK, 0)[:n]
    return span / (2.0 * (2.0 ** bits - 1))


def test_round_trip_stays_within_the_quantisation(tmp_path, sh3_scene):
    g = sh3_scene
    path = save(g, tmp_path / "s.compressed.ply")
    out = load(path)
    assert out.n == g.n and out.sh_degree == 3
    order = morton_order(g.means.numpy().astype(np.float64))
    src = lambda t: t.numpy().astype(np.float64)[order]
    got = lambda t: t.numpy().astype(np.float64)
    bits = np.array([11, 10, 11])
    for name in ("means", "scales"):  # 11-10-11 bits of each chunk's range, float32 bounds
        a, b = src(getattr(g, name)), got(getattr(out, name))
        assert (np.abs(a - b) <= _chunk_halfstep(a, bits) * 1.001 + 1e-6 * (1 + np.abs(a))).all(), name
    rgb = 0.5 + SH_C0 * src(g.sh[:, 0])  # 8 bits of each chunk's colour range
    err = np.abs(rgb - (0.5 + SH_C0 * got(out.sh[:, 0])))
    assert (err <= _chunk_halfstep(rgb, np.array([8, 8, 8])) * 1.001 + 1e-6).all()
    alpha = lambda t: 1 / (1 + np.exp(-t))
    assert np.abs(alpha(src(g.opacities)) - alpha(got(out.opacities))).max() <= 1 / 510 + 1e-6
    qa = src(g.quats) / np.linalg.norm(src(g.quats), axis=1, keepdims=True)
    qb = got(out.quats)
    qb = qb * np.sign((qa * qb).sum(1, keepdims=True))
    # the three stored components: 10 bits over +-1/sqrt(2); the rebuilt largest one (>= 1/2): 3 times that
    assert np.abs(qa - qb).max() <= 3 * math.sqrt(2) / 2046 + 1e-6
    rest = np.clip(src(g.sh[:, 1:]), -4, 4)  # 8 bits over [-4, 4]
    assert np.abs(rest - got(out.sh[:, 1:])).max() <= 1 / 32 + 1e-6
    assert (np.abs(src(g.sh[:, 1:])) > 0.1).any()  # the scene's SH terms are not all ~0


def test_morton_order_makes_chunks_compact(sh3_scene):
    means = sh3_scene.means.numpy().astype(np.float64)
    means = means[np.random.default_rng(0).permutation(len(means))]  # whatever order the input comes in
    n = len(means) // CHUNK * CHUNK
    extent = lambda m: np.ptp(m[:n].reshape(-1, CHUNK, 3), axis=1).mean()
    assert extent(means[morton_order(means)]) < 0.5 * extent(means)


@pytest.mark.parametrize("scene", ["motorcycle", "sh3"])
def test_reads_what_splat_transform_writes(tmp_path, splat_transform, motorcycle, sh3_scene, scene):
    g = motorcycle if scene == "motorcycle" else sh3_scene
    source = save(g, tmp_path / "source.ply")
    splat_transform(source, tmp_path / "st.compressed.ply")
    out = load(tmp_path / "st.compressed.ply")
    assert out.n == g.n and out.sh_degree == g.sh_degree
    db = psnr(g, out)
    print(f"splat-transform {scene}.compressed.ply read by neuralframe: render PSNR {db:.1f} dB vs the .ply")
    assert db >= (MOTORCYCLE_FLOOR_DB if scene == "motorcycle" else SH3_FLOOR_DB)


@pytest.mark.parametrize("scene", ["motorcycle", "sh3"])
def test_splat_transform_reads_what_we_write(tmp_path, splat_transform, motorcycle, sh3_scene, scene):
    g = motorcycle if scene == "motorcycle" else sh3_scene
    ours = save(g, tmp_path / "ours.compressed.ply")
    splat_transform(ours, tmp_path / "back.ply")
    # splat-transform decodes alpha 0 and 255 (a stored opacity of exactly 0 or 1) to infinite logits, which
    # `load` refuses: read its PLY without that check and compare opacities as alphas
    back, mine = ply.read((tmp_path / "back.ply").read_bytes(), "back.ply"), load(ours)
    assert back.n == g.n and back.sh_degree == g.sh_degree
    # splat-transform decodes the file to the values we decode (same order, float32 rounding apart)
    for name in ("means", "scales", "sh"):
        a, b = getattr(mine, name), getattr(back, name)
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-5), name
    assert torch.allclose(torch.sigmoid(mine.opacities), torch.sigmoid(back.opacities), atol=2e-6)
    back.opacities = back.opacities.clamp(-30, 30)
    qa, qb = mine.quats, back.quats
    assert torch.allclose(qa * torch.sign((qa * qb).sum(1, keepdim=True)), qb, atol=1e-5)
    db = psnr(g, back)
    print(f"neuralframe {scene}.compressed.ply read by splat-transform: render PSNR {db:.1f} dB vs the .ply")
    assert db >= (MOTORCYCLE_FLOOR_DB if scene == "motorcycle" else SH3_FLOOR_DB)


def test_a_compressed_ply_named_ply_still_opens(tmp_path, sh3_scene):
    data = save(sh3_scene, tmp_path / "a.compressed.ply").read_bytes()
    (tmp_path / "renamed.ply").write_bytes(data)
    a, b = load(tmp_path / "a.compressed.ply"), load(tmp_path / "renamed.ply")
    assert torch.equal(a.means, b.means) and torch.equal(a.sh, b.sh)
    assert detect(data)
    assert not detect(save(sh3_scene, tmp_path / "plain.ply").read_bytes())
    assert torch.equal(load(tmp_path / "plain.ply").means, sh3_scene.means)


def _small(tmp_path, n=300) -> bytes:
    from neuralframe.render.splat.procedural import surface_scene

    return save(surface_scene(n, seed=1, sh_degree=1), tmp_path / "good.compressed.ply").read_bytes()


def _body_start(data: bytes) -> int:
    return data.index(b"end_header\n") + len(b"end_header\n")


def _nan_bounds(data: bytes) -> bytes:
    out = bytearray(data)
    out[_body_start(data) + 4: _body_start(data) + 8] = np.float32(np.nan).tobytes()  # chunk 0's min_y
    return bytes(out)


@pytest.mark.parametrize("make, message", [
    (lambda d: d[:-100], "truncated"),
    (lambda d: d[: _body_start(d) + 10], "truncated"),
    (lambda d: b"PK\x03\x04" + d[4:], "not a PLY file"),
    (lambda d: d.replace(b"element vertex 300", b"element vertex 3000"), "chunks for 3,000 Gaussians"),
    (lambda d: d.replace(b"element vertex 300", b"element vertex 9999999999"), "9,999,999,999 Gaussians"),
    (lambda d: d.replace(b"element chunk 2", b"element chunk 9"), "declares 9 chunks"),
    (lambda d: d.replace(b"element sh 300", b"element sh 299"), "declares 299 rows"),
    (lambda d: d.replace(b"uint packed_scale", b"float packed_scale"), "packed_scale must be uint"),
    (lambda d: d.replace(b"property float max_scale_z\n", b""), "lacks max_scale_z"),
    (lambda d: d.replace(b"element sh", b"element extra"), "has 'extra'"),
    (_nan_bounds, "NaN or infinite bounds (first: chunk 0)"),
])
def test_hostile_files_give_one_clear_error(tmp_path, make, message):
    path = tmp_path / "bad.compressed.ply"
    path.write_bytes(make(_small(tmp_path)))
    with pytest.raises(InputError) as info:
        load(path)
    assert str(path) in str(info.value) and message in str(info.value)
