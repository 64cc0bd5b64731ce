"""Stage: the shape/colour scorer, trained on seeded procedural images.

Augmentations make it robust to what generated images look like (softer edges, grain, small exposure
shifts) without touching the colour names: Gaussian blur (sigma up to 2 px), pixel noise, +-6% brightness. Held-out
accuracy is measured on "eval"-split images (attribute combinations never seen in training).

The scorer also judges generated video frames, where shapes sit between grid positions and turn: each batch
adds frames of the video world's clips (`VideoFrames`), half of them through the autoencoder and back, as
every generated frame comes out of it. An earlier scorer trained on still images only named the shape of 62%
of real rotating frames (46% after the autoencoder's round trip) and 76-85% of real moving ones after the
round trip (a judge that fails on real data cannot score a model). The video-frame accuracy is measured on
"eval"-split clips, raw and round-tripped; the bundled scorer's numbers are in
assets/models/shape-classifier/card.json.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from neuralframe.backend.budget import check_budget
from neuralframe.generate.data.batches import ShapeBatches
from neuralframe.generate.data.generator import ShapesGenerator
from neuralframe.generate.data.pixels import to_model_range
from neuralframe.generate.data.worlds import VIDEO_WORLD
from neuralframe.generate.models.classifier import ShapeClassifier
from neuralframe.generate.train.loop import train_device, train_loop

BATCH = 64
LR = 2e-3
# up to the softness of an 8x-downsampling autoencoder's edges (about 2 px at 64x64); the 5-tap kernel
# covers +-2 px, so wider blurs would only flatten it
BLUR_SIGMA_MAX = 2.0


def _blur(images: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian blur with a per-image sigma [B] (5 taps)."""
    x = torch.arange(-2, 3, dtype=torch.float32)
    k = torch.exp(-0.5 * (x[None, :] / sigma.clamp_min(1e-3)[:, None]) ** 2)
    k = k / k.sum(1, keepdim=True)  # [B, 5]
    b, c, h, w = images.shape
    flat = images.reshape(1, b * c, h, w)
    kk = k.repeat_interleave(c, 0)
    flat = F.conv2d(F.pad(flat, (2, 2, 0, 0), mode="replicate"), kk[:, None, None, :], groups=b * c)
    flat = F.conv2d(F.pad(flat, (0, 0, 2, 2), mode="replicate"), kk[:, None, :, None], groups=b * c)
    return flat.reshape(b, c, h, w)


def augment(images: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    b = images.shape[0]
    sigma = torch.rand(b, generator=g) * BLUR_SIGMA_MAX
    blurred = _blur(images, sigma)
    images = torch.where((torch.rand(b, 1, 1, 1, generator=g) < 0.6), blurred, images)
    gain = 1.0 + (torch.rand(b, 1, 1, 1, generator=g) - 0.5) * 0.12
    noise = torch.randn(images.shape, generator=g) * (torch.rand(b, 1, 1, 1, generator=g) * 0.06)
    return ((images + 1.0) * gain - 1.0 + noise).clamp(-1.0, 1.0)


VIDEO_CLIPS = 16  # clips a batch, two frames each
VIDEO_SEED = 60_000_000
VIDEO_EVAL_SEED = 61_000_000


class VideoFrames:
    """Frames of seeded video-world clips ("moving", rotating and bouncing shapes), two per clip, with their
    labels; with `vae`, every other frame goes through the autoencoder and back."""

    def __init__(self, clips: int = VIDEO_CLIPS, split: str = "train", first_seed: int = VIDEO_SEED, vae=None):
        self.generator, self.clips, self.split, self.first_seed = ShapesGenerator(VIDEO_WORLD), clips, split, first_seed
        self.vae = vae

    @torch.no_grad()
    def __call__(self, step: int) -> dict:
        pixels, shapes, colours = [], [], []
        for i in range(self.clips):
            seed = self.first_seed + step * self.clips + i
            v = self.generator.video(seed, self.split)
            rng = np.random.default_rng([seed, 5])
            for f in rng.choice(len(v.pixels), 2, replace=False):
                pixels.append(v.pixels[f])
            labels = v.attributes.labels()
            shapes += [labels["shape"]] * 2
            colours += [labels["colour"]] * 2
        x = to_model_range(np.stack(pixels))
        if self.vae is not None:
            x[1::2] = round_trip(self.vae, x[1::2])
        return {"pixels": x, "shape": torch.tensor(shapes), "colour": torch.tensor(colours)}


def round_trip(vae, images: torch.Tensor) -> torch.Tensor:
    """Images in [-1, 1] through the autoencoder and back, as a generated frame looks."""
    return vae.decode(vae.encode(images).latent_dist.mean).sample.clamp(-1, 1)


def load_vae(work: Path):
    """The autoencoder every generated frame comes out of: WORK/vae if the vae stage made one, else the
    bundled model's."""
    from diffusers import AutoencoderKL

    from neuralframe.generate.models.folder import BUNDLED

    folder = Path(work) / "vae"
    if not (folder / "config.json").is_file():
        folder = BUNDLED / "vae"
    return AutoencoderKL.from_pretrained(folder).eval().requires_grad_(False)


def train_classifier(work: Path, seconds: float | None = None, steps: int | None = None, resume: bool = False,
                     progress: Callable[[dict], None] | None = None, eval_images: int = 2000) -> dict:
    seconds, steps = check_budget(seconds, steps, default_seconds=300.0)
    torch.manual_seed(0)
    device = train_device()
    model = ShapeClassifier().to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=1e-4)
    batches = ShapeBatches("classifier", BATCH)
    vae = load_vae(work)
    video = VideoFrames(vae=vae)

    def step_fn(step: int) -> dict:
        b, v = batches(step), video(step)
        g = torch.Generator().manual_seed(step)
        pixels = torch.cat([b["pixels"], v["pixels"]])
        shape_logits, colour_logits = model(augment(pixels, g).to(device))
        shapes = torch.cat([b["shape"], v["shape"]]).to(device)
        colours = torch.cat([b["colour"], v["colour"]]).to(device)
        loss = F.cross_entropy(shape_logits, shapes) + F.cross_entropy(colour_logits, colours)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        both = (shape_logits.argmax(1) == shapes) & (colour_logits.argmax(1) == colours)
        return {"loss": loss.item(), "accuracy": both.float().mean().item()}

    result = train_loop("classifier", {"classifier": model}, optimizer, step_fn,
                        work / "checkpoints" / "classifier.pt", seconds, steps, resume, LR, progress, final_lr=0.02)
    model.eval().cpu()
    model.save(work / "classifier")
    return {"steps": result.steps, "seconds": round(result.seconds, 1), **evaluate_classifier(model, eval_images),
            **evaluate_video_frames(model, vae, clips=min(400, max(8, eval_images // 5)))}


@torch.no_grad()
def evaluate_video_frames(model: ShapeClassifier, vae, clips: int = 400) -> dict:
    """Shape-and-colour accuracy on frames of `clips` "eval"-split video clips: raw, and through the autoencoder."""
    chunk = min(50, clips)
    raw = VideoFrames(clips=chunk, split="eval", first_seed=VIDEO_EVAL_SEED)
    def right(pixels, b) -> int:
        shape, colour = model.predict(pixels)
        return int(((shape == b["shape"]) & (colour == b["colour"])).sum())

    right_raw = right_rt = total = 0
    for step in range(clips // chunk):
        b = raw(step)
        right_raw += right(b["pixels"], b)
        right_rt += right(round_trip(vae, b["pixels"]), b)
        total += len(b["shape"])
    return {"classifier_video_frame_accuracy": round(right_raw / total, 4),
            "classifier_video_frame_accuracy_autoencoded": round(right_rt / total, 4),
            "classifier_video_frames": total}


@torch.no_grad()
def evaluate_classifier(model: ShapeClassifier, n: int = 2000) -> dict:
    """Held-out accuracy on `n` "eval"-split images: shape, colour and both."""
    chunk = min(250, n)
    batches = ShapeBatches("eval", chunk, split="eval")
    right_shape = right_colour = right_both = 0
    for step in range(n // chunk):
        b = batches(step + 100 * 250 // chunk)
        shape, colour = model.predict(b["pixels"])
        right_shape += int((shape == b["shape"]).sum())
        right_colour += int((colour == b["colour"]).sum())
        right_both += int(((shape == b["shape"]) & (colour == b["colour"])).sum())
    total = n // chunk * chunk
    return {"classifier_accuracy": round(right_both / total, 4), "classifier_shape_accuracy":
            round(right_shape / total, 4), "classifier_colour_accuracy": round(right_colour / total, 4),
            "classifier_eval_images": total}
