"""Streaming diffusion as a frame-pipeline stage: `neuralframe stream --effect diffuse` and `neuralframe restyle`.

    stage = DiffuseStage(DiffuseSettings(prompts=("a large blue star:0", "a large red heart:48")))
    Pipeline(source, [stage], sink).run()

The stage loads a diffusers pipeline folder once (the bundled tiny-shapes model by default), builds a
`StreamEngine` at a working size, and runs every frame through it: the frame is resized to the working
size, restyled by the engine (img2img, S denoising steps in one batched UNet call), and resized back to the
stream's size. A prompt schedule switches prompts at given frame indices with `update_prompt` (the text is
re-encoded, nothing else changes, the stream keeps its rate).

Prompt schedules: `neuralframe.generate.schedule`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from neuralframe.errors import InputError
from neuralframe.generate.schedule import parse_schedule
from neuralframe.streaming.frame import Frame, StreamInfo
from neuralframe.streaming.pipeline import Stage

DEFAULT_STEPS = (30, 40)  # img2img: indices into a 50-step LCM schedule (timesteps 399 and 199)


SCHEDULE_STEPS = 50  # the LCM schedule --steps indexes


def parse_steps(text: str) -> tuple[int, ...]:
    """'30,40' -> (30, 40): increasing indices from 0 to 49 into the 50-step schedule, checked before any work."""
    try:
        steps = tuple(int(s) for s in str(text).split(","))
    except ValueError:
        raise InputError(f"--steps takes comma-separated indices into a {SCHEDULE_STEPS}-step schedule, got "
                         f"'{text}'") from None
    if any(not 0 <= s < SCHEDULE_STEPS for s in steps) or any(b <= a for a, b in zip(steps, steps[1:])):
        raise InputError(f"--steps must be increasing indices from 0 to {SCHEDULE_STEPS - 1}, got '{text}'")
    return steps


@dataclass(frozen=True)
class DiffuseSettings:
    """What the diffusion stage runs.

    Args:
        prompts: the prompt schedule ("TEXT" or "TEXT:N" entries, see the module docstring).
        model: a local diffusers pipeline folder (None: the bundled tiny-shapes model).
        steps: the engine's t_index_list (indices into a 50-step LCM schedule; later keeps more of the input).
        cfg: guidance mode (None: the model's embedded guidance if it has one, else residual CFG "self").
        guidance_scale: None: the model card's default (bundled model), else 1.2.
        bank: use the StreamV2V feature bank (temporal consistency).
        similarity: skip near-identical input frames above this similarity (None: process every frame).
        size: the working (height, width), multiples of 8 (None: the input's aspect with its shorter side at
            the model's native size, `work_size`).
        seed: the engine's fixed noise.
        backend: where the networks run: torch, or onnxruntime/tensorrt (the model's graphs exported once,
            with parity checks, and cached; the feature bank needs torch).
        tiny_vae: decode frames with the model folder's tiny autoencoder (`vae_tiny/`, TAESD-style) instead
            of its full one: faster, slightly softer.
    """

    prompts: tuple[str, ...] = ()
    model: str | None = None
    steps: tuple[int, ...] = DEFAULT_STEPS
    cfg: str | None = None
    guidance_scale: float | None = None
    bank: bool = False
    similarity: float | None = None
    size: tuple[int, int] | None = None
    seed: int = 0
    backend: str = "torch"
    tiny_vae: bool = False

    def check(self) -> list[tuple[int, str]]:
        """Validate what can be checked before loading anything; returns the schedule."""
        from neuralframe.generate.diffusion.guidance import guidance_class

        schedule = parse_schedule(self.prompts)
        if self.cfg is not None:
            guidance_class(self.cfg, "--cfg")
        if self.similarity is not None and not 0.0 <= self.similarity < 1.0:
            raise InputError(f"--similarity must be in [0, 1), got {self.similarity}")
        from neuralframe.backend.runtime import resolve_backend

        if resolve_backend(self.backend) != "torch" and self.bank:
            raise InputError(f"the feature bank runs in torch: drop --bank or use --backend torch, not {self.backend}")
        if self.size is not None and (self.size[0] % 8 or self.size[1] % 8):
            raise InputError(f"the working size must be multiples of 8, got {self.size[1]}x{self.size[0]}")
        from neuralframe.generate.models.folder import BUNDLED, check_pipeline_folder

        check_pipeline_folder(self.model or BUNDLED)
        return schedule


def work_size(height: int, width: int, native: int) -> tuple[int, int]:
    """The input's aspect with its shorter side at the model's native size, both sides multiples of 8.

    A model draws at the scale it was trained at: the bundled 64 x 64 model at a 128-pixel working side drew
    blobs and fragments that followed the input's texture instead of the prompt's shape (0.03 of a
    panning clip's outputs on the prompt, 1.0 at 64; benchmarks/stream.json)."""
    scale = native / min(height, width)
    return max(8, round(height * scale / 8) * 8), max(8, round(width * scale / 8) * 8)


def check_work_memory(pipe, size: tuple[int, int], batch: int) -> None:
    """An InputError unless the networks' activations at the working `size` fit in memory, before the engine
    allocates them: about 2 bytes a pixel of the working size for each channel of the UNet's and the
    autoencoder's blocks (most at full size in the decoder, the rest at the latents' eighth), for each of the
    `batch` steps denoised together. Above what the bundled model takes; a floor for wider ones."""
    from neuralframe.backend.memory import check_allocation

    channels = sum(pipe.unet.config.block_out_channels) + sum(pipe.vae.config.block_out_channels)
    h, w = size
    check_allocation(2 * batch * channels * h * w, f"diffusion at {w}x{h}", "use a smaller --size")


def _resize(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """uint8 [H, W, 3] -> uint8 [h, w, 3] (area when shrinking, bilinear when growing)."""
    if tuple(image.shape[:2]) == tuple(size):
        return image
    x = image.permute(2, 0, 1)[None].float()
    shrink = size[0] < image.shape[0]
    x = torch.nn.functional.interpolate(x, size=size, mode="area" if shrink else "bilinear",
                                        **({} if shrink else {"align_corners": False}))
    return x[0].round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).contiguous()


class DiffuseStage(Stage):
    """The streaming diffusion engine on a frame pipeline (see the module docstring)."""

    name = "diffuse"

    def __init__(self, settings: DiffuseSettings, engines=None):
        self.settings = settings
        self.engines = engines  # builds the exported graphs for --backend (generate.models.engines.EngineFactory)
        self.schedule = settings.check()
        self.engine = None
        self.switches = 0

    def setup(self, info: StreamInfo) -> StreamInfo:
        from neuralframe.backend.runtime import resolve_backend
        from neuralframe.generate.caches.feature_bank import FeatureBank
        from neuralframe.generate.diffusion.stream import SimilarityFilter, StreamEngine
        from neuralframe.generate.models.folder import BUNDLED, card_defaults, load_pipeline, load_tiny_vae

        s = self.settings
        model = s.model or BUNDLED
        pipe = load_pipeline(model)
        tiny = load_tiny_vae(model) if s.tiny_vae else None
        if resolve_backend(s.backend) != "torch":
            from neuralframe.generate.models.engines import use_backend

            use_backend(pipe, model, s.backend, self.engines, encoder=True, tiny_vae=tiny)
        scale = 2 ** (len(pipe.vae.config.block_out_channels) - 1)
        native = int(pipe.unet.config.sample_size) * scale
        self.size = s.size or work_size(info.height, info.width, native)
        self.out_size = (info.height, info.width)
        check_work_memory(pipe, self.size, len(s.steps))
        embedded = pipe.unet.config.time_cond_proj_dim is not None
        guidance = s.guidance_scale
        if guidance is None:
            guidance = card_defaults(model).get("guidance_scale", 1.2) if embedded else 1.2
        similarity = SimilarityFilter(threshold=s.similarity) if s.similarity is not None else None
        self.engine = StreamEngine(pipe, t_index_list=s.steps, cfg=s.cfg, guidance_scale=guidance, size=self.size,
                                   similarity=similarity, bank=FeatureBank() if s.bank else None, seed=s.seed,
                                   tiny_vae=tiny)
        self.engine.prepare(self.schedule[0][1])
        self._next = 1
        # the first call allocates and picks kernels: not on the first frame's clock
        self.engine(torch.zeros((*self.size, 3), dtype=torch.uint8))
        self.engine.reset()
        return info

    @property
    def prompt(self) -> str:
        return self.engine.prompt if self.engine is not None else self.schedule[0][1]

    def process(self, frame: Frame) -> Frame:
        image = frame.image
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != torch.uint8:
            raise InputError(f"frame {frame.index} is {image.dtype} {list(image.shape)}, expected uint8 [H, W, 3]")
        while self._next < len(self.schedule) and frame.index >= self.schedule[self._next][0]:
            self.engine.update_prompt(self.schedule[self._next][1])
            self._next += 1
            self.switches += 1
        out = self.engine(_resize(image, self.size))
        out = _resize(out, (image.shape[0], image.shape[1]))
        return frame.replace(image=out, metadata={**frame.metadata, "prompt": self.engine.prompt})

    def reset(self) -> None:
        """Back to the start of a stream: no latents in flight, an empty bank, the schedule's first prompt."""
        self.engine.reset()
        if self.engine.prompt != self.schedule[0][1]:
            self.engine.update_prompt(self.schedule[0][1])
        self._next = 1

    def teardown(self) -> None:
        if self.engine is not None:
            self.engine.close()

    def summary(self) -> dict:
        e = self.engine
        return {"prompt_switches": self.switches, "work_size": f"{self.size[1]}x{self.size[0]}",
                "cfg": e.cfg, "guidance_scale": e.guidance_scale, "t_index_list": list(e.t_index_list),
                "network_evaluations": e.evaluations, "bank": self.settings.bank, "backend": self.settings.backend,
                "skip_rate": round(e.similarity.skip_rate, 4) if e.similarity is not None else None}
