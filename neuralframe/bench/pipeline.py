"""`neuralframe bench pipeline`: the threaded pipeline against a plain loop, side by side in one run.

Both run the same work over the same 720p H.264 input: decode (PyAV) -> a fused colour-grade stage ->
encode (H.264, PyAV) to a file. The loop does the three one after the other on one thread; the
pipeline runs each on its own worker thread joined by bounded `block` queues, so decode, the stage and
encode overlap. Runs alternate (loop, pipeline, loop, ...) so drift in the machine's speed hits both.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Callable


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

        say("warming up")
        _loop(src, Path(tmp) / "warm.mp4", stage_factory, sink_factory)
        loop_fps, pipe_fps, reports = [], [], []
        for r in range(repeats):
            say(f"round {r + 1}/{repeats}: loop")
            n, dt = _loop(src, Path(tmp) / "loop.mp4", stage_factory, sink_factory)
            loop_fps.append(n / dt)
            say(f"round {r + 1}/{repeats}: pipeline")
            n2, dt2, report = _pipeline(src, Path(tmp) / "pipe.mp4", stage_factory, sink_factory, queue_size)
            if n2 != n:
                raise RuntimeError(f"pipeline wrote {n2} frames, loop {n}")
            pipe_fps.append(n2 / dt2)
            reports.append(report)
    fps_loop = statistics.median(loop_fps)
    fps_pipeline = statistics.median(pipe_fps)
    best = reports[pipe_fps.index(fps_pipeline)] if fps_pipeline in pipe_fps else reports[-1]
    return {
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
    }


def print_summary(result: dict) -> None:
    """`result` in one line, as `neuralframe bench pipeline` prints it."""
    from neuralframe.console import console

    console.print(f"pipeline [bold]{result['fps_pipeline']:.1f} FPS[/] vs loop {result['fps_loop']:.1f} FPS: "
                  f"[bold]{result['ratio']:.2f}x[/] ({result['width']}x{result['height']}, {result['frames']} "
                  f"frames, {result['cpu_cores']} cores)", highlight=False)
