import pytest
import torch

from neuralframe.backend import device
from neuralframe.errors import InputError, MissingDependencyError


def test_resolve_cpu_and_auto():
    assert device.resolve_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert device.resolve_device("auto").type == expected
    assert device.resolve_device(torch.device("cpu")).type == "cpu"


@pytest.mark.parametrize("bad", ["gpu", "cuda:x", "tpu:0", ""])
def test_unknown_device_names_the_choices(bad):
    with pytest.raises(InputError, match="auto, cpu, cuda or cuda:N"):
        device.resolve_device(bad)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU message")
def test_cuda_without_gpu_says_so():
    with pytest.raises(MissingDependencyError, match="no CUDA GPU"):
        device.resolve_device("cuda:0")


def test_dtype_policy():
    assert device.resolve_dtype("auto", "cpu") == torch.float32
    assert device.resolve_dtype("fp16") == torch.float16
    assert device.resolve_dtype(torch.bfloat16) == torch.bfloat16
    with pytest.raises(InputError, match="unknown dtype"):
        device.resolve_dtype("int3")


def test_probes_answer_without_importing():
    assert device.has_module("numpy")
    assert not device.has_module("surely_not_a_module_xyz")
    assert device.has_gsplat() == device.has_module("gsplat")
    assert "CPUExecutionProvider" in device.onnxruntime_providers()
    assert device.cpu_threads() >= 1


def test_require_names_the_extra():
    with pytest.raises(MissingDependencyError, match=r"neuralframe\[fake\]"):
        device.require("surely_not_a_module_xyz", "fake", "This feature")


def test_machine_info_is_one_dict_and_the_cards_line_formats_it():
    info = device.machine_info()
    assert {"cpu", "cores", "cores_available", "gpu", "platform", "python", "torch"} <= set(info)
    assert info["torch"] == torch.__version__ and 1 <= info["cores_available"] <= info["cores"]
    line = device.machine_line(dict(info, cpu="AMD EPYC", cores=2, gpu=None, torch="2.13.0+cpu", python="3.11.7"))
    assert line == "AMD EPYC, 2 cores, no GPU, torch 2.13.0+cpu, Python 3.11.7"  # as the model cards store it
