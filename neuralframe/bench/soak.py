"""`neuralframe bench soak`: the live streaming filter left running, to show leaks and slow drifts.

Two pipelines run at the same time in one process, each wired as `neuralframe stream` wires a webcam
(`apps.effects.effect_chain`, `latest` edges everywhere, so a slow stage sees only the newest frame and
the frames it never saw are counted as dropped):

- matte: a test pattern paced at 30 FPS (`PATTERN_SIZE`) -> the `blur` effect (segment | refine +
  composite, the bundled segmenter on torch) -> a null sink;
- diffuse: a test pattern paced at 30 FPS (`DIFFUSE_SIZE`) -> the `diffuse` effect (streaming diffusion,
  the bundled tiny-shapes model on torch, CPU) -> a null sink.

Measured: every frame each source emitted is delivered, dropped by a `latest` edge, filtered or discarded
(`frames_unaccounted` is what is left, and must be 0); the sink-side frame index against the count the
source emitted (`index_drift`: frames behind; at the end the newest frame must have arrived); the source's
timestamps against the wall clock (`timestamp_drift_ms`: grows when the source cannot keep its rate);
capture-to-sink latency p50/p99 per window (a minute, or a sixth of a run under 3 minutes); the process's
resident memory (RSS from /proc/self/statm, else psutil) sampled by a thread every few seconds.

After a warm-up (the first 10% of the run or its first minute, whichever is shorter) the memory slope is
fitted by least squares (MB per hour), and latency is compared between the first and last thirds of the
windows (and fitted as a slope, ms per hour). Checks: memory growth at most `MAX_GROWTH_MB_PER_HOUR`, zero
frames unaccounted, no latency trend (last-third p50 <= `TREND_RATIO` x first-third p50 + `TREND_MARGIN_MS`),
each pipeline at least its `FPS_FLOORS`, the newest frame delivered, no thread left. Recorded: benchmarks/soak.json.
"""

from __future__ import annotations

import datetime
import math
import os
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from neuralframe.errors import InputError

PATTERN_SIZE = (360, 640)  # (height, width) of the matting pipeline's pattern
DIFFUSE_SIZE = (128, 128)  # the diffusion pipeline's pattern: the bundled model's native size
FPS = 30.0
PROMPT = "a large red heart"
MAX_GROWTH_MB_PER_HOUR = 20.0
TREND_RATIO, TREND_MARGIN_MS = 1.2, 5.0
# delivered FPS each pipeline must hold while both run: about 60% of a 2-minute run's figures (25.7 and 3.9 FPS)
# on the project's 2-core machine with other jobs loading it (load average 8.6)
FPS_FLOORS = {"matte": 15.0, "diffuse": 2.5}
MAX_MINUTES = 24 * 60


def rss_mb() -> float | None:
    """This process's resident memory in MB: /proc/self/statm, else psutil, else None."""
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        pass
    try:
        import psutil
    except ImportError:
        return None
    return psutil.Process().memory_info().rss / 2**20


def slope_per_hour(ts: list[float], ys: list[float]) -> float | None:
    """The least-squares slope of `ys` over `ts` (seconds), per hour; None with under 2 distinct times."""
    if len(ts) < 2 or max(ts) == min(ts):
        return None
    return float(np.polyfit(np.asarray(ts, dtype=np.float64), np.asarray(ys, dtype=np.float64), 1)[0]) * 3600.0


class _MemorySampler(threading.Thread):
    """RSS every `interval` seconds on its own thread, into preallocated-size lists (times from `t0`)."""

    def __init__(self, t0: float, interval: float):
        super().__init__(name="nf-soak-memory", daemon=True)
        self.t0, self.interval = t0, interval
        self.times: list[float] = []
        self.mb: list[float] = []
        self._done = threading.Event()

    def run(self) -> None:
        while True:
            value = rss_mb()
            if value is not None:
                self.times.append(time.perf_counter() - self.t0)
                self.mb.append(value)
            if self._done.wait(self.interval):
                return

    def close(self) -> None:
        self._done.set()
        if self.is_alive():
            self.join()


def _paced_pattern(size: tuple[int, int], fps: float):
    """An endless `PatternSource` paced at `fps` whose clock starts at its first frame, as a camera's does
    (the stages' set-up time is not a backlog to catch up)."""
    from neuralframe.streaming.sources import PatternSource

    class PacedPattern(PatternSource):
        def read(self):
            if self._i == 0:
                self._t0 = time.perf_counter()
            return super().read()

    return PacedPattern(width=size[1], height=size[0], fps=fps, frames=None, realtime=True)


class _Tap:
    """The sink-side record of one pipeline (its `on_frame`, on the sink's thread): latency per window,
    index and timestamp drift. Only the current window's latencies are kept, so the record stays small."""

    def __init__(self, window_s: float, warmup_s: float):
        self.t0: float | None = None  # set by `arm()` once both pipelines run; frames before are not timed
        self.window_s, self.warmup_s = window_s, warmup_s
        self.pipeline = None
        self.delivered = 0  # since `arm()`
        self.windows: list[dict[str, Any]] = []
        self._window = 0
        self._latencies: list[float] = []
        self.last_index = -1
        self.increasing = True
        self.index_drift_max = 0
        self._offset = math.inf  # the window's least born - timestamp: the source's clock, less its jitter

    def arm(self, t0: float) -> None:
        self.delivered, self.t0 = 0, t0

    def __call__(self, frame) -> None:
        now = time.perf_counter()
        self.increasing = self.increasing and frame.index > self.last_index
        self.last_index = frame.index
        self.index_drift_max = max(self.index_drift_max, self.pipeline.ledger.emitted - 1 - frame.index)
        if self.t0 is None:
            return
        window = int((now - self.t0) // self.window_s)
        if window != self._window:
            self.close_window()
            self._window = window
        self._latencies.append(1000.0 * (now - frame.born))
        self.delivered += 1
        self._offset = min(self._offset, frame.born - frame.timestamp)

    def close_window(self, end: float | None = None) -> None:
        """Summarise the current window; `end` (seconds from `t0`): the run ended inside it."""
        lat = self._latencies
        start = self._window * self.window_s
        covered = self.window_s if end is None else max(0.0, min(self.window_s, end - start))
        self.windows.append({"start_s": round(start, 1), "seconds": round(covered, 1), "frames": len(lat),
                             "p50_ms": round(float(np.percentile(lat, 50)), 2) if lat else None,
                             "p99_ms": round(float(np.percentile(lat, 99)), 2) if lat else None,
                             "clock_s": self._offset if lat else None})
        self._latencies, self._offset = [], math.inf

    def timestamp_drift_ms(self) -> list[float]:
        """Per window after the warm-up: how far the source's timestamps fell behind the wall clock since the
        first such window (ms; the least lag in each window, so pacing jitter does not count)."""
        clocks = [w.pop("clock_s") for w in self.windows]
        kept = [c for w, c in zip(self.windows, clocks) if c is not None and w["start_s"] >= self.warmup_s - 1e-6]
        for w, c in zip(self.windows, clocks):
            w["timestamp_drift_ms"] = round(1000.0 * (c - kept[0]), 2) if kept and c is not None else None
        return [1000.0 * (c - kept[0]) for c in kept]


def _trend(windows: list[dict], warmup_s: float, window_s: float) -> dict[str, Any]:
    """First- vs last-third p50 over the windows that start after the warm-up (a last one cut short to under
    half a window is left out), and the p50's slope."""
    rows = [w for w in windows if w["start_s"] >= warmup_s - 1e-6 and w["p50_ms"] is not None
            and w["seconds"] >= 0.5 * window_s]
    if len(rows) < 2:
        return {"windows": len(rows), "first_third_p50_ms": None, "last_third_p50_ms": None,
                "slope_ms_per_hour": None, "no_trend": False}
    third = max(1, len(rows) // 3)
    first = float(np.median([w["p50_ms"] for w in rows[:third]]))
    last = float(np.median([w["p50_ms"] for w in rows[-third:]]))
    slope = slope_per_hour([w["start_s"] for w in rows], [w["p50_ms"] for w in rows])
    return {"windows": len(rows), "first_third_p50_ms": round(first, 2), "last_third_p50_ms": round(last, 2),
            "slope_ms_per_hour": round(slope, 1) if slope is not None else None,
            "no_trend": last <= TREND_RATIO * first + TREND_MARGIN_MS}


def _build(name: str, tap: _Tap):
    """One live pipeline as `neuralframe stream` builds it: the effect registry's stages, `latest` edges."""
    from neuralframe.apps.effects import effect_chain
    from neuralframe.generate.diffusion.diffuse import DiffuseSettings
    from neuralframe.streaming import Pipeline
    from neuralframe.streaming.sinks import NullSink

    if name == "matte":
        source, chain = _paced_pattern(PATTERN_SIZE, FPS), effect_chain("blur")
    else:
        source = _paced_pattern(DIFFUSE_SIZE, FPS)
        chain = effect_chain("diffuse", diffuse=DiffuseSettings(prompts=(PROMPT,)))
    pipeline = Pipeline(source, chain, NullSink(), policy="latest", on_frame=tap)
    tap.pipeline = pipeline
    return pipeline


def _shutdown(pipes: list) -> list[tuple[Any, BaseException | None]]:
    """Stop every pipeline (a second Ctrl-C cancels them), join every thread, then collect the reports."""
    for p in pipes:
        p.stop()
    try:
        while any(p.running for p in pipes):
            time.sleep(0.05)
    except KeyboardInterrupt:
        for p in pipes:
            p.cancel()
        while any(p.running for p in pipes):
            time.sleep(0.05)
    outcomes = []
    for p in pipes:
        try:
            outcomes.append((p.wait(), None))
        except Exception as error:  # noqa: BLE001 - raised after every pipeline is joined
            outcomes.append((getattr(p, "report", None), error))
    return outcomes


def _stamp() -> dict[str, Any]:
    root = Path(__file__).resolve().parents[2]

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=20)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "--short", "HEAD")
    changed = git("status", "--porcelain", "--untracked-files=no") if commit else None
    return {"date": datetime.date.today().isoformat(), "commit": commit,
            "working_tree_changed": bool(changed) if changed is not None else None}


def run(minutes: float = 60.0, progress: Callable[[str], None] | None = None, bar: bool = False) -> dict[str, Any]:
    """Soak both live pipelines for `minutes` (fractions allowed); returns the JSON-ready result. Ctrl-C
    stops early (a second one cancels): the result says `interrupted` and its full-length check fails."""
    from neuralframe.backend.device import machine_info
    from neuralframe.console import progress_bar

    if not isinstance(minutes, (int, float)) or not math.isfinite(minutes) or not 0 < minutes <= MAX_MINUTES:
        raise InputError(f"--minutes must be above 0 and at most {MAX_MINUTES:,}, got {minutes}")
    say = progress or (lambda message: None)
    seconds = 60.0 * minutes
    warmup_s = min(0.1 * seconds, 60.0)
    window_s = 60.0 if seconds >= 180 else seconds / 6
    interval = min(5.0, max(0.25, seconds / 120))
    threads_before = set(threading.enumerate())
    result: dict[str, Any] = {"benchmark": "soak", "recorded": _stamp(), "machine": machine_info()}
    say("loading the matting and diffusion stages")
    taps = {name: _Tap(window_s, warmup_s) for name in ("matte", "diffuse")}
    pipes = [_build(name, tap) for name, tap in taps.items()]
    started: list = []
    sampler: _MemorySampler | None = None
    interrupted = False
    t0 = time.perf_counter()
    try:
        for p in pipes:
            p.start()
            started.append(p)
        t0 = time.perf_counter()  # the run's clock starts with both pipelines running
        for tap in taps.values():
            tap.arm(t0)
        sampler = _MemorySampler(t0, interval)
        sampler.start()
        say(f"soaking for {minutes:g} minutes")
        with progress_bar("soak (s)", total=int(math.ceil(seconds)), enabled=bar) as shown:
            try:
                while (now := time.perf_counter()) < t0 + seconds and all(p.running for p in started):
                    time.sleep(min(0.5, t0 + seconds - now))
                    elapsed = time.perf_counter() - t0
                    rates = ", ".join(f"{k} {t.delivered / max(elapsed, 1e-9):.1f} FPS" for k, t in taps.items())
                    memory = f", {sampler.mb[-1]:.0f} MB" if sampler.mb else ""
                    shown.update(completed=min(int(elapsed), int(math.ceil(seconds))), rate=rates + memory)
            except KeyboardInterrupt:
                interrupted = True
    finally:
        outcomes = _shutdown(started)
        if sampler is not None:
            sampler.close()
    elapsed = time.perf_counter() - t0
    for _report, error in outcomes:
        if error is not None:
            raise error
    for tap in taps.values():
        if tap.t0 is not None:
            tap.close_window(end=elapsed)
    # ours (pipeline workers, the sampler) are named nf-*; libraries may keep threads of their own (tqdm's monitor)
    new = [t.name for t in threading.enumerate() if t not in threads_before and t.is_alive()]
    result["threads_other_new"] = sorted(name for name in new if not name.startswith("nf-"))
    return _result(result, minutes, elapsed, interrupted, warmup_s, window_s, interval, sampler, taps,
                   [r for r, _ in outcomes], sum(name.startswith("nf-") for name in new))


def _pipeline_row(name: str, tap: _Tap, report, elapsed: float, warmup_s: float) -> dict[str, Any]:
    unaccounted = report.frames_in - report.frames_out - report.dropped - report.filtered - report.discarded
    trend = _trend(tap.windows, warmup_s, tap.window_s)
    drift = tap.timestamp_drift_ms()
    work = (f"pattern {PATTERN_SIZE[1]}x{PATTERN_SIZE[0]} paced at {FPS:g} FPS -> blur (segment | refine + "
            f"composite, torch) -> null" if name == "matte" else
            f"pattern {DIFFUSE_SIZE[1]}x{DIFFUSE_SIZE[0]} paced at {FPS:g} FPS -> diffuse (bundled tiny-shapes, "
            f"torch, steps 30,40, '{PROMPT}') -> null")
    return {
        "work": work + ", latest edges",
        "status": report.status,
        "frames_source": report.frames_in,
        "frames_delivered": report.frames_out,
        "frames_dropped": report.dropped,
        "dropped_per_edge": report.dropped_per_edge,
        "frames_filtered": report.filtered,
        "frames_discarded": report.discarded,
        "frames_unaccounted": unaccounted,
        "fps_delivered": round(tap.delivered / elapsed, 2) if elapsed > 0 else 0.0,  # while both ran
        "index_drift_frames_max": tap.index_drift_max,
        "index_drift_frames_final": report.frames_in - 1 - tap.last_index,
        "indices_increasing": tap.increasing,
        "timestamp_drift_ms_final": round(drift[-1], 2) if drift else None,
        "timestamp_drift_ms_max": round(max(drift, key=abs), 2) if drift else None,
        "latency_trend": trend,
        "latency_per_window": tap.windows,
        "nodes": [{k: round(v, 2) if isinstance(v, float) else v for k, v in n.items()
                   if k in ("name", "frames", "ms_mean", "ms_p95", "fps_capacity", "busy")} for n in report.nodes],
    }


def _result(result: dict, minutes: float, elapsed: float, interrupted: bool, warmup_s: float, window_s: float,
            interval: float, sampler: _MemorySampler, taps: dict, reports: list, threads_left: int) -> dict:
    pipelines = {name: _pipeline_row(name, tap, report, elapsed, warmup_s)
                 for (name, tap), report in zip(taps.items(), reports)}
    after = [(t, m) for t, m in zip(sampler.times, sampler.mb) if t >= warmup_s]
    growth = slope_per_hour([t for t, _ in after], [m for _, m in after])
    memory = {
        "source": "/proc/self/statm" if os.path.exists("/proc/self/statm") else "psutil",
        "interval_s": round(interval, 2),
        "samples": len(sampler.mb),
        "samples_after_warmup": len(after),
        "rss_mb_start": round(sampler.mb[0], 1) if sampler.mb else None,
        "rss_mb_after_warmup": round(after[0][1], 1) if after else None,
        "rss_mb_end": round(sampler.mb[-1], 1) if sampler.mb else None,
        "rss_mb_max": round(max(sampler.mb), 1) if sampler.mb else None,
        # the last sample of each window, for a look at the shape of the curve
        "rss_mb_per_window": [round(m, 1) for m in _last_per_window(sampler.times, sampler.mb, window_s)],
        "growth_mb_per_hour": round(growth, 2) if growth is not None else None,
    }
    total = {k: sum(p[k] for p in pipelines.values())
             for k in ("frames_source", "frames_delivered", "frames_dropped", "frames_unaccounted")}
    result.update({
        "minutes": minutes,
        "seconds_run": round(elapsed, 1),
        "interrupted": interrupted,
        "warmup_s": round(warmup_s, 1),
        "warmup_rule": "the first 10% of the run or its first minute, whichever is shorter",
        "window_s": round(window_s, 1),
        "trend_rule": f"last-third p50 <= {TREND_RATIO} x first-third p50 + {TREND_MARGIN_MS:g} ms "
                      f"(median of the window p50s after the warm-up)",
        "frames_produced": total["frames_delivered"],
        "frames_source": total["frames_source"],
        "frames_dropped": total["frames_dropped"],
        "frames_unaccounted": total["frames_unaccounted"],
        "memory_growth_mb_per_hour": memory["growth_mb_per_hour"],
        "memory": memory,
        "pipelines": pipelines,
        "threads_left": threads_left,
    })
    checks = {
        "ran_full_duration": not interrupted,
        f"memory_growth_at_most_{MAX_GROWTH_MB_PER_HOUR:g}_mb_per_hour":
            growth is not None and growth <= MAX_GROWTH_MB_PER_HOUR,
        "frames_unaccounted_zero": total["frames_unaccounted"] == 0,
        "threads_joined": threads_left == 0,
    }
    for name, row in pipelines.items():
        checks[f"{name}_no_latency_trend"] = bool(row["latency_trend"]["no_trend"])
        checks[f"{name}_at_least_{FPS_FLOORS[name]:g}_fps"] = row["fps_delivered"] >= FPS_FLOORS[name]
        checks[f"{name}_newest_frame_delivered"] = row["index_drift_frames_final"] == 0 and row["indices_increasing"]
    result["checks"] = checks
    result["all_checks_pass"] = all(checks.values())
    result["load_average"] = [round(v, 2) for v in os.getloadavg()]
    return result


def _last_per_window(times: list[float], values: list[float], window_s: float) -> list[float]:
    last: dict[int, float] = {}
    for t, v in zip(times, values):
        last[int(t // window_s)] = v
    return [last[k] for k in sorted(last)]


def print_summary(result: dict) -> None:
    """`result` as `neuralframe bench soak` prints it: one line per pipeline, memory, then the checks."""
    from neuralframe.console import console

    console.print(f"soak {result['seconds_run']:.0f} s{' (interrupted)' if result['interrupted'] else ''}: "
                  f"{result['frames_produced']:,} frames delivered, {result['frames_dropped']:,} dropped, "
                  f"{result['frames_unaccounted']} unaccounted", highlight=False)
    for name, row in result["pipelines"].items():
        trend = row["latency_trend"]
        console.print(f"  {name}: {row['fps_delivered']:.1f} FPS, latency p50 first/last third "
                      f"{trend['first_third_p50_ms']} / {trend['last_third_p50_ms']} ms, index drift max "
                      f"{row['index_drift_frames_max']} frames, timestamp drift {row['timestamp_drift_ms_final']} ms",
                      highlight=False)
    memory = result["memory"]
    console.print(f"  memory: {memory['rss_mb_after_warmup']} -> {memory['rss_mb_end']} MB after a "
                  f"{result['warmup_s']:g} s warm-up, {memory['growth_mb_per_hour']} MB per hour", highlight=False)
    failed = [name for name, ok in result["checks"].items() if not ok]
    console.print("all checks pass" if not failed else f"[red]failed checks[/]: {', '.join(failed)}", highlight=False)
