"""A torch module and its ONNX export answer the same named call with the same tensors."""

import pytest
import torch

from neuralframe.backend.runtime import OnnxEngine, TensorSpec, TorchEngine, load_engine
from neuralframe.errors import InputError


class TwoHeads(torch.nn.Module):
    """A small recurrent-style model: image and state in, output and new state out."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.mix = torch.nn.Conv2d(8, 4, 1)

    def forward(self, src, state):
        feat = torch.relu(self.conv(src))
        new_state = torch.tanh(self.mix(torch.cat([feat, state], dim=1)))
        return torch.sigmoid(new_state.mean(1, keepdim=True)), new_state


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    torch.manual_seed(0)
    model = TwoHeads().eval()
    path = tmp_path_factory.mktemp("onnx") / "two_heads.onnx"
    args = (torch.rand(1, 3, 16, 16), torch.zeros(1, 4, 16, 16))
    torch.onnx.export(model, args, str(path), input_names=["src", "state"], output_names=["mask", "state_out"],
                      dynamic_axes={"src": {2: "h", 3: "w"}, "state": {2: "h", 3: "w"}}, opset_version=17,
                      dynamo=False)
    return model, path


def test_torch_and_onnx_engines_agree(exported):
    model, path = exported
    torch_engine = TorchEngine(model, ["src", "state"], ["mask", "state_out"])
    onnx_engine = OnnxEngine(path)
    assert [s.name for s in onnx_engine.inputs] == ["src", "state"]
    assert onnx_engine.inputs[0].shape == (1, 3, "h", "w")
    state_t = state_o = torch.zeros(1, 4, 24, 20)
    for step in range(3):  # the recurrent state round-trips through both engines
        src = torch.rand(1, 3, 24, 20, generator=torch.Generator().manual_seed(step))
        a = torch_engine(src=src, state=state_t)
        b = onnx_engine(src=src, state=state_o)
        assert set(a) == set(b) == {"mask", "state_out"}
        torch.testing.assert_close(b["mask"], a["mask"], atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(b["state_out"], a["state_out"], atol=1e-5, rtol=1e-4)
        state_t, state_o = a["state_out"], b["state_out"]
    assert "CPUExecutionProvider" in onnx_engine.providers


def test_engine_input_errors(exported):
    _, path = exported
    engine = load_engine(path)
    with pytest.raises(InputError, match="missing input"):
        engine(src=torch.rand(1, 3, 8, 8))
    with pytest.raises(InputError, match="unexpected input"):
        engine(src=torch.rand(1, 3, 8, 8), state=torch.zeros(1, 4, 8, 8), extra=torch.zeros(1))
    with pytest.raises(InputError, match=r"input 'src' must be \[1, 3, 'h', 'w'\], got \[1, 5, 8, 8\]"):
        engine(src=torch.rand(1, 5, 8, 8), state=torch.zeros(1, 4, 8, 8))


def test_bad_model_files(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        OnnxEngine(tmp_path / "none.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x00garbage" * 50)
    with pytest.raises(InputError, match="could not be loaded"):
        OnnxEngine(junk)
    with pytest.raises(InputError, match="not a model file"):
        load_engine(tmp_path / "model.bin")


def test_torch_engine_checks_specs():
    engine = TorchEngine(torch.nn.Identity(), [TensorSpec("x", (2, "n"), "float32")], ["y"])
    assert torch.equal(engine(x=torch.ones(2, 5))["y"], torch.ones(2, 5))
    with pytest.raises(InputError, match="must have 2 dimensions"):
        engine(x=torch.ones(2, 5, 1))


def test_backend_names():
    from neuralframe.backend.runtime import resolve_backend

    assert resolve_backend("torch") == "torch"
    assert resolve_backend("onnx") == resolve_backend("onnxruntime") == "onnxruntime"
    assert resolve_backend("tensorrt") == "tensorrt"
    with pytest.raises(InputError, match="unknown backend 'openvino': use one of torch, onnxruntime, tensorrt"):
        resolve_backend("openvino")


def test_tensorrt_engine_files_need_tensorrt(tmp_path):
    """A TensorRT engine file goes to the TensorRT engine, which says how to get TensorRT where it is missing."""
    pytest.importorskip("torch")
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("TensorRT is installed here")
    from neuralframe.errors import MissingDependencyError

    plan = tmp_path / "model.engine"
    plan.write_bytes(b"\x00" * 64)
    with pytest.raises(MissingDependencyError, match="needs TensorRT: pip install tensorrt"):
        load_engine(plan)
    with pytest.raises(InputError, match="use .onnx, or a TensorRT .engine"):
        load_engine(tmp_path / "model.tflite")
