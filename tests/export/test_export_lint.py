"""The TensorRT lint names what TensorRT 10 would reject: operators, opsets, tensor types."""

from __future__ import annotations

import onnx
from onnx import TensorProto, helper

from neuralframe.export.lint import TENSORRT10_OPS, lint


def _model(path, node, opset, dtype=TensorProto.INT64):
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("a", dtype, [4]),
                                            helper.make_tensor_value_info("b", dtype, [4])],
                              [helper.make_tensor_value_info("y", dtype, [4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def test_bitwise_xor_is_reported(tmp_path):
    # the NeRF hash's XOR written the obvious way: TensorRT 10 has no BitwiseXor
    result = lint(_model(tmp_path / "xor.onnx", helper.make_node("BitwiseXor", ["a", "b"], ["y"]), 18))
    assert result["unsupported_ops"] == {"BitwiseXor": 1}
    assert result["opset_ok"] and not result["ok"]


def test_supported_graph_passes_and_old_opsets_and_double_are_flagged(tmp_path):
    ok = lint(_model(tmp_path / "add.onnx", helper.make_node("Add", ["a", "b"], ["y"]), 17, TensorProto.FLOAT))
    assert ok["ok"] and ok["unsupported_ops"] == {} and ok["unsupported_types"] == []
    old = lint(_model(tmp_path / "old.onnx", helper.make_node("Add", ["a", "b"], ["y"]), 8, TensorProto.FLOAT))
    assert not old["opset_ok"] and not old["ok"]
    double = lint(_model(tmp_path / "f64.onnx", helper.make_node("Add", ["a", "b"], ["y"]), 17, TensorProto.DOUBLE))
    assert double["unsupported_types"] == ["DOUBLE"] and not double["ok"]


def test_the_operator_set_has_what_the_models_use_and_not_what_tensorrt_lacks():
    assert {"Conv", "Resize", "DepthToSpace", "HardSwish", "Gather", "Mod", "QuantizeLinear",
            "DequantizeLinear", "AveragePool"} <= TENSORRT10_OPS
    assert not {"BitwiseXor", "BitwiseAnd", "BitShift", "ConvInteger", "QLinearConv", "Unique"} & TENSORRT10_OPS


def test_asymmetric_quantisation_is_a_tensorrt_restriction(tmp_path):
    import numpy as np
    from onnx import numpy_helper

    def qdq(zero_point):
        nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"]),
                 helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"])]
        graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])],
                                  [numpy_helper.from_array(np.array(0.1, np.float32), "s"),
                                   numpy_helper.from_array(np.array(zero_point, np.int8), "z")])
        path = tmp_path / f"qdq{zero_point}.onnx"
        onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
        return lint(path)

    assert qdq(0)["ok"] and qdq(0)["restrictions"] == []
    asymmetric = qdq(3)
    assert not asymmetric["ok"] and "2 QuantizeLinear/DequantizeLinear nodes" in asymmetric["restrictions"][0]
