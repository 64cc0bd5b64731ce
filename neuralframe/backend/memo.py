"""`LastResult`: reuse a value derived from tensors until one of those tensors changes.

A viewer renders the same scene many times; what a kernel derives from it alone (world covariances
of splats, the coarse grids of an occupancy mask) need not be recomputed per frame. The memo keeps the
last tensors themselves, so their memory cannot be reused by other tensors at the same address, and
their version counters, which every in-place change bumps.
"""

from __future__ import annotations

from typing import Callable, Generic, TypeVar

import torch

T = TypeVar("T")


class LastResult(Generic[T]):
    """`memo(*tensors)` returns `fn(*tensors)`, recomputed only when the tensors are other objects than
    last time or any of them was modified in place since."""

    def __init__(self, fn: Callable[..., T]):
        self.fn = fn
        self._tensors: tuple[torch.Tensor, ...] | None = None
        self._versions: tuple[int, ...] = ()
        self._value: T | None = None

    def __call__(self, *tensors: torch.Tensor) -> T:
        versions = tuple(t._version for t in tensors)
        same = (self._tensors is not None and len(self._tensors) == len(tensors)
                and all(a is b for a, b in zip(self._tensors, tensors)) and self._versions == versions)
        if not same:
            self._value = self.fn(*tensors)
            self._tensors, self._versions = tensors, versions
        return self._value  # type: ignore[return-value]
