"""The INRIA .ply reader on every layout it meets (its own, other tools' doubles and extra elements, big-endian,
mixed property types, properties in any order), from bytes and from a path alike, and its memory: reading a
scene takes about the Gaussians it makes, not copies of the file."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from neuralframe.errors import InputError
from neuralframe.render.splat import load, save
from neuralframe.render.splat.formats import ply
from neuralframe.render.splat.procedural import random_scene


def columns(n: int, rest: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    names = ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2", *[f"f_rest_{i}" for i in range(rest)],
             "opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    return {p: rng.normal(size=n).astype(np.float32) for p in names}


def write(path, cols: dict, types: dict | None = None, order: str = "<", before: str = "") -> bytes:
    """A PLY of `cols` (in their order), each property of its type in `types` (default float)."""
    types = types or {}
    codes = {"float": "f4", "double": "f8", "uchar": "u1", "short": "i2"}
    fmt = "binary_little_endian" if order == "<" else "binary_big_endian"
    header = f"ply\nformat {fmt} 1.0\n{before}element vertex {len(cols['x'])}\n"
    header += "".join(f"property {types.get(p, 'float')} {p}\n" for p in cols) + "end_header\n"
    row = np.dtype([(p, order + codes[types.get(p, "float")]) for p in cols])
    body = np.empty(len(cols["x"]), row)
    for p, v in cols.items():
        body[p] = v
    data = header.encode() + (b"\x00" * 12 if before else b"") + body.tobytes()
    path.write_bytes(data)
    return data


def expected(cols: dict, rest: int) -> dict:
    """The Gaussians the columns describe, worked out here from the INRIA layout's definition."""
    k = rest // 3 + 1
    get = lambda *ps: np.stack([np.asarray(cols[p], np.float64) for p in ps], 1)  # noqa: E731
    sh = np.zeros((len(cols["x"]), k, 3))
    sh[:, 0] = get("f_dc_0", "f_dc_1", "f_dc_2")
    for c in range(3):
        for j in range(k - 1):
            sh[:, j + 1, c] = cols[f"f_rest_{c * (k - 1) + j}"]
    return {"means": get("x", "y", "z"), "quats": get("rot_0", "rot_1", "rot_2", "rot_3"),
            "scales": get("scale_0", "scale_1", "scale_2"), "opacities": np.asarray(cols["opacity"], np.float64),
            "sh": sh}


def shuffled(cols: dict, seed: int = 1) -> dict:
    keys = list(cols)
    np.random.default_rng(seed).shuffle(keys)
    return {k: cols[k] for k in keys}


LAYOUTS = {
    "inria-float": dict(),
    "doubles-after-another-element": dict(types="double", before="element camera 1\nproperty float fx\n"
                                                                "property float fy\nproperty float fz\n"),
    "big-endian": dict(order=">"),
    "mixed-types": dict(types={"nx": "uchar", "ny": "short", "nz": "double", "opacity": "double"}),
    "properties-in-any-order": dict(shuffle=True),
}


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("rest", [0, 9, 45])
def test_every_layout_reads_the_same_from_bytes_and_from_a_path(tmp_path, layout, rest):
    spec = dict(LAYOUTS[layout])
    n = 40_000 + 7  # more than one block of rows, and a ragged last one
    cols = columns(n, rest)
    if spec.pop("shuffle", False):
        cols = shuffled(cols)
    types = spec.pop("types", None)
    if types == "double":
        types = dict.fromkeys(cols, "double")
    if types and "nx" in types:
        cols["nx"] = np.arange(n) % 200  # a uchar column holds small integers
        cols["ny"] = np.arange(n) % 3000 - 1500
    path = tmp_path / "scene.ply"
    data = write(path, cols, types, **spec)
    want = expected(cols, rest)
    for g in (ply.read(data, "scene.ply"), ply.read_file(path, "scene.ply"), load(path)):
        assert g.n == n and g.sh_degree == {0: 0, 9: 1, 45: 3}[rest]
        for name, tensor in g.tensors().items():
            assert tensor.dtype == torch.float32 and tensor.is_contiguous(), name
            np.testing.assert_array_equal(tensor.numpy(), want[name].astype(np.float32), err_msg=name)


@pytest.mark.parametrize("degree", [0, 3])
def test_save_then_read_file_is_exact(tmp_path, degree):
    g = random_scene(3000, seed=2, sh_degree=degree)
    path = save(g, tmp_path / "s.ply")
    back = ply.read_file(path, "s.ply")
    assert all(torch.equal(back.tensors()[k], v) for k, v in g.tensors().items())
    assert bytes(ply.encode(back, "s.ply")) == path.read_bytes()


@pytest.mark.parametrize("cut, message", [
    (lambda d: d[:-5], "truncated: 50 Gaussians need"),
    (lambda d: d.replace(b"property float scale_1\n", b"property float scale_x\n"), "missing properties scale_1"),
    (lambda d: b"PK" + d[2:], "not a PLY file"),
    (lambda d: d.replace(b"element vertex 50", b"element vertex 0"), r"no Gaussians \(vertex count 0\)"),
])
def test_read_file_says_what_read_says(tmp_path, cut, message):
    path = tmp_path / "bad.ply"
    data = cut(write(tmp_path / "good.ply", columns(50, 9)))
    path.write_bytes(data)
    for call in (lambda: ply.read(data, str(path)), lambda: ply.read_file(path, str(path))):
        with pytest.raises(InputError, match=message) as info:
            call()
        assert str(info.value).startswith(str(path)) and "\n" not in str(info.value)


PEAK = textwrap.dedent("""
    import gc, os, sys
    from pathlib import Path
    import torch
    from neuralframe.render.splat import load
    from neuralframe.render.splat.formats import ply

    def kib(key):
        for line in open("/proc/self/status"):
            if line.startswith(key):
                return int(line.split()[1])
    path = Path(sys.argv[1])
    read = {"load": lambda: load(path), "read_file": lambda: ply.read_file(path, str(path))}[sys.argv[2]]
    read()  # first use: lazy imports and the allocator's own first pages out of the measurement
    gc.collect()
    before = kib("VmRSS:")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # the high-water mark starts again from here
    g = read()
    print((kib("VmHWM:") - before) * 1024 / path.stat().st_size)
""")


def peak_ratio(path, how: str) -> float:
    result = subprocess.run([sys.executable, "-c", PEAK, str(path), how], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return float(result.stdout.split()[-1])


@pytest.fixture(scope="module")
def scene_200k(tmp_path_factory):
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pytest.skip("needs Linux's /proc/self/clear_refs to measure a peak")
    g = random_scene(200_000, seed=0, sh_degree=3)
    return save(g, tmp_path_factory.mktemp("ply") / "scene-200k.ply")  # about 50 MB


def test_reading_a_scene_takes_about_the_memory_of_its_gaussians(scene_200k):
    # The Gaussians are 59 of the file's 62 floats a row; the file is read a block at a time.
    assert peak_ratio(scene_200k, "read_file") < 1.3


def test_loading_a_scene_peaks_below_two_and_a_half_times_its_file(scene_200k):
    assert peak_ratio(scene_200k, "load") < 2.5
