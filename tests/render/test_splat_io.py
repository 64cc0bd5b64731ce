import gzip
import math
import struct

import numpy as np
import pytest
import torch

from neuralframe.errors import InputError, OutputError
from neuralframe.render.splat import Gaussians, load, save
from neuralframe.render.splat.gaussians import SH_C0
from neuralframe.render.splat.procedural import random_scene


def scene(n=200, degree=3, seed=0) -> Gaussians:
    g = random_scene(n, seed=seed, sh_degree=degree)
    g.sh[:, 1:] = g.sh[:, 1:].clamp(-0.9, 0.9)  # inside .spz's SH range
    return g


@pytest.mark.parametrize("degree", [0, 1, 2, 3])
def test_ply_round_trip_is_exact(tmp_path, degree):
    g = scene(degree=degree)
    path = save(g, tmp_path / "scene.ply")
    back = load(path)
    assert back.sh_degree == degree
    for name, tensor in g.tensors().items():
        assert torch.equal(back.tensors()[name], tensor), name


def test_ply_is_inria_layout_with_channel_major_f_rest(tmp_path):
    g = scene(n=5, degree=2)
    data = save(g, tmp_path / "s.ply").read_bytes()
    header, body = data.split(b"end_header\n")
    props = [line.split()[-1].decode() for line in header.splitlines() if line.startswith(b"property")]
    assert props[:9] == ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
    assert props[9:33] == [f"f_rest_{i}" for i in range(24)]
    assert props[33:] == ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    rows = np.frombuffer(body, "<f4").reshape(5, len(props))
    # f_rest_{c * 8 + j} is coefficient j + 1 of channel c.
    assert rows[3, props.index("f_rest_0")] == g.sh[3, 1, 0]
    assert rows[3, props.index("f_rest_8")] == g.sh[3, 1, 1]
    assert rows[3, props.index("f_rest_23")] == g.sh[3, 8, 2]


def write_ply(path, columns: dict, fmt="binary_little_endian", dtype="f4", extra_header=""):
    n = len(next(iter(columns.values())))
    names = list(columns)
    type_name = {"f4": "float", "f8": "double"}[dtype]
    header = f"ply\nformat {fmt} 1.0\ncomment made by hand\n{extra_header}element vertex {n}\n"
    header += "".join(f"property {type_name} {p}\n" for p in names) + "end_header\n"
    body = np.stack([np.asarray(columns[p], dtype=np.float64) for p in names], 1).astype("<" + dtype)
    path.write_bytes(header.encode() + body.tobytes())
    return path


def inria_columns(n=3, rest=9):
    rng = np.random.default_rng(0)
    cols = {p: rng.normal(size=n) for p in ["x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2"]}
    cols.update({f"f_rest_{i}": rng.normal(size=n) for i in range(rest)})
    cols.update({p: rng.normal(size=n) for p in ["opacity", "scale_0", "scale_1", "scale_2"]})
    cols.update({f"rot_{i}": rng.normal(size=n) + 2 for i in range(4)})
    return cols


def test_loads_plys_written_by_other_tools(tmp_path):
    # nerfstudio/gsplat exporters: no normals, doubles; another element before the vertices.
    cols = inria_columns(n=4, rest=9)
    path = write_ply(tmp_path / "other.ply", cols, dtype="f8",
                     extra_header="element camera 0\nproperty float fx\n")
    g = load(path)
    assert g.n == 4 and g.sh_degree == 1
    assert g.sh[2, 3, 1].item() == pytest.approx(cols["f_rest_5"][2], rel=1e-6)  # channel 1, coefficient 3
    assert g.means[1, 2].item() == pytest.approx(cols["z"][1], rel=1e-6)


@pytest.mark.parametrize("degree", [0, 3])
def test_splat_round_trip_within_8bit_quantisation(tmp_path, degree):
    g = scene(degree=degree)
    g.sh[:, 0] = g.sh[:, 0].clamp((0.01 - 0.5) / SH_C0, (0.99 - 0.5) / SH_C0)
    if degree:
        with pytest.warns(UserWarning, match="SH degree 3 terms are dropped"):
            path = save(g, tmp_path / "s.splat")
    else:
        path = save(g, tmp_path / "s.splat")
    assert path.stat().st_size == 32 * g.n
    back = load(path)
    assert back.sh_degree == 0
    assert torch.equal(back.means, g.means)
    assert torch.allclose(back.scales, g.scales, atol=1e-5)
    # Colour and opacity within half an 8-bit step; rotations within one step per component.
    assert (back.sh[:, 0] * SH_C0 - g.sh[:, 0] * SH_C0).abs().max() <= 0.5 / 255 + 1e-6
    assert (torch.sigmoid(back.opacities) - torch.sigmoid(g.opacities)).abs().max() <= 0.5 / 255 + 1e-6
    q0 = torch.nn.functional.normalize(g.quats, dim=1)
    q1 = torch.nn.functional.normalize(back.quats, dim=1)
    assert (q0 * q1).sum(1).abs().min() > 0.9998


# .spz round trips, layout and hostile files: tests/render/formats/test_spz.py


def test_spz_renders_like_the_original(tmp_path):
    from neuralframe.render.splat import rasterize
    from neuralframe.render.splat.procedural import front_camera

    g = random_scene(400, seed=3, sh_degree=1, box=((-1, 1), (-1, 1), (2, 5)))
    g.sh[:, 1:] = g.sh[:, 1:].clamp(-0.9, 0.9)
    back = load(save(g, tmp_path / "s.spz"))
    cam = front_camera(48, 32)
    a = rasterize(g, cam, impl="reference").rgb
    b = rasterize(back, cam, impl="reference").rgb
    assert (a - b).abs().mean() < 0.01


def test_save_is_atomic_and_keeps_the_old_file_on_error(tmp_path):
    path = save(scene(n=10, degree=0), tmp_path / "keep.ply")
    before = path.read_bytes()
    bad = scene(n=10, degree=0)
    bad.means[4, 1] = math.nan
    with pytest.raises(InputError, match="NaN or infinite means"):
        save(bad, path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.ply"]
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutputError, match="cannot write"):
        save(scene(n=3, degree=0), blocker / "s.ply")


def good_ply(tmp_path, **kw):
    return write_ply(tmp_path / "bad.ply", inria_columns(**kw))


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: p.write_bytes(b"PK\x03\x04 not a ply"), "not a PLY file"),
        (lambda p: p.write_bytes(b"ply\nformat binary_little_endian 1.0\nelement vertex 3\n"), "end_header"),
        (lambda p: write_ply(p, inria_columns(n=2), fmt="ascii"), "ASCII PLY is not supported"),
        (lambda p: p.write_bytes(write_ply(p, inria_columns(n=5)).read_bytes()[:-7]), "truncated"),
        (lambda p: write_ply(p, {k: v for k, v in inria_columns().items() if k != "scale_1"}), "missing properties scale_1"),
        (lambda p: write_ply(p, inria_columns(rest=6)), "SH coefficients per channel do not match"),
        (lambda p: write_ply(p, {**inria_columns(), "x": [0.0, math.inf, 1.0]}), "NaN or infinite means"),
    ],
)
def test_bad_ply_files_name_the_file_and_the_problem(tmp_path, make, message):
    path = tmp_path / "bad.ply"
    make(path)
    with pytest.raises(InputError, match=message) as info:
        load(path)
    assert str(path) in str(info.value)


def spz_bytes(raw: bytes) -> bytes:
    return gzip.compress(raw)


@pytest.mark.parametrize(
    "suffix, data, message",
    [
        (".splat", b"\x00" * 33, "not a multiple of 32"),
        (".spz", b"not gzip at all", "begins with neither"),
        (".spz", spz_bytes(struct.pack("<IIIBBBB", 0x12345678, 2, 1, 0, 12, 0, 0)), "bad magic"),
        (".spz", spz_bytes(struct.pack("<IIIBBBB", 0x5053474E, 9, 1, 0, 12, 0, 0)), "version 9 is not supported"),
        (".spz", spz_bytes(struct.pack("<IIIBBBB", 0x5053474E, 2, 10, 1, 12, 0, 0) + b"\x00" * 50), "truncated"),
        (".spz", spz_bytes(b"NGSP"), "truncated"),
        (".xyz", b"123", "unknown scene format"),
        (".ply", b"", "empty"),
    ],
)
def test_bad_splat_and_spz_files(tmp_path, suffix, data, message):
    path = tmp_path / f"bad{suffix}"
    path.write_bytes(data)
    with pytest.raises(InputError, match=message) as info:
        load(path)
    assert str(path) in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="scene file not found"):
        load(tmp_path / "nope.ply")
