"""Will TensorRT 10 take this graph? Operators, opset and tensor types checked against its ONNX parser.

`TENSORRT10_OPS` is the "Y" rows of onnx-tensorrt's operator support matrix (docs/operators.md,
ONNX-TensorRT 10.0/10.1 GA): the parser imports ONNX opsets 9 to 20. The lint is by operator type and
element type only; per-operator restrictions (e.g. Resize's antialiasing, `axes` that must be
initializers) show when the engine is built, except the zero points of Q/DQ nodes, checked here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

TENSORRT_VERSION = "10.0"
TENSORRT10_OPSETS = (9, 20)

TENSORRT10_OPS = frozenset("""
Abs Acos Acosh Add And ArgMax ArgMin Asin Asinh Atan Atanh AveragePool BatchNormalization Cast CastLike Ceil
Celu Clip Concat Constant ConstantOfShape Conv ConvTranspose Cos Cosh CumSum DeformConv DepthToSpace
DequantizeLinear Div Dropout Einsum Elu Equal Erf Exp Expand EyeLike Flatten Floor Gather GatherElements GatherND
Gelu Gemm GlobalAveragePool GlobalLpPool GlobalMaxPool Greater GreaterOrEqual GridSample GroupNormalization GRU
HardSigmoid HardSwish Hardmax Identity If ImageScaler InstanceNormalization IsInf IsNaN LayerNormalization
LeakyRelu Less LessOrEqual Log LogSoftmax Loop LRN LSTM LpNormalization LpPool MatMul Max MaxPool Mean
MeanVarianceNormalization Min Mish Mod Mul Neg NonMaxSuppression NonZero Not OneHot Or Pad ParametricSoftplus
Pow PRelu QuantizeLinear RandomNormal RandomNormalLike RandomUniform RandomUniformLike Range Reciprocal ReduceL1
ReduceL2 ReduceLogSum ReduceLogSumExp ReduceMax ReduceMean ReduceMin ReduceProd ReduceSum ReduceSumSquare Relu
Reshape Resize ReverseSequence RNN RoiAlign Round ScaledTanh Scan Scatter ScatterElements ScatterND Selu Shape
Shrink Sigmoid Sign Sin Sinh Size Slice Softmax Softplus Softsign SpaceToDepth Split Sqrt Squeeze Sub Sum Tan
Tanh ThresholdedRelu Tile TopK Transpose Trilu Unsqueeze Upsample Where Xor
""".split())

# ONNX element types TensorRT 10 takes (DOUBLE is cast down where possible; UINT8 only at the network's
# inputs and outputs; INT8/INT4/FP8 only through Q/DQ).
TENSORRT10_TYPES = frozenset({"FLOAT", "FLOAT16", "BFLOAT16", "INT32", "INT64", "INT8", "UINT8", "BOOL"})


def lint(path: Path) -> dict[str, Any]:
    """Operators outside TensorRT 10's supported set, an opset outside 9..20, tensor types it lacks."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
    unsupported: dict[str, int] = {}
    for node in model.graph.node:
        name = node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}.{node.op_type}"
        if node.domain not in ("", "ai.onnx") or node.op_type not in TENSORRT10_OPS:
            unsupported[name] = unsupported.get(name, 0) + 1
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:  # inference is best effort; the types of inputs/outputs are known anyway
        inferred = model
    types = set()
    for v in (*inferred.graph.input, *inferred.graph.output, *inferred.graph.value_info):
        types.add(onnx.TensorProto.DataType.Name(v.type.tensor_type.elem_type))
    for t in inferred.graph.initializer:
        types.add(onnx.TensorProto.DataType.Name(t.data_type))
    bad_types = sorted(t for t in types - TENSORRT10_TYPES if t != "UNDEFINED")
    opset_ok = TENSORRT10_OPSETS[0] <= opset <= TENSORRT10_OPSETS[1]
    restrictions = _zero_points(model)
    return {
        "tensorrt": TENSORRT_VERSION,
        "opsets": list(TENSORRT10_OPSETS),
        "opset_ok": opset_ok,
        "unsupported_ops": dict(sorted(unsupported.items())),
        "unsupported_types": bad_types,
        "restrictions": restrictions,
        "ok": opset_ok and not unsupported and not bad_types and not restrictions,
    }


def _zero_points(model) -> list[str]:
    """TensorRT takes Q/DQ only with zero points 0 (symmetric int8); the one restriction checked here,
    because onnxruntime's CPU quantisation produces asymmetric uint8 by default."""
    from onnx import numpy_helper

    inits = {t.name: t for t in model.graph.initializer}
    nonzero = 0
    for node in model.graph.node:
        if node.op_type in ("QuantizeLinear", "DequantizeLinear") and len(node.input) > 2:
            zp = inits.get(node.input[2])
            if zp is not None and numpy_helper.to_array(zp).any():
                nonzero += 1
    if not nonzero:
        return []
    return [f"{nonzero} QuantizeLinear/DequantizeLinear nodes with non-zero zero points "
            "(TensorRT needs them 0: symmetric int8)"]
