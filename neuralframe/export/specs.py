"""What an export needs to know about a model: its graphs, tensor names, dynamic axes, data and tolerances.

    entry = model_entry("segmenter")              # the registry: name -> builder, imported on first use
    graphs = entry.build(BuildOptions())          # one or more Graphs (RVM: one per downsample ratio)

A `Graph` is one ONNX file: the torch module that is traced, the module it is checked against (the
project's own torch path), named inputs and outputs, the axes that `--dynamic` frees, inputs to check
parity on (fresh random ones and real ones), and, where a model supports it, what int8 calibration and
its accuracy measure need. Adding a model is adding a builder module and one `MODELS` line.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from neuralframe.errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import onnx
    import torch

Feed = dict[str, "torch.Tensor"]

# name -> (builder "module:function", one line for --help and errors, what --model takes)
MODELS: dict[str, tuple[str, str, str]] = {
    "segmenter": ("neuralframe.export.segmenter:build",
                  "the bundled person segmenter (both variants), or a .tflite selfie segmenter",
                  "a .tflite selfie-segmentation model (default: the bundled ones)"),
    "rvm": ("neuralframe.export.rvm:build",
            "Robust Video Matting (MobileNetV3), recurrent state as inputs/outputs, one graph per downsample ratio",
            "an RVM MobileNetV3 state dict (.pth, e.g. the official rvm_mobilenetv3.pth); none is bundled"),
    "nerf-field": ("neuralframe.export.nerf:build",
                   "a hash-grid NeRF field: points and view directions in, density and colour out",
                   "a NeRF checkpoint (.safetensors from `neuralframe train nerf`); none is bundled"),
    "tiny-shapes": ("neuralframe.export.tiny_shapes:build",
                    "the text-to-image model: text encoder, UNet with its guidance embedding, autoencoder "
                    "encoder and decoder",
                    "a local diffusers Stable-Diffusion-family folder (default: the bundled assets/models/tiny-shapes)"),
}

# models with int8 for some of their graphs (the segmenter's two; tiny-shapes' UNet and autoencoder decoder)
INT8_MODELS = ("segmenter", "tiny-shapes")


@dataclass(frozen=True)
class Tolerance:
    """Parity holds when |onnx - torch| <= atol + rtol * |torch| for every element (torch.testing's rule)."""

    atol: float
    rtol: float

    def describe(self) -> str:
        return f"|onnx - torch| <= {self.atol:g} + {self.rtol:g} * |torch|"

    def to_dict(self) -> dict[str, float]:
        return {"atol": self.atol, "rtol": self.rtol}


# One table for every model (kornia's habit): float32 graphs differ from torch by kernel rounding only;
# float16 graphs by the rounding of 11-bit mantissas through a whole network.
TOLERANCES = {"fp32": Tolerance(1e-4, 1e-3), "fp16": Tolerance(3e-2, 3e-2)}


@dataclass(frozen=True)
class BuildOptions:
    """What the command asked for, as the builders see it.

    Args:
        model_path: --model (None: the bundled default, where there is one).
        random_weights: build the architecture with seeded random weights (tests, benchmarks).
        dynamic: free the batch (and, where a model allows, spatial) axes.
        ratios: RVM downsample ratios, one graph each (None: the model's defaults).
        size: (height, width) of the example frame for models whose frame size is free (RVM).
        seed: seed of random weights and random inputs.
    """

    model_path: str | None = None
    random_weights: bool = False
    dynamic: bool = False
    ratios: tuple[float, ...] | None = None
    size: tuple[int, int] | None = None
    seed: int = 0


@dataclass
class Int8Spec:
    """Static int8 quantisation of a graph in onnxruntime.

    Args:
        calibration: feeds (numpy, by input name) that calibrate activation ranges.
        calibration_description: what they are, for the report.
        accuracy: (torch fp32 runner, int8 runner) -> metrics, each runner called with named tensors
            (**feed) and returning named tensors; measured on real data not used for calibration. The
            dict has "metric" (its name), "value" (the int8 model's score) and "fp32_value" (the float32
            model's), then any detail.
        float_nodes: the nodes kept in float32 (from the exported model), with the reason in `float_reason`.
        op_types: operator types that are quantised.
    """

    calibration: Callable[[], list[dict[str, "np.ndarray"]]]
    calibration_description: str
    accuracy: Callable[[Callable[[Feed], Feed], Callable[[Feed], Feed]], dict[str, Any]]
    float_nodes: Callable[["onnx.ModelProto"], list[str]] = lambda model: []
    float_reason: str = ""
    op_types: tuple[str, ...] = ("Conv",)


@dataclass
class Graph:
    """One exported graph.

    Args:
        name: file stem (DIR/NAME.onnx).
        module: traced into the graph; `forward(*inputs)` returns the outputs in `outputs` order.
        reference: the project's own torch path the graph is checked against (same call).
        timed: the torch module timed against onnxruntime (the fastest torch path the project runs).
        inputs, outputs: tensor names, in call order.
        example: the inputs the graph is traced with (their shapes are the static shapes).
        random_inputs: (generator, dynamic) -> fresh random inputs (other shapes when dynamic).
        real_inputs: a list of feeds from real data; with `recurrent`, steps of one sequence.
        real_description: what the real inputs are.
        dynamic_axes: the axes `--dynamic` frees, torch.onnx style.
        recurrent: output -> input carried from one step of `real_inputs` to the next.
        profile: input -> (min, opt, max) shapes for TensorRT optimisation profiles of dynamic axes.
        weights: where the weights came from.
        notes: facts about this graph a user should know (one line each).
        int8: int8 support, or None.
        fp16_ops: operator types converted to float16 (None: all that the converter handles).
        tolerance: per-precision overrides of TOLERANCES, with the reason in notes.
    """

    name: str
    module: "torch.nn.Module"
    reference: "torch.nn.Module"
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    example: Callable[[], Feed]
    random_inputs: Callable[["torch.Generator", bool], Feed]
    real_inputs: Callable[[], list[Feed]]
    real_description: str
    dynamic_axes: dict[str, dict[int, str]]
    weights: str
    timed: "torch.nn.Module | None" = None
    recurrent: dict[str, str] = field(default_factory=dict)
    profile: dict[str, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    int8: Int8Spec | None = None
    fp16_ops: tuple[str, ...] | None = None
    tolerance: dict[str, Tolerance] = field(default_factory=dict)

    def tolerance_for(self, precision: str) -> Tolerance:
        return self.tolerance.get(precision, TOLERANCES[precision])


@dataclass(frozen=True)
class ModelEntry:
    name: str
    target: str
    summary: str
    weights_help: str

    def build(self, options: BuildOptions) -> list[Graph]:
        module, _, function = self.target.partition(":")
        return getattr(importlib.import_module(module), function)(options)


def model_entry(name: str) -> ModelEntry:
    """The registry entry of `name`, or an InputError listing the models."""
    if name not in MODELS:
        raise InputError(f"unknown model '{name}': use one of {', '.join(MODELS)}")
    return ModelEntry(name, *MODELS[name])


_OPTION_FLAGS = {"ratios": "--downsample-ratio", "size": "--size", "random_weights": "--random-weights"}


def reject_options(options: BuildOptions, model: str, names: tuple[str, ...]) -> None:
    """An InputError when the command set an option that `model` has no use for (rather than ignoring it)."""
    for name in names:
        if getattr(options, name):
            raise InputError(f"{_OPTION_FLAGS[name]} does not apply to {model}")


def check_model_path(path: str | None, suffixes: tuple[str, ...], what: str) -> Path | None:
    """--model as a Path, or an InputError when it is missing or not a file of the expected kind."""
    if path is None:
        return None
    p = Path(path)
    if not p.exists():
        raise InputError(f"--model '{path}' does not exist ({what})")
    if not p.is_file():
        raise InputError(f"--model '{path}' is not a file ({what})")
    if suffixes and p.suffix.lower() not in suffixes:
        raise InputError(f"--model '{path}' should be {' or '.join(suffixes)} ({what})")
    return p
