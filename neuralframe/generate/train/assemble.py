"""Stage: assemble the trained parts into one diffusers folder, measure it, and write its card.

    OUT/model_index.json, vae/, text_encoder/, tokenizer/, unet/ (the LCM student), scheduler/ (LCMScheduler)
    OUT/vae_tiny/          the tiny autoencoder for real-time streams, when WORK/tiny_vae exists (not listed in
                           model_index.json: diffusers' loaders ignore it; StreamEngine(tiny_vae=) uses it)
    OUT/card.json          training commands, data, steps, wall time, machine, metrics, sampling defaults
    OUT/../shape-classifier/   the scorer, beside the model

The guidance scale written as the default is the one with the best adherence on a tuning prompt set
that is disjoint from the reported evaluation prompts. The teacher (two evaluations per step with
classifier-free guidance, 25 DDIM steps) is measured on the same prompts, for the NFE comparison.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

from neuralframe.errors import OutputError
from neuralframe.generate.data.vocab import COLOURS, SHAPES
from neuralframe.generate.data.worlds import WORLD
from neuralframe.generate.models.architectures import IMAGE_SIZE, parameter_count
from neuralframe.generate.models.schedulers import lcm_scheduler
from neuralframe.generate.tokenizer import ASSET_DIR as TOKENIZER_DIR
from neuralframe.generate.tokenizer import load_clip_tokenizer

GUIDANCE_CANDIDATES = (1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0)
TEACHER_STEPS = 25
TUNE_PROMPTS = 100


def _pipeline(work: Path, unet_dir: str = "unet", teacher: bool = False):
    from diffusers import (AutoencoderKL, DDIMScheduler, LatentConsistencyModelPipeline, StableDiffusionPipeline,
                           UNet2DConditionModel)
    from transformers import CLIPTextModel

    parts = dict(vae=AutoencoderKL.from_pretrained(work / "vae"),
                 text_encoder=CLIPTextModel.from_pretrained(work / "text_encoder"),
                 tokenizer=load_clip_tokenizer(), unet=UNet2DConditionModel.from_pretrained(work / unet_dir),
                 safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    if teacher:
        scheduler = DDIMScheduler.from_pretrained(work / "teacher_scheduler", set_alpha_to_one=False)
        pipe = StableDiffusionPipeline(scheduler=scheduler, **parts)
    else:
        pipe = LatentConsistencyModelPipeline(scheduler=lcm_scheduler(), **parts)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _latest_runs(work: Path) -> dict:
    runs = json.loads((work / "runs.json").read_text()) if (work / "runs.json").exists() else []
    latest = {}
    for run in runs:
        latest.setdefault(run["stage"], []).append(run)
    return latest


def _world() -> str:
    """The tiny-shapes world (neuralframe.generate.data.worlds.WORLD) in words, for the cards."""
    return "; ".join(f"{name}: {', '.join(getattr(WORLD, name))}"
                     for name in ("shapes", "colours", "sizes", "textures", "backgrounds"))


def _write_classifier_card(folder: Path, runs: list[dict]) -> None:
    card = {
        "name": "shape-classifier",
        "description": "Names the shape and the colour of the one shape in a 64x64 image; scores generated "
                       "images and video frames against their prompts (neuralframe eval tiny-shapes, "
                       "neuralframe eval tiny-shapes-video).",
        "trained_by": "neuralframe's own code (neuralframe.generate.train.classifier); no pretrained weights",
        "data": "neuralframe.generate.data.ShapesGenerator 'train' split of the tiny-shapes world "
                f"({_world()}), with blur/noise/exposure augmentation, and frames of the video world's clips "
                "(moving, rotating and bouncing shapes), half of them through the autoencoder and back; accuracy "
                "measured on the 'eval' split (attribute combinations unseen in training), images and video frames",
        "classes": {"shape": list(SHAPES), "colour": list(COLOURS)},
        "retrain": "neuralframe train tiny-shapes --stage classifier",
        "stages": {"classifier": [{k: r[k] for k in ("command", "started", "wall_seconds", "machine", "metrics")}
                                  for r in runs]},
    }
    (folder / "card.json").write_text(json.dumps(card, indent=2))


def assemble(work: Path, out: Path | None = None, prompts: int = 200, tune_prompts: int = TUNE_PROMPTS,
             eval_images: int = 256) -> dict:
    from neuralframe.generate.evaluate import TUNE_SEEDS, adherence, eval_prompts, evaluate_tiny_shapes
    from neuralframe.generate.models.classifier import ShapeClassifier

    from neuralframe.generate.models.folder import BUNDLED

    out = Path(out or BUNDLED)
    started = time.perf_counter()
    scorer = ShapeClassifier.load(work / "classifier")
    pipe = _pipeline(work)

    # sampling defaults, chosen on tuning prompts (disjoint from the reported ones)
    texts, shapes, colours = eval_prompts(tune_prompts, TUNE_SEEDS)
    sweep = {g: adherence(pipe, scorer, texts, shapes, colours, 4, g, seed=10_000)["adherence"]
             for g in GUIDANCE_CANDIDATES}
    guidance = max(sweep, key=lambda g: (sweep[g], -abs(g - 4.0)))

    # write the folder next to OUT, then swap it in
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        pipe.save_pretrained(tmp, safe_serialization=True)
        tiny_params = None
        if (work / "tiny_vae" / "config.json").is_file():
            from neuralframe.generate.models.folder import TINY_VAE, load_tiny_vae

            shutil.copytree(work / "tiny_vae", tmp / TINY_VAE)
            tiny_params = parameter_count(load_tiny_vae(tmp))
        for extra in ("LICENSE", "README.md"):
            if (TOKENIZER_DIR / extra).exists():
                shutil.copy(TOKENIZER_DIR / extra, tmp / "tokenizer" / extra)
        classifier_out = out.parent / "shape-classifier"
        scorer.save(classifier_out)
        _write_classifier_card(classifier_out, _latest_runs(work).get("classifier", []))
        (tmp / "card.json").write_text(json.dumps({"defaults": {"steps": 4, "guidance_scale": guidance}}))
        metrics = evaluate_tiny_shapes(tmp, classifier_out, prompts=prompts, steps=4, guidance_scale=guidance,
                                       vae_images=eval_images)
        metrics["model"] = str(out)  # measured in the temporary folder that becomes OUT
        teacher_pipe = _pipeline(work, "teacher", teacher=True)
        texts, shapes, colours = eval_prompts(prompts)
        teacher = adherence(teacher_pipe, scorer, texts, shapes, colours, TEACHER_STEPS, guidance, seed=0)
        runs = _latest_runs(work)
        size_mb = sum(f.stat().st_size for f in tmp.rglob("*") if f.is_file()) / 2**20
        card = {
            "name": "tiny-shapes",
            "description": "A few-step text-to-image model of the procedural shapes world (one shape of a named "
                           "colour, size and position over a plain or gradient background), "
                           f"{IMAGE_SIZE}x{IMAGE_SIZE} pixels. Latent consistency model distilled from a "
                           "classifier-free-guided teacher, with the guidance weight as an input "
                           "(unet.config.time_cond_proj_dim): one network evaluation per step.",
            "trained_by": "neuralframe's own code (neuralframe.generate.train); no pretrained weights",
            "data": "neuralframe.generate.data.ShapesGenerator (seeded, procedural; 'train' split only) of the "
                    f"tiny-shapes world: {_world()}; the autoencoder also saw crops of scikit-image's photographs",
            "retrain": "neuralframe train tiny-shapes",
            "defaults": {"steps": 4, "guidance_scale": guidance},
            "size_mb": round(size_mb, 2),
            "parameters": {"unet": parameter_count(pipe.unet), "text_encoder": parameter_count(pipe.text_encoder),
                           "vae": parameter_count(pipe.vae),
                           **({"vae_tiny": tiny_params} if tiny_params is not None else {})},
            "metrics": {
                **metrics,
                "guidance_sweep_tuning_prompts": {str(g): a for g, a in sweep.items()},
                "teacher_adherence": teacher["adherence"],
                "teacher_steps": TEACHER_STEPS,
                "teacher_nfe_per_image": teacher["nfe_per_image"],
                "teacher_seconds_per_image": teacher["seconds_per_image"],
                "nfe_saving": round(teacher["nfe_per_image"] / metrics["nfe_per_image"], 2),
                **({"vae_tiny": runs["tiny-vae"][-1]["metrics"]} if tiny_params is not None and "tiny-vae" in runs
                   else {}),
            },
            "stages": {stage: [{k: r[k] for k in ("command", "started", "wall_seconds", "machine", "metrics")}
                               for r in stage_runs] for stage, stage_runs in runs.items()},
            "license": "weights: same license as neuralframe; tokenizer vocabulary: MIT (tokenizer/LICENSE)",
            "classifier": "../shape-classifier (config.json + model.safetensors)",
        }
        (tmp / "card.json").write_text(json.dumps(card, indent=2))
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise OutputError(f"{out}: cannot write the model folder ({e})") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {**{k: v for k, v in card["metrics"].items() if not isinstance(v, dict)}, "size_mb": card["size_mb"],
            "folder": str(out), "assemble_seconds": round(time.perf_counter() - started, 1)}
