"""Per-stage latency and throughput, frame accounting and the report a pipeline returns."""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any

_WINDOW = 4096  # latencies kept per stage: enough for stable percentiles, bounded for live runs


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


class StageStats:
    """Timing of one pipeline node (source, stage or sink); updated by its own worker thread only."""

    def __init__(self, name: str, kind: str):
        self.name = name
        self.kind = kind
        self.frames = 0
        self.busy_s = 0.0
        self.filtered = 0
        self._latencies: deque[float] = deque(maxlen=_WINDOW)

    def record(self, seconds: float) -> None:
        self.frames += 1
        self.busy_s += seconds
        self._latencies.append(seconds)

    def summary(self, wall_s: float) -> dict[str, Any]:
        lat = list(self._latencies)
        return {
            "name": self.name,
            "kind": self.kind,
            "frames": self.frames,
            "filtered": self.filtered,
            "ms_mean": 1000.0 * self.busy_s / self.frames if self.frames else 0.0,
            "ms_p50": 1000.0 * _percentile(lat, 0.5),
            "ms_p95": 1000.0 * _percentile(lat, 0.95),
            # what this node alone could sustain, and what it did sustain over the run
            "fps_capacity": self.frames / self.busy_s if self.busy_s > 0 else 0.0,
            "fps": self.frames / wall_s if wall_s > 0 else 0.0,
            "busy": self.busy_s / wall_s if wall_s > 0 else 0.0,
        }


class Ledger:
    """Where every frame went: written, dropped by a `latest` edge, filtered by a stage, or discarded."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.emitted = 0
        self.written = 0
        self.dropped = 0
        self.filtered = 0
        self.discarded = 0  # in flight when the pipeline was cancelled or failed
        self._latency: deque[float] = deque(maxlen=_WINDOW)

    def add(self, what: str, n: int = 1) -> None:
        with self._lock:
            setattr(self, what, getattr(self, what) + n)

    def written_one(self, latency_s: float) -> None:
        with self._lock:
            self.written += 1
            self._latency.append(latency_s)

    def balanced(self) -> bool:
        return self.emitted == self.written + self.dropped + self.filtered + self.discarded

    def latency_ms(self) -> tuple[float, float]:
        with self._lock:
            lat = list(self._latency)
        return 1000.0 * _percentile(lat, 0.5), 1000.0 * _percentile(lat, 0.95)


@dataclass
class PipelineReport:
    """The outcome of `Pipeline.run()`: status, frame accounting, per-node timing."""

    status: str  # "completed" (end of stream), "stopped" (stop()/Ctrl-C, drained), "cancelled", "failed"
    wall_s: float
    frames_in: int
    frames_out: int
    dropped: int
    filtered: int
    discarded: int
    latency_ms_p50: float
    latency_ms_p95: float
    nodes: list[dict[str, Any]] = field(default_factory=list)
    dropped_per_edge: list[int] = field(default_factory=list)
    policies: list[str] = field(default_factory=list)
    output: str | None = None
    error: str | None = None
    end_reason: str | None = None  # why a source ended early (a camera unplugged), if it said

    @property
    def fps(self) -> float:
        return self.frames_out / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def accounted(self) -> bool:
        return self.frames_in == self.frames_out + self.dropped + self.filtered + self.discarded

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "frames_in": self.frames_in,
            "frames_out": self.frames_out,
            "dropped": self.dropped,
            "filtered": self.filtered,
            "discarded": self.discarded,
            "accounted": self.accounted,
            "wall_s": round(self.wall_s, 4),
            "fps": round(self.fps, 3),
            "latency_ms_p50": round(self.latency_ms_p50, 3),
            "latency_ms_p95": round(self.latency_ms_p95, 3),
            "policies": self.policies,
            "dropped_per_edge": self.dropped_per_edge,
            "nodes": [{k: (round(v, 3) if isinstance(v, float) else v) for k, v in n.items()} for n in self.nodes],
            "output": self.output,
            "error": self.error,
            "end_reason": self.end_reason,
        }
