"""Export entry for the person segmenter: the bundled selfie segmenter's two variants, or a .tflite file.

Graphs: "segmenter" (256x256, the "general" variant) and "segmenter-landscape" (144x256, what the
matting stage picks for frames wider than 4:3); with --model, one graph "segmenter" of that file.
Input "image" float [N, 3, h, w] RGB in [0, 1], output "mask" [N, 1, h, w]; --dynamic frees N.

int8: convolutions quantised, calibrated on bundled people over generated backgrounds plus generated
shapes images; accuracy = IoU of the int8 mask (> 0.5) against the float32 torch mask on other frames.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch

from neuralframe.export.data import person_frames, shapes_images, to_model_input
from neuralframe.export.specs import BuildOptions, Feed, Graph, Int8Spec, check_model_path, reject_options

# Frame size the real inputs are cut from (a 16:9 webcam-like frame, small enough to make quickly).
FRAME = (288, 512)

# Measured one convolution at a time (general variant, 8 people frames): quantising the mask head
# alone costs 0.20 IoU, the stem's convolutions 0.05-0.15 each, any other at most 0.04. With the first
# 8 and last 3 of the 55 kept in float32 the int8 mask keeps 0.89 mean IoU (general) and 0.96
# (landscape) against the float32 mask; with every convolution quantised, about 0.5.
FLOAT_FIRST, FLOAT_LAST = 8, 3


def _float_convs(model) -> list[str]:
    convs = [n.name for n in model.graph.node if n.op_type == "Conv"]
    if len(convs) <= FLOAT_FIRST + FLOAT_LAST:
        return convs
    return convs[:FLOAT_FIRST] + convs[-FLOAT_LAST:]


def _iou_metrics(size: tuple[int, int]) -> Callable[[Callable[[Feed], Feed], Callable[[Feed], Feed]], dict[str, Any]]:
    def accuracy(fp32, int8) -> dict[str, Any]:
        ious, maes = [], []
        # seed and motion differ from the calibration frames
        for frame in person_frames(3, FRAME, seed=11, shift=9):
            feed = {"image": to_model_input(frame, size)}
            a = fp32(**feed)["mask"].float()
            b = int8(**feed)["mask"].float()
            fa, fb = a > 0.5, b > 0.5
            union = int((fa | fb).sum())
            ious.append(float((fa & fb).sum()) / union if union else 1.0)
            maes.append(float((a - b).abs().mean()))
        # the float32 mask against itself scores 1: the change is value - 1
        return {"metric": "mask_iou_vs_fp32", "value": round(float(np.mean(ious)), 4), "fp32_value": 1.0,
                "mask_iou_mean": round(float(np.mean(ious)), 4),
                "mask_iou_min": round(float(np.min(ious)), 4), "mask_mae": round(float(np.mean(maes)), 5),
                "frames": len(ious), "threshold": 0.5,
                "data": "bundled people over moving backgrounds, seed 11 (not used for calibration)"}
    return accuracy


def _calibration(size: tuple[int, int]) -> Callable[[], list[dict[str, np.ndarray]]]:
    def feeds() -> list[dict[str, np.ndarray]]:
        frames = list(person_frames(4, FRAME, seed=1)) + list(shapes_images(4))
        return [{"image": to_model_input(f, size).numpy()} for f in frames]
    return feeds


def _graph(name: str, model, weights: str, dynamic: bool) -> Graph:
    import copy

    from neuralframe.matting.segmenter import optimize_for_cpu

    h, w = model.size

    def random_inputs(gen: torch.Generator, dyn: bool) -> Feed:
        n = 2 if dyn else 1
        return {"image": torch.rand(n, 3, h, w, generator=gen)}

    def real_inputs() -> list[Feed]:
        return [{"image": to_model_input(f, (h, w))} for f in person_frames(2, FRAME, seed=5)]

    notes = [f"input size fixed by the model: {h}x{w} (height x width)"]
    return Graph(
        # timed: channels-last, as the matting runner runs it (a copy: the conversion is in place)
        name=name, module=model, reference=model, timed=optimize_for_cpu(copy.deepcopy(model)),
        inputs=("image",), outputs=("mask",),
        example=lambda: {"image": torch.zeros(1, 3, h, w)},
        random_inputs=random_inputs, real_inputs=real_inputs,
        real_description=f"4 frames: bundled people over moving backgrounds ({FRAME[1]}x{FRAME[0]}, seed 5), "
                         "area-resized to the model size",
        dynamic_axes={"image": {0: "N"}, "mask": {0: "N"}},
        profile={"image": ((1, 3, h, w), (1, 3, h, w), (8, 3, h, w))},
        weights=weights, notes=notes,
        int8=Int8Spec(calibration=_calibration((h, w)),
                      calibration_description="8 bundled-people frames (seed 1) + 4 generated shapes images",
                      accuracy=_iou_metrics((h, w)), float_nodes=_float_convs,
                      float_reason=f"first {FLOAT_FIRST} and last {FLOAT_LAST} convolutions kept float32 "
                                   "(measured the most IoU-sensitive)"),
    )


def build(options: BuildOptions) -> list[Graph]:
    from neuralframe.matting.segmenter import VARIANTS, load_segmenter, model_path

    reject_options(options, "segmenter", ("ratios", "size", "random_weights"))
    path = check_model_path(options.model_path, (".tflite",), "a selfie-segmentation .tflite")
    if path is not None:
        return [_graph("segmenter", load_segmenter(path), f"{path.name} (imported from .tflite)", options.dynamic)]
    graphs = []
    for variant, name in (("general", "segmenter"), ("landscape", "segmenter-landscape")):
        assert variant in VARIANTS
        graphs.append(_graph(name, load_segmenter(variant=variant),
                             f"bundled {model_path(variant).name} (assets/models/selfie_segmentation)",
                             options.dynamic))
    return graphs
