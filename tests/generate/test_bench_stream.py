"""`neuralframe bench stream` end to end on a small random-weights pipeline folder: one JSON object with the
issue's fields, equal network evaluations for the engine and diffusers, and clear errors."""

from __future__ import annotations

import json
import os

import pytest
import torch

from cli_helpers import nf, one_clear_line
from test_stream import _pipe


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    from neuralframe.generate.models.classifier import ShapeClassifier

    root = tmp_path_factory.mktemp("bench-stream")
    _pipe().save_pretrained(root / "model")
    torch.manual_seed(0)
    from neuralframe.generate.train.tiny_vae import build_tiny_vae

    build_tiny_vae().save_pretrained(root / "model" / "vae_tiny")
    ShapeClassifier().save(root / "classifier")
    return root


def test_bench_stream_json(folders):
    r = nf("bench", "stream", "--model", str(folders / "model"), "--classifier", str(folders / "classifier"),
           "--size", "64", "--quick", "--backend", "onnxruntime", "--json",
           env={**os.environ, "XDG_CACHE_HOME": str(folders / "cache")})
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    for key in ("fps_engine", "fps_diffusers", "ratio_vs_diffusers_mixed", "ratio_vs_diffusers_like_for_like",
                "rcfg_self_vs_full_ratio",
                "similarity_skip_rate_static", "temporal_diff_bank", "temporal_diff_nobank"):
        assert isinstance(result[key], float), key
    assert result["diffusers_pipeline"] == "LatentConsistencyModelImg2ImgPipeline"
    assert result["nfe_per_frame_engine"] == result["nfe_per_frame_diffusers"] == 2
    assert result["checks"]["same_nfe_as_diffusers"]
    assert abs(result["ratio_vs_diffusers_mixed"] - result["fps_engine"] / result["fps_diffusers"]) < 0.02
    assert abs(result["ratio_vs_diffusers_like_for_like"] - result["fps_engine_torch"] / result["fps_diffusers"]) < 0.02
    assert "ratio_vs_diffusers_like_for_like_ge_1" in result["checks"] and "adherence_every_config_ge_0.7" in result["checks"]
    assert "adherence_nobank_ge_0.7" in result["checks"]
    assert 0.0 < result["similarity_skip_rate_static"] < 1.0  # camera noise on a static scene: mostly skipped
    assert result["size"] == "64x64" and result["native_size"] == "64x64"
    assert result["backend"] == "onnxruntime" and result["tiny_vae"]
    configs = result["fps_engine_configs"]
    assert set(configs) == {"torch", "torch_tiny_vae", "onnxruntime", "onnxruntime_tiny_vae"}
    assert result["fps_engine"] == max(configs.values()) == configs[result["engine_config"]]
    assert result["fps_engine_torch"] == configs["torch"]
    assert set(result["adherence_configs"]) == set(configs)


def test_bench_stream_bad_input(folders, tmp_path):
    one_clear_line(nf("bench", "stream", "--steps", "30,x", "--model", str(folders / "model")), "--steps")
    one_clear_line(nf("bench", "stream", "--size", "100", "--model", str(folders / "model")), "multiple of 8")
    one_clear_line(nf("bench", "stream", "--model", str(tmp_path / "nothing")), "no such model folder")
