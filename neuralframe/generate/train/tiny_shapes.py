"""`neuralframe train tiny-shapes`: the stages that build the bundled text-to-image model, in order.

    vae         the latent autoencoder                      -> WORK/vae/
    classifier  the shape/colour scorer                     -> WORK/classifier/
    t2i         text encoder + UNet (the guided teacher)    -> WORK/text_encoder/, WORK/teacher/
    lcm         guidance-embedded few-step student (LCM)    -> WORK/unet/
    tiny-vae    a tiny autoencoder distilled from vae (TAESD) -> WORK/tiny_vae/ (for real-time streams)
    assemble    the diffusers folder + model card           -> OUT (assets/models/tiny-shapes by default)

Each stage checkpoints under WORK/checkpoints/ and resumes with `--resume`; the metrics and the exact
command of every run are appended to WORK/runs.json, from which `assemble` writes the card.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Callable

import torch

from neuralframe.backend.device import machine_line
from neuralframe.errors import InputError

STAGES = ("vae", "classifier", "t2i", "lcm", "tiny-vae", "assemble")
DEFAULT_SECONDS = {"vae": 1200.0, "classifier": 300.0, "t2i": 2400.0, "lcm": 1200.0, "tiny-vae": 900.0}
NEEDS = {"t2i": ("vae",), "tiny-vae": ("vae",), "lcm": ("vae", "text_encoder", "teacher"), "assemble": ("vae", "text_encoder", "unet")}


def run_stage(stage: str, work: Path, out: Path | None = None, seconds: float | None = None,
              steps: int | None = None, resume: bool = False, progress: Callable[[dict], None] | None = None,
              command: str | None = None, train_images: int | None = None, eval_prompts: int = 200,
              eval_images: int | None = None) -> dict:
    """Run one stage; returns its metrics (also appended to WORK/runs.json)."""
    if stage not in STAGES:
        raise InputError(f"unknown stage '{stage}': use one of {', '.join(STAGES)} or all")
    work = Path(work)
    missing = [part for part in NEEDS.get(stage, ()) if not (work / part).is_dir()]
    if missing:
        raise InputError(f"stage '{stage}' needs {', '.join(missing)} in {work}: run the earlier stages first "
                         f"(neuralframe train tiny-shapes --stage ... --work {work})")
    torch.set_num_threads(max(torch.get_num_threads(), 1))
    started = time.time()
    images = {"n_latents": train_images} if train_images else {}
    held_out = {"eval_images": eval_images} if eval_images else {}
    if stage == "vae":
        from neuralframe.generate.train.vae import train_vae

        metrics = train_vae(work, seconds, steps, resume, progress, **held_out)
    elif stage == "classifier":
        from neuralframe.generate.train.classifier import train_classifier

        metrics = train_classifier(work, seconds, steps, resume, progress, **held_out)
    elif stage == "t2i":
        from neuralframe.generate.train.t2i import train_t2i

        metrics = train_t2i(work, seconds, steps, resume, progress, **images)
    elif stage == "lcm":
        from neuralframe.generate.train.lcm import train_lcm

        metrics = train_lcm(work, seconds, steps, resume, progress, **images)
    elif stage == "tiny-vae":
        from neuralframe.generate.train.tiny_vae import train_tiny_vae

        metrics = train_tiny_vae(work, seconds, steps, resume, progress, **held_out)
    else:
        from neuralframe.generate.train.assemble import assemble

        metrics = assemble(work, out, prompts=eval_prompts, tune_prompts=max(eval_prompts // 2, 1), **held_out)
    record = {"stage": stage, "command": command or " ".join(sys.argv), "started": time.strftime(
        "%Y-%m-%d %H:%M:%S", time.localtime(started)), "wall_seconds": round(time.time() - started, 1),
        "machine": machine_line(), "metrics": metrics}
    runs_path = work / "runs.json"
    runs = json.loads(runs_path.read_text()) if runs_path.exists() else []
    runs.append(record)
    work.mkdir(parents=True, exist_ok=True)
    tmp = runs_path.with_name("runs.json.tmp")
    tmp.write_text(json.dumps(runs, indent=2))
    os.replace(tmp, runs_path)
    return metrics
