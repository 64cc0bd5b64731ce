"""TensorRT engines from the exported graphs: built, cached, checked against torch on the GPU.

Skipped without TensorRT or a CUDA GPU (never faked): `pip install tensorrt` on a machine with one.
"""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

pytestmark = pytest.mark.cuda


@pytest.fixture(scope="module")
def trt():
    return pytest.importorskip("tensorrt")


def test_segmenter_engines_pass_parity_and_are_cached(trt, tmp_path):
    from neuralframe.export import ExportSettings, export

    cache = tmp_path / "cache"
    settings = ExportSettings("segmenter", out=str(tmp_path / "a"), to="tensorrt", fp16=True, dynamic=True, runs=5,
                              cache_dir=str(cache))
    report = export(settings)
    for g in report["graphs"]:
        for precision in ("fp32", "fp16"):
            engine = g["tensorrt"][precision]
            assert engine["parity"]["passed"], engine["parity"]["failed"]
            assert engine["cached"] is False and engine["tensorrt"] == trt.__version__
            assert (tmp_path / "a" / engine["file"]["path"]).stat().st_size > 1000
            assert engine["speed"]["tensorrt_ms"] > 0
    again = export(dataclasses.replace(settings, out=str(tmp_path / "b")))
    assert all(g["tensorrt"][p]["cached"] for g in again["graphs"] for p in ("fp32", "fp16"))
    on_disk = json.loads((tmp_path / "b" / "segmenter.report.json").read_text())
    assert on_disk["to"] == "tensorrt" and on_disk["passed"]


def test_rvm_and_nerf_engines_pass_parity(trt, tmp_path):
    from neuralframe.export import ExportSettings, export

    for model, extra in (("rvm", {"ratios": (0.25,), "size": (288, 512)}), ("nerf-field", {})):
        report = export(ExportSettings(model, out=str(tmp_path / model), to="tensorrt", random_weights=True,
                                       runs=3, cache_dir=str(tmp_path / "cache"), **extra))
        for g in report["graphs"]:
            assert g["tensorrt"]["fp32"]["parity"]["passed"], g["tensorrt"]["fp32"]["parity"]["failed"]


def test_int8_engine_keeps_the_segmenter_mask(trt, tmp_path):
    from neuralframe.export import ExportSettings, export

    report = export(ExportSettings("segmenter", out=str(tmp_path / "o"), to="tensorrt", int8=True, runs=3,
                                   cache_dir=str(tmp_path / "cache")))
    for g in report["graphs"]:
        assert g["tensorrt"]["int8"]["accuracy"]["mask_iou_mean"] >= 0.75


def test_engine_runner_has_the_engine_protocol(trt, tmp_path):
    from neuralframe.backend.runtime import Engine
    from neuralframe.export import ExportSettings, export
    from neuralframe.export.tensorrt import TensorRTEngine

    export(ExportSettings("segmenter", out=str(tmp_path / "o"), to="tensorrt", dynamic=True, runs=1,
                          cache_dir=str(tmp_path / "cache")))
    engine = TensorRTEngine(tmp_path / "o" / "segmenter.fp32.engine")
    assert isinstance(engine, Engine)
    out = engine(image=torch.rand(3, 3, 256, 256))
    assert out["mask"].shape == (3, 1, 256, 256) and out["mask"].is_cuda


def test_matting_runs_on_tensorrt_engines(trt, tmp_path, monkeypatch):
    """`--backend tensorrt` on matte: the segmenter and RVM runners build float16 engines for the frame size
    and give the torch runners' masks within float16's error."""
    import numpy as np

    from neuralframe.export.matting import matting_engines
    from neuralframe.matting.rvm import RVM
    from neuralframe.matting.rvm_matter import RVMMatter
    from neuralframe.matting.segmenter import SegmenterRunner

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    rng = np.random.default_rng(0)
    frames = [torch.from_numpy(rng.integers(0, 256, (144, 256, 3), dtype=np.uint8)) for _ in range(3)]
    masks = {}
    for backend in ("torch", "tensorrt"):
        runner = SegmenterRunner(engines=matting_engines(backend)).prepare(144, 256)
        masks[backend] = [runner(f)[0] for f in frames]
    for a, b in zip(masks["torch"], masks["tensorrt"]):
        assert (a - b.cpu()).abs().max() < 2e-2
    torch.manual_seed(0)
    path = tmp_path / "rvm.pth"
    torch.save(RVM().state_dict(), path)
    alphas = {}
    for backend in ("torch", "tensorrt"):
        matter = RVMMatter(path, downsample_ratio=0.5, engines=matting_engines(backend)).prepare(144, 256)
        alphas[backend] = [matter(f) for f in frames]  # the recurrent state carried on the engine
    for a, b in zip(alphas["torch"], alphas["tensorrt"]):
        assert (a - b).abs().max() < 2e-2
