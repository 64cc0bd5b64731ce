"""The bundled person segmenter: MediaPipe's selfie-segmentation .tflite, rebuilt as our own torch module.

    seg = load_segmenter()                       # the bundled 256x256 model ("general")
    mask = seg(x)                                # x float [N, 3, 256, 256] in [0, 1] -> [N, 1, 256, 256]
    prob = segment(seg, frame_u8)                # uint8 [H, W, 3] frame -> float [256, 256] (model size)

`build_segmenter` walks the .tflite graph in its stored (topological) order and turns each operator
into a torch layer in NCHW layout, with the weights converted from TFLite's layouts (conv [O, kh, kw, I],
depthwise [1, kh, kw, C], transposed conv [O, kh, kw, I]). Float16 weights behind DEQUANTIZE operators
are folded into float32 constants at build time. TensorFlow's asymmetric SAME padding (the extra row
and column go at the bottom and right) is an explicit pad, so results match TFLite/OpenCV to float
rounding. The module holds no state and traces to ONNX like any other.
"""

from __future__ import annotations

import math
import os
import struct
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from neuralframe.assets import asset
from neuralframe.errors import InputError
from neuralframe.matting.tflite import Model, Operator, read_tflite

if TYPE_CHECKING:  # pragma: no cover
    from neuralframe.matting.engines import Engines, Network

ASSET_DIR = asset("models", "selfie_segmentation")
VARIANTS = {
    "general": "selfie_segmentation.tflite",  # 256x256
    "landscape": "selfie_segmentation_landscape.tflite",  # 144x256 (height x width)
}

# NHWC axis -> NCHW axis for 4-D tensors
_AXIS = {0: 0, 1: 2, 2: 3, 3: 1, -1: 1, -2: 3, -3: 2, -4: 0}


def model_path(variant: str = "general") -> Path:
    """Path of a bundled segmenter file."""
    if variant not in VARIANTS:
        raise InputError(f"unknown segmenter '{variant}': use one of {', '.join(VARIANTS)}")
    return ASSET_DIR / VARIANTS[variant]


def _act(name: str | None) -> nn.Module:
    if name is None:
        return nn.Identity()
    if name == "relu":
        return nn.ReLU()
    if name == "relu6":
        return nn.ReLU6()
    if name == "tanh":
        return nn.Tanh()
    raise InputError(f"unsupported fused activation '{name}' in the .tflite model")


def _same_pad(size: int, k: int, stride: int, dilation: int) -> tuple[int, int]:
    """TensorFlow SAME padding (before, after) along one axis."""
    k_eff = (k - 1) * dilation + 1
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + k_eff - size, 0)
    return total // 2, total - total // 2


class Conv(nn.Module):
    """A TFLite CONV_2D / DEPTHWISE_CONV_2D: explicit asymmetric pad when needed, conv, fused activation."""

    def __init__(self, conv: nn.Conv2d, pad: tuple[int, int, int, int], act: nn.Module):
        super().__init__()
        self.conv = conv
        self.pad = pad  # (left, right, top, bottom), only when not symmetric
        self.act = act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if any(self.pad):
            x = F.pad(x, self.pad)
        return self.act(self.conv(x))


class TransposeConv(nn.Module):
    """A transposed convolution with bias (TFLite TRANSPOSE_CONV or MediaPipe's Convolution2DTransposeBias)."""

    def __init__(self, conv: nn.ConvTranspose2d, crop: tuple[int, int, int, int]):
        super().__init__()
        self.conv = conv
        self.crop = crop  # (top, bottom, left, right) removed from the full output

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        t, b, l, r = self.crop
        if t or b or l or r:
            y = y[:, :, t:y.shape[2] - b, l:y.shape[3] - r]
        return y


class PixelShuffleConv(nn.Module):
    """A transposed convolution whose kernel equals its stride, as a 1x1 convolution to `cout * s * s`
    channels and a pixel shuffle: the same sums, without the slow scatter of ConvTranspose2d on a CPU."""

    def __init__(self, conv: nn.Conv2d, stride: int):
        super().__init__()
        self.conv = conv
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pixel_shuffle(self.conv(x), self.stride)


class Binary(nn.Module):
    """ADD or MUL (broadcasting), with a fused activation."""

    def __init__(self, kind: str, act: nn.Module):
        super().__init__()
        self.kind = kind
        self.act = act

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.act(a + b if self.kind == "ADD" else a * b)


class Mean(nn.Module):
    """MEAN over spatial axes, or a global AVERAGE_POOL_2D (whose filter covers the whole input)."""

    def __init__(self, dims: tuple[int, ...], keepdim: bool):
        super().__init__()
        self.dims = dims
        self.keepdim = keepdim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=self.dims, keepdim=self.keepdim)


class AvgPool(nn.Module):
    """A VALID, non-global AVERAGE_POOL_2D."""

    def __init__(self, kernel: tuple[int, int], stride: tuple[int, int]):
        super().__init__()
        self.kernel = kernel
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(x, self.kernel, self.stride)


class Resize(nn.Module):
    """RESIZE_BILINEAR to a fixed size (TFLite's half-pixel centres are torch's align_corners=False)."""

    def __init__(self, size: tuple[int, int], align_corners: bool):
        super().__init__()
        self.size = size
        self.align_corners = align_corners

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, size=self.size, mode="bilinear", align_corners=self.align_corners)


class Concat(nn.Module):
    def __init__(self, dim: int, act: nn.Module):
        super().__init__()
        self.dim = dim
        self.act = act

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        return self.act(torch.cat(xs, dim=self.dim))


class Segmenter(nn.Module):
    """A single-input, single-output image network imported from a .tflite graph, in NCHW.

    `forward(x)`: x float32 [N, 3, H, W] in [0, 1] at the model's size -> mask [N, 1, H, W] in [0, 1].
    """

    def __init__(self, layers: Sequence[nn.Module], wiring: Sequence[tuple[tuple[int, ...], int]],
                 input_slot: int, output_slot: int, size: tuple[int, int], name: str):
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.wiring = [tuple(w) for w in wiring]  # per layer: (input slots, output slot)
        self.input_slot = input_slot
        self.output_slot = output_slot
        self.size = size  # (height, width) the model takes
        self.name = name
        # when each slot is last read, so intermediate activations are freed as early as possible
        last: dict[int, int] = {}
        for i, (ins, _) in enumerate(self.wiring):
            for s in ins:
                last[s] = i
        self._free = [[s for s in ins if last.get(s) == i and s != output_slot] for i, (ins, _) in
                      enumerate(self.wiring)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x [N, 3, H, W]
        values = {self.input_slot: x}
        for layer, (ins, out), free in zip(self.layers, self.wiring, self._free):
            values[out] = layer(*[values[s] for s in ins])
            for s in free:
                del values[s]
        return values[self.output_slot]


def _weight(model_tensor, where: str) -> np.ndarray:
    if model_tensor is None:
        raise InputError(f"{where}: a weight is not a constant in the .tflite model")
    return np.ascontiguousarray(model_tensor, dtype=np.float32)


def build_segmenter(model: Model, name: str = "segmenter") -> Segmenter:
    """Build the torch module for the first subgraph of a parsed .tflite model."""
    g = model.subgraphs[0]
    if len(g.inputs) != 1 or len(g.outputs) != 1:
        raise InputError(f"{name}: expected one input and one output, got {len(g.inputs)} and {len(g.outputs)}")
    consts: dict[int, np.ndarray] = {i: t.data for i, t in enumerate(g.tensors) if t.data is not None}
    shapes = {i: t.shape for i, t in enumerate(g.tensors)}
    layers: list[nn.Module] = []
    wiring: list[tuple[tuple[int, ...], int]] = []

    def const(i: int, op: Operator) -> np.ndarray:
        if i not in consts:
            raise InputError(f"{name}: {op.name} needs a constant input (tensor {g.tensors[i].name})")
        return consts[i]

    for op in g.operators:
        kind = op.name
        ins = [i for i in op.inputs if i >= 0]
        out = op.outputs[0]
        o = op.options
        if kind == "DEQUANTIZE":
            if ins[0] in consts:  # float16 weights: fold now
                consts[out] = consts[ins[0]].astype(np.float32)
                continue
            layers.append(_Cast())
            wiring.append(((ins[0],), out))
            continue
        if kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            w = _weight(const(ins[1], op), name)
            b = _weight(const(ins[2], op), name) if len(ins) > 2 else None
            _, h, wd, cin = shapes[ins[0]]
            if kind == "CONV_2D":
                cout, kh, kw, wc = w.shape
                groups = cin // wc
                weight = w.transpose(0, 3, 1, 2)
            else:
                _, kh, kw, cout = w.shape
                groups = cin
                weight = w.transpose(3, 0, 1, 2)
            sh, sw = o["stride_h"], o["stride_w"]
            dh, dw = o["dilation_h"], o["dilation_w"]
            pad = (0, 0, 0, 0)
            sym = (0, 0)
            if o["padding"] == "SAME":
                top, bottom = _same_pad(h, kh, sh, dh)
                left, right = _same_pad(wd, kw, sw, dw)
                if top == bottom and left == right:
                    sym = (top, left)
                else:
                    pad = (left, right, top, bottom)
            conv = nn.Conv2d(cin, cout, (kh, kw), (sh, sw), sym, (dh, dw), groups=groups, bias=b is not None)
            with torch.no_grad():
                conv.weight.copy_(torch.from_numpy(np.ascontiguousarray(weight)))
                if b is not None:
                    conv.bias.copy_(torch.from_numpy(b))
            layers.append(Conv(conv, pad, _act(o["activation"])))
            wiring.append(((ins[0],), out))
        elif kind in ("Convolution2DTransposeBias", "TRANSPOSE_CONV"):
            if kind == "TRANSPOSE_CONV":  # inputs: output_shape, weights, input[, bias]
                x_i, w, b = ins[2], _weight(const(ins[1], op), name), (
                    _weight(const(ins[3], op), name) if len(ins) > 3 else None)
                padding, sw, sh = o["padding"], o["stride_w"], o["stride_h"]
            else:  # MediaPipe's custom op: input, weights, bias; options = {padding, stride_w, stride_h} int32
                x_i, w, b = ins[0], _weight(const(ins[1], op), name), _weight(const(ins[2], op), name)
                code, sw, sh = struct.unpack_from("<iii", op.custom_options, 0)
                padding = {1: "SAME", 2: "VALID"}.get(code, "SAME")
            cout, kh, kw, cin = w.shape
            _, h, wd, _ = shapes[x_i]
            _, oh, ow, _ = shapes[out]
            full_h, full_w = (h - 1) * sh + kh, (wd - 1) * sw + kw
            top = (full_h - oh) // 2 if padding == "SAME" else 0
            left = (full_w - ow) // 2 if padding == "SAME" else 0
            crop = (top, full_h - oh - top, left, full_w - ow - left)
            if kh == kw == sh == sw and not any(crop):
                # no overlap between windows: out[o, s*y + i, s*x + j] = sum_c w[o, i, j, c] in[c, y, x] + b[o]
                conv = nn.Conv2d(cin, cout * kh * kw, 1, bias=b is not None)
                with torch.no_grad():
                    conv.weight.copy_(torch.from_numpy(np.ascontiguousarray(w.reshape(cout * kh * kw, cin)))[..., None, None])
                    if b is not None:
                        conv.bias.copy_(torch.from_numpy(np.repeat(b, kh * kw)))
                layers.append(PixelShuffleConv(conv, sh))
            else:
                conv = nn.ConvTranspose2d(cin, cout, (kh, kw), (sh, sw), bias=b is not None)
                with torch.no_grad():
                    conv.weight.copy_(torch.from_numpy(np.ascontiguousarray(w.transpose(3, 0, 1, 2))))
                    if b is not None:
                        conv.bias.copy_(torch.from_numpy(b))
                layers.append(TransposeConv(conv, crop))
            wiring.append(((x_i,), out))
        elif kind in ("ADD", "MUL"):
            for i in ins:
                if i in consts:
                    raise InputError(f"{name}: {kind} with a constant operand is not supported")
            layers.append(Binary(kind, _act(o["activation"])))
            wiring.append((tuple(ins), out))
        elif kind in ("RELU", "RELU6", "LOGISTIC", "HARD_SWISH", "TANH"):
            layers.append({"RELU": nn.ReLU, "RELU6": nn.ReLU6, "LOGISTIC": nn.Sigmoid, "HARD_SWISH": nn.Hardswish,
                           "TANH": nn.Tanh}[kind]())
            wiring.append(((ins[0],), out))
        elif kind == "AVERAGE_POOL_2D":
            _, h, wd, _ = shapes[ins[0]]
            if (o["filter_h"], o["filter_w"]) == (h, wd) and o["padding"] == "VALID":
                layers.append(Mean((2, 3), True))
            elif o["padding"] == "VALID":
                layers.append(AvgPool((o["filter_h"], o["filter_w"]), (o["stride_h"], o["stride_w"])))
            else:
                raise InputError(f"{name}: AVERAGE_POOL_2D with SAME padding is not supported")
            wiring.append(((ins[0],), out))
        elif kind == "MEAN":
            axes = tuple(sorted(_AXIS[int(a)] for a in np.atleast_1d(const(ins[1], op))))
            layers.append(Mean(axes, bool(o["keep_dims"])))
            wiring.append(((ins[0],), out))
        elif kind == "RESIZE_BILINEAR":
            if not o["half_pixel_centers"] and not o["align_corners"]:
                raise InputError(f"{name}: RESIZE_BILINEAR without half-pixel centres is not supported")
            size = tuple(int(v) for v in const(ins[1], op))
            layers.append(Resize(size, bool(o["align_corners"])))
            wiring.append(((ins[0],), out))
        elif kind == "CONCATENATION":
            layers.append(Concat(_AXIS[o["axis"]], _act(o["activation"])))
            wiring.append((tuple(ins), out))
        else:
            raise InputError(f"{name}: the .tflite operator {kind} is not supported by the importer")
    inp, outp = g.inputs[0], g.outputs[0]
    _, h, w, c = shapes[inp]
    if c != 3:
        raise InputError(f"{name}: expected an RGB input [1, H, W, 3], got {list(shapes[inp])}")
    return Segmenter(layers, wiring, inp, outp, (h, w), name).eval()


class _Cast(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.float()


def load_segmenter(path: str | os.PathLike | None = None, variant: str = "general") -> Segmenter:
    """The segmenter from a .tflite file (default: the bundled `variant`), in eval mode, no gradients."""
    p = Path(path) if path is not None else model_path(variant)
    model = build_segmenter(read_tflite(p), name=p.name)
    for param in model.parameters():
        param.requires_grad_(False)
    return model


def segment(model: nn.Module, image: torch.Tensor, *, impl: str = "auto") -> torch.Tensor:
    """Person probability for one frame at the model's resolution.

    Args:
        model: a `Segmenter` (or anything with `.size` taking [1, 3, h, w] in [0, 1]).
        image: uint8 [H, W, 3] frame.
    Returns:
        float32 [h, w] in [0, 1].
    """
    from neuralframe.backend import fused

    x = fused.preprocess(image, model.size, impl=impl)  # [3, h, w] in [0, 1]
    with torch.inference_mode():
        return model(x[None])[0, 0]


class _ChannelsLast(nn.Module):
    """Runs the segmenter in channels-last layout (oneDNN's fast path for depthwise convs on CPUs)."""

    def __init__(self, model: Segmenter):
        super().__init__()
        self.model = model.to(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x [N, 3, h, w]
        return self.model(x.contiguous(memory_format=torch.channels_last)).contiguous()


def optimize_for_cpu(model: Segmenter) -> nn.Module:
    """The same network laid out for CPU inference: channels-last, where oneDNN's depthwise convolutions
    are several times faster than in NCHW. Numerically the same model (float rounding only).

    Eager on purpose: a traced TorchScript copy measured ~25% faster once warm, but its profiling
    executor ran some first hundreds of calls ~100x slower, depending on grad mode and input."""
    return _ChannelsLast(model).eval()


def export_onnx(model: Segmenter, path: str | os.PathLike, opset: int = 17) -> Path:
    """Export the segmenter to ONNX (input "image" [N, 3, h, w], output "mask" [N, 1, h, w])."""
    import warnings

    p = Path(path)
    example = torch.zeros(1, 3, *model.size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (example,), str(p), input_names=["image"], output_names=["mask"],
                          dynamic_axes={"image": {0: "N"}, "mask": {0: "N"}}, opset_version=opset, dynamo=False)
    return p


class SegmenterRunner:
    """Frames in, person probability out, on the engine an `Engines` builds.

    Args:
        variant: "general" (256x256), "landscape" (144x256), or "auto" (landscape for frames wider
            than 4:3, chosen on the first frame or by `prepare`).
        engines: builds the network's engine (`engines.TorchEngines()` by default: our module, laid out
            channels-last on a CPU; the app hands in onnxruntime or TensorRT ones for `--backend`).
        path: a .tflite file to import instead of the bundled one.
        impl: implementation of the fused pre-processing kernel.

    `__call__(image)`: uint8 [H, W, 3] -> (mask float32 [h, w], guide float32 [3, h, w]), where guide is
    the frame as the network saw it (the refiner uses it to tell motion from noise).
    """

    def __init__(self, variant: str = "auto", engines: "Engines | None" = None,
                 path: str | os.PathLike | None = None, impl: str = "auto"):
        from neuralframe.matting.engines import TorchEngines

        if variant != "auto" and variant not in VARIANTS:
            raise InputError(f"unknown segmenter '{variant}': use auto, {', '.join(VARIANTS)}")
        self.variant = variant
        self.engines = engines if engines is not None else TorchEngines()
        self.path = path
        self.impl = impl
        self.engine = None
        self.size: tuple[int, int] | None = None

    @staticmethod
    def pick_variant(height: int, width: int) -> str:
        return "landscape" if width * 3 > height * 4 else "general"

    def network(self, model: Segmenter, variant: str) -> "Network":
        """The segmenter as an engine maker takes it: input "image" [1, 3, h, w], output "mask"."""
        from neuralframe.matting.engines import Network

        return Network(f"segmenter-{variant}", ("image",), ("mask",), {"image": (1, 3, *model.size)},
                       torch_module=lambda device: optimize_for_cpu(model) if device.type == "cpu" else model,
                       export=lambda folder: export_onnx(model, folder / f"{variant}.onnx"))

    def prepare(self, height: int, width: int) -> "SegmenterRunner":
        """Load the network and build its engine for frames of this size."""
        variant = self.variant if self.variant != "auto" else self.pick_variant(height, width)
        model = load_segmenter(self.path, variant)
        self.size = model.size
        self.resolved_variant = variant if self.path is None else Path(self.path).name
        self.engine = self.engines(self.network(model, variant))
        self(torch.zeros((8, 8, 3), dtype=torch.uint8))  # load the pre-processing kernel now, not on frame 1
        return self

    def __call__(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        from neuralframe.backend import fused

        if self.engine is None:
            self.prepare(int(image.shape[0]), int(image.shape[1]))
        guide = fused.preprocess(image, self.size, impl=self.impl)  # [3, h, w] in [0, 1]
        mask = self.engine(image=guide[None])["mask"]
        return mask[0, 0].float().cpu(), guide

    def close(self) -> None:
        self.engine = None
