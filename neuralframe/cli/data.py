"""`neuralframe data NAME`: the bundled scenes and datasets, built by the project's own code."""

from __future__ import annotations

import typer

from neuralframe.cli.options import (
    COUNT,
    SEED,
    SIDE,
    ranged,
)

from neuralframe.errors import InputError

app = typer.Typer(help="Build the bundled scenes and datasets with the project's own code.", no_args_is_help=True)


@app.command("splat-from-stereo")
def splat_from_stereo(
    out: str = typer.Option("assets/scenes/motorcycle.ply", "--out", "-o", help="The scene file to write."),
    steps: int = ranged(240, within=COUNT, help="Refinement steps through the differentiable reference rasterizer."),
) -> None:
    """Build the motorcycle Gaussian-splat scene from scikit-image's Middlebury stereo pair (and its card,
    previews and cameras beside it)."""
    from neuralframe.console import console, progress_bar
    from neuralframe.render.splat.stereo import build_motorcycle
    from neuralframe.streaming.outputs import check_output

    check_output(out, (".ply",), accepts="a .ply scene")  # before the refinement runs
    with progress_bar("refine", steps) as bar:
        metrics = build_motorcycle(out, steps=steps, progress=lambda step, total, loss: bar.advance())
    console.print(f"wrote [bold]{out}[/]: {metrics['n_gaussians']:,} Gaussians, PSNR left "
                  f"{metrics['psnr_left_db']:.2f} dB, right {metrics['psnr_right_db']:.2f} dB", highlight=False)


@app.command("nerf-synthetic")
def nerf_synthetic(
    out: str = typer.Option(..., "--out", "-o", help="The dataset folder to write (transforms_*.json + PNGs)."),
    size: int = ranged(200, within=SIDE, help="Image size in pixels."),
    n_train: int = ranged(100, within=COUNT, help="Training views."),
    seed: int = ranged(0, within=SEED, help="Seed of the procedural object and cameras."),
) -> None:
    """Render a NeRF-synthetic-format dataset of a procedural object seen from all around."""
    from neuralframe.console import console, progress_bar
    from neuralframe.render.nerf.data import make_synthetic

    with progress_bar("render views", n_train + 20) as bar:
        path = make_synthetic(out, size=size, n_train=n_train, seed=seed, progress=lambda done, total: bar.advance())
    console.print(f"wrote [bold]{path}[/]", highlight=False)


@app.command("shapes")
def shapes(
    preview: str = typer.Option(..., "--preview", help="The PNG contact sheet to write."),
    n: int = ranged(32, "--n", within=COUNT, help="Samples to show."),
    size: int = ranged(64, within=SIDE, help="Image size in pixels."),
    video: bool = typer.Option(False, help="Show short videos (one per row, frames across) instead of images."),
    split: str = typer.Option("train", help="train or eval (the held-out attribute combinations)."),
    seed: int = ranged(0, within=SEED, help="First seed; sample i uses seed + i."),
) -> None:
    """Look at the procedural captioned shapes data the bundled generative models train on."""
    from neuralframe.console import console
    from neuralframe.generate.data import ShapesConfig, ShapesGenerator
    from neuralframe.generate.data.preview import contact_sheet
    from neuralframe.streaming.outputs import check_png_output
    from neuralframe.viewer.app import save_png

    check_png_output(preview)
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
