"""The bundled segmenter: our .tflite reader, our torch module, parity with OpenCV's execution of the file."""

import hashlib
import json

import pytest
import torch
import torch.nn.functional as F

from neuralframe.errors import InputError
from neuralframe.matting import segmenter
from neuralframe.matting.tflite import read_tflite

VARIANTS = list(segmenter.VARIANTS)


def test_card_matches_the_files():
    card = json.loads((segmenter.ASSET_DIR / "card.json").read_text())
    assert card["license"] == "Apache-2.0" and card["source"]["npm"] == "@mediapipe/selfie_segmentation"
    for name, info in card["files"].items():
        data = (segmenter.ASSET_DIR / name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == info["sha256"]
    assert (segmenter.ASSET_DIR / "LICENSE").read_text().startswith("\n                                 Apache")


@pytest.mark.parametrize("variant,size", [("general", (256, 256)), ("landscape", (144, 256))])
def test_reader_sees_the_graph(variant, size):
    g = read_tflite(segmenter.model_path(variant)).subgraphs[0]
    assert g.tensors[g.inputs[0]].shape == (1, *size, 3)
    assert g.tensors[g.outputs[0]].shape == (1, *size, 1)
    names = {op.name for op in g.operators}
    assert {"CONV_2D", "DEPTHWISE_CONV_2D", "HARD_SWISH", "Convolution2DTransposeBias"} <= names
    model = segmenter.load_segmenter(variant=variant)
    assert model.size == size
    assert sum(p.numel() for p in model.parameters()) > 100_000


def _input(image: torch.Tensor, size) -> torch.Tensor:
    return F.interpolate(image.permute(2, 0, 1)[None].float() / 255.0, size=size, mode="area").contiguous()


@pytest.mark.parametrize("variant", VARIANTS)
def test_parity_with_opencv_on_real_images(variant, real_images):
    cv2 = pytest.importorskip("cv2")
    net = cv2.dnn.readNetFromTFLite(str(segmenter.model_path(variant)))
    model = segmenter.load_segmenter(variant=variant)
    fast = segmenter.optimize_for_cpu(segmenter.load_segmenter(variant=variant))
    for name, image in real_images.items():
        x = _input(image, model.size)
        net.setInput(x.numpy())
        theirs = torch.from_numpy(net.forward()).reshape(1, 1, *model.size)
        with torch.inference_mode():
            ours, ours_fast = model(x), fast(x)
        assert (ours - theirs).abs().max().item() <= 1e-3, name
        assert (ours_fast - theirs).abs().max().item() <= 1e-3, name


def test_finds_the_person(astronaut):
    model = segmenter.load_segmenter()
    mask = segmenter.segment(model, astronaut)  # [256, 256]
    assert mask.shape == (256, 256)
    assert mask[100:140, 100:140].mean() > 0.9  # her face
    assert mask[5:30, 226:251].mean() < 0.1  # the background, top right


def test_onnx_export_matches(tmp_path, astronaut):
    pytest.importorskip("onnxruntime")
    from neuralframe.backend.runtime import OnnxEngine

    model = segmenter.load_segmenter(variant="landscape")
    path = segmenter.export_onnx(model, tmp_path / "seg.onnx")
    x = _input(astronaut, model.size)
    out = OnnxEngine(path)(image=x)["mask"]
    with torch.inference_mode():
        torch.testing.assert_close(out, model(x), atol=1e-4, rtol=0)


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_runner_picks_the_variant_by_aspect(backend, astronaut):
    wide = F.interpolate(astronaut.permute(2, 0, 1)[None].float(), size=(180, 320))[0].permute(1, 2, 0)
    from neuralframe.export.matting import matting_engines

    runner = segmenter.SegmenterRunner(engines=matting_engines(backend))
    mask, guide = runner(wide.round().to(torch.uint8).contiguous())
    assert runner.resolved_variant == "landscape" and mask.shape == (144, 256) and guide.shape == (3, 144, 256)
    runner.close()


def test_errors(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        read_tflite(tmp_path / "missing.tflite")
    empty = tmp_path / "empty.tflite"
    empty.write_bytes(b"")
    with pytest.raises(InputError, match="empty"):
        read_tflite(empty)
    other = tmp_path / "model.tflite"
    other.write_bytes(b"\x00" * 64)
    with pytest.raises(InputError, match="not a TensorFlow Lite model"):
        read_tflite(other)
    with pytest.raises(InputError, match="unknown segmenter 'portrait'"):
        segmenter.model_path("portrait")
    from neuralframe.export.matting import matting_engines

    with pytest.raises(InputError, match="unknown matting backend 'tensorflow'"):
        matting_engines("tensorflow")
