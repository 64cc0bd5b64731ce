"""`neuralframe stream`: a source through an effect into a sink, live (Ctrl-C stops cleanly).

Where each option lands (`apps/stream.py` builds the pipeline from one `StreamSettings`):

- `--source` -> `streaming.sources.parse_source`: pattern, webcam[:N], a video file or an image folder.
- `--out` -> `streaming.sinks.parse_sink`: a video file, a PNG folder, `virtualcam[:DEVICE]`
  (`VirtualCamSink`, pyvirtualcam imported on open), or `window` (the live preview, `viewer/preview.py`);
  none: measure only.
- `--effect` -> the effect registry, `apps/effects.py` (`effect_chain`; its `EFFECT_OPTION_HELP` is the
  option's help): a colour grade (one fused stage); matte, replace:..., blur[:...] (the `neuralframe.matting`
  stages, with `--model`: the bundled segmenter, a .tflite or an RVM .pth; `--downsample-ratio`: RVM only;
  `--backend` and `--device`); or diffuse (streaming diffusion, `generate/diffusion/`, with the
  `DiffuseSettings` built here from `--prompt`, `--steps`, `--cfg`, `--guidance`, `--bank`, `--tiny-vae`,
  `--similarity` and `--seed`; `--model` is then a diffusers folder and `--backend` where the diffusion
  networks run, the matting backend staying torch). An option that does not go with the chosen effect
  (`--model` with a colour grade, `--prompt` without diffuse) is a one-line error from `effect_chain`,
  before any source opens.
- `--policy`: auto is latest for webcams (a slow stage sees only the newest frame), block otherwise.
"""

from __future__ import annotations

from typing import Optional

import typer

from neuralframe.apps.effects import EFFECT_OPTION_HELP
from neuralframe.cli.options import (
    frame_size,
    BACKEND_HELP,
    BANK_HELP,
    CFG_HELP,
    COUNT,
    FPS,
    GUIDANCE,
    GUIDANCE_HELP,
    MODEL_HELP,
    PROMPT_HELP,
    RATIO,
    RATIO_HELP,
    SEED,
    SHARE,
    STEPS_HELP,
    TINY_VAE_HELP,
    JsonReport,
    for_diffuse,
    matting_backend,
    parse_size,
    ranged,
    torch_device,
)


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
    effect: str = typer.Option("none", "--effect", "-e", help=EFFECT_OPTION_HELP),
    size: Optional[str] = frame_size(None, help="Output size WIDTHxHEIGHT (default: the source's)."),
    frames: Optional[int] = ranged(None, within=COUNT, help="Stop after N frames (the pattern defaults to 150)."),
    fps: Optional[float] = ranged(None, within=FPS, help="Frame rate of the pattern or image folder, and of the "
                                                            "output."),
    policy: str = typer.Option("auto", help="Queue policy: auto (latest for webcams, block otherwise), block, "
                                            "latest."),
    impl: str = typer.Option("auto", help="Kernel implementation: auto, cpu or reference."),
    loop: bool = typer.Option(False, help="Loop a video file."),
    matte_backend: str = typer.Option("torch", "--backend", "--matte-backend", help=BACKEND_HELP),
    device: str = typer.Option("cpu", help="Device for the matting effects: cpu, cuda or auto.",
                              callback=torch_device),
    model: Optional[str] = typer.Option(None, "--model", help=MODEL_HELP + " With --effect diffuse: a local "
                                        "diffusers pipeline folder (default: the bundled tiny-shapes model)."),
    downsample_ratio: Optional[float] = ranged(None, "--downsample-ratio", within=RATIO, help=RATIO_HELP),
    prompt: Optional[list[str]] = typer.Option(None, "--prompt", "-p", help=for_diffuse(PROMPT_HELP)),
    steps: str = typer.Option("30,40", help=for_diffuse(STEPS_HELP)),
    cfg: Optional[str] = typer.Option(None, "--cfg", help=for_diffuse(CFG_HELP)),
    guidance: Optional[float] = ranged(None, "--guidance", within=GUIDANCE, help=for_diffuse(GUIDANCE_HELP)),
    bank: bool = typer.Option(False, "--bank", help=for_diffuse(BANK_HELP)),
    tiny_vae: bool = typer.Option(False, "--tiny-vae", help=for_diffuse(TINY_VAE_HELP)),
    similarity: Optional[float] = ranged(None, "--similarity", within=SHARE, help="Diffuse: skip input frames more "
                                               "similar than this (0-1, e.g. 0.98) to the last processed one."),
    seed: int = ranged(0, within=SEED, help="Diffuse: the engine's fixed noise."),
    as_json: JsonReport = False,
) -> None:
    """Run a source through an effect into a file, a folder, a window, a virtual camera or nowhere; Ctrl-C
    stops cleanly."""
    from neuralframe.apps.stream import StreamSettings, run
    from neuralframe.console import emit_json, print_pipeline_report

    diffuse = None
    if prompt:
        from neuralframe.generate.diffusion.diffuse import DiffuseSettings, parse_steps

        diffuse = DiffuseSettings(prompts=tuple(prompt), steps=parse_steps(steps), cfg=cfg, guidance_scale=guidance,
                                  bank=bank, similarity=similarity, seed=seed, tiny_vae=tiny_vae,
                                  backend=matte_backend if effect == "diffuse" else "torch")
    if effect == "diffuse":
        matte_backend = "torch"  # --backend went to the diffusion stage
    settings = StreamSettings(source=source, out=out, effect=effect, size=parse_size(size), frames=frames, fps=fps,
                              policy=policy, impl=impl, loop=loop, matte_backend=matting_backend(matte_backend),
                              device=device, model=model, downsample_ratio=downsample_ratio, diffuse=diffuse)
    report = run(settings, progress=not as_json)
    if as_json:
        emit_json(report.to_dict())
    else:
        print_pipeline_report(report, f"stream {source} -> {out or 'null'} [{effect}]")
