"""`neuralframe bench matte`: the default matting path end to end, and our segmenter next to OpenCV's.

End to end: decode (PyAV, H.264) -> segment (the bundled segmenter as our torch module, or its ONNX
export in onnxruntime) -> refine (temporal stabilisation + fast guided filter) -> composite over a
colour (fused kernel) -> encode (H.264, libx264 veryfast) into a file, as a `block` pipeline, at
1280x720 and 1920x1080, on a clip of a bundled photo of a person over a moving background.

Segmenter: our torch module (as the runner uses it: traced, channels-last) and OpenCV DNN running the
same .tflite (`cv2.dnn.readNetFromTFLite`), alternated call by call on the same input so machine drift
hits both; medians reported, with the max abs difference of their masks.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

SIZES = ((720, 1280), (1080, 1920))


def _make_input(path: Path, frames: int, size: tuple[int, int]) -> None:
    from neuralframe.matting.media import make_clip
    from neuralframe.streaming import Pipeline
    from neuralframe.streaming.frame import Frame, StreamInfo
    from neuralframe.streaming.pipeline import Source
    from neuralframe.streaming.sinks import VideoFileSink

    unique = min(frames, 12)  # a short moving clip, played forwards and back
    clip = make_clip(unique, size, moving=True)
    order = [i % (2 * unique - 2) for i in range(frames)] if unique > 1 else [0] * frames
    order = [i if i < unique else 2 * unique - 2 - i for i in order]

    class _Frames(Source):
        name = "clip"

        def __init__(self):
            self.i = 0

        def open(self):
            return StreamInfo(width=size[1], height=size[0], fps=30.0, frames=frames)

        def read(self):
            if self.i >= frames:
                return None
            f = Frame(image=clip.frames[order[self.i]], index=self.i, timestamp=self.i / 30.0)
            self.i += 1
            return f

    Pipeline(_Frames(), [], VideoFileSink(path, crf=20)).run()


def _end_to_end(src: Path, out: Path, backend: str) -> dict[str, Any]:
    from neuralframe.apps.effects import effect_chain
    from neuralframe.streaming import Pipeline
    from neuralframe.streaming.sinks import VideoFileSink
    from neuralframe.streaming.sources import VideoFileSource

    seg, ref = [], []

    def on_frame(frame):
        ms = frame.metadata.get("matte_ms", {})
        seg.append(ms.get("segment", 0.0))
        ref.append(ms.get("refine", 0.0))

    stages = effect_chain("replace:#00b140", matte_backend=backend)
    pipeline = Pipeline(VideoFileSource(src), stages, VideoFileSink(out, crf=20), policy="block",
                        on_frame=on_frame)
    t0 = time.perf_counter()
    pipeline.start()  # setup (model load, kernel warm-up) is not part of the frame rate
    t1 = time.perf_counter()
    report = pipeline.wait()
    wall = time.perf_counter() - t1
    nodes = {n["name"]: n for n in report.nodes}
    matte_ms = nodes["replace"]["ms_mean"]
    segment_ms, refine_ms = statistics.mean(seg), statistics.mean(ref)
    return {
        "fps_end_to_end": round(report.frames_out / wall, 2),
        "frames": report.frames_out,
        "all_frames_accounted": report.frames_out == report.frames_in,
        "setup_s": round(t1 - t0, 3),
        "stage_ms": {
            "decode": round(nodes["decode"]["ms_mean"], 2),
            "segment": round(segment_ms, 2),
            "refine": round(refine_ms, 2),
            "composite": round(max(0.0, matte_ms - refine_ms), 2),
            "encode": round(nodes["encode"]["ms_mean"], 2),
        },
        "latency_ms_p50": round(report.latency_ms_p50, 2),
    }


def segmenter_side_by_side(variant: str = "landscape", calls: int = 40) -> dict[str, Any]:
    """Our torch module (traced, as the runner uses it) vs OpenCV DNN on the same .tflite and input."""
    import cv2
    import numpy as np
    import torch

    from neuralframe.matting.media import load_person
    from neuralframe.matting.segmenter import load_segmenter, model_path, optimize_for_cpu

    model = load_segmenter(variant=variant)
    ours = optimize_for_cpu(model)
    net = cv2.dnn.readNetFromTFLite(str(model_path(variant)))
    photo = load_person("astronaut")
    x = torch.nn.functional.interpolate(photo.permute(2, 0, 1)[None].float() / 255, size=model.size, mode="area")
    xn = np.ascontiguousarray(x.numpy())

    def run_ours():
        with torch.inference_mode():
            return ours(x)

    def run_cv():
        net.setInput(xn)
        return net.forward()

    for _ in range(5):
        a, b = run_ours(), run_cv()
    t_ours, t_cv = [], []
    for _ in range(calls):
        t = time.perf_counter()
        run_ours()
        t_ours.append(time.perf_counter() - t)
        t = time.perf_counter()
        run_cv()
        t_cv.append(time.perf_counter() - t)
    ours_ms, cv_ms = 1e3 * statistics.median(t_ours), 1e3 * statistics.median(t_cv)
    return {
        "variant": variant,
        "input": list(model.size),
        "torch_ms": round(ours_ms, 3),
        "opencv_ms": round(cv_ms, 3),
        "ratio_opencv_over_torch": round(cv_ms / ours_ms, 3),
        "max_abs_diff": float(np.abs(a.numpy() - b.reshape(a.shape)).max()),
        "torch_threads": torch.get_num_threads(),
        "opencv_threads": cv2.getNumThreads(),
    }


def run(quick: bool = False, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Measure; returns the JSON-ready result."""
    from neuralframe.backend.device import cpu_threads

    say = progress or (lambda msg: None)
    frames = 45 if quick else 150
    result: dict[str, Any] = {"benchmark": "matte", "frames": frames, "cpu_cores": cpu_threads(),
                              "path": "decode h264 -> [thread] segment (bundled selfie segmenter) -> [thread] refine (temporal + "
                                      "fast guided filter) + composite (fused) -> encode h264 (veryfast crf 20)",
                              "sizes": {}}
    with tempfile.TemporaryDirectory(prefix="nf-bench-matte-") as tmp:
        for size in SIZES:
            key = f"{size[1]}x{size[0]}"
            src = Path(tmp) / f"in-{key}.mp4"
            say(f"making a {key} input of {frames} frames")
            _make_input(src, frames, size)
            result["sizes"][key] = {}
            for backend in ("torch", "onnx"):
                say(f"{key}: end to end, {backend}")
                result["sizes"][key][backend] = _end_to_end(src, Path(tmp) / f"out-{key}-{backend}.mp4", backend)
    say("segmenter: ours vs OpenCV DNN")
    result["segmenter_ms"] = {v: segmenter_side_by_side(v, 20 if quick else 60) for v in ("landscape", "general")}
    r720 = result["sizes"]["1280x720"]["torch"]["fps_end_to_end"]
    result["checks"] = {
        "fps_end_to_end_720p_torch_ge_30": r720 >= 30.0,
        "segmenter_not_slower_than_opencv": all(v["torch_ms"] <= v["opencv_ms"] for v in result["segmenter_ms"].values()),
    }
    return result


if __name__ == "__main__":  # pragma: no cover
    import json
    import sys

    print(json.dumps(run(quick="--quick" in sys.argv, progress=lambda m: print(m, file=sys.stderr)), indent=2))


def print_summary(result: dict) -> None:
    """`result` in one line, as `neuralframe bench matte` prints it (720p end to end, the segmenter side by side)."""
    from neuralframe.console import console

    hd = result["sizes"]["1280x720"]
    seg = result["segmenter_ms"]["landscape"]
    console.print(f"matting 1280x720: torch [bold]{hd['torch']['fps_end_to_end']} FPS[/], onnxruntime "
                  f"{hd['onnx']['fps_end_to_end']} FPS; segmenter {seg['torch_ms']} ms (ours) vs "
                  f"{seg['opencv_ms']} ms (OpenCV)", highlight=False)
