"""Text to video of any length, one frame at a time, with the causal video model and its KV cache.

    gen = CausalVideoGenerator()                                  # assets/models/tiny-shapes-video
    for image in gen.frames([(0, "a large red star rotating in the centre over a plain blue background"),
                             (24, "a large green heart rotating in the centre over a plain blue background")],
                            n_frames=48, seed=0):
        ...                                                         # uint8 [64, 64, 3], as soon as it is made

Per frame: `len(steps)` network evaluations (4), each attending to the frames the `KVCache` holds (a frame
sink and a short window), then the frame's keys/values from the last evaluation go into the cache. Memory
and time per frame stay flat however long the video runs. On a prompt switch the held frames' keys and
values are recomputed under the new prompt (KV-recache, sink included) before the next frame.

**The first frame from the image model** (factorized generation, as Emu Video does): where the card's
defaults set `keyframe_steps`, frame 0 is drawn by the base text-to-image model (the prompt with its motion
phrase turned into the start position, `still_caption`), in that many consistency steps, and one pass of the
video model at the context level puts it in the cache as the frame sink: `keyframe_steps` + 1 network
evaluations (4). The video model then continues it. On a prompt switch the sink is re-anchored the same
way: the image model draws the first frame of the new prompt, and the recache computes the sink's keys and
values from it (the window's from its own frames), which is what the model is trained on (the sink holds
the first frame under the clip's current caption, see `neuralframe.generate.train.video.render_clips`).

**Warm start** (card default `warm_start`): a frame after the first starts from the previous frame's estimate
re-noised to the second sampling level instead of from pure noise (SDEdit's idea), one evaluation fewer
(3); the assembled card says which of the two the tuning prompts preferred. After a prompt switch the
last frame was made under the old prompt: the next `switch_cold_frames` frames start from noise again (all
steps, no direction guidance).

**Direction guidance** (card defaults `motion_guidance`, `motion_guidance_t`): for a prompt that names a
direction ("moving right from the left"), one step of every frame after the first is guided away from the same
prompt with the opposite direction (`opposite_caption`): v = v_opp + w (v - v_opp), as a negative prompt
is, one evaluation more: only on warm-started frames (3 + 1 = 4). Classifier-free guidance against the empty prompt
does not help here (the caption's direction is what the model reads weakly, its shape and colour it reads
well): on the tuning prompts of an earlier model it lowered motion adherence.

**A shorter window at generation** (card default `window`, at most the trained `config.window`): the cache
holds fewer recent frames than the model was trained with, the offsets of those it holds unchanged. Each
generated frame carries small errors of shape that the next frames copy; with fewer of them in view, the
sink (the image model's clean first frame) weighs more, and motion follows the caption a little less. The
sampling sweep on the tuning prompts decides: assets/models/tiny-shapes-video/card.json lists each window's
scores ("sampling_sweep_tuning_prompts") and the one chosen ("defaults"), and its "metrics" the bundled
model's quality; benchmarks/video.json has its speed and memory.

`use_cache=False` runs the same model without a cache: every evaluation recomputes all the context, every
earlier frame together with the current one, each attending to its own sink and window as it did when it
was made (a frame's keys in layer 2 depend on what it attended to in layer 1, so the held frames alone are
not enough to reproduce them). It makes the same video as the cache at a cost that grows with its length.
With `recompute_window=True` as well it recomputes only what attention can see: the sink and window frames
(the frames the cache would hold), together with the current one, every evaluation: a cost that stays flat,
and a video that differs slightly (those frames no longer see their own earlier context). `bench video`
times all three.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import torch

from neuralframe.assets import asset
from neuralframe.errors import InputError
from neuralframe.generate import schedule
from neuralframe.generate.caches.kv_cache import KVCache
from neuralframe.generate.data.pixels import to_uint8
from neuralframe.generate.models.card import ImageDefaults, VideoCard
from neuralframe.generate.models.frozen import FrozenParts
from neuralframe.generate.video.model import CausalVideoTransformer, context_frames

BUNDLED_VIDEO = asset("models", "tiny-shapes-video")

_PLACES = "top left|top right|bottom left|bottom right|top|bottom|left|right|centre"
_MOVING = re.compile(rf"\bmoving (?:left|right|up|down) from the ({_PLACES})\b")
_IN_PLACE = re.compile(r"\b(?:rotating|bouncing|growing) (?=(?:in|at|on) the\b)")


def still_caption(prompt: str) -> str:
    """The caption of a video prompt's first frame: "a red star moving right from the left over ..." ->
    "a red star on the left over ..."; "rotating in the centre" -> "in the centre". Other text is kept."""
    from neuralframe.generate.data.vocab import POSITIONS

    text = _MOVING.sub(lambda m: POSITIONS[m.group(1)][2], prompt)
    return _IN_PLACE.sub("", text)


_DIRECTION = re.compile(r"\bmoving (left|right|up|down)\b")
_OPPOSITE = {"left": "right", "right": "left", "up": "down", "down": "up"}


def opposite_caption(prompt: str) -> str | None:
    """The prompt with its direction of motion reversed ("moving right" -> "moving left"), the start position
    kept; None when it names no direction."""
    m = _DIRECTION.search(prompt)
    if m is None:
        return None
    return f"{prompt[:m.start()]}moving {_OPPOSITE[m.group(1)]}{prompt[m.end():]}"


NO_VIDEO_PROMPT = ("no prompt: give one, e.g. neuralframe generate \"a large red star rotating in the centre over a "
                   "plain blue background\" -o out.mp4")


def parse_schedule(prompt: str | None, scheduled: Sequence[str] | None) -> list[tuple[int, str]]:
    """The prompt schedule from the positional prompt (frame 0) and `--prompt "TEXT:FRAME"` options, in
    `neuralframe.generate.schedule`'s grammar."""
    return schedule.parse_schedule(scheduled, first=prompt, missing=NO_VIDEO_PROMPT)


class CausalVideoGenerator:
    """The bundled causal video model with its base model's text encoder and autoencoder (see module docs).

    Args:
        folder: the video model folder (config.json, transformer.safetensors, card.json naming its base).
        device: "cpu" or "cuda".
        tiny_vae: decode with the base model's tiny autoencoder (faster, a little softer).
    """

    supports_schedule = True

    def __init__(self, folder: str | os.PathLike = BUNDLED_VIDEO, device: str = "cpu", tiny_vae: bool = False,
                 guidance: float | None = None, stochastic: bool | None = None):
        folder = Path(folder)
        if folder == BUNDLED_VIDEO and not folder.is_dir():
            raise InputError(f"the bundled tiny-shapes-video model is not in this checkout ({folder} is missing): "
                             "train it with `neuralframe train tiny-shapes-video`, or pass --model")
        if not folder.is_dir():
            raise InputError(f"{folder}: no such model folder; pass the video model folder with --model")
        self.folder = folder
        self.device = torch.device(device)
        self.model = CausalVideoTransformer.load(folder).to(self.device)
        self.config = self.model.config
        if abs(self.config.steps[-1] - self.config.context_t) > 1e-6:
            raise InputError(f"{folder}: config.json's last step {self.config.steps[-1]} must be its context "
                             f"level {self.config.context_t}")
        self.card = VideoCard.read(folder)  # the card, read once: base folder, fps and sampling defaults
        self.base = self.card.base
        self.parts = FrozenParts(self.base, self.device)
        self.fps = self.card.fps
        defaults = self.card.defaults
        # classifier-free guidance of the first frame (no context yet), and fresh noise at each step
        self.guidance = float(guidance if guidance is not None else defaults.first_frame_guidance)
        self.stochastic = bool(stochastic if stochastic is not None else defaults.stochastic)
        # frame 0 (and the sink after a prompt switch) from the base image model: its steps (0: the video
        # model draws frame 0 itself) and guidance weight (None: the base model's card default)
        self.keyframe_steps = defaults.keyframe_steps
        self.keyframe_guidance = defaults.keyframe_guidance
        # frames after the first start from the previous frame re-noised to the second level, not from noise
        self.warm_start = defaults.warm_start
        # direction guidance (see the module docstring): its weight (1: none) and the level of the step it guides
        self.motion_guidance = defaults.motion_guidance
        self.motion_guidance_t = defaults.motion_guidance_t
        # after a prompt switch, this many frames start from noise (all steps) instead of the previous frame
        self.switch_cold_frames = defaults.switch_cold_frames
        # recent frames the cache holds at generation (at most the trained window; see the module docstring)
        self.window = self.config.window if defaults.window is None else defaults.window
        if not 1 <= self.window <= self.config.window:
            raise InputError(f"{folder}: card.json's defaults.window {self.window} must be between 1 and the "
                             f"trained window {self.config.window}")
        self._pipe = None
        self._empty = None
        self.size = int(self.parts.vae.config.sample_size)
        self.tiny = None
        if tiny_vae:
            from neuralframe.generate.models.folder import load_tiny_vae

            self.tiny = load_tiny_vae(self.base).to(self.device)
        self.evaluations = 0  # network evaluations, counted

    @torch.no_grad()
    def text(self, prompt: str):
        hidden, pooled = self.parts.encode_text([prompt])
        return self.model.text_condition(hidden.float(), pooled.float())

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> np.ndarray:  # [n, C, h, w] -> uint8 [n, H, W, 3]
        """Scaled latents [n, C, h, w] -> uint8 frames [n, H, W, 3]."""
        if self.tiny is None:
            return self.parts.decode(latents)
        # the tiny decoder reads the scaled latents the model makes (its own scaling factor is 1)
        return to_uint8(self.tiny.decode(latents / self.tiny.config.scaling_factor).sample.cpu())

    def _image_pipe(self):
        if self._pipe is None:
            from neuralframe.generate.models.folder import load_pipeline

            self._pipe = load_pipeline(self.base).to(self.device)
            if self.keyframe_guidance is None:
                self.keyframe_guidance = ImageDefaults.read(self.base).guidance_scale
        return self._pipe

    @torch.no_grad()
    def keyframe(self, prompt: str, seed: int) -> torch.Tensor:
        """Latents [1, C, h, w] of the first frame of `prompt`, drawn by the base image model."""
        from neuralframe.generate.models.folder import pipeline_images

        latents = pipeline_images(self._image_pipe(), [still_caption(prompt)], self.keyframe_steps, int(seed),
                                  self.keyframe_guidance, output_type="latent", device=self.device)
        self.evaluations += self.keyframe_steps
        return latents.float()

    def new_cache(self) -> KVCache:
        return KVCache(self.config.depth, self.config.sink, self.window)

    @torch.no_grad()
    def latents(self, schedule: Sequence[tuple[int, str]], n_frames: int, seed: int = 0, use_cache: bool = True,
                cache: KVCache | None = None, recompute_window: bool = False) -> Iterator[torch.Tensor]:
        """Latents [1, C, h, w] of frames 0..n_frames-1, one at a time (see the module docstring)."""
        if n_frames < 1:
            raise InputError(f"--frames must be at least 1, got {n_frames}")
        cfg, model = self.config, self.model
        schedule = sorted(schedule)
        if not schedule or schedule[0][0] != 0:
            raise InputError("a prompt schedule needs a prompt at frame 0")
        switches = dict(schedule)
        g = torch.Generator(device=self.device).manual_seed(int(seed))
        shape = (1, cfg.latent_channels, cfg.latent_size, cfg.latent_size)
        cache = cache if cache is not None else self.new_cache()
        cache.reset()
        held_inputs: dict[int, torch.Tensor] = {}  # the last step's input of frames kept (recache / recompute)
        held_prev: dict[int, torch.Tensor | None] = {}  # the previous frame's input each of them read
        text = negative = anchor = last = last_x0 = None
        ct = cfg.context_t
        cold_until = 0  # frames before this one start from noise, not from the previous frame
        for f in range(n_frames):
            if f in switches:
                if f:  # the last frame was made under the old prompt: no warm start from it for a while
                    cold_until = f + self.switch_cold_frames
                text = self.text(switches[f])
                opposite = opposite_caption(switches[f]) if self.motion_guidance != 1.0 else None
                negative = self.text(opposite) if opposite is not None else None
                anchor = None
                if self.keyframe_steps:  # the first frame under this prompt
                    seed_f = int(torch.randint(0, 2 ** 31 - 1, (1,), generator=g, device=self.device))
                    anchor = self.keyframe(switches[f], seed_f)
                    if f and cfg.sink:  # re-anchor the sink (see the module docstring)
                        noise = torch.randn(shape, generator=g, device=self.device)
                        held_inputs[0] = (1 - ct) * anchor + ct * noise
                if f and use_cache and len(cache):
                    self._recache(cache, held_inputs, held_prev, text)
            x0 = eps = None
            guided = f == 0 and self.guidance != 1.0
            steps = cfg.steps
            if f == 0 and anchor is not None:  # the keyframe into the cache: one pass at the context level
                x0, steps = anchor, ()
                x = (1 - ct) * x0 + ct * torch.randn(shape, generator=g, device=self.device)
                kv = model.step(x, ct, text, cache, frame=0, return_kv=True)[1] if use_cache else None
                self.evaluations += 1
            warm = bool(f and self.warm_start and len(steps) > 1 and f >= cold_until)
            if warm:  # SDEdit-like: the last frame as the first estimate
                x0, steps = last_x0, steps[1:]
            for i, t in enumerate(steps):
                noise = torch.randn(shape, generator=g, device=self.device)
                if eps is not None and not self.stochastic:
                    noise = eps  # the predicted noise carried on (deterministic, DDIM-like)
                x = noise if x0 is None else (1 - t) * x0 + t * noise
                final = i == len(steps) - 1
                if use_cache:
                    out = model.step(x, t, text, cache, frame=f, return_kv=final, prev=last)
                    v, kv = out if final else (out, None)
                else:
                    v = self._recompute(x, t, f, text, held_inputs, held_prev, last)
                self.evaluations += 1
                if guided:
                    v_u = model.step(x, t, self._empty_text(), None, frame=f)
                    self.evaluations += 1
                    v = v_u + self.guidance * (v - v_u)
                elif warm and negative is not None and not final and abs(t - self.motion_guidance_t) < 1e-6:
                    if use_cache:
                        v_n = model.step(x, t, negative, cache, frame=f, prev=last)
                    else:
                        v_n = self._recompute(x, t, f, text, held_inputs, held_prev, last, query_text=negative)
                    self.evaluations += 1
                    v = v_n + self.motion_guidance * (v - v_n)
                x0 = x - t * v
                eps = x0 + v
            held_inputs[f], held_prev[f], last, last_x0 = x, last, x, x0
            if use_cache:  # only the held frames' inputs are kept (for a KV-recache)
                cache.append(f, kv)
                for j in set(held_inputs) - set(cache.frames):
                    del held_inputs[j], held_prev[j]
            elif recompute_window:  # only what the next frame's attention can see is recomputed
                for j in set(held_inputs) - set(context_frames(f + 1, cfg.sink, self.window)):
                    del held_inputs[j], held_prev[j]
            yield x0

    def _empty_text(self):
        if self._empty is None:
            self._empty = self.text("")
        return self._empty

    @staticmethod
    def _prevs(inputs: list[torch.Tensor | None], like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The previous-frame inputs of some rows [1, R, C, H, W] (zeros where a row has none) and which have one."""
        prev = torch.stack([like if p is None else p for p in inputs], 1)
        has = torch.tensor([p is not None for p in inputs], dtype=torch.bool, device=like.device)
        return prev, has

    def _recompute(self, x, t, frame, text, held_inputs, held_prev, last, query_text=None):
        """One evaluation of `frame` with all its context recomputed under `text`; with `query_text`, the frame
        itself reads that prompt instead (the context is still the one `text` made, as in the cache)."""
        if not held_inputs:
            return self.model.step(x, t, query_text or text, None, frame=frame, prev=last)
        if query_text is not None:
            held = sorted(held_inputs)
            cache = self.new_cache()
            wanted = set(context_frames(frame, self.config.sink, self.window))
            for j, kv in zip(held, self._held_kv(held, held_inputs, held_prev, text)):
                if j in wanted:
                    cache.append(j, kv)
            return self.model.step(x, t, query_text, cache, frame=frame, prev=last)
        held = sorted(held_inputs)
        ctx = torch.stack([held_inputs[j] for j in held], 1)
        prev_x, has_prev = self._prevs([held_prev[j] for j in held] + [last], torch.zeros_like(x))
        _, v, _ = self.model.forward_streams(ctx, held, text, x[:, None], [frame],
                                             torch.full((1, 1), float(t), device=x.device),
                                             prev_x=prev_x, has_prev=has_prev, window=self.window)
        return v[:, 0]

    def _held_kv(self, held: list[int], held_inputs: dict[int, torch.Tensor], held_prev: dict, text) -> list:
        """Per frame of `held`, its keys/values per layer recomputed under `text` from the kept inputs."""
        xs = torch.stack([held_inputs[f] for f in held], 1)
        prev_x, has_prev = self._prevs([held_prev[f] for f in held], torch.zeros_like(xs[:, 0]))
        _, _, kvs = self.model.forward_streams(xs, held, text, prev_x=prev_x, has_prev=has_prev, window=self.window)
        return [[(k[:, p], v[:, p]) for k, v in kvs] for p in range(len(held))]

    def _recache(self, cache: KVCache, held_inputs: dict[int, torch.Tensor], held_prev: dict, text) -> None:
        held = cache.frames
        fresh = self._held_kv(held, held_inputs, held_prev, text)
        self.evaluations += len(held)
        cache.recache(lambda frames: fresh, include_sink=True)

    def frames(self, schedule: Sequence[tuple[int, str]], n_frames: int, seed: int = 0, use_cache: bool = True,
               progress: Callable[[int, int], None] | None = None) -> Iterator[np.ndarray]:
        """uint8 RGB frames [H, W, 3], each as soon as it is generated."""
        for f, z in enumerate(self.latents(schedule, n_frames, seed, use_cache)):
            image = self.decode(z)[0]
            if progress is not None:
                progress(f + 1, n_frames)
            yield image

