"""The causal video model's key/value cache: a frame sink plus a short window, as explicit state.

    cache = KVCache(layers=4, sink=1, window=6)
    cache.append(frame, [(k0, v0), (k1, v1), ...])     # per layer [B, N, C]: one frame's tokens
    k, v = cache.layer(2)                              # [B, (frames held) * N, C], oldest first
    cache.recache(lambda frames: recompute(frames))    # the window's keys/values under a new prompt
    cache.reset()

LongLive's recipe for constant cost per frame however long a video runs:

- **Frame sink.** The first `sink` frames stay in the cache for good, as attention anchors (without them
  attention over a sliding window drifts once the first frames leave it).
- **Short window.** Besides the sink, only the `window` most recent frames are kept. Appending a frame to
  a full window evicts the oldest window frame. The storage is one ring buffer allocated when the first
  frame arrives, so memory is flat from then on and no step re-allocates.
- **KV-recache.** When the prompt changes, the cached keys and values were computed under the old one.
  `recache(compute)` hands the held frames' indices to `compute`, which re-runs the model over those
  frames under the new prompt and returns their keys and values; they replace the cached ones (the
  window's by default; the sink's too with `include_sink=True`). The switch is then smooth (the frames
  are the same) and the new prompt is followed (their keys and values now carry it).

State is explicit (`append`, `evict`, `recache`, `reset`), tested on its own.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch

from neuralframe.errors import InputError

FrameKV = Sequence[tuple[torch.Tensor, torch.Tensor]]  # per layer: (keys, values), each [B, N, C]


class KVCache:
    """Per-layer keys and values of a frame sink and a sliding window of recent frames.

    Args:
        layers: attention layers that read the cache.
        sink: frames kept from the start of the video (0 for none).
        window: most recent frames kept besides the sink (at least 1).
    """

    def __init__(self, layers: int, sink: int = 1, window: int = 4):
        if layers < 1:
            raise InputError(f"a KV cache needs at least one layer, got {layers}")
        if sink < 0 or window < 1:
            raise InputError(f"a KV cache keeps sink >= 0 and window >= 1 frames, got sink {sink}, window {window}")
        self.n_layers, self.sink, self.window = int(layers), int(sink), int(window)
        self._keys: torch.Tensor | None = None  # [L, sink + window, B, N, C], allocated by the first frame
        self._values: torch.Tensor | None = None
        self.reset()

    # ---- state ----
    def reset(self) -> None:
        """Forget every frame (the storage is kept for the next video of the same shape)."""
        self._sink_frames: list[int] = []
        self._window_frames: list[int] = []  # oldest first
        self._window_slots: list[int] = []  # ring slot of each window frame, in the same order
        self._next_slot = 0

    @property
    def frames(self) -> list[int]:
        """The frame indices held, in attention order: the sink, then the window oldest first."""
        return self._sink_frames + self._window_frames

    def __len__(self) -> int:
        return len(self._sink_frames) + len(self._window_frames)

    @property
    def nbytes(self) -> int:
        """Bytes of the storage (allocated once, by the first frame)."""
        if self._keys is None:
            return 0
        return self._keys.element_size() * self._keys.numel() * 2

    def _check(self, kv: FrameKV) -> None:
        if len(kv) != self.n_layers:
            raise InputError(f"a frame's keys/values must cover {self.n_layers} layers, got {len(kv)}")
        shape = tuple(kv[0][0].shape)
        for i, (k, v) in enumerate(kv):
            if k.dim() != 3 or tuple(k.shape) != shape or tuple(v.shape) != shape:
                raise InputError(f"layer {i}: keys and values must both be [B, N, C] = {list(shape)}, got "
                                 f"{list(k.shape)} and {list(v.shape)}")
        if self._keys is not None and tuple(self._keys.shape[2:]) != shape:
            raise InputError(f"this cache holds frames of [B, N, C] = {list(self._keys.shape[2:])}, got "
                             f"{list(shape)}; reset it with another cache for a new shape")

    def _allocate(self, kv: FrameKV) -> None:
        k = kv[0][0]
        shape = (self.n_layers, self.sink + self.window, *k.shape)
        self._keys = k.new_zeros(shape)
        self._values = k.new_zeros(shape)

    def _write(self, slot: int, kv: FrameKV) -> None:
        for i, (k, v) in enumerate(kv):
            self._keys[i, slot].copy_(k)
            self._values[i, slot].copy_(v)

    def append(self, frame: int, kv: FrameKV) -> None:
        """Add one frame's keys and values (per layer [B, N, C]); the sink fills first, then the window,
        whose oldest frame is evicted when it is full."""
        self._check(kv)
        if self._keys is None:
            self._allocate(kv)
        if len(self._sink_frames) < self.sink:
            self._write(len(self._sink_frames), kv)
            self._sink_frames.append(int(frame))
            return
        if len(self._window_frames) == self.window:
            self.evict(1)
        slot = self.sink + self._next_slot
        self._next_slot = (self._next_slot + 1) % self.window
        self._write(slot, kv)
        self._window_frames.append(int(frame))
        self._window_slots.append(slot)

    def evict(self, n: int = 1) -> None:
        """Drop the `n` oldest window frames (the sink stays)."""
        if n < 0 or n > len(self._window_frames):
            raise InputError(f"cannot evict {n} frames from a window of {len(self._window_frames)}")
        del self._window_frames[:n]
        del self._window_slots[:n]

    def _slots(self) -> list[int]:
        return list(range(len(self._sink_frames))) + self._window_slots

    def layer(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values of layer `i` over the held frames, in attention order: [B, frames * N, C]."""
        if not 0 <= i < self.n_layers:
            raise InputError(f"layer {i} is not in this cache ({self.n_layers} layers)")
        if not len(self):
            raise InputError("the KV cache is empty: append a frame first")
        slots = self._slots()
        if slots == list(range(len(slots))):  # held frames are contiguous and in order: a view, no copy
            k, v = self._keys[i, :len(slots)], self._values[i, :len(slots)]
        else:
            index = torch.tensor(slots, device=self._keys.device)
            k, v = self._keys[i].index_select(0, index), self._values[i].index_select(0, index)
        f, b, n, c = k.shape
        return k.permute(1, 0, 2, 3).reshape(b, f * n, c), v.permute(1, 0, 2, 3).reshape(b, f * n, c)

    def recache(self, compute: Callable[[list[int]], Sequence[FrameKV]], include_sink: bool = False) -> list[int]:
        """Recompute the cached keys and values (LongLive's KV-recache, on a prompt switch): `compute` gets
        the frame indices to redo, in order, and returns one per-layer list of (keys, values) for each.
        Returns the frames recomputed."""
        frames = self.frames if include_sink else list(self._window_frames)
        if not frames:
            return []
        fresh = list(compute(list(frames)))
        if len(fresh) != len(frames):
            raise InputError(f"recache: compute returned {len(fresh)} frames' keys/values for {len(frames)} frames")
        for kv in fresh:  # all checked before any is written: a refused recache changes nothing
            self._check(kv)
        for slot, kv in zip(self._slots() if include_sink else self._window_slots, fresh):
            self._write(slot, kv)
        return frames
