"""`neuralframe convert IN OUT` and `neuralframe info SCENE`: splat scenes between every format of
`neuralframe.render.splat.formats`, with optional filtering, and a one-screen description of a scene file.

    summary = convert(ConvertJob("scene.ply", "scene.spz", sh_degree=1, max_gaussians=1_000_000))

`max_gaussians` reduces the scene by merging neighbours (`render.splat.lod.coarser`, moment-matched as
hierarchical 3DGS merges its nodes; the closest pairs for their sizes first) until it fits; if merging stalls above the budget (neighbours too far
apart to merge), the faintest Gaussians (opacity times cross-section) are dropped and the summary says how
many.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from neuralframe.errors import InputError


@dataclass(frozen=True)
class ConvertJob:
    """What `neuralframe convert` runs.

    Args:
        input: a scene file (or a SOG folder) in any format `render.splat.formats` reads.
        output: the new file; its extension picks the format.
        sh_degree: keep SH bands up to this degree (None: all the input has).
        filter_nan: drop Gaussians with NaN or infinite values instead of refusing the file.
        max_gaussians: reduce the scene to at most this many Gaussians (None: keep all).
        spz_version: the .spz version to write (None: the current one).
    """

    input: str
    output: str
    sh_degree: int | None = None
    filter_nan: bool = False
    max_gaussians: int | None = None
    spz_version: int | None = None


def check_paths(source: Path, target: Path) -> None:
    """One clear line, before any work, when the output would be the input or cannot be a new file."""
    from neuralframe.streaming.outputs import check_folder, refuse_input_as_output

    if not source.exists():
        raise InputError(f"{source}: scene file not found")
    refuse_input_as_output(str(source), str(target))
    check_folder(target)  # exists and really takes a new file (its format was checked by format_for)


def finite_rows(g):
    """The Gaussians whose every value is finite and whose rotation is not zero."""
    import torch

    keep = torch.ones(g.n, dtype=torch.bool)
    for tensor in g.tensors().values():
        keep &= torch.isfinite(tensor).reshape(g.n, -1).all(1)
    keep &= torch.nan_to_num(g.quats).norm(dim=1) > 0
    return g[keep]


def reduce_to(g, budget: int) -> tuple[Any, int]:
    """The scene merged down to at most `budget` Gaussians; (scene, how many faint ones were dropped)."""
    import torch

    from neuralframe.render.splat.lod import coarser

    if budget < 1:
        raise InputError(f"--max-gaussians must be at least 1, got {budget}")
    while g.n > budget:
        merged = coarser(g, max_pairs=g.n - budget)
        if merged.n >= g.n:  # nothing left close enough to merge
            break
        g = merged
    dropped = max(0, g.n - budget)
    if dropped:
        weight = torch.sigmoid(g.opacities) * g.scales.sum(1).mul(2.0 / 3.0).exp()  # opacity x cross-section
        g = g[torch.argsort(weight, descending=True)[:budget].sort().values]
    return g, dropped


def convert(job: ConvertJob, progress: bool = True) -> dict[str, Any]:
    """Run a conversion; returns the summary (what `--json` prints)."""
    from neuralframe.console import steps
    from neuralframe.render.splat.formats import format_for, load, save

    source, target = Path(job.input), Path(job.output)
    out_format = format_for(target, writing=True)  # an unknown or read-only format fails before loading
    check_paths(source, target)
    if job.sh_degree is not None and not 0 <= job.sh_degree <= 3:
        raise InputError(f"--sh-degree must be 0, 1, 2 or 3, got {job.sh_degree}")
    if job.spz_version is not None and out_format.name != "spz":
        raise InputError(f"--spz-version applies to .spz outputs, not '{target.name}'")
    started = time.perf_counter()
    with steps(f"convert {source.name}", enabled=progress) as step:
        step("reading")
        g = load(source, finite=not job.filter_nan)
        loaded = g.n
        removed = 0
        if job.filter_nan:
            g = finite_rows(g)
            removed = loaded - g.n
            if g.n == 0:
                raise InputError(f"{source}: every Gaussian has NaN or infinite values: nothing to convert")
        if job.sh_degree is not None and job.sh_degree < g.sh_degree:
            g = g.with_sh_degree(job.sh_degree)
        dropped = 0
        if job.max_gaussians is not None:
            step(f"merging {g.n:,} Gaussians down to {job.max_gaussians:,}")
            g, dropped = reduce_to(g, job.max_gaussians)
        step(f"writing {target.name}")
        options = {"version": job.spz_version} if job.spz_version is not None else {}
        save(g, target, **options)
    seconds = time.perf_counter() - started
    summary = describe(target)  # read back: the summary describes the file as written (quantised formats differ)
    summary.update({"input": str(source), "input_format": format_for(source).name, "input_gaussians": loaded,
                    "removed_non_finite": removed, "dropped_faintest": dropped, "seconds": round(seconds, 3)})
    return summary


def describe(path: Path, g=None) -> dict[str, Any]:
    """`neuralframe info SCENE`: format (and version where the format has one), count, SH degree, bounds,
    file size and bytes per Gaussian."""
    from neuralframe.render.splat.formats import format_for, load, version_of

    path = Path(path)
    if g is None:
        g = load(path)
    size = _size_on_disk(path)
    lo = g.means.min(0).values.tolist() if g.n else [0.0] * 3
    hi = g.means.max(0).values.tolist() if g.n else [0.0] * 3
    return {"file": str(path), "format": format_for(path).name, "version": version_of(path),
            "gaussians": g.n, "sh_degree": g.sh_degree,
            "bounds_min": [round(v, 4) for v in lo], "bounds_max": [round(v, 4) for v in hi],
            "bytes": size, "bytes_per_gaussian": round(size / g.n, 2) if g.n else None}


def _size_on_disk(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def print_summary(summary: dict[str, Any], title: str) -> None:
    from neuralframe.console import console

    lo, hi = summary["bounds_min"], summary["bounds_max"]
    version = f" v{summary['version']}" if summary.get("version") is not None else ""
    console.print(f"[bold]{title}[/]", highlight=False)
    console.print(f"  format      {summary['format']}{version}  ({summary['file']})", highlight=False)
    console.print(f"  gaussians   {summary['gaussians']:,}   SH degree {summary['sh_degree']}", highlight=False)
    console.print(f"  bounds      ({lo[0]:.3g}, {lo[1]:.3g}, {lo[2]:.3g}) .. ({hi[0]:.3g}, {hi[1]:.3g}, {hi[2]:.3g})",
                  highlight=False)
    per = summary["bytes_per_gaussian"]
    console.print(f"  size        {summary['bytes'] / 1e6:.2f} MB, {per} bytes a Gaussian", highlight=False)
    if "seconds" in summary:
        notes = []
        if summary["removed_non_finite"]:
            notes.append(f"{summary['removed_non_finite']:,} with NaN/inf removed")
        if summary["dropped_faintest"]:
            notes.append(f"{summary['dropped_faintest']:,} faintest dropped after merging")
        extra = f" ({'; '.join(notes)})" if notes else ""
        console.print(f"  from        {summary['input_format']}, {summary['input_gaussians']:,} Gaussians, in "
                      f"{summary['seconds']:.2f} s{extra}", highlight=False)
