"""`neuralframe train NAME`: the training runs behind the bundled models (each writes a model card that
records the command as typed, so anyone can retrain)."""

from __future__ import annotations

import sys
from typing import Optional

import typer

from neuralframe.cli.options import (
    COUNT,
    SECONDS,
    ranged,
)

from neuralframe.errors import InputError

app = typer.Typer(help="Train models from local data.", no_args_is_help=True)


def _command_as_typed() -> str:
    """The command line, also when run as `python -m neuralframe.cli`: it goes into the model card."""
    import shlex

    return " ".join(["neuralframe", *map(shlex.quote, sys.argv[1:])])


@app.command("nerf")
def nerf(
    data: str = typer.Argument(..., help="A folder with transforms_train.json (NeRF-synthetic / instant-ngp format)."),
    out: str = typer.Option(..., "--out", "-o", help="The checkpoint to write (.safetensors)."),
    seconds: Optional[float] = ranged(None, within=SECONDS, help="Training time budget in seconds (total, across "
                                                                  "resumes)."),
    steps: Optional[int] = ranged(None, within=COUNT, help="Training steps (total, across resumes)."),
    resume: bool = typer.Option(False, help="Continue from the checkpoint at --out."),
    as_json: bool = typer.Option(False, "--json", help="Print the final metrics as JSON."),
) -> None:
    """Train a hash-grid NeRF; open the result with `neuralframe view OUT.safetensors`."""
    from neuralframe.console import console, emit_json, progress_bar
    from neuralframe.render.nerf.train import train
    from neuralframe.streaming.outputs import check_output

    check_output(out, (".safetensors",), accepts="a .safetensors checkpoint", inputs=[data])
    with progress_bar("train nerf", steps if steps else None, enabled=not as_json) as bar:
        def report(p):
            bar.update(completed=p["step"], rate=f"loss {p['loss']:.4f} psnr {p['psnr']:.1f} dB")
        metrics = train(data, out, seconds=seconds, steps=steps, resume=resume, progress=report)
    if as_json:
        emit_json(metrics)
    else:
        console.print(f"wrote [bold]{out}[/]: validation PSNR {metrics['val_psnr']:.2f} dB after "
                      f"{metrics['steps']} steps, {metrics['seconds']:.0f} s", highlight=False)


@app.command("tiny-shapes")
def tiny_shapes(
    stage: str = typer.Option("all", help="vae, classifier, t2i, lcm, tiny-vae, assemble, or all (in that order)."),
    work: str = typer.Option("out/train/tiny-shapes", help="Folder for checkpoints and stage outputs."),
    out: str = typer.Option("assets/models/tiny-shapes", "--out", "-o",
                            help="Where `assemble` writes the diffusers folder."),
    seconds: Optional[float] = ranged(None, within=SECONDS,
                                      help="Time budget per stage in seconds (total across resumes; "
                                           "default per stage: vae 1200, classifier 300, t2i 2400, "
                                           "lcm 1200, tiny-vae 900)."),
    steps: Optional[int] = ranged(None, within=COUNT, help="Step budget per stage (total across resumes)."),
    resume: bool = typer.Option(False, help="Continue each stage from its checkpoint in WORK/checkpoints."),
    train_images: Optional[int] = ranged(None, within=COUNT, help="Training images encoded for t2i/lcm "
                                                               "(default 48000)."),
    eval_prompts: int = ranged(200, within=COUNT, help="Held-out prompts `assemble` scores for the card."),
    eval_images: Optional[int] = ranged(None, within=COUNT, help="Held-out images for the autoencoder's PSNR "
                                                             "(default 256) and the scorer's accuracy (default 2000)."),
    as_json: bool = typer.Option(False, "--json", help="Print each stage's metrics as one JSON object."),
) -> None:
    """Train the bundled tiny-shapes text-to-image model (autoencoder, scorer, teacher, few-step student) and
    write it in diffusers' folder layout with a model card."""
    from pathlib import Path

    from neuralframe.console import console, emit_json, progress_bar
    from neuralframe.generate.train.tiny_shapes import STAGES, run_stage

    stages = STAGES if stage == "all" else (stage,)
    command = _command_as_typed()
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
        emit_json(results)


@app.command("tiny-shapes-video")
def tiny_shapes_video(
    stage: str = typer.Option("all", help="train, assemble, or all (in that order)."),
    work: str = typer.Option("out/train/tiny-shapes-video", help="Folder for the clip pool and checkpoints."),
    out: str = typer.Option("assets/models/tiny-shapes-video", "--out", "-o", help="Where `assemble` writes the "
                            "model folder."),
    base: str = typer.Option("assets/models/tiny-shapes", help="The text-to-image model whose text encoder and "
                             "autoencoder the video model uses (frozen)."),
    seconds: Optional[float] = ranged(None, within=SECONDS, help="Training time budget in seconds (default 3600; total "
                                            "across resumes)."),
    steps: Optional[int] = ranged(None, within=COUNT, help="Training step budget (total across resumes)."),
    resume: bool = typer.Option(False, help="Continue from WORK/checkpoints/video.pt."),
    init_from: Optional[str] = typer.Option(None, "--init-from", help="Start from the weights of a video model "
                                            "folder (e.g. assets/models/tiny-shapes-video) with a fresh optimizer: "
                                            "continue the bundled model without its training checkpoint."),
    clips: int = ranged(8_000, within=COUNT, help="Training clips rendered and encoded once into WORK's pool."),
    batch: int = ranged(32, within=COUNT, help="Clips per step."),
    workers: int = ranged(1, within=COUNT, help="Processes rendering the clip pool."),
    eval_prompts: int = ranged(100, within=COUNT, help="Held-out prompts `assemble` scores for the card."),
    as_json: bool = typer.Option(False, "--json", help="Print the metrics as one JSON object."),
) -> None:
    """Train the causal video model (teacher forcing with noised context, the KV cache's attention pattern)
    on procedural captioned clips, then write it with its model card."""
    from pathlib import Path

    from neuralframe.console import console, emit_json, progress_bar
    from neuralframe.generate.train.video import assemble_video, record_run, train_video

    if stage not in ("train", "assemble", "all"):
        raise InputError(f"unknown stage '{stage}': use train, assemble or all")
    command = _command_as_typed()
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
        emit_json(results)
