"""glTF 2.0 with KHR_gaussian_splatting: the stored conventions (pinned by reading the bytes), lossless round
trips at SH degrees 0-3, files written by splat-transform, strided/normalised/sparse accessors, node
transforms, several primitives, SPZ-compressed primitives, external buffers, hostile files, and the Khronos
glTF validator as an oracle where it is installed."""

from __future__ import annotations

import base64
import json
import math
import os
import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from splat_compare import psnr

from neuralframe.errors import InputError
from neuralframe.render.splat.formats import gltf, load, save, spz
from neuralframe.render.splat.formats.gltf_space import _quat_to_matrix
from neuralframe.render.splat.gaussians import Gaussians
from neuralframe.render.splat.rasterize_ref import sh_to_rgb

K = "KHR_gaussian_splatting:"
ROOT = Path(__file__).resolve().parents[4]
# measured (CPU rasterizer, 160x120, splat-transform 2.7.1): motorcycle .glb inf dB (bit-identical render),
# SH-3 scene .glb 159 dB, our own round trips >= 150 dB; the floor is the lossless-format bar of the issue
LOSSLESS_DB = 45.0


def _unpack(blob: bytes) -> tuple[dict, bytes]:
    assert blob[:4] == b"glTF"
    jlen, _ = struct.unpack_from("<II", blob, 12)
    blen, _ = struct.unpack_from("<II", blob, 20 + jlen)
    return json.loads(blob[20:20 + jlen]), blob[28 + jlen:28 + jlen + blen]


def _pack(doc: dict, body: bytes) -> bytes:
    text = json.dumps(doc).encode()
    text += b" " * (-len(text) % 4)
    body += b"\0" * (-len(body) % 4)
    return (struct.pack("<4sII", b"glTF", 2, 28 + len(text) + len(body)) + struct.pack("<II", len(text), 0x4E4F534A)
            + text + struct.pack("<II", len(body), 0x004E4942) + body)


def _build(prims: list[dict], nodes: list[dict] | None = None) -> bytes:
    """A .glb from primitives {semantic: (array [n, w], normalized, byteStride or None, byteOffset)}."""
    codes = {np.dtype("i1"): 5120, np.dtype("u1"): 5121, np.dtype("i2"): 5122, np.dtype("u2"): 5123,
             np.dtype("f4"): 5126}
    kinds = {1: "SCALAR", 3: "VEC3", 4: "VEC4"}
    doc = {"asset": {"version": "2.0"}, "extensionsUsed": ["KHR_gaussian_splatting"], "bufferViews": [],
           "accessors": [], "meshes": [{"primitives": []}]}
    body = b""
    for prim in prims:
        attrs = {}
        for semantic, (arr, normalized, stride, offset) in prim.items():
            arr = np.ascontiguousarray(arr)
            arr = arr.reshape(len(arr), -1)
            elem = arr.dtype.itemsize * arr.shape[1]
            step = stride or elem
            raw = bytearray(offset + step * len(arr))
            for i, row in enumerate(arr):
                raw[offset + i * step:offset + i * step + elem] = row.tobytes()
            view = {"buffer": 0, "byteOffset": len(body), "byteLength": len(raw)}
            if stride:
                view["byteStride"] = stride
            body += bytes(raw) + b"\0" * (-len(raw) % 4)
            doc["bufferViews"].append(view)
            acc = {"bufferView": len(doc["bufferViews"]) - 1, "byteOffset": offset,
                   "componentType": codes[arr.dtype], "count": len(arr), "type": kinds[arr.shape[1]]}
            if normalized:
                acc["normalized"] = True
            doc["accessors"].append(acc)
            attrs[semantic] = len(doc["accessors"]) - 1
        doc["meshes"][0]["primitives"].append({"attributes": attrs, "mode": 0, "extensions": {
            "KHR_gaussian_splatting": {"kernel": "ellipse", "colorSpace": "srgb_rec709_display"}}})
    doc["buffers"] = [{"byteLength": len(body)}]
    if nodes is not None:
        doc["nodes"], doc["scenes"], doc["scene"] = nodes, [{"nodes": [0]}], 0
    return _pack(doc, body)


def _float_prim(g: Gaussians, stride: int | None = None) -> dict:
    """A primitive of float attributes holding `g` in glTF axes (a half turn about z from INRIA's)."""
    flip = np.array([-1, -1, 1], np.float32)
    q = g.quats.numpy()
    prim = {"POSITION": (g.means.numpy() * flip, False, stride, 0),
            K + "ROTATION": (np.concatenate([q[:, 1:] * flip, q[:, :1]], 1), False, stride, 0),
            K + "SCALE": (np.exp(g.scales.numpy()), False, stride, 0),
            K + "OPACITY": (torch.sigmoid(g.opacities).numpy(), False, stride, 0)}
    odd = [m % 2 for d in range(4) for m in range(-d, d + 1)]
    for d in range(g.sh_degree + 1):
        for n in range(2 * d + 1):
            sign = -1.0 if odd[d * d + n] else 1.0
            prim[f"{K}SH_DEGREE_{d}_COEF_{n}"] = (g.sh[:, d * d + n].numpy() * sign, False, stride, 0)
    return prim


def _assert_same(a: Gaussians, b: Gaussians) -> None:
    assert a.n == b.n and a.sh_degree == b.sh_degree
    assert torch.equal(a.means, b.means) and torch.equal(a.sh, b.sh)
    qa, qb = (torch.nn.functional.normalize(q, dim=1) for q in (a.quats, b.quats))
    assert torch.allclose(qa, qb, atol=2e-7)
    assert torch.allclose(a.scales, b.scales, rtol=1e-6, atol=1e-6)
    assert torch.allclose(torch.sigmoid(a.opacities), torch.sigmoid(b.opacities), atol=1e-7)


@pytest.mark.parametrize("degree", [0, 1, 2, 3])
def test_round_trip_is_lossless_at_every_sh_degree(tmp_path, sh3_scene, degree):
    g = sh3_scene.with_sh_degree(degree)
    out = load(save(g, tmp_path / "s.glb"))
    _assert_same(g, out)
    embedded = load(save(g, tmp_path / "s.gltf"))
    for key in ("means", "quats", "scales", "opacities", "sh"):
        assert torch.equal(getattr(out, key), getattr(embedded, key))
    assert psnr(g, out) >= LOSSLESS_DB
    doc, _ = _unpack((tmp_path / "s.glb").read_bytes())
    names = set(doc["meshes"][0]["primitives"][0]["attributes"])
    assert {n for n in names if "SH_DEGREE" in n} == {f"{K}SH_DEGREE_{d}_COEF_{n}" for d in range(degree + 1)
                                                     for n in range(2 * d + 1)}


def test_written_bytes_follow_the_spec_conventions(tmp_path):
    """Read back without our reader: glTF axes, xyzw unit quaternions, linear scale, linear opacity, SH DC
    as stored and odd orders negated by the axis change; POINTS; a well-formed GLB container."""
    sh = torch.arange(48, dtype=torch.float32).reshape(1, 16, 3) / 10 - 2
    g = Gaussians(torch.tensor([[1.0, 2.0, 3.0]]), torch.tensor([[2.0, 0.2, 0.4, 0.6]]),
                  torch.tensor([[-1.0, -2.0, 0.5]]), torch.tensor([0.3]), sh)
    blob = (path := save(g, tmp_path / "one.glb")).read_bytes()
    magic, version, length = struct.unpack_from("<4sII", blob)
    assert (magic, version, length) == (b"glTF", 2, len(blob)) and length % 4 == 0
    doc, body = _unpack(blob)
    prim = doc["meshes"][0]["primitives"][0]
    assert prim["mode"] == 0 and prim["extensions"]["KHR_gaussian_splatting"]["kernel"] == "ellipse"
    assert prim["extensions"]["KHR_gaussian_splatting"]["colorSpace"] == "srgb_rec709_display"

    def value(semantic):
        acc = doc["accessors"][prim["attributes"][semantic]]
        view = doc["bufferViews"][acc["bufferView"]]
        assert acc["componentType"] == 5126 and acc["count"] == 1 and view["byteOffset"] % 4 == 0
        return np.frombuffer(body, "<f4", {"SCALAR": 1, "VEC3": 3, "VEC4": 4}[acc["type"]], view["byteOffset"])

    np.testing.assert_array_equal(value("POSITION"), [-1.0, -2.0, 3.0])
    q = np.array([2.0, 0.2, 0.4, 0.6]) / np.linalg.norm([2.0, 0.2, 0.4, 0.6])
    np.testing.assert_allclose(value(K + "ROTATION"), [-q[1], -q[2], q[3], q[0]], rtol=1e-6)
    np.testing.assert_allclose(value(K + "SCALE"), np.exp([-1.0, -2.0, 0.5]), rtol=1e-6)
    np.testing.assert_allclose(value(K + "OPACITY"), [1 / (1 + math.exp(-0.3))], rtol=1e-6)
    np.testing.assert_array_equal(value(K + "SH_DEGREE_0_COEF_0"), sh[0, 0].numpy())
    np.testing.assert_array_equal(value(K + "SH_DEGREE_1_COEF_0"), -sh[0, 1].numpy())  # m = -1
    np.testing.assert_array_equal(value(K + "SH_DEGREE_1_COEF_1"), sh[0, 2].numpy())  # m = 0
    np.testing.assert_array_equal(value(K + "SH_DEGREE_3_COEF_1"), sh[0, 10].numpy())  # m = -2
    np.testing.assert_array_equal(value(K + "SH_DEGREE_3_COEF_6"), -sh[0, 15].numpy())  # m = 3
    assert doc["accessors"][prim["attributes"]["POSITION"]]["min"] == [-1.0, -2.0, 3.0]
    assert load(path).n == 1


@pytest.mark.parametrize("source", ["motorcycle", "sh3"])
def test_splat_transform_glb_renders_like_the_source_ply(tmp_path, splat_transform, motorcycle, sh3_scene, source):
    if source == "motorcycle":
        ply, g = ROOT / "assets" / "scenes" / "motorcycle.ply", motorcycle
    else:
        ply, g = save(sh3_scene, tmp_path / "sh3.ply"), load(tmp_path / "sh3.ply")
    splat_transform(ply, tmp_path / "out.glb")
    out = load(tmp_path / "out.glb")
    assert out.n == g.n and out.sh_degree == g.sh_degree
    assert torch.equal(out.means, g.means) and torch.equal(out.sh, g.sh)  # the axis change is exact
    assert psnr(g, out) >= LOSSLESS_DB


def _validator() -> Path | None:
    env = os.environ.get("NEURALFRAME_GLTF_VALIDATOR")  # a node_modules/gltf-validator folder
    for candidate in (env, ROOT / ".cache" / "npm" / "node_modules" / "gltf-validator"):
        if candidate and (Path(candidate) / "index.js").is_file() and shutil.which("node"):
            return Path(candidate)
    return None


_VALIDATE_JS = """
const v = require(process.argv[1]); const fs = require('fs');
v.validateBytes(new Uint8Array(fs.readFileSync(process.argv[2])), {maxIssues: 0,
    externalResourceFunction: () => Promise.reject(new Error('no external resources'))})
  .then(r => console.log(JSON.stringify(r.issues.messages)))
  .catch(e => { console.error(String(e)); process.exit(2); });
"""


def _issues(validator: Path, path: Path) -> list[dict]:
    run = subprocess.run(["node", "-e", _VALIDATE_JS, str(validator), str(path)], capture_output=True, text=True,
                         timeout=120, check=False)
    assert run.returncode == 0, run.stderr
    # gltf-validator 2.0.0-dev.3.10 predates KHR_gaussian_splatting: it cannot validate the extension and
    # calls its attribute names invalid; everything else (container, accessors, data, min/max) it checks
    return [m for m in json.loads(run.stdout)
            if not (m["code"] == "UNSUPPORTED_EXTENSION" and "KHR_gaussian_splatting" in m["message"])
            and not (m["code"] == "MESH_PRIMITIVE_INVALID_ATTRIBUTE" and K in m["pointer"])]


@pytest.mark.parametrize("suffix", [".glb", ".gltf"])
def test_khronos_validator_finds_no_issue(tmp_path, sh3_scene, suffix):
    validator = _validator()
    if validator is None:
        pytest.skip("the Khronos glTF validator is not installed (`npm install --prefix .cache/npm "
                    "gltf-validator`, or NEURALFRAME_GLTF_VALIDATOR=<node_modules/gltf-validator>) or node is absent")
    path = save(sh3_scene, tmp_path / f"s{suffix}")
    assert _issues(validator, path) == []
    if suffix == ".glb":  # the oracle does look at the data: a lying POSITION max is reported
        doc, body = _unpack(path.read_bytes())
        doc["accessors"][0]["max"] = [1e6, 1e6, 1e6]
        (tmp_path / "bad.glb").write_bytes(_pack(doc, body))
        assert any(m["code"] == "ACCESSOR_MAX_MISMATCH" for m in _issues(validator, tmp_path / "bad.glb"))


def test_strided_normalised_sparse_and_several_primitives(tmp_path, sh3_scene):
    g = sh3_scene[:50].with_sh_degree(1)
    n = 7
    pos = np.arange(n * 3, dtype=np.float32).reshape(n, 3)
    rot = np.tile(np.array([[0, 0, 32767, 0]], np.int16), (n, 1))  # a half turn about glTF z, normalised
    scale = np.full((n, 3), 2, np.uint8)  # unnormalised unsigned byte: scale 2
    alpha = np.full((n, 1), 51, np.uint8)  # normalised: 0.2
    dc = np.ones((n, 3), np.float32)
    quant = {"POSITION": (pos, False, 16, 4), K + "ROTATION": (rot, True, None, 0),
             K + "SCALE": (scale, False, 4, 0), K + "OPACITY": (alpha, True, None, 0),
             K + "SH_DEGREE_0_COEF_0": (dc, False, None, 0)}
    blob = _build([_float_prim(g, stride=64), quant])
    doc, body = _unpack(blob)  # make the last DC accessor sparse: row 3 becomes (5, 6, 7)
    extra = len(body)
    body += struct.pack("<I", 3) + np.array([5, 6, 7], np.float32).tobytes()
    doc["bufferViews"] += [{"buffer": 0, "byteOffset": extra, "byteLength": 4},
                           {"buffer": 0, "byteOffset": extra + 4, "byteLength": 12}]
    nv = len(doc["bufferViews"])
    doc["accessors"][-1]["sparse"] = {"count": 1, "indices": {"bufferView": nv - 2, "componentType": 5125},
                                      "values": {"bufferView": nv - 1}}
    doc["buffers"][0]["byteLength"] = len(body)
    (tmp_path / "mixed.glb").write_bytes(_pack(doc, body))
    out = load(tmp_path / "mixed.glb")
    assert out.n == g.n + n and out.sh_degree == 1
    _assert_same(g, out[:g.n].with_sh_degree(1))
    q = out[g.n:]
    np.testing.assert_array_equal(q.means.numpy(), pos * [-1, -1, 1])
    np.testing.assert_allclose(q.quats.numpy(), np.tile([[0, 0, 0, 1]], (n, 1)), atol=1e-7)
    np.testing.assert_allclose(q.scales.numpy(), np.log(2.0), rtol=1e-6)
    np.testing.assert_allclose(torch.sigmoid(q.opacities).numpy(), 0.2, rtol=1e-6)
    assert torch.equal(q.sh[3, 0], torch.tensor([5.0, 6.0, 7.0])) and torch.equal(q.sh[0, 0], torch.ones(3))
    assert torch.equal(q.sh[:, 1:], torch.zeros(n, 3, 3))  # degree 0 primitive padded to degree 1


@pytest.mark.parametrize("scale", [[2.0, 2.0, 2.0], [1.0, 3.0, 0.5]])
def test_node_transforms_apply_to_means_covariances_and_colour(sh3_scene, tmp_path, scale):
    g = sh3_scene[:200]
    angle = 0.7
    node = {"translation": [0.5, -1.0, 2.0], "rotation": [0.0, math.sin(angle / 2), 0.0, math.cos(angle / 2)],
            "scale": scale}
    (tmp_path / "n.glb").write_bytes(_build([_float_prim(g)], nodes=[{"children": [1]}, {"mesh": 0, **node}]))
    out = load(tmp_path / "n.glb")
    flip = np.diag([-1.0, -1.0, 1.0])
    r = _quat_to_matrix(np.array([[math.cos(angle / 2), 0.0, math.sin(angle / 2), 0.0]]))[0]
    lin = flip @ r @ np.diag(scale) @ flip  # INRIA axes -> glTF, node, back
    t = flip @ np.array(node["translation"])
    np.testing.assert_allclose(out.means.numpy(), g.means.numpy() @ lin.T + t, atol=1e-5)

    def cov(x):
        q = torch.nn.functional.normalize(x.quats.double(), dim=1).numpy()
        m = _quat_to_matrix(q) * np.exp(x.scales.double().numpy())[:, None, :]
        return m @ m.transpose(0, 2, 1)
    np.testing.assert_allclose(cov(out), lin @ cov(g) @ lin.T, atol=1e-6 * np.abs(cov(g)).max() * 9)
    rot = flip @ r @ flip  # colour seen along d after the transform = colour along rot^T d before
    dirs = torch.nn.functional.normalize(torch.randn(g.n, 3, dtype=torch.float64), dim=1)
    after = sh_to_rgb(out.sh.double(), dirs, 3)
    before = sh_to_rgb(g.sh.double(), dirs @ torch.from_numpy(rot), 3)
    torch.testing.assert_close(after, before, atol=1e-5, rtol=1e-5)


def test_spz_compressed_primitive_is_read_through_spz(tmp_path, sh3_scene):
    g = sh3_scene[:300]
    blob = spz.encode(g, "s.spz")
    doc = {"asset": {"version": "2.0"}, "extensionsUsed": ["KHR_gaussian_splatting",
                                                          "KHR_gaussian_splatting_compression_spz_2"],
           "extensionsRequired": ["KHR_gaussian_splatting_compression_spz_2"],
           "buffers": [{"byteLength": len(blob)}], "bufferViews": [{"buffer": 0, "byteLength": len(blob)}],
           "accessors": [{"componentType": 5126, "count": g.n, "type": "VEC3"}],
           "meshes": [{"primitives": [{"attributes": {"POSITION": 0}, "mode": 0, "extensions": {
               "KHR_gaussian_splatting": {"kernel": "ellipse", "colorSpace": "srgb_rec709_display", "extensions": {
                   "KHR_gaussian_splatting_compression_spz_2": {"bufferView": 0}}}}}]}]}
    (tmp_path / "c.glb").write_bytes(_pack(doc, blob))
    out, ref = load(tmp_path / "c.glb"), spz.read(blob, "s.spz")
    for key in ("means", "quats", "scales", "opacities", "sh"):
        assert torch.equal(getattr(out, key), getattr(ref, key)), key
    assert psnr(g, out) > 25.0  # the scene itself, through .spz's 8-bit quantisation
    doc["accessors"][0]["count"] = g.n + 1
    (tmp_path / "lie.glb").write_bytes(_pack(doc, blob))
    with pytest.raises(InputError, match="counts 301 Gaussians, the SPZ data 300"):
        load(tmp_path / "lie.glb")


def test_external_buffers_are_read_beside_the_file_and_nowhere_else(tmp_path, sh3_scene):
    g = sh3_scene[:100]
    doc = json.loads(save(g, tmp_path / "e.gltf").read_bytes())
    uri = doc["buffers"][0]["uri"]
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "data 1.bin").write_bytes(base64.b64decode(uri.split(",", 1)[1]))
    for target, expect in [("sub/data%201.bin", None), ("../x.bin", "leaves the folder"),
                           ("https://example.com/x.bin", "remote or absolute"), ("/etc/passwd", "remote or absolute"),
                           ("missing.bin", "not found")]:
        doc["buffers"][0]["uri"] = target
        (tmp_path / "e.gltf").write_text(json.dumps(doc))
        if expect is None:
            _assert_same(g, load(tmp_path / "e.gltf"))
        else:
            with pytest.raises(InputError, match=expect):
                load(tmp_path / "e.gltf")


def _edit(doc, body, fn):
    doc = json.loads(json.dumps(doc))
    fn(doc)
    return _pack(doc, body)


def _hostile_cases(good: bytes) -> list[tuple[str, bytes, str]]:
    doc, body = _unpack(good)
    p = lambda d: d["meshes"][0]["primitives"][0]
    nan_body = bytearray(body)
    nan_body[0:4] = struct.pack("<f", float("nan"))
    cases = [
        ("magic", b"GLTF" + good[4:], "does not start with the magic 'glTF'"),
        ("version", good[:4] + struct.pack("<I", 1) + good[8:], "GLB version 1"),
        ("length", good[:8] + struct.pack("<I", len(good) + 100) + good[12:], "truncated: the GLB header"),
        ("chunk", good[:12] + struct.pack("<I", 10 ** 8) + good[16:], "a GLB chunk declares 100,000,000 bytes"),
        ("json", good[:20] + b"#" + good[21:], "cannot be parsed"),
        ("cut", good[:-40], "truncated"),
        ("bin", _pack(doc, body[:100]), "truncated: buffers\\[0\\]"),
        ("count", _edit(doc, body, lambda d: d["accessors"][0].update(count=10 ** 6)), "need 12,000,000 bytes"),
        ("huge", _edit(doc, body, lambda d: d["accessors"][0].update(count=10 ** 10)), "declares 10,000,000,000"),
        ("view", _edit(doc, body, lambda d: d["bufferViews"][0].update(byteOffset=len(body))), "past the end"),
        ("index", _edit(doc, body, lambda d: p(d)["attributes"].update({"POSITION": 99})), "accessors\\[99\\]"),
        ("missing", _edit(doc, body, lambda d: p(d)["attributes"].pop(K + "OPACITY")), "lacks the required"),
        ("mode", _edit(doc, body, lambda d: p(d).update(mode=4)), "mode POINTS"),
        ("type", _edit(doc, body, lambda d: d["accessors"][p(d)["attributes"][K + "SCALE"]].update(
            componentType=5122)), "allows VEC3 of"),
        ("partial", _edit(doc, body, lambda d: p(d)["attributes"].pop(K + "SH_DEGREE_1_COEF_2")), "partly defined"),
        ("required", _edit(doc, body, lambda d: d.update(extensionsRequired=["KHR_draco_mesh_compression"])),
         "requires glTF extensions"),
        ("none", _edit(doc, body, lambda d: p(d).pop("extensions")), "no KHR_gaussian_splatting primitive"),
        ("nan", _pack(doc, bytes(nan_body)), "NaN or infinite"),
        ("cycle", _edit(doc, body, lambda d: d.update(nodes=[{"mesh": 0, "children": [0]}])), "reached twice"),
    ]
    for attr, bad, expect in [(K + "OPACITY", 1.5, "OPACITY outside"), (K + "SCALE", -1.0, "negative SCALE")]:
        at = doc["bufferViews"][doc["accessors"][p(doc)["attributes"][attr]]["bufferView"]]["byteOffset"]
        patched = bytearray(body)
        patched[at:at + 4] = struct.pack("<f", bad)
        cases.append((attr, _pack(doc, bytes(patched)), expect))
    return cases


def test_hostile_files_give_one_clear_error(tmp_path, sh3_scene):
    good = save(sh3_scene[:20].with_sh_degree(1), tmp_path / "good.glb").read_bytes()
    for label, blob, expect in _hostile_cases(good):
        path = tmp_path / f"{label}.glb"
        path.write_bytes(blob)
        with pytest.raises(InputError, match=expect) as info:
            load(path)
        assert str(path) in str(info.value), label
    kinds = ["VEC3", "VEC4", "VEC3", "SCALAR", "VEC3"]
    bad = {"asset": {"version": "2.0"},
           "buffers": [{"byteLength": 24, "uri": "data:application/octet-stream;base64,@@@@"}],
           "bufferViews": [{"buffer": 0, "byteLength": 24}],
           "accessors": [{"bufferView": 0, "componentType": 5126, "count": 2, "type": "VEC3"}]
           + [{"componentType": 5126, "count": 2, "type": t} for t in kinds[1:]],
           "meshes": [{"primitives": [{"mode": 0, "attributes": dict(zip(gltf._REQUIRED, range(5))),
                                       "extensions": {"KHR_gaussian_splatting": {"kernel": "ellipse"}}}]}]}
    (tmp_path / "bad.gltf").write_text(json.dumps(bad))
    with pytest.raises(InputError, match="not valid base64"):
        load(tmp_path / "bad.gltf")
    with pytest.raises(InputError, match="cannot hold an empty scene"):
        gltf.encode(sh3_scene[:0], "empty.glb")
