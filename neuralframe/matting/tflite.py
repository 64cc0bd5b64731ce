"""A minimal reader for TensorFlow Lite flatbuffers: just what importing a float32 model needs.

A .tflite file is a FlatBuffer (schema `tensorflow/lite/schema/schema.fbs`). We read it with `struct`
and numpy, so importing a bundled model needs no TensorFlow and no generated schema code:

    model = read_tflite("selfie_segmentation.tflite")
    graph = model.subgraphs[0]
    for op in graph.operators:
        print(op.name, [graph.tensors[i].shape for i in op.inputs], op.options)

FlatBuffer layout in brief: every table starts with an int32 offset back (`table - soffset`) to its
vtable; the vtable lists uint16 byte offsets of each field inside the table (0: absent, use the
default). Vectors and strings are a uint32 length followed by the data; references to them (and to
sub-tables) are uint32 offsets relative to where the reference is stored.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from neuralframe.errors import InputError

# TensorType in the schema -> numpy dtype
_DTYPES = {0: np.float32, 1: np.float16, 2: np.int32, 3: np.uint8, 4: np.int64, 6: np.bool_, 7: np.int16,
           9: np.int8, 10: np.float64}

# BuiltinOperator codes for the operators our importer knows (schema.fbs enum BuiltinOperator)
BUILTIN_NAMES = {
    0: "ADD", 1: "AVERAGE_POOL_2D", 2: "CONCATENATION", 3: "CONV_2D", 4: "DEPTHWISE_CONV_2D", 6: "DEQUANTIZE",
    14: "LOGISTIC", 17: "MAX_POOL_2D", 18: "MUL", 19: "RELU", 21: "RELU6", 22: "RESHAPE", 23: "RESIZE_BILINEAR",
    25: "SOFTMAX", 28: "TANH", 34: "PAD", 40: "MEAN", 67: "TRANSPOSE_CONV", 97: "RESIZE_NEAREST_NEIGHBOR",
    117: "HARD_SWISH", 32: "CUSTOM",
}

# Fields of each builtin options table we read: name -> (field index, struct format, default)
_OPTION_FIELDS: dict[str, dict[str, tuple[int, str, Any]]] = {
    "CONV_2D": {"padding": (0, "b", 0), "stride_w": (1, "i", 1), "stride_h": (2, "i", 1),
                "activation": (3, "b", 0), "dilation_w": (4, "i", 1), "dilation_h": (5, "i", 1)},
    "DEPTHWISE_CONV_2D": {"padding": (0, "b", 0), "stride_w": (1, "i", 1), "stride_h": (2, "i", 1),
                          "depth_multiplier": (3, "i", 1), "activation": (4, "b", 0), "dilation_w": (5, "i", 1),
                          "dilation_h": (6, "i", 1)},
    "AVERAGE_POOL_2D": {"padding": (0, "b", 0), "stride_w": (1, "i", 1), "stride_h": (2, "i", 1),
                        "filter_w": (3, "i", 1), "filter_h": (4, "i", 1), "activation": (5, "b", 0)},
    "MAX_POOL_2D": {"padding": (0, "b", 0), "stride_w": (1, "i", 1), "stride_h": (2, "i", 1),
                    "filter_w": (3, "i", 1), "filter_h": (4, "i", 1), "activation": (5, "b", 0)},
    "ADD": {"activation": (0, "b", 0)},
    "MUL": {"activation": (0, "b", 0)},
    "CONCATENATION": {"axis": (0, "i", 0), "activation": (1, "b", 0)},
    "RESIZE_BILINEAR": {"align_corners": (2, "?", False), "half_pixel_centers": (3, "?", False)},
    "RESIZE_NEAREST_NEIGHBOR": {"align_corners": (0, "?", False), "half_pixel_centers": (1, "?", False)},
    "TRANSPOSE_CONV": {"padding": (0, "b", 0), "stride_w": (1, "i", 1), "stride_h": (2, "i", 1)},
    "MEAN": {"keep_dims": (0, "?", False)},
}

PADDING = {0: "SAME", 1: "VALID"}
ACTIVATION = {0: None, 1: "relu", 2: "relu_n1_to_1", 3: "relu6", 4: "tanh"}


@dataclass
class Tensor:
    name: str
    shape: tuple[int, ...]
    dtype: Any
    data: np.ndarray | None  # constant contents (weights), None for activations


@dataclass
class Operator:
    name: str  # builtin name ("CONV_2D") or the custom code ("Convolution2DTransposeBias")
    inputs: tuple[int, ...]  # tensor indices; -1 marks an omitted optional input
    outputs: tuple[int, ...]
    options: dict[str, Any] = field(default_factory=dict)
    custom_options: bytes = b""


@dataclass
class Subgraph:
    tensors: list[Tensor]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    operators: list[Operator]
    name: str


@dataclass
class Model:
    version: int
    subgraphs: list[Subgraph]
    description: str


class _Table:
    """A flatbuffer table at byte offset `pos` of `buf`."""

    __slots__ = ("buf", "pos", "vt", "vt_len")

    def __init__(self, buf: bytes, pos: int):
        self.buf = buf
        self.pos = pos
        self.vt = pos - struct.unpack_from("<i", buf, pos)[0]
        self.vt_len = struct.unpack_from("<H", buf, self.vt)[0]

    def _field(self, index: int) -> int:
        """Absolute offset of field `index`, or 0 when absent."""
        slot = 4 + 2 * index
        if slot >= self.vt_len:
            return 0
        rel = struct.unpack_from("<H", self.buf, self.vt + slot)[0]
        return self.pos + rel if rel else 0

    def scalar(self, index: int, fmt: str, default: Any = 0) -> Any:
        at = self._field(index)
        return struct.unpack_from("<" + fmt, self.buf, at)[0] if at else default

    def _deref(self, index: int) -> int:
        at = self._field(index)
        return at + struct.unpack_from("<I", self.buf, at)[0] if at else 0

    def table(self, index: int) -> "_Table | None":
        at = self._deref(index)
        return _Table(self.buf, at) if at else None

    def string(self, index: int) -> str:
        at = self._deref(index)
        if not at:
            return ""
        n = struct.unpack_from("<I", self.buf, at)[0]
        return self.buf[at + 4:at + 4 + n].decode("utf-8", errors="replace")

    def vector(self, index: int, dtype) -> np.ndarray:
        at = self._deref(index)
        if not at:
            return np.zeros(0, dtype)
        n = struct.unpack_from("<I", self.buf, at)[0]
        return np.frombuffer(self.buf, dtype=np.dtype(dtype).newbyteorder("<"), count=n, offset=at + 4)

    def tables(self, index: int) -> list["_Table"]:
        at = self._deref(index)
        if not at:
            return []
        n = struct.unpack_from("<I", self.buf, at)[0]
        out = []
        for k in range(n):
            ref = at + 4 + 4 * k
            out.append(_Table(self.buf, ref + struct.unpack_from("<I", self.buf, ref)[0]))
        return out


def _options(name: str, table: _Table | None) -> dict[str, Any]:
    fields = _OPTION_FIELDS.get(name, {})
    out: dict[str, Any] = {}
    for key, (index, fmt, default) in fields.items():
        out[key] = table.scalar(index, fmt, default) if table is not None else default
    if "padding" in out:
        out["padding"] = PADDING.get(out["padding"], out["padding"])
    if "activation" in out:
        out["activation"] = ACTIVATION.get(out["activation"], f"unknown({out['activation']})")
    return out


def parse_tflite(buf: bytes, where: str = "model") -> Model:
    """Parse the bytes of a .tflite file (float32 weights are copied out of the buffer)."""
    if len(buf) < 8 or buf[4:8] != b"TFL3":
        raise InputError(f"'{where}' is not a TensorFlow Lite model (no TFL3 identifier): use a .tflite file")
    root = _Table(buf, struct.unpack_from("<I", buf, 0)[0])
    buffers = [b.vector(0, np.uint8) for b in root.tables(4)]
    codes = []
    for oc in root.tables(1):
        code = max(int(oc.scalar(0, "b", 0)), int(oc.scalar(3, "i", 0)))
        codes.append(oc.string(1) if code == 32 else BUILTIN_NAMES.get(code, f"BUILTIN_{code}"))
    subgraphs = []
    for sg in root.tables(2):
        tensors = []
        for t in sg.tables(0):
            shape = tuple(int(v) for v in t.vector(0, np.int32))
            type_code = t.scalar(1, "b", 0)
            if type_code not in _DTYPES:
                raise InputError(f"'{where}' has a tensor of unsupported type {type_code}")
            dtype = _DTYPES[type_code]
            index = t.scalar(2, "I", 0)
            data = None
            raw = buffers[index] if 0 < index < len(buffers) else None
            if raw is not None and raw.size:
                data = np.frombuffer(raw.tobytes(), dtype=np.dtype(dtype).newbyteorder("<")).astype(dtype)
                data = data.reshape(shape) if shape else data
            tensors.append(Tensor(t.string(3), shape, dtype, data))
        ops = []
        for o in sg.tables(3):
            name = codes[o.scalar(0, "I", 0)]
            ops.append(Operator(
                name=name,
                inputs=tuple(int(v) for v in o.vector(1, np.int32)),
                outputs=tuple(int(v) for v in o.vector(2, np.int32)),
                options=_options(name, o.table(4)),
                custom_options=o.vector(5, np.uint8).tobytes(),
            ))
        subgraphs.append(Subgraph(tensors, tuple(int(v) for v in sg.vector(1, np.int32)),
                                  tuple(int(v) for v in sg.vector(2, np.int32)), ops, sg.string(4)))
    return Model(int(root.scalar(0, "I", 0)), subgraphs, root.string(3))


def read_tflite(path: str | os.PathLike) -> Model:
    """Read and parse a .tflite file; a clear error for a missing, empty or foreign file."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"model file '{p}' does not exist")
    buf = p.read_bytes()
    if not buf:
        raise InputError(f"model file '{p}' is empty (0 bytes)")
    try:
        return parse_tflite(buf, str(p))
    except InputError:
        raise
    except (struct.error, IndexError, ValueError) as error:
        raise InputError(f"model file '{p}' is a corrupt TensorFlow Lite flatbuffer ({error})") from None
