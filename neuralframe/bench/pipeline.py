"""`neuralframe bench pipeline`: the threaded pipeline against a plain loop, side by side in one run.

Both run the same work over the same 720p H.264 input: decode (PyAV) -> a fused colour-grade stage ->
encode (H.264, PyAV) to a file. The loop does the three one after the other on one thread; the
pipeline runs each on its own worker thread joined by bounded `block` queues, so decode, the stage and
encode overlap. Both sides get the same warm-up (one untimed run each) and the same number of timed runs,
in alternating order (loop first in odd rounds, the pipeline first in even ones), so neither the cold start
nor drift in the machine's speed favours a side. Checks: the pipeline is not slower than the loop over the
same work, and at least `MIN_FPS_PIPELINE` at 1280x720 on any supported machine (2 cores measured 47.5).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

MIN_FPS_PIPELINE = 20.0  # absolute floor at 1280x720 (benchmarks/pipeline.json: 47.5 on 2 cores)


def _make_input(path: Path, frames: int, size: tuple[int, int]) -> None:
    from neuralframe.streaming import Pipeline
    from neuralframe.streaming.sinks import VideoFileSink
    from neuralframe.streaming.sources import PatternSource

    Pipeline(PatternSource(width=size[1], height=size[0], fps=30.0, frames=frames), [],
             VideoFileSink(path, crf=20)).run()


def _loop(src_path: Path, out_path: Path, stage_factory: Callable, sink_factory: Callable) -> tuple[int, float]:
    from neuralframe.streaming.sources import VideoFileSource

    t0 = time.perf_counter()
    source = VideoFileSource(src_path)
    info = source.open()
    stage = stage_factory()
    stage.setup(info)
    sink = sink_factory(out_path)
    sink.open(info)
    n = 0
    try:
        while (frame := source.read()) is not None:
            sink.write(stage.process(frame))
            n += 1
        sink.close()
    except BaseException:
        sink.abort()
        raise
    finally:
        source.close()
    return n, time.perf_counter() - t0


def _pipeline(src_path: Path, out_path: Path, stage_factory: Callable, sink_factory: Callable,
              queue_size: int) -> tuple[int, float, Any]:
    from neuralframe.streaming import Pipeline
    from neuralframe.streaming.sources import VideoFileSource

    t0 = time.perf_counter()
    report = Pipeline(VideoFileSource(src_path), [stage_factory()], sink_factory(out_path),
                      queue_size=queue_size).run()
    return report.frames_out, time.perf_counter() - t0, report


def run(frames: int = 240, repeats: int = 3, size: tuple[int, int] = (720, 1280), grade: str = "warm",
        impl: str = "auto", queue_size: int = 4, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Measure fps of the loop and the pipeline; returns the JSON-ready result."""
    from neuralframe.backend import dispatch, fused
    from neuralframe.backend.device import cpu_threads
    from neuralframe.streaming.sinks import VideoFileSink
    from neuralframe.streaming.stages import ColorResize

    say = progress or (lambda msg: None)
    impl_name = dispatch.op("fused.color_resize").name_for(impl, "cpu")
    del fused
    with tempfile.TemporaryDirectory(prefix="nf-bench-") as tmp:
        src = Path(tmp) / "input.mp4"
        say(f"making a {size[1]}x{size[0]} input of {frames} frames")
        _make_input(src, frames, size)

        def stage_factory():
            return ColorResize(size, grade, impl=impl)

        def sink_factory(path):
            return VideoFileSink(path, crf=20)

        say("warming up both sides")
        _loop(src, Path(tmp) / "warm.mp4", stage_factory, sink_factory)
        _pipeline(src, Path(tmp) / "warm.mp4", stage_factory, sink_factory, queue_size)
        loop_fps, pipe_fps, reports = [], [], []
        for r in range(repeats):
            sides = ("loop", "pipeline") if r % 2 == 0 else ("pipeline", "loop")
            counts = {}
            for side in sides:
                say(f"round {r + 1}/{repeats}: {side}")
                if side == "loop":
                    counts["loop"], dt = _loop(src, Path(tmp) / "loop.mp4", stage_factory, sink_factory)
                    loop_fps.append(counts["loop"] / dt)
                else:
                    counts["pipeline"], dt, report = _pipeline(src, Path(tmp) / "pipe.mp4", stage_factory,
                                                               sink_factory, queue_size)
                    pipe_fps.append(counts["pipeline"] / dt)
                    reports.append(report)
            if counts["pipeline"] != counts["loop"]:
                raise RuntimeError(f"pipeline wrote {counts['pipeline']} frames, loop {counts['loop']}")
    fps_loop = statistics.median(loop_fps)
    fps_pipeline = statistics.median(pipe_fps)
    best = reports[pipe_fps.index(fps_pipeline)] if fps_pipeline in pipe_fps else reports[-1]
    result = {
        "benchmark": "pipeline",
        "fps_pipeline": round(fps_pipeline, 2),
        "fps_loop": round(fps_loop, 2),
        "ratio": round(fps_pipeline / fps_loop, 3),
        "frames": frames,
        "repeats": repeats,
        "width": size[1],
        "height": size[0],
        "work": f"decode h264 -> color_resize[{grade}, impl={impl_name}] -> encode h264 (libx264 veryfast crf 20)",
        "fps_loop_runs": [round(v, 2) for v in loop_fps],
        "fps_pipeline_runs": [round(v, 2) for v in pipe_fps],
        "pipeline_nodes": [{k: round(v, 2) if isinstance(v, float) else v for k, v in n.items()
                            if k in ("name", "ms_mean", "ms_p95", "fps_capacity", "busy")} for n in best.nodes],
        "cpu_cores": cpu_threads(),
        "order": "alternating, one warm-up run of each side",
    }
    result["checks"] = {
        "pipeline_not_slower_than_loop": fps_pipeline >= fps_loop,
        f"fps_pipeline_ge_{MIN_FPS_PIPELINE:g}": fps_pipeline >= MIN_FPS_PIPELINE,
    }
    return result


def print_summary(result: dict) -> None:
    """`result` in one line, as `neuralframe bench pipeline` prints it."""
    from neuralframe.console import console

    console.print(f"pipeline [bold]{result['fps_pipeline']:.1f} FPS[/] vs loop {result['fps_loop']:.1f} FPS: "
                  f"[bold]{result['ratio']:.2f}x[/] ({result['width']}x{result['height']}, {result['frames']} "
                  f"frames, {result['cpu_cores']} cores)", highlight=False)
    console.print(f"checks: {result['checks']}", highlight=False, markup=False)
