"""The `neuralframe` command: one small function per subcommand; the work lives in the library.

User errors (`NeuralframeError`, bad option values) print one line and exit 2; Ctrl-C exits 130.
"""

from __future__ import annotations

import json
import sys
import traceback
from typing import Optional

import typer

from neuralframe.errors import InputError, NeuralframeError, PipelineError

app = typer.Typer(
    name="neuralframe",
    help="Real-time neural graphics and generative media: splat and NeRF scenes, live webcam filters, "
         "video generation and edge export, on a CPU or a GPU.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
bench_app = typer.Typer(help="Benchmarks: each prints a summary, or one JSON object with --json.",
                        no_args_is_help=True)
app.add_typer(bench_app, name="bench")
data_app = typer.Typer(help="Build the bundled scenes and datasets with the project's own code.", no_args_is_help=True)
app.add_typer(data_app, name="data")
train_app = typer.Typer(help="Train models from local data.", no_args_is_help=True)
app.add_typer(train_app, name="train")
eval_app = typer.Typer(help="Measure the quality of trained models.", no_args_is_help=True)
app.add_typer(eval_app, name="eval")


def _size(text: Optional[str]) -> Optional[tuple[int, int]]:
    """'WIDTHxHEIGHT' -> (height, width)."""
    if text is None:
        return None
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise InputError(f"size '{text}' is not WIDTHxHEIGHT (for example 1280x720)") from None
    if w <= 0 or h <= 0:
        raise InputError(f"size '{text}' must be positive")
    return h, w


MODEL_HELP = ("Matting model: an RVM state dict (.pth, e.g. the official rvm_mobilenetv3.pth; Robust Video "
              "Matting) or a .tflite selfie segmenter. Default: the bundled segmenter with refinement.")
RATIO_HELP = ("RVM only: the scale its network runs at, in (0, 1]. Default: about 480 px on the long side "
              "(0.375 at 1280x720, 0.25 at 1920x1080, 1 for small frames).")


RAY_HELP = ("Run on Ray: `--ray` alone (or `--ray local`) starts a local Ray with this machine's cores; "
            "`--ray auto` or `--ray HOST:PORT` joins a running cluster. Needs pip install "
            "'neuralframe[distributed]'.")
WORKERS_HELP = "With --ray: number of workers (default: the cluster's CPUs / --cpus-per-worker)."
CPUS_HELP = "With --ray: CPU threads each worker uses and reserves."
UNIT_HELP = ("With --ray: frames per unit of work (default: units shrink from a quarter of a worker's share "
             "towards 2 frames at the end, at most 64).")


def _ray_settings(address: str, workers: Optional[int], cpus_per_worker: int):
    from neuralframe.distributed import RaySettings, require_ray

    require_ray()
    return RaySettings(address=address, workers=workers, cpus_per_worker=cpus_per_worker)


def _print_ray_run(report, summary: dict, title: str, as_json: bool) -> None:
    from neuralframe.console import print_cluster_summary, print_pipeline_report

    if as_json:
        _emit_json({**report.to_dict(), "ray": summary})
        return
    print_pipeline_report(report, title)
    print_cluster_summary(summary)


def _expand_ray_flag(args: list[str]) -> list[str]:
    """`--ray` with no address (last, or before another option) means `--ray local`."""
    out = []
    for i, arg in enumerate(args):
        out.append(arg)
        if arg == "--ray" and (i + 1 == len(args) or args[i + 1].startswith("-")):
            out.append("local")
    return out


def _emit_json(data: dict) -> None:
    sys.stdout.write(json.dumps(data, indent=2) + "\n")


@app.command()
def info(as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of tables.")) -> None:
    """Versions, threads, devices and which optional capabilities are present."""
    from neuralframe.apps import info as info_mod

    data = info_mod.collect()
    _emit_json(data) if as_json else info_mod.print_info(data)


@app.command()
def demo(
    out: str = typer.Option("out/demo", "--out", "-o", help="Folder for the demo's outputs."),
    frames: int = typer.Option(150, help="Frames of the moving test pattern."),
    window: Optional[bool] = typer.Option(None, "--window/--no-window",
                                          help="Open the viewer on the bundled scene (default: when there is a "
                                               "display); without, render an orbit video."),
    as_json: bool = typer.Option(False, "--json", help="Print the run report as JSON."),
) -> None:
    """Run the bundled demo: a moving test pattern through the frame pipeline into OUT/pattern.mp4, then the
    bundled motorcycle scene in the viewer (or, without a display, an orbit video OUT/motorcycle_orbit.mp4)."""
    from neuralframe.apps import demo as demo_mod

    report = demo_mod.run(out, frames=frames, progress=not as_json, window=window)
    if as_json:
        _emit_json(report)


PROMPT_HELP = ("Diffuse: the prompt; repeat as \"TEXT:N\" to switch prompts at frame N (e.g. --prompt \"a large "
               "blue star\" --prompt \"a large red heart:48\").")
STEPS_HELP = ("Diffuse: the denoising steps, comma-separated indices into a 50-step LCM schedule (later ones keep "
              "more of the input; one batched network call per frame whatever their number).")
CFG_HELP = ("Diffuse: guidance mode: embedded (the model's guidance embedding; the default when it has one), none, "
            "full, self or initialize (residual CFG; self is the default otherwise).")
GUIDANCE_HELP = "Diffuse: guidance scale (default: the model card's, else 1.2)."
BANK_HELP = "Diffuse: the StreamV2V feature bank (attends to past frames' features: steadier video)."
TINY_VAE_HELP = ("Diffuse: decode frames with the model's tiny autoencoder (FOLDER/vae_tiny, TAESD-style): "
                 "its decoder is about 3x faster at 128x128, the frames slightly softer.")
DIFFUSE_BACKEND_HELP = ("Where the networks run: torch, onnxruntime or tensorrt (the model's text encoder, UNet and "
                        "autoencoder exported to ONNX once, with parity checks, and cached by the weights' hash; "
                        "tensorrt needs an NVIDIA GPU and pip install tensorrt; the feature bank needs torch).")
SIMILARITY_HELP = "Diffuse: skip input frames more similar than this (0-1, e.g. 0.98) to the last processed one."

BACKEND_HELP = ("Where the matting network runs: torch, onnxruntime (our module exported to ONNX on start) or "
                "tensorrt (that export built into a cached float16 engine; NVIDIA GPU with `pip install "
                "tensorrt`). With --effect diffuse: where the diffusion networks run (torch, onnxruntime or "
                "tensorrt; see neuralframe restyle --help).")


def _matting_backend(backend: str) -> str:
    """The matting runners' name for a --backend value ("onnxruntime" and "onnx" are the same)."""
    from neuralframe.backend.runtime import resolve_backend

    name = resolve_backend(backend)
    if name == "tensorrt":
        from neuralframe.backend.runtime import require_tensorrt

        require_tensorrt("--backend tensorrt")  # one line now, not after the video is opened
    return {"onnxruntime": "onnx"}.get(name, name)


@app.command()
def stream(
    source: str = typer.Option("pattern", "--source", "-s",
                               help="A video file, an image folder, webcam, webcam:N, or pattern."),
    out: Optional[str] = typer.Option(None, "--out", "-o",
                                      help="A .mp4/.mkv/.mov file, a folder for PNG frames, window (a live "
                                           "preview with an FPS overlay), or virtualcam[:DEVICE] (a virtual "
                                           "webcam that video-call apps can pick; needs pip install "
                                           "'neuralframe[virtualcam]' and a v4l2loopback device on Linux or "
                                           "OBS Studio's virtual camera on macOS/Windows). Default: none "
                                           "(measure only)."),
    effect: str = typer.Option("none", "--effect", "-e", help="none, warm, cool, sepia, gray, matte, "
                                                                "replace:IMAGE|VIDEO|#RRGGBB, blur[:STRENGTH], or "
                                                                "diffuse (streaming diffusion to --prompt)."),
    size: Optional[str] = typer.Option(None, help="Output size WIDTHxHEIGHT (default: the source's)."),
    frames: Optional[int] = typer.Option(None, help="Stop after N frames (the pattern defaults to 150)."),
    fps: Optional[float] = typer.Option(None, help="Frame rate of the pattern or image folder, and of the output."),
    policy: str = typer.Option("auto", help="Queue policy: auto (latest for webcams, block otherwise), block, "
                                            "latest."),
    impl: str = typer.Option("auto", help="Kernel implementation: auto, cpu or reference."),
    loop: bool = typer.Option(False, help="Loop a video file."),
    matte_backend: str = typer.Option("torch", "--backend", "--matte-backend", help=BACKEND_HELP),
    device: str = typer.Option("cpu", help="Device for the matting effects: cpu, cuda or auto."),
    model: Optional[str] = typer.Option(None, "--model", help=MODEL_HELP + " With --effect diffuse: a local "
                                        "diffusers pipeline folder (default: the bundled tiny-shapes model)."),
    downsample_ratio: Optional[float] = typer.Option(None, "--downsample-ratio", help=RATIO_HELP),
    prompt: Optional[list[str]] = typer.Option(None, "--prompt", "-p", help=PROMPT_HELP),
    steps: str = typer.Option("30,40", help=STEPS_HELP),
    cfg: Optional[str] = typer.Option(None, "--cfg", help=CFG_HELP),
    guidance: Optional[float] = typer.Option(None, "--guidance", help=GUIDANCE_HELP),
    bank: bool = typer.Option(False, "--bank", help=BANK_HELP),
    tiny_vae: bool = typer.Option(False, "--tiny-vae", help=TINY_VAE_HELP),
    similarity: Optional[float] = typer.Option(None, "--similarity", help=SIMILARITY_HELP),
    seed: int = typer.Option(0, help="Diffuse: the engine's fixed noise."),
    as_json: bool = typer.Option(False, "--json", help="Print the run report as JSON."),
) -> None:
    """Run a source through an effect into a file, a folder, a window, a virtual camera or nowhere; Ctrl-C
    stops cleanly."""
    from neuralframe.console import print_pipeline_report
    from neuralframe.apps.stream import StreamSettings, run

    diffuse = None
    if prompt:
        from neuralframe.generate.diffusion.diffuse import DiffuseSettings, parse_steps

        diffuse = DiffuseSettings(prompts=tuple(prompt), steps=parse_steps(steps), cfg=cfg, guidance_scale=guidance,
                                  bank=bank, similarity=similarity, seed=seed, tiny_vae=tiny_vae,
                                  backend=matte_backend if effect == "diffuse" else "torch")
    if effect == "diffuse":
        matte_backend = "torch"  # --backend went to the diffusion stage
    settings = StreamSettings(source=source, out=out, effect=effect, size=_size(size), frames=frames, fps=fps,
                              policy=policy, impl=impl, loop=loop, matte_backend=_matting_backend(matte_backend),
                              device=device,
                              model=model, downsample_ratio=downsample_ratio, diffuse=diffuse)
    report = run(settings, progress=not as_json)
    if as_json:
        _emit_json(report.to_dict())
    else:
        print_pipeline_report(report, f"stream {source} -> {out or 'null'} [{effect}]")




@app.command()
def restyle(
    input: str = typer.Argument(..., help="A video file or an image folder."),
    out: str = typer.Option(..., "--out", "-o", help="The restyled video (.mp4/.mkv/.mov) or a new PNG folder."),
    prompt: list[str] = typer.Option(..., "--prompt", "-p", help=PROMPT_HELP.replace("Diffuse: t", "T")),
    model: Optional[str] = typer.Option(None, "--model", help="A local diffusers pipeline folder (default: the "
                                                              "bundled tiny-shapes model)."),
    steps: str = typer.Option("30,40", help=STEPS_HELP.replace("Diffuse: t", "T")),
    cfg: Optional[str] = typer.Option(None, "--cfg", help=CFG_HELP.replace("Diffuse: g", "G")),
    guidance: Optional[float] = typer.Option(None, "--guidance", help=GUIDANCE_HELP.replace("Diffuse: g", "G")),
    bank: bool = typer.Option(False, "--bank", help=BANK_HELP.replace("Diffuse: t", "T")),
    tiny_vae: bool = typer.Option(False, "--tiny-vae", help=TINY_VAE_HELP.replace("Diffuse: d", "D")),
    size: Optional[str] = typer.Option(None, help="Working size WIDTHxHEIGHT, multiples of 8 (default: the "
                                                  "input's aspect, shorter side at the model's size, >= 128)."),
    frames: Optional[int] = typer.Option(None, help="Stop after N frames."),
    fps: Optional[float] = typer.Option(None, help="Frame rate of an image folder, and of the output."),
    seed: int = typer.Option(0, help="The engine's fixed noise."),
    backend: str = typer.Option("torch", "--backend", help=DIFFUSE_BACKEND_HELP),
    ray: Optional[str] = typer.Option(None, "--ray", help=RAY_HELP),
    workers: Optional[int] = typer.Option(None, "--workers", help=WORKERS_HELP),
    cpus_per_worker: int = typer.Option(1, "--cpus-per-worker", help=CPUS_HELP),
    unit_frames: Optional[int] = typer.Option(None, "--unit-frames", help=UNIT_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the run report as JSON."),
) -> None:
    """Restyle a video to a prompt (or a prompt schedule) offline with the streaming diffusion engine; every
    frame is processed, in order. With --ray, chunks of the video run on Ray workers, each warmed up on the
    frames before it."""
    from neuralframe.console import print_pipeline_report
    from neuralframe.apps.restyle import RestyleJob, restyle as run_restyle
    from neuralframe.generate.diffusion.diffuse import DiffuseSettings, parse_steps

    settings = DiffuseSettings(prompts=tuple(prompt), model=model, steps=parse_steps(steps), cfg=cfg,
                               guidance_scale=guidance, bank=bank, size=_size(size), seed=seed, backend=backend,
                               tiny_vae=tiny_vae)
    job = RestyleJob(input=input, out=out, diffuse=settings, frames=frames, fps=fps)
    if ray is not None:
        from neuralframe.distributed import ray_session
        from neuralframe.distributed.jobs import restyle_ray

        with ray_session(_ray_settings(ray, workers, cpus_per_worker)) as session:
            report, summary = restyle_ray(job, session, unit_frames=unit_frames, progress=not as_json)
        _print_ray_run(report, summary, f"restyle {input} -> {out} on ray", as_json)
        return
    report, summary = run_restyle(job, progress=not as_json)
    if as_json:
        _emit_json({**report.to_dict(), "diffuse": summary})
    else:
        print_pipeline_report(report, f"restyle {input} -> {out}")


@app.command()
def matte(
    input: str = typer.Argument(..., help="A video file or an image folder."),
    out: str = typer.Option(..., "--out", "-o", help="The composited video (.mp4/.mkv/.mov)."),
    alpha: Optional[str] = typer.Option(None, help="Also write the alpha matte as a video here."),
    rgba: Optional[str] = typer.Option(None, help="Also write RGBA PNGs (foreground + alpha) into this new folder."),
    background: str = typer.Option("#00b140", help="#RRGGBB, an image, a video (looped) or blur[:STRENGTH]."),
    frames: Optional[int] = typer.Option(None, help="Stop after N frames."),
    fps: Optional[float] = typer.Option(None, help="Frame rate of an image folder, and of the outputs."),
    model: Optional[str] = typer.Option(None, "--model", help=MODEL_HELP),
    downsample_ratio: Optional[float] = typer.Option(None, "--downsample-ratio", help=RATIO_HELP),
    backend: str = typer.Option("torch", "--backend", help=BACKEND_HELP),
    ray: Optional[str] = typer.Option(None, "--ray", help=RAY_HELP),
    workers: Optional[int] = typer.Option(None, "--workers", help=WORKERS_HELP),
    cpus_per_worker: int = typer.Option(1, "--cpus-per-worker", help=CPUS_HELP),
    unit_frames: Optional[int] = typer.Option(None, "--unit-frames", help=UNIT_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the run report as JSON."),
) -> None:
    """Separate people from the background in a video, offline and lossless: every frame is matted. With
    --ray, chunks of the video run on Ray workers, each warmed up on the frames before it."""
    from neuralframe.console import print_pipeline_report
    from neuralframe.matting.effects import MatteSettings
    from neuralframe.apps.matte import MatteJob, run

    settings = MatteSettings(model=model, downsample_ratio=downsample_ratio, backend=_matting_backend(backend))
    job = MatteJob(input=input, out=out, alpha=alpha, rgba=rgba, background=background, frames=frames, fps=fps,
                   matte=settings)
    if ray is not None:
        from neuralframe.distributed import ray_session
        from neuralframe.distributed.jobs import matte_ray

        with ray_session(_ray_settings(ray, workers, cpus_per_worker)) as session:
            report, summary = matte_ray(job, session, unit_frames=unit_frames, progress=not as_json)
        _print_ray_run(report, summary, f"matte {input} -> {out} on ray", as_json)
        return
    report = run(job, progress=not as_json)
    if as_json:
        _emit_json(report.to_dict())
    else:
        print_pipeline_report(report, f"matte {input} -> {out}")


@app.command()
def view(
    scene: Optional[str] = typer.Argument(None, help="A .ply, .splat or .spz scene, or a NeRF .safetensors "
                                                      "(default: the bundled motorcycle)."),
    screenshot: Optional[str] = typer.Option(None, help="Save the window's pixels to this PNG once the "
                                                        "full-resolution frame is drawn, then exit."),
    camera: Optional[str] = typer.Option(None, help="Start at the camera in this JSON file "
                                                    "({viewmat, K, width, height})."),
    size: str = typer.Option("1280x720", help="Window size WIDTHxHEIGHT (a --camera sets its own)."),
    target_fps: float = typer.Option(30.0, help="Frame rate adaptive resolution holds while the camera moves."),
    impl: str = typer.Option("auto", help="Renderer: auto, cpu, reference or cuda."),
    moving_gaussians: int = typer.Option(50_000, help="While the camera moves, a splat scene with more Gaussians "
                                                      "than this renders a merged level of detail with about "
                                                      "this many (0: always all of them)."),
    hud: bool = typer.Option(True, help="Show the overlay at start (H toggles it)."),
    seconds: Optional[float] = typer.Option(None, help="Close after this many seconds."),
) -> None:
    """Open a scene in a window: left drag orbits, right drag pans, wheel zooms, WASD/QE fly, R resets,
    +/- field of view, 1/2/3 rgb/depth/alpha, H overlay, P screenshot, Esc quits."""
    from neuralframe.render.scene import default_scene_path, open_scene
    from neuralframe.viewer.app import ViewerApp, ViewerSettings, camera_from_json, require_display

    require_display()
    opened = open_scene(scene or default_scene_path())
    start = camera_from_json(camera)[0] if camera else None
    h, w = _size(size)
    if moving_gaussians < 0:
        raise InputError(f"--moving-gaussians must be 0 or more, got {moving_gaussians}")
    settings = ViewerSettings(width=w, height=h, target_fps=target_fps, impl=impl, hud=hud and not screenshot,
                              screenshot=screenshot, camera=start, max_seconds=seconds,
                              moving_gaussians=moving_gaussians)
    stats = ViewerApp(opened, settings).run()
    if screenshot:
        from neuralframe.console import console

        if not stats.screenshot:
            raise InputError("the window closed before the full-resolution frame was drawn: no screenshot saved")
        console.print(f"wrote [bold]{stats.screenshot}[/]", highlight=False)


@app.command()
def render(
    scene: str = typer.Argument(..., help="A .ply, .splat or .spz scene, or a NeRF .safetensors."),
    out: str = typer.Option(..., "--out", "-o", help="The video to write (.mp4, .mkv, .mov) or a folder for PNGs."),
    path: str = typer.Option("orbit", help="orbit (all around), arc (a sweep around the start view, for scenes "
                                            "captured from one side), or a JSON file with a list of cameras "
                                            "(interpolated)."),
    frames: int = typer.Option(120, help="Number of frames."),
    size: str = typer.Option("960x540", help="Orbit frame size WIDTHxHEIGHT."),
    fps: float = typer.Option(30.0, help="Video frame rate."),
    impl: str = typer.Option("auto", help="Renderer: auto, cpu, reference or cuda."),
    backend: str = typer.Option("torch", help="NeRF scenes: where the field's network runs: torch, onnxruntime "
                                              "(exported once with parity checks, then cached) or tensorrt."),
    ray: Optional[str] = typer.Option(None, "--ray", help=RAY_HELP),
    workers: Optional[int] = typer.Option(None, "--workers", help=WORKERS_HELP),
    cpus_per_worker: int = typer.Option(1, "--cpus-per-worker", help=CPUS_HELP),
    unit_frames: Optional[int] = typer.Option(None, "--unit-frames", help=UNIT_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the run report as JSON."),
) -> None:
    """Render a camera path of a scene to a video, headless. With --ray, segments of the path render on Ray
    workers (the video is the same as on one machine)."""
    from neuralframe.backend.runtime import resolve_backend
    from neuralframe.console import err_console, print_pipeline_report
    from neuralframe.apps.render import PathSettings, render_path
    from neuralframe.render.scene import open_scene

    h, w = _size(size)
    backend = resolve_backend(backend)
    if ray is not None:
        from neuralframe.distributed import ray_session
        from neuralframe.distributed.jobs import render_path_ray

        settings = PathSettings(path=path, frames=frames, width=w, height=h, fps=fps, impl=impl)
        ray_settings = _ray_settings(ray, workers, cpus_per_worker)
        open_scene(scene)  # a missing or corrupt scene fails here, before Ray starts
        with ray_session(ray_settings) as session:
            report, summary = render_path_ray(scene, settings, out, session, backend=backend,
                                              unit_frames=unit_frames, progress=not as_json)
        _print_ray_run(report, summary, f"render {scene} along {path} on ray", as_json)
        return
    opened = open_scene(scene)
    if backend != "torch":
        if not hasattr(opened, "use_backend"):
            raise InputError(f"--backend {backend} applies to NeRF scenes (.safetensors); splat scenes render with "
                             "--impl")
        opened.use_backend(backend, say=None if as_json else (lambda m: err_console.print(f"[dim]{m}[/]")))
    report = render_path(opened, PathSettings(path=path, frames=frames, width=w, height=h, fps=fps, impl=impl),
                         out, progress=not as_json)
    if as_json:
        _emit_json(report.to_dict())
    else:
        print_pipeline_report(report, f"render {opened.name} along {path}")


@bench_app.command("pipeline")
def bench_pipeline(
    frames: int = typer.Option(240, help="Frames in the 720p test input."),
    repeats: int = typer.Option(3, help="Alternating loop/pipeline rounds (the median is reported)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Threaded pipeline vs a plain single-threaded loop: decode -> fused stage -> encode, 720p."""
    from neuralframe.bench import pipeline as bench
    from neuralframe.console import err_console

    result = bench.run(frames=frames, repeats=repeats,
                       progress=None if as_json else (lambda m: err_console.print(f"[dim]{m}[/]")))
    if as_json:
        _emit_json(result)
    else:
        from neuralframe.console import console

        console.print(f"pipeline [bold]{result['fps_pipeline']:.1f} FPS[/] vs loop {result['fps_loop']:.1f} FPS: "
                      f"[bold]{result['ratio']:.2f}x[/] ({result['width']}x{result['height']}, {result['frames']} "
                      f"frames, {result['cpu_cores']} cores)", highlight=False)


def _usage_error_types() -> tuple[type[BaseException], ...]:
    """Click's usage errors: typer >= 0.20 vendors click under its own exception base."""
    types: list[type[BaseException]] = []
    if hasattr(typer, "TyperException"):
        types.append(typer.TyperException)
    try:
        import click

        types.append(click.ClickException)
    except ImportError:  # pragma: no cover
        pass
    return tuple(types)


@bench_app.command("splat")
def bench_splat(
    quick: bool = typer.Option(False, help="A tiny run for a smoke test."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Gaussian-splat rasterizer: cpu kernel vs the torch reference at 10k/100k/1M Gaussians and the
    motorcycle scene."""
    from neuralframe.bench import splat as bench
    from neuralframe.console import console, err_console

    result = bench.run(quick=quick, progress=None if as_json else (lambda m: err_console.print(f"[dim]{m}[/]")))
    if as_json:
        _emit_json(result)
        return
    for row in result["results"]:
        console.print(f"{row['case']:>24} {row['impl']:>9}: {row['ms_median']:9.1f} ms  {row['fps']:7.2f} FPS",
                      highlight=False)
    console.print(f"cpu vs reference: {result['ratios']}", highlight=False, markup=False)


@bench_app.command("nerf")
def bench_nerf(
    quick: bool = typer.Option(False, help="A short run (about 30 s) for a smoke test."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Hash-grid NeRF: encoding throughput (cpu vs reference), training PSNR for a fixed budget, render FPS."""
    from neuralframe.bench import nerf as bench
    from neuralframe.console import console, err_console

    result = bench.run(quick=quick, progress=None if as_json else (lambda m: err_console.print(f"[dim]{m}[/]")))
    if as_json:
        _emit_json(result)
    else:
        console.print_json(data=result)


@data_app.command("splat-from-stereo")
def data_splat_from_stereo(
    out: str = typer.Option("assets/scenes/motorcycle.ply", "--out", "-o", help="The scene file to write."),
    steps: int = typer.Option(240, help="Refinement steps through the differentiable reference rasterizer."),
) -> None:
    """Build the motorcycle Gaussian-splat scene from scikit-image's Middlebury stereo pair (and its card,
    previews and cameras beside it)."""
    from neuralframe.console import console, progress_bar
    from neuralframe.render.splat.stereo import build_motorcycle

    with progress_bar("refine", steps) as bar:
        metrics = build_motorcycle(out, steps=steps, progress=lambda step, total, loss: bar.advance())
    console.print(f"wrote [bold]{out}[/]: {metrics['n_gaussians']:,} Gaussians, PSNR left "
                  f"{metrics['psnr_left_db']:.2f} dB, right {metrics['psnr_right_db']:.2f} dB", highlight=False)


@data_app.command("nerf-synthetic")
def data_nerf_synthetic(
    out: str = typer.Option(..., "--out", "-o", help="The dataset folder to write (transforms_*.json + PNGs)."),
    size: int = typer.Option(200, help="Image size in pixels."),
    n_train: int = typer.Option(100, help="Training views."),
    seed: int = typer.Option(0, help="Seed of the procedural object and cameras."),
) -> None:
    """Render a NeRF-synthetic-format dataset of a procedural object seen from all around."""
    from neuralframe.console import console, progress_bar
    from neuralframe.render.nerf.data import make_synthetic

    with progress_bar("render views", n_train + 20) as bar:
        path = make_synthetic(out, size=size, n_train=n_train, seed=seed, progress=lambda done, total: bar.advance())
    console.print(f"wrote [bold]{path}[/]", highlight=False)


@data_app.command("shapes")
def data_shapes(
    preview: str = typer.Option(..., "--preview", help="The PNG contact sheet to write."),
    n: int = typer.Option(32, "--n", help="Samples to show."),
    size: int = typer.Option(64, help="Image size in pixels."),
    video: bool = typer.Option(False, help="Show short videos (one per row, frames across) instead of images."),
    split: str = typer.Option("train", help="train or eval (the held-out attribute combinations)."),
    seed: int = typer.Option(0, help="First seed; sample i uses seed + i."),
) -> None:
    """Look at the procedural captioned shapes data the bundled generative models train on."""
    from neuralframe.console import console
    from neuralframe.errors import InputError
    from neuralframe.generate.data import ShapesConfig, ShapesGenerator
    from neuralframe.generate.data.preview import contact_sheet
    from neuralframe.viewer.app import save_png

    if n < 1 or size < 16:
        raise InputError("--n must be at least 1 and --size at least 16")
    try:
        generator = ShapesGenerator(ShapesConfig(size=size))
        sheet, samples = contact_sheet(generator, range(seed, seed + n), split, video)
    except ValueError as error:
        raise InputError(str(error)) from None
    path = save_png(sheet, preview)
    console.print(f"wrote [bold]{path}[/] ({len(samples)} {'videos' if video else 'images'}, {split} split)",
                  highlight=False)
    for i, sample in enumerate(samples[: min(len(samples), 8)]):
        console.print(f"  {seed + i}: {sample.caption}", highlight=False)


@train_app.command("nerf")
def train_nerf(
    data: str = typer.Argument(..., help="A folder with transforms_train.json (NeRF-synthetic / instant-ngp format)."),
    out: str = typer.Option(..., "--out", "-o", help="The checkpoint to write (.safetensors)."),
    seconds: Optional[float] = typer.Option(None, help="Training time budget in seconds (total, across resumes)."),
    steps: Optional[int] = typer.Option(None, help="Training steps (total, across resumes)."),
    resume: bool = typer.Option(False, help="Continue from the checkpoint at --out."),
    as_json: bool = typer.Option(False, "--json", help="Print the final metrics as JSON."),
) -> None:
    """Train a hash-grid NeRF; open the result with `neuralframe view OUT.safetensors`."""
    from neuralframe.console import console, progress_bar
    from neuralframe.render.nerf.train import train

    total = steps if steps else None
    with progress_bar("train nerf", total, enabled=not as_json) as bar:
        def report(p):
            bar.update(completed=p["step"], rate=f"loss {p['loss']:.4f} psnr {p['psnr']:.1f} dB")
        metrics = train(data, out, seconds=seconds, steps=steps, resume=resume, progress=report)
    if as_json:
        _emit_json(metrics)
    else:
        console.print(f"wrote [bold]{out}[/]: validation PSNR {metrics['val_psnr']:.2f} dB after "
                      f"{metrics['steps']} steps, {metrics['seconds']:.0f} s", highlight=False)


@train_app.command("tiny-shapes")
def train_tiny_shapes(
    stage: str = typer.Option("all", help="vae, classifier, t2i, lcm, tiny-vae, assemble, or all (in that order)."),
    work: str = typer.Option("out/train/tiny-shapes", help="Folder for checkpoints and stage outputs."),
    out: str = typer.Option("assets/models/tiny-shapes", "--out", "-o",
                            help="Where `assemble` writes the diffusers folder."),
    seconds: Optional[float] = typer.Option(None, help="Time budget per stage in seconds (total across resumes; "
                                                       "default per stage: vae 1200, classifier 300, t2i 2400, lcm 1200, "
                                                       "tiny-vae 900)."),
    steps: Optional[int] = typer.Option(None, help="Step budget per stage (total across resumes)."),
    resume: bool = typer.Option(False, help="Continue each stage from its checkpoint in WORK/checkpoints."),
    train_images: Optional[int] = typer.Option(None, min=1, help="Training images encoded for t2i/lcm "
                                                               "(default 48000)."),
    eval_prompts: int = typer.Option(200, min=1, help="Held-out prompts `assemble` scores for the card."),
    eval_images: Optional[int] = typer.Option(None, min=1, help="Held-out images for the autoencoder's PSNR "
                                                             "(default 256) and the scorer's accuracy (default 2000)."),
    as_json: bool = typer.Option(False, "--json", help="Print each stage's metrics as one JSON object."),
) -> None:
    """Train the bundled tiny-shapes text-to-image model (autoencoder, scorer, teacher, few-step student) and
    write it in diffusers' folder layout with a model card."""
    from pathlib import Path

    from neuralframe.console import console, progress_bar
    from neuralframe.generate.train.tiny_shapes import STAGES, run_stage

    stages = STAGES if stage == "all" else (stage,)
    import shlex

    # the command as typed (also when run as `python -m neuralframe.cli`), recorded in the model card
    command = " ".join(["neuralframe", *map(shlex.quote, sys.argv[1:])])
    results = {}
    for name in stages:
        with progress_bar(f"train {name}", 1000, enabled=not as_json and name != "assemble") as bar:
            def report(p, bar=bar):
                shown = {k: v for k, v in p.items() if k in ("loss", "psnr", "accuracy", "kl")}
                bar.update(completed=int(1000 * p["progress"]),
                           rate=f"step {p['step']} " + " ".join(f"{k} {v:.4g}" for k, v in shown.items()))
            results[name] = run_stage(name, Path(work), Path(out), seconds, steps, resume, report, command,
                                      train_images, eval_prompts, eval_images)
        if not as_json:
            console.print(f"{name}: " + ", ".join(f"{k} {v}" for k, v in results[name].items()
                                                  if not isinstance(v, (dict, list))), highlight=False)
    if as_json:
        _emit_json(results)


@eval_app.command("tiny-shapes")
def eval_tiny_shapes(
    model: Optional[str] = typer.Option(None, help="A tiny-shapes diffusers folder (default: the bundled one)."),
    classifier: Optional[str] = typer.Option(None, help="The shape/colour scorer folder (default: the bundled one)."),
    prompts: int = typer.Option(200, min=1, help="Held-out prompts to score (combinations unseen in training)."),
    steps: int = typer.Option(4, min=1, help="Sampling steps."),
    guidance: Optional[float] = typer.Option(None, help="Guidance scale (default: the model card's)."),
    seed: int = typer.Option(0, help="Seed of the first image (image i uses seed + i)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Prompt adherence (shape and colour named by the bundled scorer), 1-step adherence, autoencoder PSNR,
    network evaluations and CPU seconds per image."""
    from neuralframe.console import console
    from neuralframe.generate.evaluate import evaluate_tiny_shapes
    from neuralframe.generate.models.classifier import DEFAULT_DIR
    from neuralframe.generate.models.folder import BUNDLED

    result = evaluate_tiny_shapes(model or BUNDLED, classifier or DEFAULT_DIR, prompts, steps, guidance, seed)
    if as_json:
        _emit_json(result)
        return
    console.print(f"prompt adherence {result['prompt_adherence']:.3f} at {steps} steps "
                  f"(shape {result['shape_adherence']:.3f}, colour {result['colour_adherence']:.3f}), "
                  f"1 step {result['adherence_1step']:.3f}; autoencoder {result['vae_psnr_db']} dB; "
                  f"{result['nfe_per_image']} network evaluations and {result['seconds_per_image']:.3f} s per image "
                  f"over {prompts} prompts", highlight=False)


@app.command("generate-image")
def generate_image_cmd(
    prompt: str = typer.Argument(..., help="What to draw, e.g. \"a large red star in the centre\"."),
    out: str = typer.Option(..., "--out", "-o", help="The PNG to write."),
    steps: Optional[int] = typer.Option(None, min=1, help="Sampling steps (default: the model card's, else 4)."),
    seed: int = typer.Option(0, help="Noise seed."),
    guidance: Optional[float] = typer.Option(None, help="Guidance scale (default: the model card's or pipeline's)."),
    model: Optional[str] = typer.Option(None, help="A local diffusers Stable-Diffusion-family folder "
                                                  "(default: the bundled tiny-shapes model)."),
    backend: str = typer.Option("torch", help="Where the text encoder, UNet and decoder run: torch, onnxruntime "
                                              "(exported once with parity checks, then cached) or tensorrt."),
) -> None:
    """Text to image with the bundled few-step model or any local diffusers folder."""
    import time
    from pathlib import Path

    from neuralframe.console import console, err_console
    from neuralframe.generate.models.folder import BUNDLED, card_defaults, generate_image, load_pipeline
    from neuralframe.viewer.app import save_png

    if not out.lower().endswith(".png"):
        raise InputError(f"{out}: the output must be a .png file")
    from neuralframe.backend.runtime import resolve_backend

    backend = resolve_backend(backend)
    folder = Path(model) if model else BUNDLED
    defaults = card_defaults(folder)
    pipe = load_pipeline(folder)
    if backend != "torch":
        from neuralframe.generate.models.engines import use_backend

        use_backend(pipe, folder, backend, say=lambda m: err_console.print(f"[dim]{m}[/]"))
    start = time.perf_counter()
    image = generate_image(pipe, prompt, steps or defaults.get("steps", 4), seed,
                           guidance if guidance is not None else defaults.get("guidance_scale"))
    seconds = time.perf_counter() - start
    path = save_png(image, out)
    console.print(f"wrote [bold]{path}[/] ({image.shape[1]}x{image.shape[0]}, {seconds:.2f} s, {backend})",
                  highlight=False)


@bench_app.command("matte")
def bench_matte(
    quick: bool = typer.Option(False, help="A short run (fewer frames) for a smoke test."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Matting end to end (decode -> segment -> refine -> composite -> encode) at 720p and 1080p, torch
    and onnxruntime, and our segmenter next to OpenCV DNN running the same .tflite."""
    from neuralframe.bench import matte as bench
    from neuralframe.console import console, err_console

    result = bench.run(quick=quick, progress=None if as_json else (lambda m: err_console.print(f"[dim]{m}[/]")))
    if as_json:
        _emit_json(result)
        return
    hd = result["sizes"]["1280x720"]
    seg = result["segmenter_ms"]["landscape"]
    console.print(f"matting 1280x720: torch [bold]{hd['torch']['fps_end_to_end']} FPS[/], onnxruntime "
                  f"{hd['onnx']['fps_end_to_end']} FPS; segmenter {seg['torch_ms']} ms (ours) vs "
                  f"{seg['opencv_ms']} ms (OpenCV)", highlight=False)


@bench_app.command("data")
def bench_data(
    quick: bool = typer.Option(False, help="A short run for a smoke test."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Generation speed of the procedural captioned shapes data (images and videos per second)."""
    from neuralframe.bench import data as bench
    from neuralframe.console import console, err_console

    result = bench.run(quick=quick, progress=None if as_json else (lambda m: err_console.print(f"[dim]{m}[/]")))
    if as_json:
        _emit_json(result)
        return
    console.print_json(json.dumps(result))


@bench_app.command("viewer")
def bench_viewer(
    scene: Optional[str] = typer.Option(None, help="Scene file (default: the bundled motorcycle)."),
    seconds: float = typer.Option(5.0, help="Length of the scripted orbit."),
    size: str = typer.Option("1280x720", help="Window size WIDTHxHEIGHT."),
    target_fps: float = typer.Option(30.0, help="Adaptive resolution target."),
    impl: str = typer.Option("auto", help="Renderer implementation."),
    moving_gaussians: int = typer.Option(50_000, help="While the camera moves, a splat scene with more Gaussians "
                                                      "than this renders a merged level of detail with about "
                                                      "this many (0: always all of them)."),
    compare: bool = typer.Option(True, help="Also run the orbit rendering every Gaussian while moving (when a "
                                            "level of detail is in use), side by side in this run."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Drive the real viewer window through a scripted orbit (under Xvfb when there is no display)."""
    from neuralframe.bench import viewer as bench

    result = bench.run(scene, seconds=seconds, size=_size(size), target_fps=target_fps, impl=impl,
                       moving_gaussians=moving_gaussians, compare=compare)
    if as_json:
        _emit_json(result)
    else:
        from neuralframe.console import console

        console.print(f"viewer on {result['scene']}: [bold]{result['fps_displayed']} FPS[/] displayed, render "
                      f"{result['render_ms_median']} ms at scale {result['scale_median']}, input latency p95 "
                      f"{result['input_latency_ms_p95']} ms", highlight=False)


# ---- edge export (issue 9): `neuralframe export` and `neuralframe bench export` ----

EXPORT_MODELS_HELP = ("segmenter, rvm, nerf-field or tiny-shapes (the text-to-image model: text encoder, UNet, "
                      "autoencoder encoder and decoder); see neuralframe/export/specs.py.")


def _ratios(values: Optional[list[float]]) -> Optional[tuple[float, ...]]:
    return tuple(values) if values else None


@app.command("export")
def export_cmd(
    model: str = typer.Argument(..., help=f"The model to export: {EXPORT_MODELS_HELP}"),
    out: str = typer.Option(..., "--out", "-o", help="Folder for MODEL.onnx (or one .onnx per graph), "
                                                     "MODEL.report.json and engines."),
    to: str = typer.Option("onnx", "--to", help="onnx, or tensorrt (ONNX first, then TensorRT engines; needs "
                                                 "pip install tensorrt and an NVIDIA GPU)."),
    fp16: bool = typer.Option(False, "--fp16", help="Also write a float16 graph (and engine)."),
    int8: bool = typer.Option(False, "--int8", help="Also write an int8 graph by onnxruntime static quantisation "
                                                    "calibrated on bundled data, with its accuracy change "
                                                    "(segmenter; tiny-shapes' UNet and decoder)."),
    dynamic: bool = typer.Option(False, "--dynamic", help="Free the batch (and, for RVM and the autoencoder, frame "
                                                              "size) axes."),
    model_path: Optional[str] = typer.Option(None, "--model", help="Weights: a .tflite segmenter, an RVM .pth "
                                                                   "state dict, a NeRF .safetensors checkpoint, a "
                                                                   "diffusers SD-family folder."),
    random_weights: bool = typer.Option(False, "--random-weights", help="Export the architecture with seeded "
                                                                        "random weights (models with none bundled)."),
    downsample_ratio: Optional[list[float]] = typer.Option(None, "--downsample-ratio",
                                                           help="RVM: one graph per ratio (repeatable; default "
                                                                "0.25, 0.375 and 1)."),
    size: Optional[str] = typer.Option(None, help="RVM: example frame WIDTHxHEIGHT (the static size without "
                                                  "--dynamic; default: the size each ratio is meant for)."),
    opset: int = typer.Option(17, help="ONNX opset (TensorRT 10 parses 9..20)."),
    runs: int = typer.Option(20, help="Timed calls per engine (the median is reported)."),
    threads: Optional[int] = typer.Option(None, help="CPU threads for torch and onnxruntime alike (default: "
                                                     "their own defaults)."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON instead of tables."),
) -> None:
    """Export a model to ONNX (checked against PyTorch in onnxruntime, linted for TensorRT) or to TensorRT
    engines, with a report of shapes, parity, accuracy and speed."""
    from neuralframe.console import err_console
    from neuralframe.export.run import ExportSettings, export
    from neuralframe.export.table import print_report

    settings = ExportSettings(model=model, out=out, to=to, fp16=fp16, int8=int8, dynamic=dynamic,
                              model_path=model_path, random_weights=random_weights,
                              ratios=_ratios(downsample_ratio), size=_size(size), opset=opset, runs=runs,
                              threads=threads)
    report = export(settings, progress=None if as_json else (lambda m: err_console.print(f"[dim]{m}[/]")))
    if as_json:
        _emit_json(report)
    else:
        print_report(report)


@bench_app.command("export")
def bench_export(
    quick: bool = typer.Option(False, help="Fewer timed runs and smaller RVM frames, for a smoke test."),
    threads: Optional[int] = typer.Option(None, help="CPU threads for torch and onnxruntime alike (default: "
                                                     "their own defaults)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Every exportable model: torch vs onnxruntime (fp32, int8) speed on this CPU, parity error and the int8
    accuracy change, in one run."""
    from neuralframe.bench import export as bench
    from neuralframe.console import console, err_console

    result = bench.run(quick=quick, threads=threads,
                       progress=None if as_json else (lambda m: err_console.print(f"[dim]{m}[/]")))
    if as_json:
        _emit_json(result)
        return
    for name, row in result["models"].items():
        int8 = f", int8 {row['ort_int8_ms']} ms" if row.get("ort_int8_ms") is not None else ""
        console.print(f"{name:>22}: torch {row['torch_ms']} ms, onnxruntime {row['ort_ms']} ms "
                      f"([bold]{row['ratio_ort_vs_torch']}x[/]){int8}, max abs err {row['max_abs_err']:.2e}",
                      highlight=False)


# ---- end of edge export ----


@bench_app.command("stream")
def bench_stream(
    model: Optional[str] = typer.Option(None, "--model", help="A local diffusers pipeline folder (default: the "
                                                              "bundled tiny-shapes model)."),
    size: int = typer.Option(128, help="Frame side in pixels (a multiple of 8; the issue's figure needs >= 128)."),
    steps: str = typer.Option("30,40", help="The engine's denoising steps "
                              "(t_index_list: indices into a 50-step LCM schedule), comma-separated."),
    frames: int = typer.Option(60, help="Frames per timed block."),
    blocks: int = typer.Option(3, help="Alternating engine/diffusers blocks; medians are reported."),
    quick: bool = typer.Option(False, help="One short block, for a smoke test."),
    classifier: Optional[str] = typer.Option(None, help="The scorer for the adherence check (default: the "
                                                        "bundled shape-classifier)."),
    backend: str = typer.Option("onnxruntime", "--backend", help="Also time the engine with its networks on "
                                "onnxruntime or tensorrt (exported graphs), in the same blocks; torch: only "
                                "the pipeline's own modules."),
    tiny_vae: bool = typer.Option(True, "--tiny-vae/--no-tiny-vae", help="Also time the engine with the model's "
                                  "tiny autoencoder (FOLDER/vae_tiny), when it has one."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """The streaming diffusion engine vs diffusers' own img2img pipeline frame by frame (the engine on torch,
    with the tiny autoencoder, and on onnxruntime), residual CFG self vs full, the similarity filter's skip
    rate, and temporal consistency with and without the feature bank."""
    from neuralframe.bench import stream as bench
    from neuralframe.console import console, err_console

    try:
        t_index = tuple(int(s) for s in steps.split(","))
    except ValueError:
        raise InputError(f"--steps takes comma-separated integers, got '{steps}'") from None
    if size <= 0 or size % 8:
        raise InputError(f"--size must be a positive multiple of 8, got {size}")
    result = bench.run(model, size=size, steps=t_index, frames=frames, blocks=blocks, quick=quick,
                       classifier=classifier, backend=backend, tiny_vae=tiny_vae,
                       progress=None if as_json else (lambda m: err_console.print(f"[dim]{m}[/]")))
    if as_json:
        _emit_json(result)
        return
    configs = ", ".join(f"{k} {v} FPS" for k, v in result["fps_engine_configs"].items())
    console.print(f"stream {result['size']}, steps {result['t_index_list']}: engine [bold]{result['fps_engine']} "
                  f"FPS[/] ({result['engine_config']}; {configs}), diffusers img2img {result['fps_diffusers']} FPS "
                  f"([bold]{result['ratio_vs_diffusers']}x[/], like for like {result['ratio_vs_diffusers_torch']}x"
                  f"); rcfg self/full {result['rcfg_self_vs_full_ratio']}x; static skip rate "
                  f"{result['similarity_skip_rate_static']}; temporal diff {result['temporal_diff_bank']} with the "
                  f"bank vs {result['temporal_diff_nobank']} without", highlight=False)


VIDEO_PROMPT_HELP = ('"TEXT:FRAME": switch to TEXT at FRAME (repeatable), e.g. --prompt "a large green heart rotating '
                     'in the centre over a plain blue background:24". Without ":FRAME" it starts at frame 0.')


@app.command("generate")
def generate(
    prompt: Optional[str] = typer.Argument(None, help="What the video shows. The bundled model knows one large "
                                           "shape (circle, square, triangle, star, ring, cross, heart) of a colour, "
                                           "moving left/right/up/down from a position, rotating or bouncing, over a "
                                           "plain or gradient background of another colour."),
    out: str = typer.Option(..., "--out", "-o", help="The video to write (.mp4, .mkv or .mov), frame by frame."),
    frames: int = typer.Option(48, help="Frames to generate (any number: time and memory per frame stay flat)."),
    prompts: Optional[list[str]] = typer.Option(None, "--prompt", "-p", help=VIDEO_PROMPT_HELP),
    seed: int = typer.Option(0, help="Seed of the noise."),
    model: Optional[str] = typer.Option(None, "--model", help="The video model folder (default: the bundled "
                                        "tiny-shapes-video), or a local diffusers text-to-video folder (Wan, "
                                        "AnimateDiff, ...), run through diffusers' own pipeline."),
    show: bool = typer.Option(False, "--show", help="Also show the frames live in a window."),
    upscale: int = typer.Option(4, help="Write the frames this many times larger (bicubic), for viewing."),
    fps: Optional[float] = typer.Option(None, help="Frame rate of the video (default: the model's, 8)."),
    tiny_vae: bool = typer.Option(False, "--tiny-vae", help="Decode with the base model's tiny autoencoder."),
    device: str = typer.Option("cpu", help="cpu, cuda or auto."),
    steps: Optional[int] = typer.Option(None, help="Denoising steps of a diffusers folder (its default if unset)."),
    prompts_file: Optional[str] = typer.Option(None, "--prompts", help="A text file with one prompt per line: one "
                                               "clip each, into the folder -o names (clip_0000.mp4, ..., "
                                               "prompts.json)."),
    ray: Optional[str] = typer.Option(None, "--ray", help=RAY_HELP + " Each clip is one unit."),
    workers: Optional[int] = typer.Option(None, "--workers", help=WORKERS_HELP),
    cpus_per_worker: int = typer.Option(1, "--cpus-per-worker", help=CPUS_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Text to video with the bundled causal video model (KV cache with a frame sink and a short window,
    KV-recache on prompt switches), written frame by frame with a progress bar. Ctrl-C once stops and keeps a
    valid video of the frames so far."""
    from neuralframe.console import console
    from neuralframe.generate.video.generate import parse_schedule
    from neuralframe.apps.generate import generate_video

    if frames < 1:
        raise InputError(f"--frames must be at least 1, got {frames}")
    if device == "auto":
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    if prompts_file is not None or ray is not None:
        _generate_batch(prompt, prompts, prompts_file, out, ray, workers, cpus_per_worker, frames=frames, seed=seed,
                        model=model, device=device, upscale=upscale, fps=fps, tiny_vae=tiny_vae, steps=steps,
                        show=show, as_json=as_json)
        return
    schedule = parse_schedule(prompt, prompts)
    summary = generate_video(schedule, out, frames=frames, seed=seed, model=model, device=device, show=show,
                             upscale=upscale, fps=fps, tiny_vae=tiny_vae, steps=steps, progress=not as_json)
    if as_json:
        _emit_json(summary)
        return
    if summary["output"] is None:
        console.print(f"{summary['status']}: nothing written", highlight=False)
        return
    console.print(f"wrote [bold]{summary['output']}[/] ({summary['status']}): {summary['frames']} frames "
                  f"{summary['size']} in {summary['seconds']:.1f} s, [bold]{summary['fps']} FPS[/], peak memory "
                  f"{summary['peak_memory_mb']:.0f} MB", highlight=False)


def _generate_batch(prompt, prompts, prompts_file, out, ray, workers, cpus_per_worker, *, show: bool,
                    as_json: bool, **options) -> None:
    """`generate --prompts FILE` (a clip per prompt into a folder) and `generate --ray`."""
    from neuralframe.console import console, print_cluster_summary
    from neuralframe.generate.video.generate import parse_schedule

    if show:
        raise InputError("--show draws one clip as it is made: drop it with --prompts or --ray")
    if prompts_file is not None:
        from neuralframe.distributed.jobs import read_prompts

        if prompt is not None or prompts:
            raise InputError("give the prompts either in --prompts FILE or on the command line, not both")
        schedules = [[(0, p)] for p in read_prompts(prompts_file)]
    else:
        schedules = [parse_schedule(prompt, prompts)]
    if ray is None:
        from neuralframe.distributed.jobs import generate_local

        summary = generate_local(schedules, out, progress=not as_json, **options)
    else:
        from neuralframe.distributed import ray_session
        from neuralframe.distributed.jobs import generate_ray

        with ray_session(_ray_settings(ray, workers, cpus_per_worker)) as session:
            summary = generate_ray(schedules, out, session, folder=prompts_file is not None, progress=not as_json,
                                   **options)
    if as_json:
        _emit_json(summary)
        return
    if "cluster" in summary:
        print_cluster_summary(summary["cluster"])
    console.print(f"wrote [bold]{summary['output']}[/]: {summary['clips']} clip(s), {summary['frames']} frames in "
                  f"{summary['seconds']:.1f} s, [bold]{summary['fps']} FPS[/]", highlight=False)


@train_app.command("tiny-shapes-video")
def train_tiny_shapes_video(
    stage: str = typer.Option("all", help="train, assemble, or all (in that order)."),
    work: str = typer.Option("out/train/tiny-shapes-video", help="Folder for the clip pool and checkpoints."),
    out: str = typer.Option("assets/models/tiny-shapes-video", "--out", "-o", help="Where `assemble` writes the "
                            "model folder."),
    base: str = typer.Option("assets/models/tiny-shapes", help="The text-to-image model whose text encoder and "
                             "autoencoder the video model uses (frozen)."),
    seconds: Optional[float] = typer.Option(None, help="Training time budget in seconds (default 3600; total "
                                            "across resumes)."),
    steps: Optional[int] = typer.Option(None, help="Training step budget (total across resumes)."),
    resume: bool = typer.Option(False, help="Continue from WORK/checkpoints/video.pt."),
    init_from: Optional[str] = typer.Option(None, "--init-from", help="Start from the weights of a video model "
                                            "folder (e.g. assets/models/tiny-shapes-video) with a fresh optimizer: "
                                            "continue the bundled model without its training checkpoint."),
    clips: int = typer.Option(8_000, min=1, help="Training clips rendered and encoded once into WORK's pool."),
    batch: int = typer.Option(32, min=1, help="Clips per step."),
    workers: int = typer.Option(1, min=1, help="Processes rendering the clip pool."),
    eval_prompts: int = typer.Option(100, min=1, help="Held-out prompts `assemble` scores for the card."),
    as_json: bool = typer.Option(False, "--json", help="Print the metrics as one JSON object."),
) -> None:
    """Train the causal video model (teacher forcing with noised context, the KV cache's attention pattern)
    on procedural captioned clips, then write it with its model card."""
    import shlex
    from pathlib import Path

    from neuralframe.console import console, progress_bar
    from neuralframe.generate.train.video import assemble_video, record_run, train_video

    if stage not in ("train", "assemble", "all"):
        raise InputError(f"unknown stage '{stage}': use train, assemble or all")
    command = " ".join(["neuralframe", *map(shlex.quote, sys.argv[1:])])
    results = {}
    if stage in ("train", "all"):
        if seconds is None and steps is None:
            seconds = 3600.0
        with progress_bar("train video", 1000, enabled=not as_json) as bar:
            def report(p):
                bar.update(completed=int(1000 * p["progress"]),
                           rate=f"{p['stage']} {p['step']}" + (f" loss {p['loss']:.4g}" if "loss" in p else ""))
            results["train"] = train_video(Path(work), base, seconds, steps, resume, report, n_clips=clips,
                                           workers=workers, batch=batch, init_from=init_from)
        record_run(Path(work), results["train"], command)
        if not as_json:
            console.print("train: " + ", ".join(f"{k} {v}" for k, v in results["train"].items()), highlight=False)
    if stage in ("assemble", "all"):
        with progress_bar("evaluate", eval_prompts * 2, enabled=not as_json) as bar:
            card = assemble_video(Path(work), Path(out), base, command, eval_prompts,
                                  progress=lambda d, n: bar.update(completed=d))
        results["assemble"] = card["metrics"]
        if not as_json:
            m = card["metrics"]
            console.print(f"wrote [bold]{out}[/]: motion adherence {m['motion_adherence']}, frame adherence "
                          f"{m['frame_adherence']}, switch adherence {m.get('switch_adherence')}", highlight=False)
    if as_json:
        _emit_json(results)


@eval_app.command("tiny-shapes-video")
def eval_tiny_shapes_video(
    model: Optional[str] = typer.Option(None, help="The video model folder (default: the bundled one)."),
    prompts: int = typer.Option(100, min=1, help="Held-out prompts per measure."),
    seed: int = typer.Option(0, help="Seed of the first clip (clip i uses seed + i)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Motion adherence (the shape's centroid moves the captioned way), per-frame shape/colour adherence and
    prompt-switch adherence and smoothness, on prompts unseen in training."""
    from neuralframe.console import console, progress_bar
    from neuralframe.generate.models.classifier import ShapeClassifier
    from neuralframe.generate.video.evaluate import evaluate_video
    from neuralframe.generate.video.generate import BUNDLED_VIDEO, CausalVideoGenerator

    gen = CausalVideoGenerator(model or BUNDLED_VIDEO)
    with progress_bar("evaluate", 2 * prompts, enabled=not as_json) as bar:
        result = evaluate_video(gen, ShapeClassifier.load(), prompts=prompts, seed=seed,
                                progress=lambda d, n: bar.update(completed=d))
    if as_json:
        _emit_json(result)
        return
    console.print(f"motion adherence {result['motion_adherence']:.3f}, frame adherence {result['frame_adherence']:.3f}"
                  f", switch adherence {result['switch_adherence']:.3f} (jump {result['switch_jump_ratio_median']}x "
                  f"the median frame difference) over {prompts} prompts", highlight=False)


@bench_app.command("video")
def bench_video(
    model: Optional[str] = typer.Option(None, help="The video model folder (default: the bundled one)."),
    frames: int = typer.Option(64, min=4, help="Frames per timed run (KV cache vs recompute)."),
    prompts: int = typer.Option(100, min=1, help="Held-out prompts for the quality measures."),
    long_frames: int = typer.Option(1000, min=100, help="Frames of the long run (memory and time per frame)."),
    quick: bool = typer.Option(False, help="A short run for a smoke test."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """The causal video model: generation FPS, KV cache vs recomputing the context, flat memory and time per
    frame over 1,000 frames, motion / frame / switch adherence."""
    from neuralframe.bench import video as bench
    from neuralframe.console import console, err_console

    result = bench.run(model, frames=frames, prompts=prompts, long_frames=long_frames, quick=quick,
                       progress=None if as_json else (lambda m: err_console.print(f"[dim]{m}[/]")))
    if as_json:
        _emit_json(result)
        return
    console.print(f"generate {result['fps_generate']} FPS; KV cache {result['ratio_kvcache_vs_recompute']}x faster "
                  f"than recomputing the context; peak memory {result['peak_mem_mb_100']} MB (100 frames) vs "
                  f"{result['peak_mem_mb_1000']} MB ({result['long_run_frames']}); motion adherence "
                  f"{result['motion_adherence']}, frame adherence {result['frame_adherence']}, switch adherence "
                  f"{result['switch_adherence']}", highlight=False)
    console.print(f"checks: {result['checks']}", highlight=False, markup=False)


@bench_app.command("ray")
def bench_ray(
    frames: int = typer.Option(240, min=4, help="Frames of the render job's orbit."),
    size: str = typer.Option("480x270", help="Render size WIDTHxHEIGHT."),
    restyle_frames: int = typer.Option(48, min=4, help="Frames of the restyle job."),
    rounds: int = typer.Option(2, min=1, help="Alternating rounds of each configuration (the best counts)."),
    cpus_per_worker: int = typer.Option(1, "--cpus-per-worker", min=1, help="Threads per Ray worker."),
    job: Optional[list[str]] = typer.Option(None, "--job", help="render and/or restyle (default: both)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Offline jobs on one machine vs a local Ray with 1 and 2 workers, measured in one run: FPS, scaling from
    1 to 2 workers, and whether the outputs are identical."""
    from neuralframe.bench import ray as bench
    from neuralframe.console import console, err_console
    from neuralframe.distributed import require_ray

    require_ray()
    jobs = tuple(job or ("render", "restyle"))
    for name in jobs:
        if name not in ("render", "restyle"):
            raise InputError(f"unknown --job '{name}': use render or restyle")
    h, w = _size(size)
    result = bench.run(frames=frames, size=(h, w), restyle_frames=restyle_frames, rounds=rounds,
                       cpus_per_worker=cpus_per_worker, jobs=jobs,
                       progress=None if as_json else (lambda m: err_console.print(f"[dim]{m}[/]")))
    if as_json:
        _emit_json(result)
        return
    for name in jobs:
        r = result[name]
        console.print(f"{name}: one machine {r['fps_single']} FPS; ray 1 worker {r['fps_ray_1_worker']} FPS, 2 workers "
                      f"{r['fps_ray_2_workers']} FPS ([bold]{r['scaling_2_workers']}x[/]); outputs identical: "
                      f"{r['outputs_identical']}", highlight=False)
    console.print(f"checks: {result['checks']}", highlight=False, markup=False)


def main(argv: Optional[list[str]] = None) -> int:
    """Entry point: runs the app and turns user errors into one line and exit code 2."""
    import os

    from neuralframe.console import error_line

    # transformers/diffusers warnings (accelerate, torchvision fallbacks) are not for the command's user
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # per-file "Loading weights" bars
    command = typer.main.get_command(app)
    usage_errors = _usage_error_types()
    try:
        args = _expand_ray_flag(list(sys.argv[1:] if argv is None else argv))
        result = command.main(args=args, prog_name="neuralframe", standalone_mode=False)
        if result == 130:  # typer turns a KeyboardInterrupt inside a command into this return value
            error_line("interrupted")
            return 130
        if isinstance(result, int) and not isinstance(result, bool):
            return result
    except typer.Exit as done:
        return done.exit_code
    except usage_errors as error:
        # bad option values and usage errors: the usage line, then the problem
        error.show()
        return 2
    except (typer.Abort, KeyboardInterrupt):
        error_line("interrupted")
        return 130
    except PipelineError as error:
        if not isinstance(error.error, NeuralframeError):
            # a bug, not a user error: keep the traceback
            traceback.print_exception(error.error)
            error_line(str(error))
            return 1
        error_line(str(error))
        return error.exit_code
    except NeuralframeError as error:
        error_line(str(error))
        return error.exit_code
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
