"""What `neuralframe info` reports: versions, threads, devices and optional capabilities."""

from __future__ import annotations

import platform
import sys
from typing import Any

from neuralframe.backend import device as dev


def collect() -> dict[str, Any]:
    """Everything a bug report needs, as plain data (loads torch and onnxruntime to ask them)."""
    import torch

    import neuralframe

    packages = {name: dev.package_version(name) for name in (
        "torch", "numpy", "numba", "av", "opencv-python-headless", "onnx", "onnxruntime", "diffusers",
        "transformers", "safetensors", "pyglet", "gsplat", "tensorrt", "ray", "pyvirtualcam")}
    cuda_devices = []
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(i)
            cuda_devices.append({"index": i, "name": props.name, "memory_gib": round(props.total_memory / 2**30, 1),
                                 "capability": f"{props.major}.{props.minor}"})
    from neuralframe.backend import dispatch
    from neuralframe.backend import fused  # noqa: F401 - registers the fused ops

    ops = {name: dispatch.REGISTRY.get(name).available("cpu") + (
        ["cuda"] if "cuda" in dispatch.REGISTRY.get(name).available("cuda") and torch.cuda.is_available() else [])
        for name in dispatch.REGISTRY.names()}
    return {
        "neuralframe": neuralframe.__version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "machine": platform.machine(),
        "threads": {"cpu_cores": dev.cpu_threads(), "torch_intra_op": torch.get_num_threads()},
        "packages": packages,
        "devices": {"auto": str(dev.resolve_device("auto")), "cuda": cuda_devices},
        "capabilities": {
            "cuda": bool(cuda_devices),
            "gsplat": dev.has_gsplat(),
            "numba": dev.has_numba(),
            "onnxruntime_providers": dev.onnxruntime_providers(),
            "tensorrt": dev.has_tensorrt(),
            "ray": dev.has_ray(),
            "virtualcam": dev.has_virtualcam(),
            "display": dev.has_display(),
            "webcams": dev.list_webcams(),
        },
        "kernels": ops,
    }


def print_info(data: dict[str, Any]) -> None:
    from rich.table import Table

    from neuralframe.console import console

    console.print(f"[bold]neuralframe {data['neuralframe']}[/]  python {data['python']}  {data['platform']}",
                  highlight=False)
    console.print(f"cores: {data['threads']['cpu_cores']}  torch threads: {data['threads']['torch_intra_op']}  "
                  f"default device: [bold]{data['devices']['auto']}[/]", highlight=False)
    for gpu in data["devices"]["cuda"]:
        console.print(f"  cuda:{gpu['index']} {gpu['name']} {gpu['memory_gib']} GiB (sm {gpu['capability']})")
    caps = Table(show_edge=False, header_style="bold", title=None)
    caps.add_column("capability")
    caps.add_column("status")
    yes, no = "[green]yes[/]", "[dim]no[/]"
    c = data["capabilities"]
    rows = [
        ("CUDA", yes if c["cuda"] else no),
        ("gsplat (CUDA splats)", yes if c["gsplat"] else f"{no}  pip install 'neuralframe[cuda]' on a GPU machine"),
        ("numba (CPU kernels)", yes if c["numba"] else no),
        ("onnxruntime providers", ", ".join(c["onnxruntime_providers"]) or no),
        ("TensorRT", yes if c["tensorrt"] else f"{no}  pip install 'neuralframe[tensorrt]'"),
        ("Ray", yes if c["ray"] else f"{no}  pip install 'neuralframe[distributed]'"),
        ("virtual camera", yes if c["virtualcam"] else f"{no}  pip install 'neuralframe[virtualcam]'"),
        ("display", yes if c["display"] else f"{no}  (no DISPLAY: use offline commands, or xvfb-run)"),
        ("webcams", ", ".join(f"webcam:{i}" for i in c["webcams"]) or no),
    ]
    for name, status in rows:
        caps.add_row(name, status.replace("'neuralframe[", "'neuralframe\\["))
    console.print(caps)
    pk = Table(show_edge=False, header_style="bold")
    pk.add_column("package")
    pk.add_column("version")
    for name, version in data["packages"].items():
        pk.add_row(name, version or "[dim]not installed[/]")
    console.print(pk)
    if data["kernels"]:
        console.print("kernels: " + "; ".join(f"{k} ({', '.join(v)})" for k, v in data["kernels"].items()),
                      highlight=False, markup=False)
