"""A graph to an ONNX file, checked and described: written under a temporary name, then renamed.

    path = export_graph(graph, out_dir / "segmenter.onnx", opset=17, dynamic=False)
    check(path)                       # "ok", or raises ExportError with onnx.checker's message
    describe(path)                    # opset, inputs/outputs (shapes, dynamic axes, dtypes), ops, bytes
    to_float16(path, out, graph)      # a float16 copy (float32 inputs and outputs kept)
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import os
import warnings
from pathlib import Path
from typing import Any, Iterator

from neuralframe.errors import NeuralframeError, OutputError
from neuralframe.export.specs import Graph

DEFAULT_OPSET = 17


class ExportError(NeuralframeError):
    """An export did not produce a valid graph, or its parity check failed (not a user error: exit 1)."""

    exit_code = 1


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary name beside `path` that becomes `path` when the block succeeds, and is gone if it fails."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as error:
        raise OutputError(f"{path}: cannot be written ({error.strerror or error})") from None
    finally:
        if tmp.exists():
            tmp.unlink()


def export_graph(graph: Graph, path: Path, opset: int = DEFAULT_OPSET, dynamic: bool = False) -> Path:
    """Trace `graph.module` on its example inputs into `path` (TorchScript exporter: no data-dependent
    Python control flow survives tracing, every shape decision is fixed or a Shape op)."""
    import torch

    example = graph.example()
    args = tuple(example[name] for name in graph.inputs)
    axes = graph.dynamic_axes if dynamic else {}
    with atomic_path(path) as tmp, warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer warnings about shape arithmetic and the exporter's deprecation
        torch.onnx.export(graph.module, args, str(tmp), input_names=list(graph.inputs),
                          output_names=list(graph.outputs), dynamic_axes=axes or None,
                          opset_version=opset, do_constant_folding=True, dynamo=False)
        outputs = graph.module(*args)
        outputs = (outputs,) if isinstance(outputs, torch.Tensor) else tuple(outputs)
        _name_output_dims(tmp, {n: tuple(o.shape) for n, o in zip(graph.outputs, outputs)}, axes)
    return path


def _name_output_dims(path: Path, shapes: dict[str, tuple[int, ...]], axes: dict[str, dict[int, str]]) -> None:
    """Output dims as the user should read them: a dynamic axis by its name, every other axis by its size
    (the exporter leaves placeholder names such as 'Sigmoidmask_dim_0' where its shape inference stops)."""
    import onnx

    model = onnx.load(str(path))
    for value in model.graph.output:
        dims = value.type.tensor_type.shape.dim
        want = shapes[value.name]
        if len(dims) != len(want):
            continue
        for i, d in enumerate(dims):
            name = axes.get(value.name, {}).get(i)
            if name:
                d.dim_param = name
            else:
                d.dim_value = int(want[i])
    onnx.save(model, str(path))


def check(path: Path) -> str:
    """onnx.checker's full check of the file (by path, so models over 2 GB with external data work)."""
    import onnx

    try:
        onnx.checker.check_model(str(path), full_check=True)
    except Exception as error:  # onnx raises ValidationError and shape-inference errors
        raise ExportError(f"{path.name}: onnx.checker failed: {str(error).splitlines()[0]}") from None
    return "ok"


def _dtype(elem_type: int) -> str:
    import onnx

    return {"FLOAT": "float32", "FLOAT16": "float16", "DOUBLE": "float64", "INT64": "int64", "INT32": "int32",
            "UINT8": "uint8", "INT8": "int8", "BOOL": "bool"}.get(onnx.TensorProto.DataType.Name(elem_type),
                                                                   onnx.TensorProto.DataType.Name(elem_type))


def _io(values) -> list[dict[str, Any]]:
    out = []
    for v in values:
        t = v.type.tensor_type
        shape, axes = [], {}
        for i, d in enumerate(t.shape.dim):
            if d.HasField("dim_value"):
                shape.append(int(d.dim_value))
            else:
                shape.append(d.dim_param or "?")
                axes[str(i)] = d.dim_param or "?"
        out.append({"name": v.name, "shape": shape, "dtype": _dtype(t.elem_type), "dynamic_axes": axes})
    return out


def file_info(path: Path) -> dict[str, Any]:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return {"path": path.name, "bytes": path.stat().st_size, "sha256": digest.hexdigest()}


def describe(path: Path) -> dict[str, Any]:
    """Opset, inputs and outputs (shape, dtype, dynamic axes), operator counts and the file itself."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
    ops = collections.Counter(n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}.{n.op_type}"
                              for n in model.graph.node)
    return {"opset": int(opset), "inputs": _io(model.graph.input), "outputs": _io(model.graph.output),
            "ops": dict(sorted(ops.items())), "file": file_info(path)}


def _drop_duplicate_nodes(graph) -> None:
    """Remove a node that repeats an earlier one exactly (same op, inputs, attributes and output names)."""
    seen: dict[str, bytes] = {}
    keep = []
    for node in graph.node:
        key = node.SerializeToString(deterministic=True)
        if node.output and all(seen.get(o) == key for o in node.output):
            continue
        for o in node.output:
            seen.setdefault(o, key)
        keep.append(node)
    del graph.node[:]
    graph.node.extend(keep)


def _sort_nodes(graph) -> None:
    """Reorder `graph.node` so that every node comes after the nodes producing its inputs (stable)."""
    known = {i.name for i in graph.input} | {t.name for t in graph.initializer} | {""}
    pending = list(graph.node)
    ordered = []
    while pending:
        rest = []
        for node in pending:
            if all(name in known for name in node.input):
                ordered.append(node)
                known.update(node.output)
            else:
                rest.append(node)
        if len(rest) == len(pending):  # a cycle or a dangling input: leave the rest for the checker to name
            ordered.extend(rest)
            break
        pending = rest
    del graph.node[:]
    graph.node.extend(ordered)


def to_float16(src: Path, dst: Path, graph: Graph) -> Path:
    """A float16 copy of `src`, inputs and outputs kept float32 (callers feed the same tensors).

    All float tensors become float16 (onnxruntime's converter), or, with `graph.fp16_ops`, only the
    nodes of those operator types run in float16 and every other tensor stays float32 (the converter's
    block list would still round the tensors between blocked nodes to float16)."""
    import onnx

    model = onnx.load(str(src))
    if graph.fp16_ops is None:
        from onnxruntime.transformers.float16 import convert_float_to_float16

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = convert_float_to_float16(model, keep_io_types=True)
        _drop_duplicate_nodes(model.graph)  # the converter can insert one cast twice
    else:
        _float16_nodes(model.graph, set(graph.fp16_ops))
    _sort_nodes(model.graph)  # casts are appended at the end: ONNX wants topological order
    with atomic_path(dst) as tmp:
        onnx.save(model, str(tmp))
    return dst


def _float16_nodes(graph, ops: set[str]) -> None:
    """Run the nodes of `ops` in float16: their float32 weights stored as float16, casts on their float32
    activations in and out; a cast back to float32 followed by a cast to float16 is skipped."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    inits = {t.name: t for t in graph.initializer}
    inferred = onnx.shape_inference.infer_shapes(onnx.helper.make_model(graph)).graph
    types = {v.name: v.type.tensor_type.elem_type for v in (*inferred.input, *inferred.value_info, *inferred.output)}
    types.update({t.name: t.data_type for t in graph.initializer})
    half_of: dict[str, str] = {}  # float32 tensor -> its float16 twin
    nodes = []
    for node in graph.node:
        if node.op_type not in ops:
            nodes.append(node)
            continue
        for i, name in enumerate(node.input):
            if types.get(name) != TensorProto.FLOAT:
                continue
            if name not in half_of:
                twin = f"{name}__fp16"
                if name in inits:
                    graph.initializer.append(numpy_helper.from_array(
                        numpy_helper.to_array(inits[name]).astype(np.float16), twin))
                else:
                    nodes.append(helper.make_node("Cast", [name], [twin], to=TensorProto.FLOAT16,
                                                  name=f"{twin}__cast"))
                half_of[name] = twin
            node.input[i] = half_of[name]
        nodes.append(node)
        for i, name in enumerate(node.output):
            if types.get(name) != TensorProto.FLOAT:
                continue
            twin = f"{name}__fp16"
            node.output[i] = twin
            half_of[name] = twin  # later float16 consumers read the twin directly
            nodes.append(helper.make_node("Cast", [twin], [name], to=TensorProto.FLOAT, name=f"{name}__cast"))
    used = {i for n in nodes for i in n.input} | {o.name for o in graph.output}
    nodes = [n for n in nodes if not (n.op_type == "Cast" and n.name.endswith("__cast") and not set(n.output) & used)]
    del graph.node[:]
    graph.node.extend(nodes)
    for t in list(graph.initializer):
        if t.name in half_of and t.name not in used:
            graph.initializer.remove(t)


