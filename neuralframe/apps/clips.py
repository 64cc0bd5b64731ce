"""Many clips, one per prompt schedule: `neuralframe generate --prompts FILE -o FOLDER`.

The clips (`clip_0000.mp4`, ...) and their `prompts.json` go into a new folder that appears only once every
clip is written. `generate_local` makes them one after the other on this machine; `distributed.jobs.generate_ray`
makes the same clips on Ray workers with the same `ClipWork`, `write_clip` and `ClipFolder`.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from neuralframe.errors import InputError, OutputError


def read_prompts(path: str | os.PathLike) -> list[str]:
    """A prompts file: one prompt per line; blank lines and lines starting with # are skipped."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"prompts file '{p}' does not exist" if not p.exists() else f"prompts file '{p}' is a folder")
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise InputError(f"prompts file '{p}' is not UTF-8 text (one prompt per line)") from None
    prompts = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    if not prompts:
        raise InputError(f"prompts file '{p}' has no prompts (one per line; # starts a comment)")
    return prompts


class ClipWork:
    """What a worker runs for `generate`: the video model, loaded once; a unit is one clip."""

    def __init__(self, model: str | None, device: str, tiny_vae: bool, frames: int, steps: int | None):
        self.model, self.device, self.tiny_vae, self.frames, self.steps = model, device, tiny_vae, frames, steps
        self.gen = None

    def setup(self, info: Any) -> dict:
        from neuralframe.apps.generate import load_generator

        self.gen = load_generator(self.model, self.device, self.tiny_vae)
        return {"fps": self.gen.fps, "supports_schedule": self.gen.supports_schedule}

    def run(self, unit, payload: tuple[list[tuple[int, str]], int]) -> list[np.ndarray]:
        schedule, seed = payload
        if self.gen.supports_schedule:
            frames = self.gen.frames(schedule, self.frames, seed)
        else:
            if len(schedule) > 1:
                raise InputError("diffusers' text-to-video pipelines take one prompt; prompt schedules need the "
                                 "bundled causal model")
            frames = self.gen.frames(schedule[0][1], self.frames, seed=seed, steps=self.steps)
        return [np.ascontiguousarray(f) for f in frames]


def write_clip(frames: list[np.ndarray], path: Path, fps: float, upscale: int):
    """One clip's frames into a video file (upscaled as `generate` writes them); returns the report."""
    from neuralframe.apps.generate import UPSCALE_ADVICE, GeneratorSource
    from neuralframe.streaming.pipeline import Pipeline
    from neuralframe.streaming.sinks import VideoFileSink

    # frames from Ray's object store are read-only views: copy each as it is written
    source = GeneratorSource((np.array(f) for f in frames), len(frames), fps, upscale)
    return Pipeline(source, [], VideoFileSink(path, fps=fps), max_frames=len(frames),
                    memory_advice=UPSCALE_ADVICE).run()


class ClipFolder:
    """A new folder of clips (`clip_0000.mp4`, ...) and their `prompts.json` that appears only once complete:
    the clips are written into a hidden partial folder beside it, which `publish()` renames."""

    def __init__(self, out: Path):
        self.check(out)
        self.out = out
        self.work: Path | None = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))

    @staticmethod
    def check(out: Path) -> None:
        """One clear line if `out` cannot become the new folder."""
        if out.exists():
            raise OutputError(f"output folder '{out}' already exists: choose a new name")
        from neuralframe.streaming.outputs import check_output

        check_output(out, (), accepts="a new folder for the clips (a name without an extension)", folder=True)

    def clip_path(self, index: int) -> Path:
        return self.work / f"clip_{index:04d}.mp4"

    def publish(self, index: dict) -> None:
        tmp = self.work / "prompts.json.tmp"
        tmp.write_text(json.dumps(index, indent=2) + "\n")
        os.replace(tmp, self.work / "prompts.json")
        os.replace(self.work, self.out)
        self.work = None

    def discard(self) -> None:
        if self.work is not None:
            shutil.rmtree(self.work, ignore_errors=True)
            self.work = None


def generate_local(schedules: list[list[tuple[int, str]]], out: str | os.PathLike, *, frames: int = 48,
                   seed: int = 0, model: str | None = None, device: str = "cpu", upscale: int = 4,
                   fps: float | None = None, tiny_vae: bool = False, steps: int | None = None,
                   progress: bool = True) -> dict:
    """`neuralframe generate --prompts FILE -o FOLDER` on this machine: the same clips and files as
    `generate_ray`, one after the other, the model loaded once."""
    from neuralframe.console import progress_bar

    if frames < 1:
        raise InputError(f"--frames must be at least 1, got {frames}")
    out = Path(out)
    ClipFolder.check(out)  # before the model loads
    work = ClipWork(model, device, tiny_vae, frames, steps)
    info = work.setup(None)
    rate = fps or info["fps"]
    clips = ClipFolder(out)
    written = []
    started = time.perf_counter()
    try:
        with progress_bar(f"generate {len(schedules)} clip(s)", len(schedules) * frames, enabled=progress) as bar:
            for i, schedule in enumerate(schedules):
                clip = work.run(None, (schedule, seed))
                write_clip(clip, clips.clip_path(i), rate, upscale)
                written.append({"file": f"clip_{i:04d}.mp4", "frames": len(clip),
                                "prompts": [{"frame": f, "prompt": p} for f, p in schedule]})
                bar.advance(len(clip))
        clips.publish({"seed": seed, "frames": frames, "clips": written})
    finally:
        clips.discard()
    wall = time.perf_counter() - started
    total = sum(c["frames"] for c in written)
    return {"output": str(out), "clips": len(written), "frames": total, "seconds": round(wall, 2),
            "fps": round(total / wall, 2) if wall > 0 else None, "seed": seed,
            "model": str(model or "bundled tiny-shapes-video"), "files": written}
