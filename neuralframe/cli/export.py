"""`neuralframe export`: a model to ONNX (checked against PyTorch in onnxruntime) or TensorRT (export/run.py)."""

from __future__ import annotations

from typing import Optional

import typer

from neuralframe.cli.options import (
    frame_size,
    COUNT,
    RATIO,
    THREADS,
    THREADS_HELP,
    parse_size,
    between,
    ranged,
)

EXPORT_MODELS_HELP = ("segmenter, rvm, nerf-field or tiny-shapes (the text-to-image model: text encoder, UNet, "
                      "autoencoder encoder and decoder); see neuralframe/export/specs.py.")


def export(
    model: str = typer.Argument(..., help=f"The model to export: {EXPORT_MODELS_HELP}"),
    out: str = typer.Option(..., "--out", "-o", help="Folder for MODEL.onnx (or one .onnx per graph), "
                                                     "MODEL.report.json and engines."),
    to: str = typer.Option("onnx", "--to", help="onnx, or tensorrt (ONNX first, then TensorRT engines; needs "
                                                 "pip install tensorrt and an NVIDIA GPU)."),
    fp16: bool = typer.Option(False, "--fp16", help="Also write a float16 graph (and engine)."),
    int8: bool = typer.Option(False, "--int8", help="Also write an int8 graph by onnxruntime static quantisation "
                                                    "calibrated on bundled data, with its accuracy change "
                                                    "(segmenter; tiny-shapes' UNet and decoder)."),
    dynamic: bool = typer.Option(False, "--dynamic", help="Free the batch (and, for RVM and the autoencoder, frame "
                                                              "size) axes."),
    model_path: Optional[str] = typer.Option(None, "--model", help="Weights: a .tflite segmenter, an RVM .pth "
                                                                   "state dict, a NeRF .safetensors checkpoint, a "
                                                                   "diffusers SD-family folder."),
    random_weights: bool = typer.Option(False, "--random-weights", help="Export the architecture with seeded "
                                                                        "random weights (models with none bundled)."),
    downsample_ratio: Optional[list[float]] = ranged(None, "--downsample-ratio", within=RATIO,
                                                     help="RVM: one graph per ratio (repeatable; default "
                                                          "0.25, 0.375 and 1)."),
    size: Optional[str] = frame_size(None, help="RVM: example frame WIDTHxHEIGHT (the static size without "
                                                  "--dynamic; default: the size each ratio is meant for).",
                                     memory=False),
    opset: int = ranged(17, within=between(11, 20), help="ONNX opset (TensorRT 10 parses 9 to 20)."),
    runs: int = ranged(20, within=COUNT, help="Timed calls per engine (the median is reported)."),
    threads: Optional[int] = ranged(None, within=THREADS, help=THREADS_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON instead of tables."),
) -> None:
    """Export a model to ONNX (checked against PyTorch in onnxruntime, linted for TensorRT) or to TensorRT
    engines, with a report of shapes, parity, accuracy and speed."""
    from neuralframe.console import emit_json, note
    from neuralframe.export.run import ExportSettings, export as run_export
    from neuralframe.export.table import print_report

    settings = ExportSettings(model=model, out=out, to=to, fp16=fp16, int8=int8, dynamic=dynamic,
                              model_path=model_path, random_weights=random_weights,
                              ratios=tuple(downsample_ratio) if downsample_ratio else None, size=parse_size(size),
                              opset=opset, runs=runs, threads=threads)
    report = run_export(settings, progress=None if as_json else note)
    if as_json:
        emit_json(report)
    else:
        print_report(report)
