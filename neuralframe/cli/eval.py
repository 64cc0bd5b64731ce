"""`neuralframe eval NAME`: the trained models' quality, measured on prompts unseen in training."""

from __future__ import annotations

from typing import Optional

import typer

from neuralframe.cli.options import (
    COUNT,
    GUIDANCE,
    SEED,
    STEPS,
    JsonObject,
    ranged,
)

app = typer.Typer(help="Measure the quality of trained models.", no_args_is_help=True)


@app.command("tiny-shapes")
def tiny_shapes(
    model: Optional[str] = typer.Option(None, help="A tiny-shapes diffusers folder (default: the bundled one)."),
    classifier: Optional[str] = typer.Option(None, help="The shape/colour scorer folder (default: the bundled one)."),
    prompts: int = ranged(200, within=COUNT, help="Held-out prompts to score (combinations unseen in training)."),
    steps: int = ranged(4, within=STEPS, help="Sampling steps."),
    guidance: Optional[float] = ranged(None, within=GUIDANCE, help="Guidance scale (default: the model card's)."),
    seed: int = ranged(0, within=SEED, help="Seed of the first image (image i uses seed + i)."),
    as_json: JsonObject = False,
) -> None:
    """Prompt adherence (shape and colour named by the bundled scorer), 1-step adherence, autoencoder PSNR,
    network evaluations and CPU seconds per image."""
    from neuralframe.console import console, emit_json
    from neuralframe.generate.evaluate import evaluate_tiny_shapes
    from neuralframe.generate.models.classifier import DEFAULT_DIR
    from neuralframe.generate.models.folder import BUNDLED

    result = evaluate_tiny_shapes(model or BUNDLED, classifier or DEFAULT_DIR, prompts, steps, guidance, seed)
    if as_json:
        emit_json(result)
        return
    console.print(f"prompt adherence {result['prompt_adherence']:.3f} at {steps} steps "
                  f"(shape {result['shape_adherence']:.3f}, colour {result['colour_adherence']:.3f}), "
                  f"1 step {result['adherence_1step']:.3f}; autoencoder {result['vae_psnr_db']} dB; "
                  f"{result['nfe_per_image']} network evaluations and {result['seconds_per_image']:.3f} s per image "
                  f"over {prompts} prompts", highlight=False)


@app.command("tiny-shapes-video")
def tiny_shapes_video(
    model: Optional[str] = typer.Option(None, help="The video model folder (default: the bundled one)."),
    prompts: int = ranged(100, within=COUNT, help="Held-out prompts per measure."),
    seed: int = ranged(0, within=SEED, help="Seed of the first clip (clip i uses seed + i)."),
    as_json: JsonObject = False,
) -> None:
    """Motion adherence (the shape's centroid moves the captioned way), per-frame shape/colour adherence and
    prompt-switch adherence and smoothness, on prompts unseen in training."""
    from neuralframe.console import console, emit_json, progress_bar
    from neuralframe.generate.models.classifier import ShapeClassifier
    from neuralframe.generate.video.evaluate import evaluate_video
    from neuralframe.generate.video.generate import BUNDLED_VIDEO, CausalVideoGenerator

    gen = CausalVideoGenerator(model or BUNDLED_VIDEO)
    with progress_bar("evaluate", 2 * prompts, enabled=not as_json) as bar:
        result = evaluate_video(gen, ShapeClassifier.load(), prompts=prompts, seed=seed,
                                progress=lambda d, n: bar.update(completed=d))
    if as_json:
        emit_json(result)
        return
    console.print(f"motion adherence {result['motion_adherence']:.3f}, frame adherence {result['frame_adherence']:.3f}"
                  f", switch adherence {result['switch_adherence']:.3f} (jump {result['switch_jump_ratio_median']}x "
                  f"the median frame difference) over {prompts} prompts", highlight=False)
