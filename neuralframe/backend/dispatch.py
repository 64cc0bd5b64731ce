"""Kernel registry: each op has implementations named "reference", "cpu" and "cuda".

An implementation is registered by a dotted path (`"package.module:function"`) and imported on first
use, so registering costs nothing and a missing optional package only matters when it is asked for.
A failed import is cached and reported with the implementation's install hint.

    rasterize = dispatch.op("splat.rasterize")
    rasterize.register("reference", "neuralframe.render.splat.rasterize_ref:rasterize")
    rasterize.register("cpu", "neuralframe.render.splat.rasterize_cpu:rasterize", requires=("numba",))
    rasterize.register("cuda", "neuralframe.render.splat.rasterize_cuda:rasterize", requires=("gsplat",),
                       device="cuda", hint="pip install 'neuralframe[cuda]' on a GPU machine")
    fn = rasterize.resolve("auto", device)       # the fastest available for that device
    rasterize.name_for("auto", device)           # "cpu", for a HUD or a benchmark

`impl="auto"` prefers "cuda" for CUDA devices, then "cpu" for CPU devices, then "reference", which
runs anywhere torch does.
"""

from __future__ import annotations

import importlib
import threading
from dataclasses import dataclass, field
from typing import Any, Callable

from neuralframe.backend.device import has_module
from neuralframe.errors import InputError, MissingDependencyError

IMPL_NAMES = ("reference", "cpu", "cuda")
# Fastest first; "auto" takes the first one that is available for the device.
_AUTO_ORDER = ("cuda", "cpu", "reference")


@dataclass
class Implementation:
    name: str
    target: str | Callable[..., Any]
    requires: tuple[str, ...] = ()
    device: str | None = None  # "cpu" or "cuda": the only device type this implementation runs on
    hint: str = ""
    available_fn: Callable[[], bool] | None = None
    _fn: Callable[..., Any] | None = field(default=None, repr=False)
    _error: str | None = field(default=None, repr=False)

    def missing(self) -> str | None:
        """Why this implementation cannot run here, or None when it can (imports nothing heavy)."""
        if self._error is not None:
            return self._error
        for module in self.requires:
            if not has_module(module):
                return f"the '{module}' package is not installed"
        if self.available_fn is not None and not self.available_fn():
            return "its device is not available here"
        return None

    def supports(self, device_type: str | None) -> bool:
        return self.device is None or device_type is None or self.device == device_type

    def load(self) -> Callable[..., Any]:
        if self._fn is not None:
            return self._fn
        if callable(self.target):
            self._fn = self.target
            return self._fn
        module_name, _, attr = self.target.partition(":")
        try:
            module = importlib.import_module(module_name)
            self._fn = getattr(module, attr)
        except Exception as error:  # cache the failure: do not retry a broken build every call
            self._error = f"it failed to load ({type(error).__name__}: {error})"
            raise
        return self._fn


class Op:
    """One operation and its registered implementations."""

    def __init__(self, name: str):
        self.name = name
        self._impls: dict[str, Implementation] = {}
        self._lock = threading.Lock()

    def register(
        self,
        impl: str,
        target: str | Callable[..., Any],
        *,
        requires: tuple[str, ...] | list[str] = (),
        device: str | None = None,
        hint: str = "",
        available: Callable[[], bool] | None = None,
    ) -> None:
        """Register `target` ("module:function" or a callable) as implementation `impl`."""
        if impl not in IMPL_NAMES:
            raise ValueError(f"implementation name must be one of {IMPL_NAMES}, got {impl!r}")
        self._impls[impl] = Implementation(impl, target, tuple(requires), device, hint, available)

    @property
    def implementations(self) -> tuple[str, ...]:
        return tuple(name for name in IMPL_NAMES if name in self._impls)

    def available(self, device_type: str | None = None) -> list[str]:
        """Names of the implementations that can run here (on `device_type`, when given)."""
        return [
            name
            for name in IMPL_NAMES
            if name in self._impls
            and self._impls[name].supports(device_type)
            and self._impls[name].missing() is None
        ]

    def name_for(self, impl: str = "auto", device: Any = None) -> str:
        """The implementation `impl` resolves to for `device` (a torch.device, "cpu", "cuda" or None)."""
        device_type = _device_type(device)
        if impl == "auto":
            for name in _AUTO_ORDER:
                entry = self._impls.get(name)
                if entry is None or not entry.supports(device_type) or entry.missing() is not None:
                    continue
                try:
                    with self._lock:
                        entry.load()
                except Exception:
                    continue  # a broken fast path falls back to the next one
                return name
            raise MissingDependencyError(f"no implementation of '{self.name}' can run on {device_type or 'this machine'}")
        if impl not in self._impls:
            known = ", ".join(("auto",) + self.implementations)
            raise InputError(f"'{self.name}' has no implementation '{impl}': use one of {known}")
        entry = self._impls[impl]
        if not entry.supports(device_type):
            raise InputError(
                f"the '{impl}' implementation of '{self.name}' runs on {entry.device} only, "
                f"not on {device_type}"
            )
        reason = entry.missing()
        if reason is not None:
            raise MissingDependencyError(_unavailable(self.name, entry, reason))
        return impl

    def resolve(self, impl: str = "auto", device: Any = None) -> Callable[..., Any]:
        """The callable for `impl` on `device`; a clear error when it cannot run here."""
        name = self.name_for(impl, device)
        entry = self._impls[name]
        try:
            with self._lock:
                return entry.load()
        except Exception as error:
            raise MissingDependencyError(_unavailable(self.name, entry, entry.missing() or str(error))) from error

    def __call__(self, *args: Any, impl: str = "auto", device: Any = None, **kwargs: Any) -> Any:
        return self.resolve(impl, device)(*args, **kwargs)

    def __repr__(self) -> str:
        return f"Op({self.name!r}, implementations={self.implementations})"


def _unavailable(op: str, entry: Implementation, reason: str) -> str:
    text = f"the '{entry.name}' implementation of '{op}' is not available: {reason}"
    return f"{text} ({entry.hint})" if entry.hint else text


def _device_type(device: Any) -> str | None:
    if device is None:
        return None
    kind = getattr(device, "type", None)
    if kind is not None:
        return str(kind)
    return str(device).split(":", 1)[0]


class Registry:
    """All ops by name; `neuralframe info` lists it."""

    def __init__(self) -> None:
        self._ops: dict[str, Op] = {}
        self._lock = threading.Lock()

    def op(self, name: str) -> Op:
        with self._lock:
            if name not in self._ops:
                self._ops[name] = Op(name)
            return self._ops[name]

    def get(self, name: str) -> Op:
        if name not in self._ops:
            raise InputError(f"unknown op '{name}': known ops are {', '.join(sorted(self._ops)) or 'none'}")
        return self._ops[name]

    def names(self) -> list[str]:
        return sorted(self._ops)


REGISTRY = Registry()


def op(name: str) -> Op:
    """The op called `name` in the process-wide registry (created on first use)."""
    return REGISTRY.op(name)


def check_impl(impl: str) -> str:
    """Validate an `impl=` argument early, with a clear message."""
    if impl != "auto" and impl not in IMPL_NAMES:
        raise InputError(f"unknown implementation '{impl}': use auto, {', '.join(IMPL_NAMES)}")
    return impl
