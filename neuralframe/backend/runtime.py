"""Engines: a torch module, an onnxruntime session and a TensorRT engine behind one call.

    engine = TorchEngine(model, inputs=["src", "r1"], outputs=["fgr", "pha", "r1_out"])
    out = engine(src=x, r1=state)            # dict of named torch tensors
    onnx = OnnxEngine("matting.onnx")        # same names, same call
    out2 = onnx(src=x, r1=state)

Inputs and outputs are torch tensors named as in the exported graph; missing or unexpected names,
wrong ranks and wrong fixed dimensions are reported before anything runs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, Sequence, runtime_checkable

from neuralframe.errors import InputError, MissingDependencyError

if TYPE_CHECKING:  # pragma: no cover
    import torch


# what a --backend option takes, everywhere: the module in torch, its ONNX graph in onnxruntime, or a
# TensorRT engine built from that graph
BACKENDS = ("torch", "onnxruntime", "tensorrt")


def resolve_backend(name: str) -> str:
    """A --backend value checked ("onnx" is read as "onnxruntime"); an InputError names the choices."""
    name = {"onnx": "onnxruntime", "ort": "onnxruntime", "trt": "tensorrt"}.get(name, name)
    if name not in BACKENDS:
        raise InputError(f"unknown backend '{name}': use one of {', '.join(BACKENDS)}")
    return name


@dataclass(frozen=True)
class TensorSpec:
    """A named tensor of an engine: `shape` entries are ints for fixed axes and strings for dynamic ones."""

    name: str
    shape: tuple[int | str, ...]
    dtype: str  # "float32", "float16", "int64", "uint8", ...

    def check(self, value: "torch.Tensor", engine: str) -> None:
        if value.ndim != len(self.shape):
            raise InputError(f"{engine}: input '{self.name}' must have {len(self.shape)} dimensions "
                             f"{list(self.shape)}, got {list(value.shape)}")
        for axis, (want, got) in enumerate(zip(self.shape, value.shape)):
            if isinstance(want, int) and want >= 0 and want != got:
                raise InputError(f"{engine}: input '{self.name}' must be {list(self.shape)}, got {list(value.shape)} "
                                 f"(axis {axis})")


@runtime_checkable
class Engine(Protocol):
    """Named tensors in, named tensors out."""

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    def __call__(self, **inputs: "torch.Tensor") -> dict[str, "torch.Tensor"]: ...


def _check_names(engine: str, specs: Sequence[TensorSpec], given: dict[str, Any]) -> None:
    wanted = [s.name for s in specs]
    missing = [n for n in wanted if n not in given]
    extra = [n for n in given if n not in wanted]
    if missing:
        raise InputError(f"{engine}: missing input(s) {', '.join(missing)} (inputs are {', '.join(wanted)})")
    if extra:
        raise InputError(f"{engine}: unexpected input(s) {', '.join(extra)} (inputs are {', '.join(wanted)})")


class TorchEngine:
    """A torch module called with its inputs in `inputs` order; its outputs (a tensor, a tuple or a
    dict) are named by `outputs`.

    Args:
        module: the model (put in eval mode; run under `torch.inference_mode`).
        inputs: input names, or TensorSpecs to check shapes.
        outputs: output names, in the order the module returns them.
        device: where inputs are moved before the call ("auto", "cpu", "cuda:N").
    """

    def __init__(self, module: "torch.nn.Module", inputs: Sequence[str | TensorSpec],
                 outputs: Sequence[str | TensorSpec], device: str = "cpu"):
        from neuralframe.backend.device import resolve_device

        self.module = module.eval()
        self.device = resolve_device(device)
        self.module.to(self.device)
        self.inputs = tuple(s if isinstance(s, TensorSpec) else TensorSpec(s, (), "") for s in inputs)
        self.outputs = tuple(s if isinstance(s, TensorSpec) else TensorSpec(s, (), "") for s in outputs)
        self.name = f"torch:{type(module).__name__}"

    def __call__(self, **inputs: "torch.Tensor") -> dict[str, "torch.Tensor"]:
        import torch

        _check_names(self.name, self.inputs, inputs)
        for spec in self.inputs:
            if spec.shape:
                spec.check(inputs[spec.name], self.name)
        args = [inputs[s.name].to(self.device) for s in self.inputs]
        with torch.inference_mode():
            result = self.module(*args)
        if isinstance(result, dict):
            return {s.name: result[s.name] for s in self.outputs}
        if isinstance(result, torch.Tensor):
            result = (result,)
        result = tuple(result)
        if len(result) != len(self.outputs):
            raise InputError(f"{self.name}: returned {len(result)} outputs, {len(self.outputs)} names given")
        return {s.name: r for s, r in zip(self.outputs, result)}


_ORT_DTYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(double)": "float64",
               "tensor(int64)": "int64", "tensor(int32)": "int32", "tensor(uint8)": "uint8",
               "tensor(int8)": "int8", "tensor(bool)": "bool"}


class OnnxEngine:
    """An ONNX model in onnxruntime, with the torch module's call signature.

    Args:
        path: the .onnx file.
        providers: "auto" (CUDA when onnxruntime has it and a GPU is there, else CPU), or a list.
        threads: intra-op threads (0: onnxruntime's default).
        spin: let onnxruntime's threads busy-wait for the next operator. Off by default: our engines run
            between torch operations and other sessions (a stream's encoder, UNet and decoder), and threads
            spinning after one session's run take the cores from the next.
    """

    def __init__(self, path: str | os.PathLike, providers: str | Sequence[str] = "auto", threads: int = 0,
                 spin: bool = False):
        from neuralframe.backend.device import has_onnxruntime

        if not has_onnxruntime():
            raise MissingDependencyError("running ONNX models needs onnxruntime: pip install onnxruntime")
        import onnxruntime as ort

        self.path = Path(path)
        if not self.path.is_file():
            raise InputError(f"ONNX model '{self.path}' does not exist")
        available = ort.get_available_providers()
        if providers == "auto":
            chosen = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
        else:
            chosen = list(providers)
            unknown = [p for p in chosen if p not in available]
            if unknown:
                raise MissingDependencyError(f"onnxruntime here has no {', '.join(unknown)} "
                                             f"(available: {', '.join(available)})")
        options = ort.SessionOptions()
        # warnings only about what it could not constant-fold (float16 nodes without CPU kernels): errors only
        options.log_severity_level = 3
        if threads:
            options.intra_op_num_threads = int(threads)
        if not spin:
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            options.add_session_config_entry("session.inter_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(str(self.path), sess_options=options, providers=chosen)
        except Exception as error:  # onnxruntime raises its own exception types for a bad file
            raise InputError(f"ONNX model '{self.path}' could not be loaded: {str(error).splitlines()[0]}") from None
        self.providers = tuple(self.session.get_providers())
        self.inputs = tuple(TensorSpec(i.name, tuple(_dim(d) for d in i.shape), _ORT_DTYPES.get(i.type, i.type))
                            for i in self.session.get_inputs())
        self.outputs = tuple(TensorSpec(o.name, tuple(_dim(d) for d in o.shape), _ORT_DTYPES.get(o.type, o.type))
                             for o in self.session.get_outputs())
        self.name = f"onnx:{self.path.name}"

    def __call__(self, **inputs: "torch.Tensor") -> dict[str, "torch.Tensor"]:
        import numpy as np
        import torch

        _check_names(self.name, self.inputs, inputs)
        feed = {}
        for spec in self.inputs:
            value = inputs[spec.name]
            spec.check(value, self.name)
            array = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)
            if spec.dtype in ("float32", "float16", "int64", "int32", "uint8", "int8", "bool", "float64"):
                array = array.astype(spec.dtype, copy=False)
            feed[spec.name] = np.ascontiguousarray(array)
        results = self.session.run([s.name for s in self.outputs], feed)
        return {s.name: torch.from_numpy(np.asarray(r)) for s, r in zip(self.outputs, results)}


def _dim(d: Any) -> int | str:
    return d if isinstance(d, int) else str(d)


# ---- TensorRT (built by neuralframe.export.tensorrt; NVIDIA GPU and `pip install tensorrt`) ----

INSTALL = ("{what} needs TensorRT: pip install tensorrt (or pip install 'neuralframe[tensorrt]'); "
           "engines are built for and run on an NVIDIA GPU with CUDA")

def require_tensorrt(what: str = "--to tensorrt"):
    """The tensorrt module, or a MissingDependencyError saying how to get it (and that a GPU is needed)."""
    try:
        import tensorrt as trt
    except ImportError:
        raise MissingDependencyError(INSTALL.format(what=what)) from None
    import torch

    if not torch.cuda.is_available():
        raise MissingDependencyError(f"{what} needs an NVIDIA GPU with CUDA: TensorRT is installed but torch "
                                     "sees no CUDA device (engines are built for the GPU they run on)")
    return trt

_TORCH_DTYPES = {"FLOAT": "float32", "HALF": "float16", "BF16": "bfloat16", "INT32": "int32", "INT64": "int64",
                 "INT8": "int8", "UINT8": "uint8", "BOOL": "bool"}

class TensorRTEngine:
    """A serialized TensorRT engine with the torch/onnxruntime engines' call: named tensors in (moved to
    the GPU), named CUDA tensors out. Dynamic axes take any shape inside the engine's profile."""

    def __init__(self, path: str | os.PathLike):
        import torch

        trt = require_tensorrt()
        self.path = Path(path)
        self.logger = trt.Logger(trt.Logger.WARNING)
        self.runtime = trt.Runtime(self.logger)
        self.engine = self.runtime.deserialize_cuda_engine(self.path.read_bytes())
        if self.engine is None:
            raise InputError(f"{self.path.name}: not a TensorRT engine for this TensorRT version and GPU "
                             "(engines are built per TensorRT version and GPU; rebuild it here)")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]

        def spec(name: str) -> TensorSpec:
            shape = tuple(int(d) if d >= 0 else f"d{i}" for i, d in enumerate(self.engine.get_tensor_shape(name)))
            dtype = _TORCH_DTYPES.get(self.engine.get_tensor_dtype(name).name, "float32")
            return TensorSpec(name, shape, dtype)

        self.inputs = tuple(spec(n) for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT)
        self.outputs = tuple(spec(n) for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT)
        self.name = f"tensorrt:{self.path.name}"
        self.device = torch.device("cuda")

    def __call__(self, **inputs: "torch.Tensor") -> dict[str, "torch.Tensor"]:
        import torch

        _check_names(self.name, self.inputs, inputs)
        keep = []
        for s in self.inputs:
            s.check(inputs[s.name], self.name)
            t = inputs[s.name].to(self.device, getattr(torch, s.dtype)).contiguous()
            keep.append(t)
            self.context.set_input_shape(s.name, tuple(t.shape))
            self.context.set_tensor_address(s.name, int(t.data_ptr()))
        out = {}
        for s in self.outputs:
            shape = tuple(self.context.get_tensor_shape(s.name))
            t = torch.empty(shape, dtype=getattr(torch, s.dtype), device=self.device)
            self.context.set_tensor_address(s.name, int(t.data_ptr()))
            out[s.name] = t
        stream = torch.cuda.current_stream(self.device)
        if not self.context.execute_async_v3(stream.cuda_stream):
            raise RuntimeError(f"{self.name}: TensorRT execution failed")
        stream.synchronize()
        return out

def load_engine(path: str | os.PathLike, **kwargs: Any) -> Engine:
    """An engine for a file, chosen by extension: .onnx (onnxruntime) or .engine/.plan/.trt (TensorRT)."""
    suffix = Path(path).suffix.lower()
    if suffix == ".onnx":
        return OnnxEngine(path, **kwargs)
    if suffix in (".engine", ".plan", ".trt"):
        return TensorRTEngine(path)
    raise InputError(f"'{path}' is not a model file neuralframe can run (use .onnx, or a TensorRT .engine)")
