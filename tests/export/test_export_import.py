"""`import neuralframe.export` (and its registry) stays cheap: no torch, onnx or onnxruntime until an export runs."""

import json
import subprocess
import sys

HEAVY = ["torch", "onnx", "onnxruntime", "tensorrt", "numba", "cv2"]


def test_import_export_registry_loads_no_heavy_module():
    code = ("import neuralframe.export, neuralframe.export.specs, neuralframe.export.lint, neuralframe.cli\n"
            "from neuralframe.export import MODELS\n"
            f"import sys, json; print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
