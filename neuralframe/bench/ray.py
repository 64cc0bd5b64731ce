"""`neuralframe bench ray`: the offline jobs on one machine and on a local Ray with 1 and 2 workers, in one run.

Two jobs, each run the three ways on the same input into the same kind of file (H.264 .mp4, written by the
driver as users get it):

- render: an orbit of the bundled motorcycle scene (`frames` frames at `size`).
- restyle: `restyle_frames` frames of the moving test pattern through the bundled tiny-shapes model at
  128x128 (the engine's default steps, no feature bank).

`fps_single` is the command without `--ray` (torch and Numba use all the machine's cores in one process).
`fps_ray_1_worker` / `fps_ray_2_workers` use workers of `--cpus-per-worker` threads each; their FPS counts
from the moment the workers are up (loading the scene or model once per worker is `setup_s`, reported on
its own, as the single run's loading is outside its FPS too); `fps_*_with_setup` includes it.
`scaling_2_workers` = fps_ray_2_workers / fps_ray_1_worker. Each configuration runs `rounds` times,
alternating, and the best round counts (the machine is shared; the best is the least disturbed).

`outputs_identical`: every decoded frame of the Ray runs equals the single-machine run's. For restyle, torch
sums in another order with another thread count, so the Ray frames are compared with a single-machine run
at the workers' thread count (`outputs_identical`), and `max_abs_diff_vs_single_all_threads` reports the
difference to the default single run.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np
import torch

REQUIRED_RENDER_SCALING = 1.6


def _decode(path: Path) -> list[np.ndarray]:
    import av

    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def _same(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))


def _max_diff(a: list[np.ndarray], b: list[np.ndarray]) -> int:
    if len(a) != len(b):
        return 255
    return int(max(np.abs(x.astype(np.int16) - y).max() for x, y in zip(a, b)))


class _Threads:
    """Run the single-machine job at a given torch/Numba thread count, then restore it."""

    def __init__(self, n: int | None):
        self.n = n

    def __enter__(self):
        import numba

        self.saved = (torch.get_num_threads(), numba.get_num_threads())
        if self.n is not None:
            torch.set_num_threads(self.n)
            numba.set_num_threads(min(self.n, numba.config.NUMBA_NUM_THREADS))

    def __exit__(self, *exc):
        import numba

        torch.set_num_threads(self.saved[0])
        numba.set_num_threads(self.saved[1])


def _job_summary(name: str, single: list[dict], ray1: list[dict], ray2: list[dict], identical: bool,
                 extra: dict) -> dict:
    best = lambda runs, key: max(r[key] for r in runs)  # noqa: E731
    s1, s2 = best(ray1, "fps"), best(ray2, "fps")
    out = {
        "job": name,
        "frames": single[0]["frames"],
        "fps_single": best(single, "fps"),
        "fps_ray_1_worker": s1,
        "fps_ray_2_workers": s2,
        "scaling_2_workers": round(s2 / s1, 3) if s1 else None,
        "fps_ray_1_worker_with_setup": best(ray1, "fps_with_setup"),
        "fps_ray_2_workers_with_setup": best(ray2, "fps_with_setup"),
        "setup_s_ray_1_worker": min(r["setup_s"] for r in ray1),
        "setup_s_ray_2_workers": min(r["setup_s"] for r in ray2),
        "fps_per_worker_2_workers": max(ray2, key=lambda r: r["fps"])["per_worker"],
        "outputs_identical": identical,
        "rounds": {"single": [r["fps"] for r in single], "ray_1_worker": [r["fps"] for r in ray1],
                   "ray_2_workers": [r["fps"] for r in ray2]},
    }
    out.update(extra)
    return out


def _ray_run(run: Callable, session_workers: int, session) -> dict:
    from dataclasses import replace

    session.settings = replace(session.settings, workers=session_workers)
    report, summary = run(session)
    wall = summary["wall_s"]
    setup = summary["setup_s"]
    return {"frames": report.frames_out, "fps": round(report.frames_out / (wall - setup), 3),
            "fps_with_setup": round(report.frames_out / wall, 3), "setup_s": round(setup, 3),
            "per_worker": [w["fps"] for w in summary["workers"]]}


def run(frames: int = 240, size: tuple[int, int] = (270, 480), restyle_frames: int = 48, rounds: int = 2,
        cpus_per_worker: int = 1, jobs: tuple[str, ...] = ("render", "restyle"),
        progress: Callable[[str], None] | None = None) -> dict:
    """Measure (see the module docstring); returns one JSON-able dict."""
    from neuralframe.distributed import RaySettings, ray_session
    from neuralframe.distributed.jobs import render_path_ray, restyle_ray
    from neuralframe.apps.restyle import DiffuseSettings, RestyleJob, restyle
    from neuralframe.apps.render import PathSettings, render_path
    from neuralframe.render.scene import default_scene_path, open_scene
    from neuralframe.streaming import Pipeline
    from neuralframe.streaming.sinks import VideoFileSink
    from neuralframe.streaming.sources import PatternSource

    say = progress or (lambda m: None)
    result: dict = {"cpu_count": os.cpu_count(), "cpus_per_worker": cpus_per_worker, "rounds": rounds}
    with tempfile.TemporaryDirectory(prefix="nf-bench-ray-") as tmp_name, \
            ray_session(RaySettings(address="local", cpus_per_worker=cpus_per_worker)) as session:
        tmp = Path(tmp_name)
        if "render" in jobs:
            scene_path = default_scene_path()
            scene = open_scene(scene_path)
            settings = PathSettings(frames=frames, width=size[1], height=size[0])
            single, ray1, ray2 = [], [], []
            for r in range(rounds):
                say(f"render round {r + 1}/{rounds}: one machine")
                rep = render_path(scene, settings, tmp / f"render_single_{r}.mp4", progress=False)
                single.append({"frames": rep.frames_out, "fps": round(rep.frames_out / rep.wall_s, 3)})
                for n, runs in ((1, ray1), (2, ray2)):
                    say(f"render round {r + 1}/{rounds}: ray, {n} worker(s)")
                    out = tmp / f"render_ray{n}_{r}.mp4"
                    runs.append(_ray_run(lambda s, out=out: render_path_ray(scene_path, settings, out, s,
                                                                            progress=False), n, session))
            reference = _decode(tmp / "render_single_0.mp4")
            identical = all(_same(reference, _decode(tmp / f"render_ray{n}_{r}.mp4"))
                            for n in (1, 2) for r in range(rounds))
            result["render"] = _job_summary("render", single, ray1, ray2, identical,
                                            {"size": f"{size[1]}x{size[0]}", "scene": scene.name})
        if "restyle" in jobs:
            clip = tmp / "pattern.mp4"
            Pipeline(PatternSource(256, 256, frames=restyle_frames), [], VideoFileSink(clip, crf=12)).run()
            prompt = "a large red star in the centre over a plain blue background"
            diffuse = DiffuseSettings(prompts=(prompt,), size=(128, 128))
            job = lambda out: RestyleJob(input=str(clip), out=str(out), diffuse=diffuse)  # noqa: E731
            single, ray1, ray2 = [], [], []
            for r in range(rounds):
                say(f"restyle round {r + 1}/{rounds}: one machine")
                rep, _ = restyle(job(tmp / f"restyle_single_{r}.mp4"), progress=False)
                single.append({"frames": rep.frames_out, "fps": round(rep.frames_out / rep.wall_s, 3)})
                for n, runs in ((1, ray1), (2, ray2)):
                    say(f"restyle round {r + 1}/{rounds}: ray, {n} worker(s)")
                    out = tmp / f"restyle_ray{n}_{r}.mp4"
                    runs.append(_ray_run(lambda s, out=out: restyle_ray(job(out), s, progress=False), n, session))
            say("restyle: one machine at the workers' thread count, for the comparison")
            with _Threads(cpus_per_worker):
                restyle(job(tmp / "restyle_single_threads.mp4"), progress=False)
            same_threads = _decode(tmp / "restyle_single_threads.mp4")
            distributed = [_decode(tmp / f"restyle_ray{n}_{r}.mp4") for n in (1, 2) for r in range(rounds)]
            identical = all(_same(same_threads, d) for d in distributed)
            all_threads = _decode(tmp / "restyle_single_0.mp4")
            result["restyle"] = _job_summary("restyle", single, ray1, ray2, identical, {
                "size": "128x128", "input": f"test pattern, {restyle_frames} frames",
                "max_abs_diff_vs_single_all_threads": _max_diff(all_threads, distributed[0])})
    render = result.get("render")
    result["checks"] = {
        "render_scaling_2_workers_ge_1_6": bool(render and render["scaling_2_workers"] >= REQUIRED_RENDER_SCALING),
        "render_outputs_identical": bool(render and render["outputs_identical"]),
        "restyle_outputs_identical": bool(result.get("restyle", {}).get("outputs_identical")),
    }
    return result


def print_summary(result: dict, jobs: tuple[str, ...] = ("render", "restyle")) -> None:
    """`result` as `neuralframe bench ray` prints it: a line per job in `jobs` (the order asked for), then the
    checks."""
    from neuralframe.console import console

    for name in jobs:
        r = result[name]
        console.print(f"{name}: one machine {r['fps_single']} FPS; ray 1 worker {r['fps_ray_1_worker']} FPS, 2 workers "
                      f"{r['fps_ray_2_workers']} FPS ([bold]{r['scaling_2_workers']}x[/]); outputs identical: "
                      f"{r['outputs_identical']}", highlight=False)
    console.print(f"checks: {result['checks']}", highlight=False, markup=False)
