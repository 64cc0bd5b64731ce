"""Frames are data: an image tensor, its index and timestamp, and free-form metadata."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import torch


@dataclass
class Frame:
    """One frame travelling through a pipeline.

    Args:
        image: uint8 [H, W, C] as sources give it (RGB, channels last); stages may carry other layouts
            between themselves, but what reaches a sink is uint8 [H, W, 3].
        index: position in the source's stream, from 0 (kept through stages, so drops show as gaps).
        timestamp: presentation time in seconds from the start of the stream.
        metadata: anything a stage wants to pass downstream (a camera, a mask, a prompt).
        born: `time.perf_counter()` when the source produced it, for end-to-end latency.
    """

    image: "torch.Tensor"
    index: int
    timestamp: float
    metadata: dict[str, Any] = field(default_factory=dict)
    born: float = field(default_factory=time.perf_counter)

    def replace(self, **changes: Any) -> "Frame":
        """A copy with some fields changed (index, timestamp and birth time are kept)."""
        return dataclasses.replace(self, **changes)

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def width(self) -> int:
        return int(self.image.shape[1])


@dataclass(frozen=True)
class StreamInfo:
    """What a source knows about its stream before the first frame."""

    width: int
    height: int
    fps: float
    frames: int | None = None  # None: unknown or endless (a webcam)
    name: str = ""
    live: bool = False  # a live source drops frames rather than wait

    def resized(self, height: int, width: int) -> "StreamInfo":
        return dataclasses.replace(self, width=int(width), height=int(height))
