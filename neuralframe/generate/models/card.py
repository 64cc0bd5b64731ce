"""A model folder's card (assets/models/NAME/card.json): its sampling defaults as frozen dataclasses, read
once when a model loads. The card is where a bundled model's measured numbers live (training runs, metrics,
the sampling sweep that chose the defaults); code and docstrings point to it instead of repeating them.

    ImageDefaults.read("assets/models/tiny-shapes").guidance_scale        # the tuned guidance weight
    VideoCard.read("assets/models/tiny-shapes-video").defaults.window     # recent frames the cache holds
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from neuralframe.errors import InputError


def read_card(folder: str | os.PathLike) -> dict:
    """The folder's card.json as a dict; {} when it has none."""
    path = Path(folder) / "card.json"
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise InputError(f"{path}: unreadable ({e}); the model folder is damaged") from None


@dataclass(frozen=True)
class ImageDefaults:
    """A text-to-image card's `defaults`. None: not on the card (the pipeline's own default applies)."""

    steps: int | None = None
    guidance_scale: float | None = None

    @classmethod
    def read(cls, folder: str | os.PathLike) -> ImageDefaults:
        d = read_card(folder).get("defaults", {})
        return cls(steps=d.get("steps"), guidance_scale=d.get("guidance_scale"))


@dataclass(frozen=True)
class VideoDefaults:
    """A causal video card's `defaults`, chosen by `neuralframe.generate.video.evaluate.tune_sampling` (the card's
    `sampling_sweep_tuning_prompts` lists every setting it scored). See `neuralframe.generate.video.generate`."""

    first_frame_guidance: float = 1.0  # classifier-free guidance of the first frame (1: none)
    stochastic: bool = True  # fresh noise at each sampling step
    keyframe_steps: int = 0  # steps of the base image model for frame 0 (0: the video model draws it)
    keyframe_guidance: float | None = None  # None: the base model's own card default
    warm_start: bool = False  # later frames start from the previous frame re-noised, one evaluation fewer
    motion_guidance: float = 1.0  # direction guidance weight (1: none)
    motion_guidance_t: float = 0.5  # the level of the step it guides
    switch_cold_frames: int = 0  # frames after a prompt switch that start from noise
    window: int | None = None  # recent frames the cache holds (None: the trained window)

    @classmethod
    def from_dict(cls, d: dict) -> VideoDefaults:
        guidance = d.get("keyframe_guidance")
        return cls(first_frame_guidance=float(d.get("first_frame_guidance", 1.0)),
                   stochastic=bool(d.get("stochastic", True)), keyframe_steps=int(d.get("keyframe_steps", 0)),
                   keyframe_guidance=None if guidance is None else float(guidance),
                   warm_start=bool(d.get("warm_start", False)),
                   motion_guidance=float(d.get("motion_guidance", 1.0)),
                   motion_guidance_t=float(d.get("motion_guidance_t", 0.5)),
                   switch_cold_frames=int(d.get("switch_cold_frames", 0)),
                   window=None if d.get("window") is None else int(d["window"]))


@dataclass(frozen=True)
class VideoCard:
    """What a causal video folder's card says about running it: its base text-to-image folder (resolved), the
    frame rate and the sampling defaults."""

    base: Path
    fps: float = 8.0
    defaults: VideoDefaults = field(default_factory=VideoDefaults)

    @classmethod
    def read(cls, folder: str | os.PathLike) -> VideoCard:
        folder = Path(folder)
        card = read_card(folder)
        base = Path(card.get("base", "../tiny-shapes"))
        return cls(base=base if base.is_absolute() else (folder / base).resolve(), fps=float(card.get("fps", 8)),
                   defaults=VideoDefaults.from_dict(card.get("defaults", {})))
