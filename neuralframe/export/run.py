"""`neuralframe export MODEL`: every graph of a model to ONNX (and TensorRT engines), checked and reported.

For each graph of the model (specs.py): trace it to DIR/NAME.onnx (a temporary name, then renamed),
run onnx.checker, describe its inputs and outputs, lint it against TensorRT 10, check parity against
the torch model in onnxruntime on fresh random and real inputs, and time both on this CPU; with --fp16
and --int8 the same for DIR/NAME.fp16.onnx and DIR/NAME.int8.onnx (int8 reports its accuracy change
instead of a tolerance); with --to tensorrt, engines DIR/NAME.PRECISION.engine built, checked and
timed on the GPU. DIR/MODEL.report.json holds everything.

Every user error (unknown model, missing --model file, unwritable DIR, no TensorRT) is raised before
anything is written; a failure later removes what this run wrote (a parity failure keeps the report,
which says what failed).
"""

from __future__ import annotations

import contextlib
import copy
import datetime
import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from neuralframe.errors import InputError, OutputError
from neuralframe.export import lint as lint_mod
from neuralframe.export.onnx import DEFAULT_OPSET, ExportError, atomic_path, check, describe, export_graph, file_info
from neuralframe.export.specs import INT8_MODELS, BuildOptions, Graph, model_entry

TARGETS = ("onnx", "tensorrt")
REPORT_FORMAT = "neuralframe.export.report"
REPORT_VERSION = 1


@dataclass(frozen=True)
class ExportSettings:
    """What to export, where, and in which precisions.

    Args:
        model: a registry name (`neuralframe.export.specs.MODELS`).
        out: the folder to write (created when its parent exists).
        to: "onnx", or "tensorrt" (ONNX first, then engines).
        fp16, int8: also write those precisions.
        dynamic: free batch (and spatial) axes instead of the example's static shapes.
        model_path: --model; random_weights: architecture with seeded random weights.
        ratios: RVM downsample ratios; size: (height, width) of RVM's example frame.
        opset: ONNX opset (TensorRT 10 parses 9..20).
        runs: timed calls per engine (median reported).
        threads: CPU threads for torch and onnxruntime alike (None: torch's and onnxruntime's defaults;
            on a machine other jobs load, 1 avoids idle threads spinning against them).
        cache_dir: TensorRT engine cache (default ~/.cache/neuralframe/tensorrt).
    """

    model: str
    out: str
    to: str = "onnx"
    fp16: bool = False
    int8: bool = False
    dynamic: bool = False
    model_path: str | None = None
    random_weights: bool = False
    ratios: tuple[float, ...] | None = None
    size: tuple[int, int] | None = None
    opset: int = DEFAULT_OPSET
    runs: int = 20
    threads: int | None = None
    seed: int = 0
    cache_dir: str | None = None


GRAPH_FILES = (".onnx", ".engine", ".trt", ".plan", ".json")


def _check_out_dir(out: str) -> tuple[Path, bool]:
    """The output folder and whether it must be created; OutputError when it cannot be written."""
    from neuralframe.errors import OutputError
    from neuralframe.streaming.outputs import check_folder

    path = Path(out)
    if path.suffix.lower() in GRAPH_FILES and not path.is_dir():  # a folder may have a dot in its name
        raise OutputError(f"cannot write '{out}': it names a '{path.suffix}' file; write a folder for the graphs "
                          "(a new name, or an existing folder)")
    if path.exists() and not path.is_dir():
        raise OutputError(f"cannot write '{out}': it is a file, not a folder")
    check_folder(path)  # the folder it goes in takes new files
    if path.is_dir():
        check_folder(path, folder=path)  # the files go inside: it must take them
    return path, not path.exists()


def _validate(settings: ExportSettings) -> None:
    model_entry(settings.model)
    if settings.to not in TARGETS:
        raise InputError(f"unknown target '{settings.to}': use onnx or tensorrt")
    lo, hi = lint_mod.TENSORRT10_OPSETS
    if not 11 <= settings.opset <= hi:
        raise InputError(f"opset {settings.opset} is not supported: use 11..{hi} (TensorRT 10 parses {lo}..{hi})")
    if settings.runs < 1:
        raise InputError("--runs must be at least 1")
    if settings.threads is not None and settings.threads < 1:
        raise InputError("--threads must be at least 1")
    if settings.model_path is not None and settings.random_weights:
        raise InputError("pass --model or --random-weights, not both")


def export(settings: ExportSettings, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Export every graph of `settings.model`; returns the report (also written to OUT/MODEL.report.json).

    Raises InputError/OutputError/MissingDependencyError before writing anything, ExportError (exit 1)
    when a graph fails onnx.checker or parity."""
    say = progress or (lambda message: None)
    _validate(settings)
    if settings.to == "tensorrt":
        from neuralframe.backend.runtime import require_tensorrt

        require_tensorrt()
    out_dir, create = _check_out_dir(settings.out)
    entry = model_entry(settings.model)
    # no progress line before the last user error can be raised: an error stays the only line on stderr
    graphs = entry.build(BuildOptions(model_path=settings.model_path, random_weights=settings.random_weights,
                                      dynamic=settings.dynamic, ratios=settings.ratios, size=settings.size,
                                      seed=settings.seed))
    if settings.int8 and all(g.int8 is None for g in graphs):
        raise InputError(f"--int8 is not available for {entry.name} (it is for {', '.join(INT8_MODELS)}); "
                         "export without --int8")
    try:
        out_dir.mkdir(exist_ok=True)
    except OSError as error:
        raise OutputError(f"output folder '{settings.out}' cannot be created ({error.strerror or error})") from None
    written: list[Path] = []
    report_path = out_dir / f"{entry.name}.report.json"
    try:
        with _torch_threads(settings.threads):
            report = _report_head(settings, entry.name)
            for graph in graphs:
                report["graphs"].append(_export_graph(graph, settings, out_dir, written, say))
        report["passed"] = all(g["passed"] for g in report["graphs"])
        with atomic_path(report_path) as tmp:
            tmp.write_text(json.dumps(report, indent=2) + "\n")
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        if create and out_dir.is_dir() and not any(out_dir.iterdir()):
            out_dir.rmdir()
        raise
    if not report["passed"]:
        for path in written:
            path.unlink(missing_ok=True)
        failed = [f"{g['name']}: {f}" for g in report["graphs"] for f in g["failed"]]
        raise ExportError(f"{entry.name}: parity failed for {'; '.join(failed)}; model files removed, "
                          f"details in {report_path}")
    report["report"] = str(report_path)
    return report


@contextlib.contextmanager
def _torch_threads(threads: int | None) -> Iterator[None]:
    import torch

    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _report_head(settings: ExportSettings, name: str) -> dict[str, Any]:
    import onnx
    import onnxruntime
    import torch

    from neuralframe.backend.device import cpu_threads

    precisions = ["fp32"] + (["fp16"] if settings.fp16 else []) + (["int8"] if settings.int8 else [])
    return {
        "format": REPORT_FORMAT, "version": REPORT_VERSION, "model": name, "to": settings.to,
        "precisions": precisions, "dynamic": settings.dynamic, "opset": settings.opset,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "settings": {k: v for k, v in asdict(settings).items() if k not in ("out", "cache_dir")},
        "versions": {"torch": torch.__version__, "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__},
        "cpu_cores": cpu_threads(), "threads": torch.get_num_threads(),
        "graphs": [],
    }


def _write_onnx_checks(path: Path, written: list[Path]) -> dict[str, Any]:
    written.append(path)
    result = {"checker": check(path)}
    result.update(describe(path))
    result["tensorrt_lint"] = lint_mod.lint(path)
    return result


def _export_graph(graph: Graph, settings: ExportSettings, out_dir: Path, written: list[Path],
                  say: Callable[[str], None]) -> dict[str, Any]:
    from neuralframe.backend.runtime import OnnxEngine, TorchEngine
    from neuralframe.export.onnx import to_float16
    from neuralframe.export.parity import check_parity, compare_steps, round_sig, time_one, time_pair

    say(f"{graph.name}: exporting to ONNX (opset {settings.opset})")
    path = export_graph(graph, out_dir / f"{graph.name}.onnx", settings.opset, settings.dynamic)
    fp32 = _write_onnx_checks(path, written)
    files = {"fp32": fp32.pop("file")}
    row: dict[str, Any] = {"name": graph.name, "weights": graph.weights, "notes": list(graph.notes), **fp32,
                           "files": files}
    reference = TorchEngine(graph.reference, graph.inputs, graph.outputs)
    ort = OnnxEngine(path, providers=["CPUExecutionProvider"], threads=settings.threads or 0)
    say(f"{graph.name}: parity against torch in onnxruntime")
    parity = {"fp32": check_parity(graph, reference, ort, graph.tolerance_for("fp32"), settings.dynamic, settings.seed)}
    feed = graph.example()
    timed = TorchEngine(graph.timed or graph.reference, graph.inputs, graph.outputs)
    say(f"{graph.name}: timing torch and onnxruntime ({settings.runs} runs each)")
    torch_ms, ort_ms = time_pair(timed, ort, feed, settings.runs)
    speed: dict[str, Any] = {"device": "cpu", "runs": settings.runs,
                             "input_shapes": {k: list(v.shape) for k, v in feed.items()}, "torch_ms": torch_ms,
                             "ort_ms": ort_ms, "ratio_ort_vs_torch": round_sig(torch_ms / ort_ms)}
    others: dict[str, Any] = {}
    if settings.fp16:
        say(f"{graph.name}: float16 copy")
        path16 = to_float16(path, out_dir / f"{graph.name}.fp16.onnx", graph)
        checks = _write_onnx_checks(path16, written)
        row["files"]["fp16"] = checks.pop("file")
        ort16 = OnnxEngine(path16, providers=["CPUExecutionProvider"], threads=settings.threads or 0)
        parity["fp16"] = check_parity(graph, reference, ort16, graph.tolerance_for("fp16"), settings.dynamic,
                                      settings.seed)
        speed["ort_fp16_ms"] = time_one(ort16, feed, settings.runs)
        others["fp16"] = {"checker": checks["checker"], "tensorrt_lint": checks["tensorrt_lint"],
                          "note": "onnxruntime's CPU provider has few float16 kernels and computes most float16 "
                                  "nodes in float32 (casting around them, its optimiser dropping the cast pairs), "
                                  "so on a CPU this parity measures float16 storage (weights, and activations "
                                  "where the graph itself casts them), not float16 arithmetic, and the speed is "
                                  "not a float16 speed; float16 arithmetic is a GPU precision, checked there by "
                                  "--to tensorrt --fp16"}
    if settings.int8 and graph.int8 is None:
        row["notes"].append("int8: not offered for this graph (float32 and float16 only)")
    if settings.int8 and graph.int8 is not None:
        from neuralframe.export.quantize import quantize_int8

        say(f"{graph.name}: int8 (static quantisation, calibrating)")
        path8 = out_dir / f"{graph.name}.int8.onnx"
        info = quantize_int8(path, path8, graph)
        checks = _write_onnx_checks(path8, written)
        row["files"]["int8"] = checks.pop("file")
        ort8 = OnnxEngine(path8, providers=["CPUExecutionProvider"], threads=settings.threads or 0)
        accuracy = graph.int8.accuracy(reference, ort8)
        real = compare_steps(reference, ort8, graph.real_inputs(), graph.recurrent, graph.tolerance_for("fp16"))
        speed["ort_int8_ms"] = time_one(ort8, feed, settings.runs)
        others["int8"] = {**info, "checker": checks["checker"], "tensorrt_lint": checks["tensorrt_lint"],
                          "accuracy": accuracy, "real_max_abs_err": real["max_abs_err"],
                          "real_mean_abs_err": real["mean_abs_err"],
                          "note": "int8 is judged by its accuracy change, not by the float tolerance"}
    row.update(parity=parity, speed=speed, **others)
    if settings.to == "tensorrt":
        row["tensorrt"] = _tensorrt(graph, path, settings, out_dir, written, say)
    failed = [f"{precision} {f}" for precision, p in parity.items() for f in p["failed"]]
    failed += [f"tensorrt {p} {f}" for p, r in row.get("tensorrt", {}).items() for f in r.get("failed", [])]
    row["failed"] = failed
    row["passed"] = not failed
    return row


def _tensorrt(graph: Graph, path: Path, settings: ExportSettings, out_dir: Path, written: list[Path],
              say: Callable[[str], None]) -> dict[str, Any]:
    """Engines for each precision asked for, checked against torch on the GPU and timed there."""
    import torch

    from neuralframe.backend.runtime import TensorRTEngine, TorchEngine
    from neuralframe.export.parity import check_parity, compare_steps, round_sig, time_pair
    from neuralframe.export.tensorrt import build_engine

    reference = TorchEngine(copy.deepcopy(graph.reference), graph.inputs, graph.outputs, device="cuda")

    def torch_cuda(**feed):
        out = reference(**feed)
        torch.cuda.synchronize()
        return out

    precisions = ["fp32"] + (["fp16"] if settings.fp16 else []) + (["int8"] if settings.int8 and graph.int8 else [])
    results: dict[str, Any] = {}
    for precision in precisions:
        say(f"{graph.name}: TensorRT {precision} engine")
        cached, info = build_engine(path, graph, precision, settings.dynamic,
                                    Path(settings.cache_dir) if settings.cache_dir else None)
        dst = out_dir / f"{graph.name}.{precision}.engine"
        with atomic_path(dst) as tmp:
            shutil.copyfile(cached, tmp)
        written.append(dst)
        engine = TensorRTEngine(dst)
        result: dict[str, Any] = {**info, "file": file_info(dst)}
        if precision == "int8":
            result["accuracy"] = graph.int8.accuracy(reference, engine)
            real = compare_steps(reference, engine, graph.real_inputs(), graph.recurrent, graph.tolerance_for("fp16"))
            result.update(real_max_abs_err=real["max_abs_err"], failed=[])
        else:
            tol = graph.tolerance_for("fp32" if precision == "fp32" else "fp16")
            result["parity"] = check_parity(graph, reference, engine, tol, settings.dynamic, settings.seed)
            result["failed"] = result["parity"]["failed"]
        torch_ms, trt_ms = time_pair(torch_cuda, engine, graph.example(), settings.runs)
        result["speed"] = {"device": torch.cuda.get_device_name(), "torch_cuda_ms": torch_ms, "tensorrt_ms": trt_ms,
                           "ratio_tensorrt_vs_torch": round_sig(torch_ms / trt_ms)}
        results[precision] = result
    return results
