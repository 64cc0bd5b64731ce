"""`neuralframe data NAME`: the bundled scenes and datasets, built by the project's own code."""

from __future__ import annotations

import typer

from neuralframe.cli.options import (
    COUNT,
    SCENE_GAUSSIANS,
    SEED,
    SH_DEGREE,
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


@app.command("capture-scene")
def capture_scene(
    out: str = typer.Option(..., "--out", "-o", help="The INRIA 3DGS .ply to write (NAME.cameras.json and the card "
                            "NAME.json beside it)."),
    gaussians: int = ranged(2_000_000, within=SCENE_GAUSSIANS, help="Gaussians in the scene."),
    sh_degree: int = ranged(3, within=SH_DEGREE, help="Spherical-harmonic degree of the colours."),
    seed: int = ranged(0, within=SEED, help="Seed: the same seed, count and degree give the same file."),
) -> None:
    """Make a capture-sized test scene: the bundled motorcycle densified as the central object, in procedural
    surroundings (ground, clutter, a distant background shell, floaters), with the spread of sizes, shapes,
    opacities and view-dependent colour of a trained 3DGS capture of an unbounded scene."""
    from neuralframe.console import progress_bar
    from neuralframe.render.splat.capture import check_capture_memory, write_capture
    from neuralframe.streaming.outputs import check_output

    path = check_output(out, (".ply",), accepts="a .ply scene")  # before any work
    if path.name.lower().endswith(".compressed.ply"):
        raise InputError(f"cannot write '{out}': this writes an INRIA 3DGS .ply, not a .compressed.ply")
    check_capture_memory(gaussians, sh_degree)  # before the bar: an error stays one line
    with progress_bar("generate", gaussians) as bar:
        card = write_capture(path, gaussians, sh_degree, seed,
                             progress=lambda done, total: bar.update(completed=done))
    _print_capture_card(card, path)


def _print_capture_card(card: dict, path) -> None:
    from rich.table import Table

    from neuralframe.backend.memory import human
    from neuralframe.console import console

    s = card["statistics"]
    console.print(f"wrote [bold]{path}[/]: {s['gaussians']:,} Gaussians, SH degree {s['sh_degree']}, "
                  f"{human(card['file_bytes'])} in {card['seconds']} s (cameras {card['cameras']}, card "
                  f"{path.with_suffix('.json').name})", highlight=False)
    table = Table("statistic", "value", title="the scene")
    table.add_row("parts", ", ".join(f"{name} {count:,}" for name, count in card["parts"].items()))
    size = s["size_m"]
    table.add_row("size (largest std, m)", f"p1 {size['p1']:.3g}, median {size['p50']:.3g}, p99 {size['p99']:.3g} "
                                           f"({s['size_orders']:.1f} orders of magnitude)")
    table.add_row("shapes", f"{s['flat_share']:.0%} flat (thinnest < 1/10 of longest), "
                            f"{s['needle_share']:.0%} needles (longest > 4x the middle)")
    o = s["opacity"]
    table.add_row("opacity", f"{o['below_0.1']:.0%} below 0.1, {o['above_0.9']:.0%} above 0.9, median {o['median']:.2f}")
    d = s["distance_radii"]
    table.add_row("distance from the object (its radii)", f"p10 {d['p10']:.2g}, median {d['p50']:.2g}, p90 "
                  f"{d['p90']:.3g}, p99 {d['p99']:.3g} ({s['within_object']:.0%} within the object)")
    if s["sh_rms_by_band"]:
        table.add_row("SH RMS by band", ", ".join(f"{i + 1}: {v:.3f}" for i, v in enumerate(s["sh_rms_by_band"])))
    console.print(table)


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
    from neuralframe.viewer.window import save_png

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
