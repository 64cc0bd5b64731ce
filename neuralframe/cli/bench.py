"""`neuralframe bench NAME`: each runs `neuralframe.bench.NAME.run(...)`, then prints its `print_summary(result)`
(with --json: the result as one JSON object). Progress goes to stderr, dimmed."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from neuralframe.cli.options import (
    frame_size,
    COUNT,
    DIFFUSERS_FOLDER_HELP,
    FPS,
    FRAMES_AT_LEAST_4,
    GAUSSIANS,
    LONG_RUN,
    MOVING_GAUSSIANS_HELP,
    SECONDS,
    SIDE,
    THREADS,
    THREADS_HELP,
    JsonObject,
    Range,
    parse_size,
    ranged,
)
from neuralframe.errors import InputError

app = typer.Typer(help="Benchmarks: each prints a summary, or one JSON object with --json.", no_args_is_help=True)


def _progress(as_json: bool):
    """Where a benchmark says what it is doing: stderr, unless stdout is for JSON alone."""
    from neuralframe.console import note

    return None if as_json else note


def _show(bench, result: dict, as_json: bool, **summary_options) -> None:
    from neuralframe.console import emit_json

    if as_json:
        from neuralframe.bench import stamp

        emit_json({**result, "recorded": stamp()})
    else:
        bench.print_summary(result, **summary_options)


@app.command("pipeline")
def pipeline(
    frames: int = ranged(240, within=FRAMES_AT_LEAST_4, help="Frames in the 720p test input."),
    repeats: int = ranged(3, within=COUNT, help="Alternating loop/pipeline rounds (the median is reported)."),
    as_json: JsonObject = False,
) -> None:
    """Threaded pipeline vs a plain single-threaded loop: decode -> fused stage -> encode, 720p."""
    from neuralframe.bench import pipeline as bench

    _show(bench, bench.run(frames=frames, repeats=repeats, progress=_progress(as_json)), as_json)


@app.command("splat")
def splat(
    quick: bool = typer.Option(False, help="A tiny run for a smoke test."),
    as_json: JsonObject = False,
) -> None:
    """Gaussian-splat rasterizer: cpu kernel vs the torch reference at 10k/100k/1M Gaussians, a 2M-Gaussian
    SH-3 scene at 1280x720 (the viewer's full-quality frame) and the motorcycle scene."""
    from neuralframe.bench import splat as bench

    _show(bench, bench.run(quick=quick, progress=_progress(as_json)), as_json)


@app.command("nerf")
def nerf(
    quick: bool = typer.Option(False, help="A short run (about 30 s) for a smoke test."),
    as_json: JsonObject = False,
) -> None:
    """Hash-grid NeRF: encoding throughput (cpu vs reference), training PSNR for a fixed budget, render FPS."""
    from neuralframe.bench import nerf as bench

    _show(bench, bench.run(quick=quick, progress=_progress(as_json)), as_json)


@app.command("matte")
def matte(
    quick: bool = typer.Option(False, help="A short run (fewer frames) for a smoke test."),
    as_json: JsonObject = False,
) -> None:
    """Matting end to end (decode -> segment -> refine -> composite -> encode) at 720p and 1080p, torch
    and onnxruntime, and our segmenter next to OpenCV DNN running the same .tflite."""
    from neuralframe.bench import matte as bench

    _show(bench, bench.run(quick=quick, progress=_progress(as_json)), as_json)


@app.command("data")
def data(
    quick: bool = typer.Option(False, help="A short run for a smoke test."),
    as_json: JsonObject = False,
) -> None:
    """Generation speed of the procedural captioned shapes data (images and videos per second)."""
    from neuralframe.bench import data as bench

    _show(bench, bench.run(quick=quick, progress=_progress(as_json)), as_json)


@app.command("formats")
def formats(
    quick: bool = typer.Option(False, help="A smaller capture-like scene (200,000 Gaussians, not 2 million)."),
    repeats: int = ranged(2, within=COUNT, help="Timed runs of each save and load; the best is reported."),
    as_json: JsonObject = False,
) -> None:
    """Every scene format that writes, on the bundled scene and a capture-sized SH-3 one: bytes per Gaussian,
    save and load time, and the render PSNR of what is read back against the source."""
    from neuralframe.bench import formats as bench

    _show(bench, bench.run(quick=quick, repeats=repeats, progress=_progress(as_json)), as_json)


@app.command("viewer")
def viewer(
    scene: Optional[str] = typer.Option(None, help="Scene file (default: the bundled motorcycle)."),
    seconds: float = ranged(5.0, within=SECONDS, help="Length of the scripted orbit."),
    size: str = frame_size("1280x720", help="Window size WIDTHxHEIGHT."),
    target_fps: float = ranged(30.0, within=FPS, help="Adaptive resolution target."),
    impl: str = typer.Option("auto", help="Renderer implementation."),
    moving_gaussians: int = ranged(50_000, within=GAUSSIANS, help=MOVING_GAUSSIANS_HELP),
    compare: bool = typer.Option(True, help="Also run the orbit rendering every Gaussian while moving (when a "
                                            "splat budget is in use), side by side in this run."),
    frames_dir: Optional[str] = typer.Option(None, "--frames-dir", help="Save a frame shown while moving and the "
                                             "refined still as viewer_moving.png and viewer_rest.png here."),
    as_json: JsonObject = False,
) -> None:
    """Drive the real viewer window through a scripted orbit, then rest until the view has refined to every
    Gaussian (under Xvfb when there is no display): frame rate, input latency, Gaussians drawn, time to the
    first frame and to full quality, picture quality while moving and at rest, peak memory."""
    from neuralframe.bench import viewer as bench

    if scene is not None and not Path(scene).exists():
        raise InputError(f"scene '{scene}' does not exist")
    result = bench.run(scene, seconds=seconds, size=parse_size(size), target_fps=target_fps, impl=impl,
                       moving_gaussians=moving_gaussians, compare=compare, frames_dir=frames_dir)
    _show(bench, result, as_json)


@app.command("export")
def export(
    quick: bool = typer.Option(False, help="Fewer timed runs and smaller RVM frames, for a smoke test."),
    threads: Optional[int] = ranged(None, within=THREADS, help=THREADS_HELP),
    as_json: JsonObject = False,
) -> None:
    """Every exportable model: torch vs onnxruntime (fp32, int8) speed on this CPU, parity error and the int8
    accuracy change, in one run."""
    from neuralframe.bench import export as bench

    _show(bench, bench.run(quick=quick, threads=threads, progress=_progress(as_json)), as_json)


@app.command("stream")
def stream(
    model: Optional[str] = typer.Option(None, "--model", help=DIFFUSERS_FOLDER_HELP),
    size: Optional[int] = ranged(None, within=SIDE, help="Frame side in pixels, a multiple of 8 (default: the "
                                 "model's native size, 64 for the bundled model: a model drawn at another size "
                                 "than it was trained at loses its shapes, and the adherence checks say so)."),
    steps: str = typer.Option("30,40", help="The engine's denoising steps "
                              "(t_index_list: indices into a 50-step LCM schedule), comma-separated."),
    frames: int = ranged(60, within=FRAMES_AT_LEAST_4, help="Frames per timed block."),
    blocks: int = ranged(3, within=COUNT, help="Alternating engine/diffusers blocks; medians are reported."),
    quick: bool = typer.Option(False, help="One short block, for a smoke test."),
    classifier: Optional[str] = typer.Option(None, help="The scorer for the adherence check (default: the "
                                                        "bundled shape-classifier)."),
    backend: str = typer.Option("onnxruntime", "--backend", help="Also time the engine with its networks on "
                                "onnxruntime or tensorrt (exported graphs), in the same blocks; torch: only "
                                "the pipeline's own modules."),
    tiny_vae: bool = typer.Option(True, "--tiny-vae/--no-tiny-vae", help="Also time the engine with the model's "
                                  "tiny autoencoder (FOLDER/vae_tiny), when it has one."),
    as_json: JsonObject = False,
) -> None:
    """The streaming diffusion engine vs diffusers' own img2img pipeline frame by frame (the engine on torch,
    with the tiny autoencoder, and on onnxruntime), residual CFG self vs full, the similarity filter's skip
    rate, and temporal consistency with and without the feature bank."""
    from neuralframe.bench import stream as bench

    try:
        t_index = tuple(int(s) for s in steps.split(","))
    except ValueError:
        raise InputError(f"--steps takes comma-separated integers, got '{steps}'") from None
    if size is not None and size % 8:
        raise InputError(f"--size must be a positive multiple of 8, got {size}")
    result = bench.run(model, size=size, steps=t_index, frames=frames, blocks=blocks, quick=quick,
                       classifier=classifier, backend=backend, tiny_vae=tiny_vae, progress=_progress(as_json))
    _show(bench, result, as_json)


@app.command("video")
def video(
    model: Optional[str] = typer.Option(None, help="The video model folder (default: the bundled one)."),
    frames: int = ranged(64, within=FRAMES_AT_LEAST_4, help="Frames per timed run (KV cache vs recompute)."),
    prompts: int = ranged(100, within=COUNT, help="Held-out prompts for the quality measures."),
    long_frames: int = ranged(1000, within=LONG_RUN, help="Frames of the long run (memory and time per frame)."),
    quick: bool = typer.Option(False, help="A short run for a smoke test."),
    as_json: JsonObject = False,
) -> None:
    """The causal video model: generation FPS, KV cache vs recomputing the context, flat memory and time per
    frame over 1,000 frames, motion / frame / switch adherence."""
    from neuralframe.bench import video as bench

    result = bench.run(model, frames=frames, prompts=prompts, long_frames=long_frames, quick=quick,
                       progress=_progress(as_json))
    _show(bench, result, as_json)


@app.command("ray")
def ray(
    frames: int = ranged(240, within=FRAMES_AT_LEAST_4, help="Frames of the render job's orbit."),
    size: str = frame_size("480x270", help="Render size WIDTHxHEIGHT."),
    restyle_frames: int = ranged(48, within=FRAMES_AT_LEAST_4, help="Frames of the restyle job."),
    rounds: int = ranged(2, within=COUNT, help="Alternating rounds of each configuration (the best counts)."),
    cpus_per_worker: int = ranged(1, "--cpus-per-worker", within=THREADS, help="Threads per Ray worker."),
    job: Optional[list[str]] = typer.Option(None, "--job", help="render and/or restyle (default: both)."),
    as_json: JsonObject = False,
) -> None:
    """Offline jobs on one machine vs a local Ray with 1 and 2 workers, measured in one run: FPS, scaling from
    1 to 2 workers, and whether the outputs are identical."""
    from neuralframe.bench import ray as bench
    from neuralframe.distributed import require_ray

    require_ray()
    jobs = tuple(job or ("render", "restyle"))
    for name in jobs:
        if name not in ("render", "restyle"):
            raise InputError(f"unknown --job '{name}': use render or restyle")
    result = bench.run(frames=frames, size=parse_size(size), restyle_frames=restyle_frames, rounds=rounds,
                       cpus_per_worker=cpus_per_worker, jobs=jobs, progress=_progress(as_json))
    _show(bench, result, as_json, jobs=jobs)


SOAK_MINUTES = Range(0, 24 * 60, "above 0 and at most 1,440 (fractions allowed)", low_open=True)


@app.command("soak")
def soak(
    minutes: float = ranged(60.0, within=SOAK_MINUTES, help="How long to run (0.2 for a smoke test)."),
    as_json: JsonObject = False,
) -> None:
    """The live filter left running: a 30 FPS test pattern through matting + blur and, at the same time,
    through streaming diffusion, both into null sinks on latest edges; memory slope, frames dropped and
    unaccounted, frame-index and timestamp drift, latency per minute and its trend. Ctrl-C stops early."""
    from neuralframe.bench import soak as bench

    result = bench.run(minutes=minutes, progress=_progress(as_json), bar=not as_json)
    _show(bench, result, as_json)
    if result["interrupted"]:  # Ctrl-C: the result of the time run is shown, and the exit code says so
        raise typer.Exit(130)
