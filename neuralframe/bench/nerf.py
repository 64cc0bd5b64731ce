"""`neuralframe bench nerf`: hash-grid encode throughput, training quality for a budget, render FPS.

All numbers come from one run on this machine: the encode throughput of each implementation (forward,
and forward + backward) on the default `HashGrid`, a training run of fixed length on the synthetic
scene (generated into a temporary folder), and render frame rates of the trained scene.

Every implementation is timed alike: one untimed warm-up call (Numba compiles on its first), then the best
of the same number of calls. Checks, each an absolute floor (the figures recorded on 2 cores are in
benchmarks/nerf.json): the CPU encode kernel faster than the reference (forward + backward), the trained
scene's validation PSNR, and the render frame rate at 200x200.
"""

from __future__ import annotations

import os
import tempfile
import time
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    import torch

N_POINTS = 1 << 18


# absolute floors: (full run, quick run)
QUICK_STEPS = 100  # the quick run's training (about 15 s on 2 cores with a warm cache)
MIN_ENCODE_RATIO = 2.0
MIN_PSNR_DB = (25.0, 12.0)
MIN_RENDER_FPS_200 = (1.0, 0.25)


def _best(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up, untimed: every side gets one
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def encode_throughput(impl: str, n_points: int, repeats: int) -> dict:
    """Points per second of the default HashGrid (16 levels, 2**19 entries) for one implementation."""
    import torch

    from neuralframe.render.nerf import HashGrid

    torch.manual_seed(0)
    grid = HashGrid(impl=impl)
    x = torch.rand(n_points, 3)

    def forward():
        with torch.no_grad():
            grid(x)

    def forward_backward():
        features = grid(x)
        features.backward(torch.ones_like(features))
        grid.params.grad = None

    forward()  # compile / warm up
    forward_backward()
    return {"forward": n_points / _best(forward, repeats),
            "forward_backward": n_points / _best(forward_backward, repeats)}


def render_fps(field, camera, size: int, repeats: int) -> float:
    from neuralframe.render.nerf import render

    cam = camera.resized(size, size)
    render(field, cam)
    return 1.0 / _best(lambda: render(field, cam, background=(1.0, 1.0, 1.0)), repeats)


def render_samples(field, camera) -> torch.Tensor:
    """The world points at which one render of `camera` evaluates the density network."""
    import torch

    from neuralframe.render.nerf import render

    points = []
    geometry = field.geometry

    def recording(x, impl=None):
        points.append(x.clone())
        return geometry(x, impl)

    field.geometry = recording
    try:
        render(field, camera)
    finally:
        del field.geometry
    return torch.cat(points)


def geometry_throughput(field, camera, repeats: int) -> dict:
    """Density-network points per second at a render's own sample points: the unfused path the renderer
    uses (cpu encoding kernel, then torch matrix products, in the renderer's chunks) against the fused
    CPU inference kernel, and the largest difference between their outputs."""
    import torch

    from neuralframe.render.nerf import hashgrid_cpu as cpu
    from neuralframe.render.nerf.renderer import chunked

    x = render_samples(field, camera)
    with torch.no_grad():
        unfused = lambda: chunked(lambda p: field.geometry(p, impl="cpu"), x)  # noqa: E731
        fused = lambda: chunked(lambda p: cpu.geometry_forward(field, p), x)  # noqa: E731
        diff = float((unfused() - fused()).abs().max())
        t_unfused, t_fused = _best(unfused, repeats), _best(fused, repeats)
    return {"points": int(x.shape[0]), "unfused_points_per_s": round(x.shape[0] / t_unfused),
            "fused_points_per_s": round(x.shape[0] / t_fused), "fused_vs_unfused": round(t_unfused / t_fused, 2),
            "max_abs_diff": diff}


def run(quick: bool = False, progress: Callable[[str], None] | None = None) -> dict:
    """Run the NeRF benchmark; `quick` shrinks every stage (for smoke tests). Returns one JSON object."""
    import numba
    import torch

    from neuralframe.render.nerf import hashgrid, io as nerf_io
    from neuralframe.render.nerf.data import load_dataset, make_synthetic
    from neuralframe.render.nerf.train import train

    say = progress or (lambda message: None)
    result: dict = {"quick": quick, "threads": {"torch": torch.get_num_threads(), "numba": numba.get_num_threads()},
                    "load_average_start": os.getloadavg()[0]}
    n_points = N_POINTS >> 4 if quick else N_POINTS
    encode = {}
    for impl in hashgrid.FORWARD.available("cpu"):
        say(f"encode throughput: {impl}")
        encode[impl] = encode_throughput(impl, n_points, 1 if quick else 3)  # the same sampling for every one
    result["encode_points"] = n_points
    result["encode_points_per_s"] = {k: {m: round(v) for m, v in d.items()} for k, d in encode.items()}
    if "cpu" in encode and "reference" in encode:
        result["encode_ratio_cpu_vs_ref"] = round(
            encode["cpu"]["forward_backward"] / encode["reference"]["forward_backward"], 2)
        result["encode_ratio_cpu_vs_ref_forward"] = round(encode["cpu"]["forward"] / encode["reference"]["forward"], 2)

    size, n_train, budget = (64, 30, 15.0) if quick else (200, 100, 300.0)
    with tempfile.TemporaryDirectory(prefix="nf-bench-nerf-") as tmp:
        say(f"generating the synthetic scene ({size}x{size}, {n_train} training views)")
        start = time.perf_counter()
        make_synthetic(os.path.join(tmp, "data"), size=size, n_train=n_train, n_val=5 if quick else 10,
                       n_test=1)
        result["dataset_seconds"] = round(time.perf_counter() - start, 1)
        # the quick run trains a fixed number of steps: a time budget would shrink with a cold Numba cache
        say(f"training for {QUICK_STEPS} steps" if quick else f"training for {budget:.0f} s")
        checkpoint = os.path.join(tmp, "scene.safetensors")
        metrics = train(os.path.join(tmp, "data"), checkpoint, seconds=None if quick else budget,
                        steps=QUICK_STEPS if quick else None)
        result["train_seconds"] = metrics["seconds"]
        result["train_steps"] = metrics["steps"]
        result["train_psnr_db"] = metrics["val_psnr"]
        result["train_image_size"] = size
        say("render frame rates")
        field = nerf_io.load_field(checkpoint)
        camera = load_dataset(os.path.join(tmp, "data"), "val").camera(0)
        result["render_fps"] = {f"{s}x{s}": round(render_fps(field, camera, s, 2 if quick else 5), 2)
                                for s in (200, 400)}
        say("density network: fused CPU kernel against torch")
        result["geometry_forward_200x200"] = geometry_throughput(field, camera.resized(200, 200), 2 if quick else 5)
    result["load_average_end"] = os.getloadavg()[0]
    which = 1 if quick else 0  # the floors of a quick run are those of its smaller budget
    result["checks"] = {
        f"encode_cpu_vs_reference_ge_{MIN_ENCODE_RATIO:g}": result.get("encode_ratio_cpu_vs_ref", 0) >= MIN_ENCODE_RATIO,
        f"train_psnr_ge_{MIN_PSNR_DB[which]:g}_db": result["train_psnr_db"] >= MIN_PSNR_DB[which],
        f"render_fps_200_ge_{MIN_RENDER_FPS_200[which]:g}": result["render_fps"]["200x200"] >= MIN_RENDER_FPS_200[which],
    }
    return result


if __name__ == "__main__":  # pragma: no cover - the CLI is `neuralframe bench nerf --json`
    import json
    import sys

    print(json.dumps(run(quick="--quick" in sys.argv, progress=lambda m: print(m, file=sys.stderr))))


def print_summary(result: dict) -> None:
    """`result` as `neuralframe bench nerf` prints it: the whole of it, as highlighted JSON."""
    from neuralframe.console import console

    console.print_json(data=result)
