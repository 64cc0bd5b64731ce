"""`neuralframe export` as a user meets it: files and report on disk, one-line errors, nothing half-written."""

from __future__ import annotations

import importlib
import json

import pytest
import torch
from cli_helpers import nf, one_clear_line


def test_export_rvm_from_a_state_dict_json(tmp_path):
    from neuralframe.export.rvm import random_rvm

    weights = tmp_path / "rvm.pth"
    torch.save(random_rvm(3).state_dict(), weights)  # the same keys as the official rvm_mobilenetv3.pth
    out = tmp_path / "out"
    result = nf("export", "rvm", "--model", str(weights), "-o", str(out), "--downsample-ratio", "0.25",
                "--size", "160x96", "--runs", "2", "--threads", "1", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["passed"] and report["graphs"][0]["weights"] == "rvm.pth"
    assert sorted(p.name for p in out.iterdir()) == ["rvm-ratio0.25.onnx", "rvm.report.json"]
    g = json.loads((out / "rvm.report.json").read_text())["graphs"][0]
    assert g["inputs"][0]["shape"] == [1, 3, 96, 160] and g["inputs"][1]["shape"] == [1, 16, 12, 20]
    assert g["parity"]["fp32"]["passed"] and g["tensorrt_lint"]["ok"]


def test_export_prints_the_table(tmp_path):
    result = nf("export", "segmenter", "-o", str(tmp_path / "seg"), "--runs", "1", "--threads", "1", "--dynamic")
    assert result.returncode == 0, result.stderr
    for fragment in ("segmenter-landscape", "opset", "image [N, 3, 256, 256] float32", "mask [N, 1, 144, 256]",
                     "onnx.checker", "TensorRT lint", "parity fp32", "pass", "speed (cpu)", "segmenter.report.json"):
        assert fragment in result.stdout, fragment
    assert sorted(p.name for p in (tmp_path / "seg").iterdir()) == [
        "segmenter-landscape.onnx", "segmenter.onnx", "segmenter.report.json"]


@pytest.mark.parametrize("args,fragments", [
    (["export", "unet"], ["unknown model 'unet'", "segmenter, rvm, nerf-field"]),
    (["export", "segmenter", "--to", "coreml"], ["unknown target 'coreml'"]),
    (["export", "segmenter", "--model", "missing.tflite"], ["--model 'missing.tflite' does not exist"]),
    (["export", "rvm"], ["no RVM weights are bundled", "--model"]),
    (["export", "nerf-field", "--model", "scene.ply"], ["does not exist"]),
    (["export", "nerf-field", "--int8", "--random-weights"], ["--int8 is not available for nerf-field"]),
    (["export", "segmenter", "--opset", "21"], ["--opset must be from 11 to 20, got 21"]),
    (["export", "segmenter", "--downsample-ratio", "0.5"], ["--downsample-ratio does not apply to segmenter"]),
    (["export", "rvm", "--random-weights", "--downsample-ratio", "1.5"],
     ["--downsample-ratio must be above 0 and at most 1, got 1.5"]),
])
def test_bad_input_is_one_clear_line_and_writes_nothing(tmp_path, args, fragments):
    out = tmp_path / "out"
    one_clear_line(nf(*args, "-o", str(out)), *fragments)
    assert not out.exists()


def test_wrong_kind_of_model_file(tmp_path):
    weights = tmp_path / "weights.bin"
    weights.write_bytes(b"\0" * 64)
    out = tmp_path / "out"
    one_clear_line(nf("export", "segmenter", "--model", str(weights), "-o", str(out)), "should be .tflite")
    assert not out.exists()


def test_unwritable_output_isone_clear_line(tmp_path):
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a folder")
    one_clear_line(nf("export", "segmenter", "-o", str(blocker)), "is a file, not a folder")
    one_clear_line(nf("export", "segmenter", "-o", str(blocker / "out")), "is a file, not a folder")
    one_clear_line(nf("export", "segmenter", "-o", "/proc/neuralframe-export"), "/proc/neuralframe-export")
    assert blocker.read_text() == "not a folder"


def _tensorrt_usable() -> bool:
    try:
        importlib.import_module("tensorrt")
    except ImportError:
        return False
    return torch.cuda.is_available()


@pytest.mark.skipif(_tensorrt_usable(), reason="TensorRT and a GPU are here: the engine tests run instead")
def test_tensorrt_missing_says_how_to_install_it(tmp_path):
    out = tmp_path / "out"
    result = nf("export", "segmenter", "--to", "tensorrt", "-o", str(out))
    one_clear_line(result, "tensorrt")
    assert "pip install tensorrt" in result.stderr or "NVIDIA GPU" in result.stderr
    assert not out.exists()
