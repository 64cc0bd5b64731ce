"""`neuralframe generate` (text to video) and `neuralframe generate-image` (text to image).

`generate` with one prompt schedule runs `apps.generate.generate_video` (frame by frame into the video);
with `--prompts FILE` (a clip per line) or `--ray` it runs `apps.clips.generate_local` or
`generate_ray`. `generate-image` loads a diffusers folder (`generate/models/folder.py`); with `--backend`
its networks run on engines exported from it (`export/engines.py`), handed to `generate/models/engines.py`.
"""

from __future__ import annotations

from typing import Optional

import typer

from neuralframe.cli.options import (
    COUNT,
    FPS,
    GUIDANCE,
    RAY_HELP,
    SEED,
    STEPS,
    UPSCALE,
    CpusPerWorker,
    Workers,
    ranged,
    ray_settings,
    torch_device,
)
from neuralframe.errors import InputError

VIDEO_PROMPT_HELP = ('"TEXT:FRAME": switch to TEXT at FRAME (repeatable), e.g. --prompt "a large green heart rotating '
                     'in the centre over a plain blue background:24". Without ":FRAME" it starts at frame 0.')


def generate(
    prompt: Optional[str] = typer.Argument(None, help="What the video shows. The bundled model knows one large "
                                           "shape (circle, square, triangle, star, ring, cross, heart) of a colour, "
                                           "moving left/right/up/down from a position, rotating or bouncing, over a "
                                           "plain or gradient background of another colour."),
    out: str = typer.Option(..., "--out", "-o", help="The video to write (.mp4, .mkv or .mov), frame by frame."),
    frames: int = ranged(48, within=COUNT, help="Frames to generate (any number: time and memory per frame "
                                                   "stay flat)."),
    prompts: Optional[list[str]] = typer.Option(None, "--prompt", "-p", help=VIDEO_PROMPT_HELP),
    seed: int = ranged(0, within=SEED, help="Seed of the noise."),
    model: Optional[str] = typer.Option(None, "--model", help="The video model folder (default: the bundled "
                                        "tiny-shapes-video), or a local diffusers text-to-video folder (Wan, "
                                        "AnimateDiff, ...), run through diffusers' own pipeline."),
    show: bool = typer.Option(False, "--show", help="Also show the frames live in a window."),
    upscale: int = ranged(4, within=UPSCALE, help="Write the frames this many times larger (bicubic), for viewing; "
                          "the larger frames must fit in the memory available."),
    fps: Optional[float] = ranged(None, within=FPS, help="Frame rate of the video (default: the model's, 8)."),
    tiny_vae: bool = typer.Option(False, "--tiny-vae", help="Decode with the base model's tiny autoencoder."),
    device: str = typer.Option("cpu", help="cpu, cuda or auto.", callback=torch_device),
    steps: Optional[int] = ranged(None, within=STEPS, help="Denoising steps of a diffusers folder (its default "
                                                                    "if unset)."),
    prompts_file: Optional[str] = typer.Option(None, "--prompts", help="A text file with one prompt per line: one "
                                               "clip each, into the folder -o names (clip_0000.mp4, ..., "
                                               "prompts.json)."),
    ray: Optional[str] = typer.Option(None, "--ray", help=RAY_HELP + " Each clip is one unit."),
    workers: Workers = None,
    cpus_per_worker: CpusPerWorker = 1,
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Text to video with the bundled causal video model (KV cache with a frame sink and a short window,
    KV-recache on prompt switches), written frame by frame with a progress bar. Ctrl-C once stops and keeps a
    valid video of the frames so far."""
    from neuralframe.apps.generate import generate_video
    from neuralframe.console import console, emit_json
    from neuralframe.generate.video.generate import parse_schedule

    if frames < 1:
        raise InputError(f"--frames must be at least 1, got {frames}")
    if prompts_file is not None:  # the outputs, checked before Ray starts or a model loads
        from pathlib import Path

        from neuralframe.apps.clips import ClipFolder

        ClipFolder.check(Path(out))
    else:
        from neuralframe.streaming.sinks import check_video_output

        check_video_output(out)
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
        emit_json(summary)
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
    from neuralframe.console import console, emit_json, print_cluster_summary
    from neuralframe.generate.video.generate import parse_schedule

    if show:
        raise InputError("--show draws one clip as it is made: drop it with --prompts or --ray")
    if prompts_file is not None:
        from neuralframe.apps.clips import read_prompts

        if prompt is not None or prompts:
            raise InputError("give the prompts either in --prompts FILE or on the command line, not both")
        schedules = [[(0, p)] for p in read_prompts(prompts_file)]
    else:
        schedules = [parse_schedule(prompt, prompts)]
    if ray is None:
        from neuralframe.apps.clips import generate_local

        summary = generate_local(schedules, out, progress=not as_json, **options)
    else:
        from neuralframe.distributed import ray_session
        from neuralframe.distributed.jobs import generate_ray

        with ray_session(ray_settings(ray, workers, cpus_per_worker)) as session:
            summary = generate_ray(schedules, out, session, folder=prompts_file is not None, progress=not as_json,
                                   **options)
    if as_json:
        emit_json(summary)
        return
    if "cluster" in summary:
        print_cluster_summary(summary["cluster"])
    console.print(f"wrote [bold]{summary['output']}[/]: {summary['clips']} clip(s), {summary['frames']} frames in "
                  f"{summary['seconds']:.1f} s, [bold]{summary['fps']} FPS[/]", highlight=False)


def generate_image(
    prompt: str = typer.Argument(..., help="What to draw, e.g. \"a large red star in the centre\"."),
    out: str = typer.Option(..., "--out", "-o", help="The PNG to write."),
    steps: Optional[int] = ranged(None, within=STEPS, help="Sampling steps (default: the model card's, else 4)."),
    seed: int = ranged(0, within=SEED, help="Noise seed."),
    guidance: Optional[float] = ranged(None, within=GUIDANCE, help="Guidance scale (default: the model card's or "
                                                                         "pipeline's)."),
    model: Optional[str] = typer.Option(None, help="A local diffusers Stable-Diffusion-family folder "
                                                  "(default: the bundled tiny-shapes model)."),
    backend: str = typer.Option("torch", help="Where the text encoder, UNet and decoder run: torch, onnxruntime "
                                              "(exported once with parity checks, then cached) or tensorrt."),
) -> None:
    """Text to image with the bundled few-step model or any local diffusers folder."""
    import time
    from pathlib import Path

    from neuralframe.backend.runtime import resolve_backend
    from neuralframe.console import console, note
    from neuralframe.generate.models.folder import BUNDLED, card_defaults, generate_image, load_pipeline
    from neuralframe.viewer.window import save_png

    from neuralframe.streaming.outputs import check_png_output

    check_png_output(out)  # before the model loads
    backend = resolve_backend(backend)
    folder = Path(model) if model else BUNDLED
    defaults = card_defaults(folder)
    pipe = load_pipeline(folder)
    if backend != "torch":
        from neuralframe.export.engines import engine_factory
        from neuralframe.generate.models.engines import use_backend

        use_backend(pipe, folder, backend, engine_factory("tiny-shapes", say=note))
    start = time.perf_counter()
    image = generate_image(pipe, prompt, steps or defaults.get("steps", 4), seed,
                           guidance if guidance is not None else defaults.get("guidance_scale"))
    seconds = time.perf_counter() - start
    path = save_png(image, out)
    console.print(f"wrote [bold]{path}[/] ({image.shape[1]}x{image.shape[0]}, {seconds:.2f} s, {backend})",
                  highlight=False)
