"""`neuralframe bench export`: every exportable model through `neuralframe export`, measured in one run.

Per graph: `torch_ms` (the torch path the project runs: the segmenter channels-last, the NeRF field on
its fastest kernel), `ort_ms` (the float32 ONNX in onnxruntime, same threads), `ort_int8_ms` where int8
exists, `ratio_ort_vs_torch` (= torch_ms / ort_ms), `max_abs_err` (float32 parity, random and real
inputs) and the int8 accuracy change. torch and onnxruntime calls alternate on the same input so that
machine drift hits both. Models without bundled weights (RVM, the NeRF field) run on seeded random
weights: their timings and parity hold for any weights of the architecture, their accuracy does not.
tiny-shapes is the bundled text-to-image model (four graphs: text encoder, UNet, autoencoder encoder and
decoder); its UNet's int8 accuracy is prompt adherence, scored by the bundled shape classifier.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Callable

# (model, export options): int8 where the model has it
CASES = (
    ("segmenter", {"int8": True}),
    ("rvm", {"random_weights": True}),
    ("nerf-field", {"random_weights": True}),
    ("tiny-shapes", {"int8": True}),  # the bundled model; its architecture on random weights until it is trained
)


def _options(model: str, options: dict[str, Any]) -> dict[str, Any]:
    if model == "tiny-shapes":
        from neuralframe.generate.models.folder import BUNDLED

        return {**options, "random_weights": not (BUNDLED / "model_index.json").is_file()}
    return options


def run(quick: bool = False, threads: int | None = None,
        progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Export and measure every model; returns the JSON-ready result."""
    import onnxruntime
    import torch

    from neuralframe.backend.device import cpu_threads
    from neuralframe.export.run import ExportSettings, export

    say = progress or (lambda message: None)
    runs = 5 if quick else 20
    result: dict[str, Any] = {
        "benchmark": "export", "quick": quick, "runs": runs, "cpu_cores": cpu_threads(),
        "threads": threads or "default", "torch": torch.__version__, "onnxruntime": onnxruntime.__version__,
        "models": {},
    }
    with tempfile.TemporaryDirectory(prefix="nf-bench-export-") as tmp:
        for model, options in CASES:
            extra = _options(model, options)
            if model == "rvm" and quick:
                extra.update(ratios=(0.25,), size=(288, 512))
            report = export(ExportSettings(model=model, out=str(Path(tmp) / model), runs=runs, threads=threads,
                                           **extra), progress=say)
            for g in report["graphs"]:
                s = g["speed"]
                row = {
                    "torch_ms": s["torch_ms"], "ort_ms": s["ort_ms"], "ort_int8_ms": s.get("ort_int8_ms"),
                    "ratio_ort_vs_torch": s["ratio_ort_vs_torch"],
                    "max_abs_err": g["parity"]["fp32"]["max_abs_err"],
                    "mean_abs_err": g["parity"]["fp32"]["mean_abs_err"],
                    "parity_passed": g["parity"]["fp32"]["passed"],
                    "input_shapes": s["input_shapes"], "weights": g["weights"],
                    "tensorrt_lint_ok": g["tensorrt_lint"]["ok"], "onnx_bytes": g["files"]["fp32"]["bytes"],
                }
                if "int8" in g:
                    a = g["int8"]["accuracy"]
                    row["int8_accuracy"] = a
                    row["int8_accuracy_change"] = {"metric": a["metric"], "fp32": a["fp32_value"], "int8": a["value"],
                                                   "change": None if a["value"] is None
                                                   else round(a["value"] - a["fp32_value"], 4)}
                    row["ratio_int8_vs_ort"] = round(s["ort_ms"] / s["ort_int8_ms"], 3)
                    row["int8_bytes"] = g["files"]["int8"]["bytes"]
                result["models"][g["name"]] = row
    models = result["models"]
    result["checks"] = {
        "every_model_passes_parity": all(r["parity_passed"] for r in models.values()),
        "every_graph_tensorrt_lint_ok": all(r["tensorrt_lint_ok"] for r in models.values()),
        "segmenter_ort_at_least_torch": all(r["ratio_ort_vs_torch"] >= 1.0 for n, r in models.items()
                                            if n.startswith("segmenter")),
        "vae_decoder_ort_at_least_torch": all(r["ratio_ort_vs_torch"] >= 1.0 for n, r in models.items()
                                              if n == "vae-decoder"),
    }
    return result


if __name__ == "__main__":  # pragma: no cover
    import json
    import sys

    print(json.dumps(run(quick="--quick" in sys.argv, progress=lambda m: print(m, file=sys.stderr)), indent=2))


def print_summary(result: dict) -> None:
    """`result` as `neuralframe bench export` prints it: a line per model."""
    from neuralframe.console import console

    for name, row in result["models"].items():
        int8 = f", int8 {row['ort_int8_ms']} ms" if row.get("ort_int8_ms") is not None else ""
        console.print(f"{name:>22}: torch {row['torch_ms']} ms, onnxruntime {row['ort_ms']} ms "
                      f"([bold]{row['ratio_ort_vs_torch']}x[/]){int8}, max abs err {row['max_abs_err']:.2e}",
                      highlight=False)
