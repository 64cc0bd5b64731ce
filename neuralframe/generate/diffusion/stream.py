"""The streaming diffusion engine: one frame in, one frame out per network call (StreamDiffusion's ideas).

    engine = StreamEngine(pipe, t_index_list=(20, 35), cfg="self", guidance_scale=1.4)
    engine.prepare("a large red star over a blue gradient")   # every per-step constant, once
    out = engine(frame)                  # uint8 [H, W, 3] in, uint8 [H, W, 3] out
    engine.update_prompt("a green ring")  # re-encodes the text only

Stream batch: with S denoising steps (`t_index_list`, indices into an LCM schedule of
`num_inference_steps`), the engine keeps S - 1 latents in flight. Each call noises the new frame's latent
to the first step's timestep, runs the S latents (the new one and the S - 1 in flight, each at its own
timestep) through the UNet as one batch, takes each one's consistency-model estimate of the clean
latent, re-noises all but the last to the next step's timestep (with fixed per-slot noise), and decodes
the last: a frame leaves after S calls, and every call costs one batched network evaluation.

Guidance (`cfg`: embedded, none, full, self, initialize) is a strategy object chosen once in the
constructor (neuralframe.generate.diffusion.guidance): it sets the UNet's batch (the S slots, after the
negative-prompt elements it evaluates), its text embeddings, and how the predictions are combined.

Feature bank (`bank=FeatureBank(...)`, StreamV2V): the chosen self-attention layers also attend to banked
keys and values of earlier frames at the same denoising step, fuses its output with similar banked
features, and keeps the bank bounded by merging (neuralframe.generate.caches.feature_bank).

State (the latents in flight, the last output, the similarity filter's memory, the bank) is explicit: `reset()`
clears it; `prepare()` and `update_prompt()` never rebuild the networks.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from neuralframe.errors import InputError
from neuralframe.generate.diffusion.guidance import Guidance, make_guidance


@dataclass
class SimilarityFilter:
    """Stochastic similarity filter: an input frame nearly identical to the last processed one is skipped
    with a probability that grows with the similarity (0 at `threshold`, 1 at identical), and never more
    than `max_skip` frames in a row. Similarity is the cosine of the two frames, mean-removed, at 1/8 size.
    """

    threshold: float = 0.98
    max_skip: int = 10
    seed: int = 0
    last: torch.Tensor | None = field(default=None, repr=False)
    run: int = 0
    skipped: int = 0
    seen: int = 0

    def __post_init__(self):
        if not 0.0 <= self.threshold < 1.0:
            raise InputError(f"similarity threshold must be in [0, 1), got {self.threshold}")
        self._rng = np.random.default_rng(self.seed)

    @staticmethod
    def _signature(frame: torch.Tensor) -> torch.Tensor:
        x = frame.float().permute(2, 0, 1)[None]
        x = torch.nn.functional.avg_pool2d(x, 8, ceil_mode=True) if min(x.shape[-2:]) >= 16 else x
        x = x.flatten()
        return x - x.mean()

    def skip(self, frame: torch.Tensor) -> bool:
        """Whether to skip `frame` (uint8 [H, W, 3]); a processed frame becomes the new reference."""
        self.seen += 1
        sig = self._signature(frame)
        if self.last is not None and self.last.shape == sig.shape and self.run < self.max_skip:
            denom = float(sig.norm() * self.last.norm())
            similarity = float(sig @ self.last) / denom if denom > 0 else 1.0
            p = max(0.0, (similarity - self.threshold) / (1.0 - self.threshold))
            if self._rng.random() < p:
                self.run += 1
                self.skipped += 1
                return True
        self.last, self.run = sig, 0
        return False

    @property
    def skip_rate(self) -> float:
        return self.skipped / self.seen if self.seen else 0.0

    def reset(self) -> None:
        self.last, self.run, self.skipped, self.seen = None, 0, 0, 0
        self._rng = np.random.default_rng(self.seed)


class StreamEngine:
    """See the module docstring.

    Args:
        pipe: a diffusers Stable-Diffusion-family pipeline (its unet, vae, text_encoder, tokenizer and
            scheduler config are used; nothing is rebuilt).
        t_index_list: the denoising steps, indices into the `num_inference_steps` LCM schedule
            (img2img: later indices keep more of the input).
        num_inference_steps: the schedule the indices refer to.
        cfg: guidance mode, a name in `guidance.GUIDANCE` (None: "embedded" for a UNet with a guidance
            embedding, else "self").
        guidance_scale: the guidance weight (diffusers' convention).
        delta: residual CFG's scale of the residual noise.
        mode: "img2img" (each call takes a frame) or "txt2img" (each call starts from noise).
        size: (height, width) of the frames (default: the model's native size).
        similarity: a SimilarityFilter, or None to process every frame.
        bank: a `FeatureBank` (StreamV2V: self-attention over past frames' features), or None.
        seed: the fixed per-slot noise.
        tiny_vae: a tiny autoencoder speaking the pipeline's latents (diffusers `AutoencoderTiny`, see
            `load_tiny_vae`) to decode frames with instead of `pipe.vae` (StreamDiffusion's TAESD): faster,
            slightly softer. Frames are still encoded by the full encoder: on the bundled model the tiny
            encoder cost far more prompt adherence than the tiny decoder. The decoder's speed and adherence
            are recorded in benchmarks/stream.json (`fps_engine_configs`, `adherence_configs`, `*_tiny_vae`).
    """

    def __init__(self, pipe, t_index_list=(20, 35), num_inference_steps: int = 50, cfg: str | None = None,
                 guidance_scale: float = 1.2, delta: float = 1.0, mode: str = "img2img",
                 size: tuple[int, int] | None = None, similarity: SimilarityFilter | None = None, bank=None,
                 seed: int = 0, tiny_vae=None):
        self.pipe = pipe
        self.unet, self.vae = pipe.unet, pipe.vae
        self.decoder = tiny_vae if tiny_vae is not None else pipe.vae
        self.guidance: Guidance = make_guidance(cfg, self.unet, guidance_scale, delta)
        if mode not in ("img2img", "txt2img"):
            raise InputError(f"unknown mode '{mode}': use img2img or txt2img")
        indices = list(t_index_list)
        if not indices or sorted(set(indices)) != indices or indices[0] < 0 or indices[-1] >= num_inference_steps:
            raise InputError(f"t_index_list must be increasing indices below num_inference_steps "
                             f"({num_inference_steps}), got {list(t_index_list)}")
        self.t_index_list, self.num_inference_steps = indices, num_inference_steps
        self.mode = mode
        scale = 2 ** (len(pipe.vae.config.block_out_channels) - 1)
        native = int(self.unet.config.sample_size) * scale
        self.height, self.width = size or (native, native)
        if self.height % scale or self.width % scale:
            raise InputError(f"frame size must be a multiple of {scale}, got {self.width}x{self.height}")
        self.latent_shape = (self.unet.config.in_channels, self.height // scale, self.width // scale)
        self.similarity = similarity
        self.bank = bank.attach(self.unet) if bank is not None else None
        self.seed = seed
        self.steps = len(indices)
        self.device = self.unet.device
        self.dtype = self.unet.dtype
        self.evaluations = 0
        self.prompt: str | None = None
        self._prepared = False

    @property
    def cfg(self) -> str:
        """The guidance mode's name."""
        return self.guidance.name

    @property
    def guidance_scale(self) -> float:
        return self.guidance.scale

    # ---- preparation: everything that does not change from frame to frame ----
    @torch.no_grad()
    def prepare(self, prompt: str, negative_prompt: str = "") -> StreamEngine:
        from diffusers import LCMScheduler

        scheduler = LCMScheduler.from_config(self.pipe.scheduler.config)
        scheduler.set_timesteps(self.num_inference_steps)
        timesteps = scheduler.timesteps.long()
        if self.t_index_list[-1] >= len(timesteps):
            raise InputError(f"t_index_list goes to {self.t_index_list[-1]}, the schedule has {len(timesteps)} steps")
        t = timesteps[self.t_index_list]
        alphas = scheduler.alphas_cumprod.to(torch.float32)[t]
        shape = (self.steps, 1, 1, 1)
        self.timesteps = t.to(self.device)
        self.alpha = alphas.sqrt().view(shape).to(self.device, self.dtype)
        self.beta = (1 - alphas).sqrt().view(shape).to(self.device, self.dtype)
        skips, outs = zip(*(scheduler.get_scalings_for_boundary_condition_discrete(int(x)) for x in t))
        self.c_skip = torch.tensor([float(s) for s in skips]).view(shape).to(self.device, self.dtype)
        self.c_out = torch.tensor([float(o) for o in outs]).view(shape).to(self.device, self.dtype)
        # the next slot's noise scales (the last slot is decoded, not re-noised)
        self.alpha_next, self.beta_next = self.alpha[1:], self.beta[1:]
        g = torch.Generator().manual_seed(self.seed)
        self.slot_noise = torch.randn((self.steps, *self.latent_shape), generator=g).to(self.device, self.dtype)
        self.guidance.prepare(self.slot_noise, self.unet)
        # the UNet's batch: the guidance's negative elements first, then the S slots
        self.unet_timesteps = self.guidance.batch(self.timesteps)  # [B]
        n_negative = self.guidance.negatives(self.steps)
        self._batch_slots = self.guidance.batch(torch.arange(self.steps, device=self.device))  # [B] slot of each
        self._conditional = torch.arange(n_negative + self.steps, device=self.device) >= n_negative  # [B]
        self.negative_prompt = negative_prompt
        self._uncond = self._text(negative_prompt) if n_negative else None  # [1, T, D]
        self._encode(prompt)
        self.reset()
        self._prepared = True
        return self

    @torch.no_grad()
    def _text(self, prompt: str) -> torch.Tensor:  # -> [1, T, D]
        tok = self.pipe.tokenizer
        ids = tok([prompt], padding="max_length", max_length=tok.model_max_length, truncation=True,
                  return_tensors="pt").input_ids.to(self.device)
        return self.pipe.text_encoder(ids)[0].to(self.dtype)

    def _encode(self, prompt: str) -> None:
        self.text_batch = self.guidance.text_batch(self._text(prompt), self._uncond, self.steps)  # [B, T, D]
        self.prompt = prompt

    def update_prompt(self, prompt: str) -> None:
        """Switch prompts mid-stream: the text is re-encoded; latents in flight and networks stay."""
        if not self._prepared:
            raise InputError("call prepare(prompt) before update_prompt")
        self._encode(prompt)

    def reset(self) -> None:
        """Forget the latents in flight and the last output (the next S - 1 calls refill the pipeline)."""
        self.buffer = torch.zeros((self.steps - 1, *self.latent_shape), device=self.device, dtype=self.dtype)
        self.filled = 0
        self.last_output: torch.Tensor | None = None
        self.evaluations = 0
        if self.similarity is not None:
            self.similarity.reset()
        if self.bank is not None:
            self.bank.reset()

    def close(self) -> None:
        """Give the UNet back as it was (the feature bank's attention processors removed)."""
        if self.bank is not None:
            self.bank.detach()

    # ---- the per-frame path ----
    @torch.no_grad()
    def __call__(self, frame: torch.Tensor | np.ndarray | None = None) -> torch.Tensor:
        """One step of the stream: `frame` uint8 [H, W, 3] (img2img) or None (txt2img); returns uint8
        [H, W, 3] (the frame that finished its last step; while the pipeline fills, the newest estimate)."""
        if not self._prepared:
            raise InputError("call prepare(prompt) before feeding frames")
        if self.mode == "img2img":
            if frame is None:
                raise InputError("img2img streams take a frame per call")
            frame = torch.as_tensor(frame)
            if tuple(frame.shape) != (self.height, self.width, 3) or frame.dtype != torch.uint8:
                raise InputError(f"frames must be uint8 [{self.height}, {self.width}, 3], got "
                                 f"{frame.dtype} {list(frame.shape)}")
            if self.similarity is not None and self.last_output is not None and self.similarity.skip(frame):
                return self.last_output
            if self.similarity is not None and self.last_output is None:
                self.similarity.skip(frame)  # the first frame becomes the reference
            x0 = self._encode_image(frame)
            x_new = self.alpha[0] * x0 + self.beta[0] * self.slot_noise[0]
        else:
            x_new = self.slot_noise[0]  # txt2img starts every frame from the same noise (the prompt changes it)
        latents = torch.cat([x_new.view(1, *self.latent_shape), self.buffer])
        eps = self._predict(latents)
        x0_pred = (latents - self.beta * eps) / self.alpha
        denoised = self.c_out * x0_pred + self.c_skip * latents
        if self.steps > 1:
            self.buffer = self.alpha_next * denoised[:-1] + self.beta_next * self.slot_noise[1:]
        self.filled = min(self.filled + 1, self.steps)
        # until S frames have entered, the last slot holds no frame yet: show the newest estimate
        out = denoised[-1:] if self.filled >= self.steps else denoised[self.filled - 1:self.filled]
        # a tiny autoencoder's scaling factor is 1: it takes the scaled latents as they are
        image = self.decoder.decode(out / self.decoder.config.scaling_factor, return_dict=False)[0]
        self.last_output = ((image[0].float().clamp(-1, 1) + 1) * 127.5 + 0.5).to(torch.uint8).permute(1, 2, 0).cpu()
        return self.last_output

    def _encode_image(self, frame: torch.Tensor) -> torch.Tensor:  # uint8 [H, W, 3] -> [C, h, w]
        x = frame.to(self.device).permute(2, 0, 1)[None].to(self.dtype) / 127.5 - 1.0
        posterior = self.vae.encode(x)
        mean = posterior.latent_dist.mean if hasattr(posterior, "latent_dist") else posterior.latents
        return mean[0] * self.vae.config.scaling_factor

    def _predict(self, latents: torch.Tensor) -> torch.Tensor:  # [S, C, h, w] -> [S, C, h, w]
        """Every slot's guided noise prediction, in one batched UNet call."""
        x = self.guidance.batch(latents)  # [B, C, h, w]
        self.evaluations += x.shape[0]
        if self.bank is not None:
            # slot i holds a frame once i frames have entered before this one; the conditional elements are stored
            self.bank.begin(self._batch_slots, self._conditional & (self._batch_slots <= self.filled))
        eps = self.unet(x, self.unet_timesteps, encoder_hidden_states=self.text_batch,
                        timestep_cond=self.guidance.timestep_cond, return_dict=False)[0]
        return self.guidance.combine(eps)
