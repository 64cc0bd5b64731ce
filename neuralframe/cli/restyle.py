"""`neuralframe restyle`: a video through the streaming diffusion engine, offline, every frame in order.

The options become one `DiffuseSettings` (`generate/diffusion/diffuse.py`) inside a `RestyleJob`, which
`apps.restyle.restyle` runs on this machine, or `distributed.jobs.restyle_ray` in chunks on Ray workers.
"""

from __future__ import annotations

from typing import Optional

import typer

from neuralframe.cli.options import (
    frame_size,
    BANK_HELP,
    CFG_HELP,
    COUNT,
    DIFFUSERS_FOLDER_HELP,
    FPS,
    GUIDANCE,
    GUIDANCE_HELP,
    PROMPT_HELP,
    SEED,
    STEPS_HELP,
    TINY_VAE_HELP,
    CpusPerWorker,
    JsonReport,
    Ray,
    UnitFrames,
    Workers,
    parse_size,
    print_ray_run,
    ranged,
    ray_settings,
)

DIFFUSE_BACKEND_HELP = ("Where the networks run: torch, onnxruntime or tensorrt (the model's text encoder, UNet and "
                        "autoencoder exported to ONNX once, with parity checks, and cached by the weights' hash; "
                        "tensorrt needs an NVIDIA GPU and pip install tensorrt; the feature bank needs torch).")


def restyle(
    input: str = typer.Argument(..., help="A video file or an image folder."),
    out: str = typer.Option(..., "--out", "-o", help="The restyled video (.mp4/.mkv/.mov) or a new PNG folder."),
    prompt: list[str] = typer.Option(..., "--prompt", "-p", help=PROMPT_HELP),
    model: Optional[str] = typer.Option(None, "--model", help=DIFFUSERS_FOLDER_HELP),
    steps: str = typer.Option("30,40", help=STEPS_HELP),
    cfg: Optional[str] = typer.Option(None, "--cfg", help=CFG_HELP),
    guidance: Optional[float] = ranged(None, "--guidance", within=GUIDANCE, help=GUIDANCE_HELP),
    bank: bool = typer.Option(False, "--bank", help=BANK_HELP),
    tiny_vae: bool = typer.Option(False, "--tiny-vae", help=TINY_VAE_HELP),
    size: Optional[str] = frame_size(None, help="Working size WIDTHxHEIGHT, multiples of 8 (default: the "
                                                  "input's aspect, shorter side at the model's native size)."),
    frames: Optional[int] = ranged(None, within=COUNT, help="Stop after N frames."),
    fps: Optional[float] = ranged(None, within=FPS, help="Frame rate of an image folder, and of the output."),
    seed: int = ranged(0, within=SEED, help="The engine's fixed noise."),
    backend: str = typer.Option("torch", "--backend", help=DIFFUSE_BACKEND_HELP),
    ray: Ray = None,
    workers: Workers = None,
    cpus_per_worker: CpusPerWorker = 1,
    unit_frames: UnitFrames = None,
    as_json: JsonReport = False,
) -> None:
    """Restyle a video to a prompt (or a prompt schedule) offline with the streaming diffusion engine; every
    frame is processed, in order. With --ray, chunks of the video run on Ray workers, each warmed up on the
    frames before it."""
    from neuralframe.apps.restyle import RestyleJob
    from neuralframe.apps.restyle import restyle as run_restyle
    from neuralframe.console import emit_json, print_pipeline_report
    from neuralframe.generate.diffusion.diffuse import DiffuseSettings, parse_steps

    settings = DiffuseSettings(prompts=tuple(prompt), model=model, steps=parse_steps(steps), cfg=cfg,
                               guidance_scale=guidance, bank=bank, size=parse_size(size), seed=seed, backend=backend,
                               tiny_vae=tiny_vae)
    job = RestyleJob(input=input, out=out, diffuse=settings, frames=frames, fps=fps)
    if ray is not None:
        from neuralframe.distributed import ray_session
        from neuralframe.apps.restyle import check_restyle_job
        from neuralframe.distributed.jobs import restyle_ray

        check_restyle_job(job)  # the input and the output, checked before Ray starts
        with ray_session(ray_settings(ray, workers, cpus_per_worker)) as session:
            report, summary = restyle_ray(job, session, unit_frames=unit_frames, progress=not as_json)
        print_ray_run(report, summary, f"restyle {input} -> {out} on ray", as_json)
        return
    report, summary = run_restyle(job, progress=not as_json)
    if as_json:
        emit_json({**report.to_dict(), "diffuse": summary})
    else:
        print_pipeline_report(report, f"restyle {input} -> {out}")
