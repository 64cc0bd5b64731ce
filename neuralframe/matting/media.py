"""Test clips with a known alpha: bundled photos of people composited over moving backgrounds.

The foreground is a photo from `assets/media` (public domain / CC0, see its README). Its ground-truth
alpha is fixed once per photo: the bundled segmenter's mask on the clean photo, thresholded and then
feathered by a small blur, so it has soft edges of known width. Frames are `alpha * person + (1 -
alpha) * background` over a procedural background that moves, with optional camera noise, so:

- a *static* clip (person still, background still, fresh noise each frame) measures temporal flicker;
- a *moving* clip (the person slides, the background scrolls) measures edge error and motion smear.

Measuring against an alpha derived from the segmenter itself favours the raw segmenter, so any gain
the refinement shows here is conservative.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from neuralframe.assets import asset

MEDIA_DIR = asset("media")
PEOPLE = {"astronaut": "astronaut.jpg", "camera": "camera.png"}


def load_person(name: str = "astronaut") -> torch.Tensor:
    """A bundled photo of a person, uint8 [H, W, 3]."""
    from neuralframe.errors import InputError
    from neuralframe.streaming.sources import VideoFileSource

    if name not in PEOPLE:
        raise InputError(f"unknown test photo '{name}': use one of {', '.join(PEOPLE)}")
    source = VideoFileSource(MEDIA_DIR / PEOPLE[name])
    try:
        source.open()
        frame = source.read()
    finally:
        source.close()
    return frame.image.contiguous()


def reference_alpha(person: torch.Tensor, feather: float = 2.0) -> torch.Tensor:
    """The known soft alpha for a photo: segmenter mask at full size, thresholded, blurred by `feather` px."""
    from neuralframe.matting.segmenter import load_segmenter

    seg = load_segmenter(variant="general")
    x = F.interpolate(person.permute(2, 0, 1)[None].float() / 255.0, size=seg.size, mode="area")
    with torch.inference_mode():
        m = seg(x)
    m = F.interpolate(m, size=person.shape[:2], mode="bilinear", align_corners=False)[0, 0]
    hard = (m > 0.5).float()
    r = max(1, int(round(2 * feather)))
    k = torch.exp(-0.5 * (torch.arange(-r, r + 1, dtype=torch.float32) / feather) ** 2)
    k = k / k.sum()
    soft = F.conv2d(hard[None, None], k.reshape(1, 1, 1, -1), padding=(0, r))
    soft = F.conv2d(F.pad(soft, (0, 0, r, r), mode="replicate"), k.reshape(1, 1, -1, 1))
    return soft[0, 0].clamp(0, 1)


def moving_background(height: int, width: int, t: int, speed: float = 6.0) -> torch.Tensor:
    """A procedural background: diagonal colour stripes and a soft gradient, scrolling `speed` px a frame."""
    yy, xx = torch.meshgrid(torch.arange(height, dtype=torch.float32), torch.arange(width, dtype=torch.float32),
                            indexing="ij")
    phase = (xx + 0.6 * yy + speed * t) / 23.0
    r = 0.5 + 0.35 * torch.sin(phase)
    g = 0.45 + 0.3 * torch.sin(phase * 0.7 + 1.3) * (yy / height)
    b = 0.55 + 0.35 * torch.cos(phase * 0.4 + xx / width * 3.0)
    return (torch.stack([r, g, b], -1).clamp(0, 1) * 255 + 0.5).to(torch.uint8)


@dataclass
class Clip:
    frames: list[torch.Tensor]  # uint8 [H, W, 3]
    alphas: list[torch.Tensor]  # float32 [H, W], the ground truth


def make_clip(frames: int = 16, size: tuple[int, int] = (360, 640), person: str = "astronaut",
              moving: bool = True, noise: float = 3.0, seed: int = 0, shift: int = 4) -> Clip:
    """A clip of `person` over a background; `moving`: the person slides `shift` px a frame and the
    background scrolls; otherwise everything is still and only the camera noise (`noise`, in 8-bit
    levels) changes from frame to frame."""
    H, W = size
    photo = load_person(person)
    alpha_full = reference_alpha(photo)
    # the photo scaled to the frame's height, placed right of centre
    ph = H
    pw = int(round(photo.shape[1] * H / photo.shape[0]))
    fg = F.interpolate(photo.permute(2, 0, 1)[None].float(), size=(ph, pw), mode="area")[0].permute(1, 2, 0)
    al = F.interpolate(alpha_full[None, None], size=(ph, pw), mode="area")[0, 0]
    gen = torch.Generator().manual_seed(seed)
    out_frames, out_alphas = [], []
    for t in range(frames):
        x0 = (W - pw) // 2 + (shift * (t - frames // 2) if moving else 0)
        bg = moving_background(H, W, t if moving else 0).float()
        canvas_fg = torch.zeros((H, W, 3))
        alpha = torch.zeros((H, W))
        lo, hi = max(0, x0), min(W, x0 + pw)
        canvas_fg[:, lo:hi] = fg[:, lo - x0:hi - x0]
        alpha[:, lo:hi] = al[:, lo - x0:hi - x0]
        img = alpha[..., None] * canvas_fg + (1 - alpha[..., None]) * bg
        if noise > 0:
            img = img + noise * torch.randn(img.shape, generator=gen)
        out_frames.append(img.round().clamp(0, 255).to(torch.uint8))
        out_alphas.append(alpha)
    return Clip(out_frames, out_alphas)


def flicker(alphas: list[torch.Tensor]) -> float:
    """Mean absolute alpha change between consecutive frames."""
    return float(np.mean([(a - b).abs().mean().item() for a, b in zip(alphas[1:], alphas[:-1])]))


def edge_error(alphas: list[torch.Tensor], truth: list[torch.Tensor], band: int = 8) -> float:
    """Mean absolute alpha error within `band` px of the true edge (where errors are; far from it all
    methods agree), averaged over frames."""
    errs = []
    for a, t in zip(alphas, truth):
        edge = ((t > 0.02) & (t < 0.98)).float()[None, None]
        near = F.max_pool2d(edge, 2 * band + 1, stride=1, padding=band)[0, 0] > 0
        errs.append((a - t).abs()[near].mean().item())
    return float(np.mean(errs))


def evaluate(clip: Clip, settings=None) -> dict[str, float]:
    """Flicker and edge error of the raw segmenter (its mask upsampled bilinearly), the guided filter
    per frame, and the full refinement (guided filter + temporal stabilisation) on one clip."""
    from dataclasses import replace

    from neuralframe.matting.refine import Refiner, RefineSettings
    from neuralframe.matting.segmenter import SegmenterRunner

    settings = settings or RefineSettings()
    H, W = clip.frames[0].shape[:2]
    seg = SegmenterRunner("auto").prepare(H, W)
    per_frame = Refiner(replace(settings, temporal=False))
    temporal = Refiner(replace(settings, temporal=True))
    raw, guided, full = [], [], []
    for image in clip.frames:
        mask, guide = seg(image)
        raw.append(F.interpolate(mask[None, None], size=(H, W), mode="bilinear", align_corners=False)[0, 0])
        guided.append(per_frame(image, mask, guide))
        full.append(temporal(image, mask, guide))
    out = {}
    for name, alphas in (("raw", raw), ("guided", guided), ("refined", full)):
        out[f"flicker_{name}"] = flicker(alphas)
        out[f"edge_error_{name}"] = edge_error(alphas, clip.alphas)
        out[f"mad_{name}"] = float(np.mean([(a - t).abs().mean().item() for a, t in zip(alphas, clip.alphas)]))
    return out
