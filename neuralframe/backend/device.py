"""Device and dtype resolution, and probes for optional capabilities.

Probes never import a heavy package just to answer: they look for it with `importlib.util.find_spec`
unless the question can only be answered by loading it (CUDA devices, onnxruntime providers), and they
are only called when a user asks (`neuralframe info`, `impl="auto"`).
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import os
import sys
from typing import TYPE_CHECKING

from neuralframe.errors import InputError, MissingDependencyError

if TYPE_CHECKING:  # pragma: no cover
    import torch

DEVICE_CHOICES = "auto, cpu, cuda or cuda:N"


def has_module(name: str) -> bool:
    """True when `name` can be imported (found on the path), without importing it."""
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def has_cuda() -> bool:
    """True when torch sees at least one CUDA device."""
    import torch

    return bool(torch.cuda.is_available())


def cuda_device_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def has_gsplat() -> bool:
    """True when gsplat is installed (its CUDA kernels also need `has_cuda()`)."""
    return has_module("gsplat")


def has_numba() -> bool:
    return has_module("numba")


def has_tensorrt() -> bool:
    return has_module("tensorrt")


def has_onnxruntime() -> bool:
    return has_module("onnxruntime")


def has_ray() -> bool:
    return has_module("ray")


def has_virtualcam() -> bool:
    return has_module("pyvirtualcam")


def onnxruntime_providers() -> list[str]:
    """The execution providers onnxruntime offers here (loads onnxruntime)."""
    if not has_onnxruntime():
        return []
    import onnxruntime

    return list(onnxruntime.get_available_providers())


def has_display() -> bool:
    """True when a window can plausibly be opened (an X11/Wayland display, or macOS/Windows)."""
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def list_webcams(max_index: int = 4) -> list[int]:
    """Indices of video capture devices that exist (Linux: /dev/videoN), without opening a camera."""
    if sys.platform.startswith("linux"):
        return [i for i in range(max_index) if os.path.exists(f"/dev/video{i}")]
    return []


def resolve_device(device: "str | torch.device" = "auto") -> "torch.device":
    """Resolve `"auto" | "cpu" | "cuda" | "cuda:N"` (or a torch.device) to a torch.device.

    `auto` is the first CUDA device when there is one, else the CPU. Asking for CUDA where there is
    none raises a `MissingDependencyError` that says so.
    """
    import torch

    if isinstance(device, torch.device):
        text = str(device)
    else:
        text = str(device).strip().lower()
    if text == "auto":
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    if text == "cpu":
        return torch.device("cpu")
    if text == "cuda" or text.startswith("cuda:"):
        index = 0
        if ":" in text:
            suffix = text.split(":", 1)[1]
            if not suffix.isdigit():
                raise InputError(f"unknown device '{device}': use {DEVICE_CHOICES}")
            index = int(suffix)
        if not torch.cuda.is_available():
            raise MissingDependencyError(
                f"device '{device}' asked for, but torch sees no CUDA GPU here "
                "(install a CUDA build of torch on a GPU machine, or use --device cpu)"
            )
        count = torch.cuda.device_count()
        if index >= count:
            raise InputError(f"device '{device}' does not exist: this machine has {count} CUDA device(s)")
        return torch.device(f"cuda:{index}")
    raise InputError(f"unknown device '{device}': use {DEVICE_CHOICES}")


_DTYPES = {"float32": "float32", "fp32": "float32", "float16": "float16", "fp16": "float16",
           "half": "float16", "bfloat16": "bfloat16", "bf16": "bfloat16"}


def resolve_dtype(dtype: "str | torch.dtype" = "auto", device: "str | torch.device" = "cpu") -> "torch.dtype":
    """The compute dtype policy: `auto` is float16 on CUDA and float32 on the CPU.

    Half precision on the CPU is slow and inaccurate in most torch kernels, so float16/bfloat16 on a
    CPU device are accepted only when asked for explicitly.
    """
    import torch

    if isinstance(dtype, torch.dtype):
        return dtype
    text = str(dtype).strip().lower()
    if text == "auto":
        dev = resolve_device(device)
        return torch.float16 if dev.type == "cuda" else torch.float32
    if text not in _DTYPES:
        raise InputError(f"unknown dtype '{dtype}': use auto, float32, float16 or bfloat16")
    return getattr(torch, _DTYPES[text])


def require(module: str, extra: str, purpose: str) -> None:
    """Raise a clear error when an optional package is missing."""
    if not has_module(module):
        raise MissingDependencyError(
            f"{purpose} needs the '{module}' package: pip install 'neuralframe[{extra}]'"
        )


@functools.lru_cache(maxsize=None)
def cpu_threads() -> int:
    """The number of CPU cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def package_version(name: str) -> str | None:
    """Installed version of a distribution, or None (reads metadata, imports nothing)."""
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def import_optional(module: str, extra: str, purpose: str):
    """Import an optional package on first use, or raise a clear error saying what to install."""
    require(module, extra, purpose)
    return importlib.import_module(module)


def machine_info() -> dict:
    """The machine a number was measured on: CPU model, cores, GPU, platform and versions (loads torch).

    Keys: cpu, cores (os.cpu_count), cores_available (this process's affinity), gpu (None without CUDA),
    platform, python, torch. Training cards keep it as one line (`machine_line`); benchmarks as a dict.
    """
    import platform

    import torch

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "cores_available": cpu_threads(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
    }


def machine_line(info: dict | None = None) -> str:
    """`machine_info()` as the one line the model cards store:
    "AMD EPYC, 2 cores, no GPU, torch 2.5.1+cpu, Python 3.11.7"."""
    info = machine_info() if info is None else info
    return (f"{info['cpu']}, {info['cores']} cores, {info['gpu'] or 'no GPU'}, torch {info['torch']}, "
            f"Python {info['python']}")
