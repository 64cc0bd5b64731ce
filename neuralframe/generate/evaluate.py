"""`neuralframe eval tiny-shapes`: objective quality of a tiny-shapes text-to-image folder.

Prompts are captions of the "eval" split of the tiny-shapes world (neuralframe.generate.data.worlds.WORLD):
attribute combinations never produced for training. Each prompt gets one image from its own seed; the
bundled scorer names the shape and colour it sees, and `prompt_adherence` is the fraction of images where
both match the prompt. The network evaluations are counted by wrapping the UNet (not inferred from settings).
The autoencoder's reconstruction PSNR (`evaluate_vae`) is measured on held-out images and photographs. The
bundled model's numbers are in assets/models/tiny-shapes/card.json ("metrics").
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

import numpy as np
import torch

from neuralframe.generate.data.batches import OFFSETS, PhotoCrops, ShapeBatches
from neuralframe.generate.data.generator import ShapesGenerator
from neuralframe.generate.data.pixels import to_model_range
from neuralframe.generate.data.worlds import WORLD
from neuralframe.generate.models.card import ImageDefaults
from neuralframe.generate.models.classifier import DEFAULT_DIR as CLASSIFIER_DIR
from neuralframe.generate.models.classifier import ShapeClassifier
from neuralframe.generate.models.folder import BUNDLED, generate_images, load_pipeline

EVAL_SEEDS = OFFSETS["eval"] + 500_000  # prompts for reporting
TUNE_SEEDS = OFFSETS["eval"] + 900_000  # a disjoint set for choosing sampling settings


def eval_prompts(n: int, first_seed: int = EVAL_SEEDS) -> tuple[list[str], torch.Tensor, torch.Tensor]:
    """Captions and (shape, colour) labels of n held-out ("eval" split) samples."""
    gen = ShapesGenerator(WORLD)
    samples = [gen.image(first_seed + i, "eval") for i in range(n)]
    labels = [s.attributes.labels() for s in samples]
    return ([s.caption for s in samples], torch.tensor([lab["shape"] for lab in labels]),
            torch.tensor([lab["colour"] for lab in labels]))


class CountingCalls:
    """Counts network evaluations from outside the code under test: wraps `owner.method` and adds each call's
    batch (its first argument's leading size; 1 for a call without a tensor first). `restore()` unwraps."""

    def __init__(self, owner, method: str = "forward"):
        self.owner, self.method, self.evaluations, self.calls = owner, method, 0, 0
        self._original = getattr(owner, method)

        def counted(*args, **kwargs):
            first = args[0] if args else next(iter(kwargs.values()), None)
            self.calls += 1
            self.evaluations += int(first.shape[0]) if getattr(first, "ndim", 0) else 1
            return self._original(*args, **kwargs)

        setattr(owner, method, counted)

    def restore(self) -> None:
        setattr(self.owner, self.method, self._original)


class CountingUNet(CountingCalls):
    """Counts network evaluations per image: wraps unet.forward and adds each call's batch size."""

    def __init__(self, unet):
        super().__init__(unet, "forward")
        self.unet = unet


def psnr_from_mse(mse_01: float) -> float:
    """PSNR in dB of a mean squared error of images in [0, 1]."""
    return -10.0 * math.log10(max(mse_01, 1e-12))


@torch.no_grad()
def evaluate_vae(vae, n: int = 256, photos: int = 64) -> dict:
    """Held-out reconstruction PSNR (dB, images in [0, 1]): procedural "eval"-split images (combinations
    never seen in training) and fresh crops of the photographs."""
    vae.eval()
    shapes = ShapeBatches("eval", n, split="eval")(step=0)  # the same first n images for any n
    out = {}
    for key, pixels in (("vae_psnr_db", shapes["pixels"]), ("vae_psnr_photos_db", PhotoCrops(seed=12345)(0, photos))):
        recon = torch.cat([vae.decode(vae.encode(chunk.to(vae.device)).latent_dist.mean).sample.clamp(-1, 1).cpu()
                           for chunk in pixels.split(64)])
        mse = ((recon - pixels) / 2.0).square().flatten(1).mean(1)
        out[key] = round(float(torch.stack([torch.tensor(psnr_from_mse(float(m))) for m in mse]).mean()), 2)
    return out


def adherence(pipe, classifier: ShapeClassifier, prompts: list[str], shapes: torch.Tensor, colours: torch.Tensor,
              steps: int, guidance_scale: float | None, seed: int = 0, batch: int = 50) -> dict:
    counter = CountingUNet(pipe.unet)
    start = time.perf_counter()
    try:
        images = [generate_images(pipe, prompts[i:i + batch], steps, seed + i, guidance_scale)
                  for i in range(0, len(prompts), batch)]
    finally:
        counter.restore()
    seconds = time.perf_counter() - start
    pixels = to_model_range(np.concatenate(images))
    shape, colour = classifier.predict(pixels)
    match = (shape == shapes) & (colour == colours)
    return {"adherence": round(float(match.float().mean()), 4),
            "shape_adherence": round(float((shape == shapes).float().mean()), 4),
            "colour_adherence": round(float((colour == colours).float().mean()), 4),
            "nfe_per_image": round(counter.evaluations / len(prompts), 2),
            "seconds_per_image": round(seconds / len(prompts), 4), "images": images}


def evaluate_tiny_shapes(model: str | os.PathLike = BUNDLED, classifier: str | os.PathLike = CLASSIFIER_DIR,
                         prompts: int = 200, steps: int = 4, guidance_scale: float | None = None, seed: int = 0,
                         threads: int | None = None, vae_images: int = 256) -> dict:
    """The metrics of `neuralframe eval tiny-shapes` (see the module docstring)."""
    if threads:
        torch.set_num_threads(threads)
    pipe = load_pipeline(model)
    scorer = ShapeClassifier.load(classifier)
    if guidance_scale is None:
        guidance_scale = ImageDefaults.read(model).guidance_scale
    texts, shapes, colours = eval_prompts(prompts)
    main = adherence(pipe, scorer, texts, shapes, colours, steps, guidance_scale, seed)
    one = adherence(pipe, scorer, texts, shapes, colours, 1, guidance_scale, seed)
    return {
        "model": str(Path(model)),
        "prompts": prompts,
        "steps": steps,
        "guidance_scale": guidance_scale,  # None: the pipeline's own default
        "prompt_adherence": main["adherence"],
        "shape_adherence": main["shape_adherence"],
        "colour_adherence": main["colour_adherence"],
        "adherence_1step": one["adherence"],
        "vae_psnr_db": evaluate_vae(pipe.vae, vae_images, max(vae_images // 4, 1))["vae_psnr_db"],
        "nfe_per_image": main["nfe_per_image"],
        "seconds_per_image": main["seconds_per_image"],
        "device": "cpu",
        "threads": torch.get_num_threads(),
    }
