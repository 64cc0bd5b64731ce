"""`import neuralframe` stays cheap: no torch extension, no window, no camera, no onnxruntime."""

import json
import subprocess
import sys

HEAVY = ["torch", "numba", "pyglet", "cv2", "onnxruntime", "av", "diffusers", "transformers", "gsplat"]


def _loaded_after(code: str) -> list[str]:
    probe = code + f"\nimport sys, json\nprint(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_import_neuralframe_loads_no_heavy_module():
    assert _loaded_after("import neuralframe") == []


def test_import_backend_registry_and_pipeline_are_cheap():
    # registering kernels and building pipelines must not compile or open anything
    loaded = _loaded_after("import neuralframe.backend.dispatch, neuralframe.backend.fused, neuralframe.streaming")
    assert loaded == []


def test_cli_module_imports_without_torch():
    assert _loaded_after("import neuralframe.cli") == []
