"""Local diffusers text-to-video folders: recognise one, load it offline, stream its frames.

    if is_diffusers_video_folder("models/wan2.1-t2v-1.3b"):
        gen = DiffusersVideoGenerator("models/wan2.1-t2v-1.3b", device="cuda")
        for frame in gen.frames("a red circle moving left", n_frames=33, steps=30, seed=0,
                                progress=lambda done, total: print(f"step {done}/{total}")):
            writer.write(frame)                      # uint8 RGB [H, W, 3], in order
        gen.fps                                      # 16 for Wan; the pipeline's own rate when it has one, else 8

A folder is one that `save_pretrained` wrote (or a hub snapshot copied locally): `model_index.json` whose
`_class_name` is one of `TEXT_TO_VIDEO_PIPELINES`, plus one sub-folder per part it lists. Every problem
with the folder is an `InputError` of one line naming the folder and the missing or broken part; the parts
are checked here before diffusers sees them because diffusers' own messages name a file it did not find
(`diffusion_pytorch_model.bin`) rather than the part, and a tokenizer folder without its vocabulary loads
silently as a 2-token tokenizer.

These pipelines make the whole clip in one call from one prompt: there is no prompt schedule
(`supports_schedule` is False) and the first frame comes only once every frame is decoded.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import math
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from neuralframe.errors import InputError, MissingDependencyError

# `_class_name`s of diffusers pipelines that make a video from a text prompt alone, take `num_frames`,
# `generator`, `num_inference_steps` and `output_type`, and return `.frames` (checked against diffusers 0.42).
TEXT_TO_VIDEO_PIPELINES = frozenset({
    "TextToVideoSDPipeline", "AnimateDiffPipeline", "AnimateDiffSDXLPipeline", "WanPipeline", "CogVideoXPipeline",
    "LTXPipeline", "HunyuanVideoPipeline", "HunyuanVideo15Pipeline", "MochiPipeline", "AllegroPipeline",
    "EasyAnimatePipeline", "SkyReelsV2Pipeline", "Kandinsky5T2VPipeline", "MotifVideoPipeline",
})
# Frame rates of the published checkpoints (the rate in each pipeline's documented example) for pipelines whose
# __call__ has no fps/frame_rate argument to read it from.
_FPS = {"WanPipeline": 16, "HunyuanVideoPipeline": 15, "HunyuanVideo15Pipeline": 15, "AllegroPipeline": 15,
        "MochiPipeline": 30, "SkyReelsV2Pipeline": 24, "Kandinsky5T2VPipeline": 24, "MotifVideoPipeline": 24}
DEFAULT_FPS = 8

_WEIGHTS = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".gguf")
_VOCAB = ("tokenizer.json", "vocab.json", "vocab.txt", "spiece.model", "tokenizer.model", "sentencepiece.bpe.model")
_FIX = "copy the whole checkpoint folder"


def _read_index(path: Path) -> dict | None:
    try:
        index = json.loads((path / "model_index.json").read_text())
    except (OSError, ValueError):
        return None
    return index if isinstance(index, dict) else None


def is_diffusers_video_folder(path: str | os.PathLike) -> bool:
    """True when `path/model_index.json` names a diffusers text-to-video pipeline (parts are not checked)."""
    index = _read_index(Path(path))
    return index is not None and index.get("_class_name") in TEXT_TO_VIDEO_PIPELINES


def _is_model(class_name: str) -> bool:
    """Whether a part of this class carries weights (a diffusers/transformers model, not a tokenizer,
    scheduler, processor or guider)."""
    return ("Model" in class_name or class_name.startswith("Autoencoder") or class_name.endswith("Adapter")
            or "ForConditionalGeneration" in class_name or "ForCausalLM" in class_name)


def _check_part(path: Path, name: str, class_name: str) -> None:
    part = path / name
    if not part.is_dir():
        raise InputError(f"{path} is incomplete: no {name}/ (model_index.json lists it); {_FIX}")
    files = {f.name: f for f in part.iterdir() if f.is_file()}
    if not files:
        raise InputError(f"{path} is incomplete: {name}/ is empty; {_FIX}")
    if "Tokenizer" in class_name:
        # without a vocabulary transformers builds a 2-token tokenizer instead of failing
        if not any(v in files for v in _VOCAB) and not any(f.endswith((".model", ".tiktoken")) for f in files):
            raise InputError(f"{path} is incomplete: {name}/ has no vocabulary (tokenizer.json, vocab.json or "
                             f"*.model); {_FIX}")
    elif class_name.endswith("Scheduler"):
        if "scheduler_config.json" not in files:
            raise InputError(f"{path} is incomplete: {name}/ has no scheduler_config.json; {_FIX}")
    elif _is_model(class_name):
        if "config.json" not in files:
            raise InputError(f"{path} is incomplete: {name}/ has no config.json; {_FIX}")
        weights = [f for n, f in files.items() if n.endswith(_WEIGHTS)]
        if not weights:
            raise InputError(f"{path} is incomplete: {name}/ has no weights (*.safetensors or *.bin); {_FIX}")
        for f in weights:
            if f.stat().st_size < 1024 and f.read_bytes().startswith(b"version https://git-lfs"):
                raise InputError(f"{path}: {name}/{f.name} is a Git LFS pointer, not the weights; run "
                                 "`git lfs pull` in the checkpoint folder")
        for shard_index in (f for n, f in files.items() if n.endswith(".index.json")):
            try:
                shards = set(json.loads(shard_index.read_text())["weight_map"].values())
            except (OSError, ValueError, KeyError, TypeError, AttributeError):
                raise InputError(f"{path}: {name}/{shard_index.name} is unreadable; {_FIX}") from None
            missing = sorted(s for s in shards if s not in files)
            if missing:
                raise InputError(f"{path} is incomplete: {name}/ lacks {missing[0]} ({len(missing)} of {len(shards)} "
                                 f"weight shards missing); {_FIX}")


def check_video_folder(path: str | os.PathLike) -> dict:
    """The folder's model_index.json, after checking that it names a text-to-video pipeline and that every
    part it lists is present with its config, weights or vocabulary."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such folder; pass a local diffusers text-to-video pipeline folder")
    if not path.is_dir():
        raise InputError(f"{path} is a file; pass the folder that holds model_index.json")
    if not (path / "model_index.json").is_file():
        raise InputError(f"{path}: not a diffusers pipeline folder (no model_index.json); pass the folder that "
                         "holds model_index.json")
    index = _read_index(path)
    if index is None:
        raise InputError(f"{path}/model_index.json is not a readable JSON object; the folder is damaged, {_FIX}")
    class_name = index.get("_class_name")
    if class_name not in TEXT_TO_VIDEO_PIPELINES:
        raise InputError(f"{path}: model_index.json names {class_name or 'no pipeline class'}, not a text-to-video "
                         f"pipeline (supported: {', '.join(sorted(TEXT_TO_VIDEO_PIPELINES))})")
    for name, spec in index.items():
        # optional parts are saved as [null, null]; "_class_name" etc. are metadata
        if name.startswith("_") or not isinstance(spec, list) or len(spec) != 2 or None in spec:
            continue
        _check_part(path, name, str(spec[1]))
    from neuralframe.generate.models.parts import check_parts

    check_parts(path, [n for n, s in index.items() if not n.startswith("_") and isinstance(s, list) and len(s) == 2
                       and None not in s])  # a part whose config.json and weights disagree: one line naming it
    return index


def _resolve_dtype(dtype, device):
    import torch

    if dtype is None:
        # float32 on the CPU (half precision is slow or missing there); half precision on a GPU, where
        # these models are meant to run and float32 rarely fits
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    names = {"float32": torch.float32, "fp32": torch.float32, "float16": torch.float16, "fp16": torch.float16,
             "half": torch.float16, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}
    if str(dtype).lower() not in names:
        raise InputError(f"unknown dtype {dtype!r}; use one of {', '.join(names)}")
    return names[str(dtype).lower()]


def _resolve_device(device):
    import torch

    try:
        device = torch.device(device)
    except (RuntimeError, TypeError):
        raise InputError(f"unknown device {device!r}; use cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise MissingDependencyError(f"device {device} asked for, but this torch sees no CUDA GPU; use --device cpu")
    return device


@contextlib.contextmanager
def _quiet_loading():
    """No "Loading pipeline components" / "Loading weights" bars or loader chatter (accelerate hints,
    deprecation notices) on the user's terminal; problems still arrive as exceptions."""
    from diffusers.utils import logging as dlog
    from transformers.utils import logging as tlog

    d_bars, t_bars, level = dlog.is_progress_bar_enabled(), tlog.is_progress_bar_enabled(), dlog.get_verbosity()
    dlog.disable_progress_bar()
    tlog.disable_progress_bar()
    dlog.set_verbosity_error()
    try:
        yield
    finally:
        dlog.set_verbosity(level)
        if d_bars:
            dlog.enable_progress_bar()
        if t_bars:
            tlog.enable_progress_bar()


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def frames_to_request(pipeline, n_frames: int) -> int:
    """The smallest frame count >= n_frames that the pipeline's VAE makes without rounding: k * T + 1 for a
    VAE that compresses time T-fold (Wan, CogVideoX, Hunyuan: 4, LTX: 8, Mochi: 6); n_frames otherwise.
    (Wan rounds an off-grid count *down*, which would give fewer frames than asked for.)"""
    for attr in ("vae_scale_factor_temporal", "vae_temporal_compression_ratio", "vae_temporal_scale_factor"):
        factor = getattr(pipeline, attr, None)
        if isinstance(factor, int) and factor > 1:
            return math.ceil((n_frames - 1) / factor) * factor + 1
    return n_frames


def to_uint8_frames(video) -> list[np.ndarray]:
    """One clip of a pipeline's `.frames` as uint8 RGB [H, W, 3] frames. Accepts the batch ([B, F, H, W, C]
    arrays, [B, F, C, H, W] tensors, lists of lists of PIL images; the first clip is taken) or one clip
    ([F, H, W, C], [F, C, H, W] tensor, list of PIL images or arrays); floats are taken to be in [0, 1]."""
    import torch

    if isinstance(video, torch.Tensor):
        video = video.detach().float().cpu()
        if video.ndim == 5:
            video = video[0]
        # "pt" output is channels-first
        video = video.permute(0, 2, 3, 1).numpy() if video.shape[1] in (1, 3, 4) else video.numpy()
    if isinstance(video, np.ndarray):
        clip = list(video[0] if video.ndim == 5 else video)
    else:
        clip = list(video)
        if clip and (isinstance(clip[0], (list, tuple)) or (isinstance(clip[0], np.ndarray) and clip[0].ndim == 4)):
            clip = list(clip[0])
    out = []
    for frame in clip:
        if hasattr(frame, "convert"):  # PIL image
            frame = np.asarray(frame.convert("RGB"))
        frame = np.asarray(frame)
        if frame.dtype != np.uint8:
            frame = (np.clip(frame.astype(np.float32), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
        if frame.ndim == 2:
            frame = frame[..., None]
        if frame.shape[-1] == 1:
            frame = np.repeat(frame, 3, axis=-1)
        out.append(np.ascontiguousarray(frame[..., :3]))
    return out


class DiffusersVideoGenerator:
    """A local diffusers text-to-video pipeline folder, loaded offline with the pipeline class that its
    model_index.json names; `frames()` runs it once per clip."""

    # one prompt per clip: these pipelines cannot change the prompt part-way through a video
    supports_schedule = False

    def __init__(self, folder: str | os.PathLike, device="cpu", dtype=None):
        self.folder = Path(folder)
        index = check_video_folder(self.folder)
        self.class_name: str = index["_class_name"]
        self.device = _resolve_device(device)
        self.dtype = _resolve_dtype(dtype, self.device)
        try:
            import diffusers
        except ImportError as e:  # pragma: no cover - diffusers is a core dependency
            raise MissingDependencyError("text-to-video needs diffusers: pip install diffusers") from e
        import torch

        cls = getattr(diffusers, self.class_name, None)
        if cls is None:
            raise MissingDependencyError(f"{self.folder} holds a {self.class_name}, which diffusers "
                                         f"{diffusers.__version__} lacks: pip install -U diffusers")
        try:
            from safetensors import SafetensorError
        except ImportError:  # pragma: no cover
            SafetensorError = OSError  # noqa: N806
        try:
            with _quiet_loading():
                pipe = cls.from_pretrained(str(self.folder), local_files_only=True, dtype=self.dtype)
                pipe = pipe.to(self.device)
        except torch.OutOfMemoryError:
            raise MissingDependencyError(f"not enough {self.device.type} memory to load the {self.class_name} in "
                                         f"{self.folder}; try a smaller dtype (float16/bfloat16) or model") from None
        except ImportError as e:
            raise MissingDependencyError(f"{self.folder}: the {self.class_name} needs a package that is not "
                                         f"installed ({_first_line(e)})") from None
        except (OSError, ValueError, KeyError, RuntimeError, json.JSONDecodeError, SafetensorError) as e:
            # a truncated or mismatched checkpoint (diffusers/transformers/safetensors/torch each say it their way)
            raise InputError(f"{self.folder}: cannot load the {self.class_name} ({_first_line(e)}); the folder "
                             f"may be damaged, {_FIX}") from None
        pipe.set_progress_bar_config(disable=True)  # progress goes through frames(progress=...)
        self.pipeline = pipe
        self._params = inspect.signature(pipe.__call__).parameters
        self.fps = self._fps(index)

    def _fps(self, index: dict) -> float:
        for source in (index, {k: p.default for k, p in self._params.items()}):
            for key in ("fps", "frame_rate"):  # LTX conditions on frame_rate: its default is the clip's rate
                value = source.get(key)
                if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
                    return value
        if self.class_name == "CogVideoXPipeline":
            # CogVideoX 1.5 (temporal patches) is a 16 fps model, CogVideoX 1.0 an 8 fps one
            patch_t = getattr(getattr(self.pipeline, "transformer", None), "config", {}).get("patch_size_t")
            return 16 if patch_t else 8
        return _FPS.get(self.class_name, DEFAULT_FPS)

    def _default_steps(self) -> int | None:
        p = self._params.get("num_inference_steps")
        return p.default if p is not None and isinstance(p.default, int) else None

    def frames(self, prompt: str, n_frames: int, seed: int = 0, steps: int | None = None, height: int | None = None,
               width: int | None = None, progress: Callable[[int, int], None] | None = None,
               guidance_scale: float | None = None) -> Iterator[np.ndarray]:
        """n_frames uint8 RGB [H, W, 3] frames of one clip for `prompt`, in order; `progress(done, total)`
        after each denoising step. The arguments are checked now; the pipeline runs on the first next()."""
        if not isinstance(prompt, str):
            raise InputError(f"a {self.class_name} takes one prompt per video, not a prompt schedule")
        if not prompt.strip():
            raise InputError("the prompt is empty")
        if n_frames < 1:
            raise InputError(f"the number of frames must be >= 1, got {n_frames}")
        if steps is not None and steps < 1:
            raise InputError(f"steps must be >= 1, got {steps}")
        for name, value in (("height", height), ("width", width)):
            if value is not None and value < 1:
                raise InputError(f"{name} must be >= 1, got {value}")
        return self._run(prompt, n_frames, seed, steps, height, width, progress, guidance_scale)

    def _run(self, prompt, n_frames, seed, steps, height, width, progress, guidance_scale) -> Iterator[np.ndarray]:
        import torch

        pipe, params = self.pipeline, self._params
        kwargs = {"prompt": prompt, "num_frames": frames_to_request(pipe, n_frames), "output_type": "np",
                  "generator": torch.Generator(self.device).manual_seed(seed)}
        for key, value in (("num_inference_steps", steps), ("height", height), ("width", width),
                           ("guidance_scale", guidance_scale)):
            if value is not None:
                kwargs[key] = value
        total = steps or self._default_steps() or 1
        reported = []

        def report(done: int, of: int) -> None:
            reported.append(done)
            if progress is not None:
                progress(done, of)

        if "callback_on_step_end" in params:
            def on_step_end(p, i, t, callback_kwargs):
                # one call per scheduler timestep; `_num_timesteps` (set before the loop) counts them, which is
                # num_inference_steps except for 2nd-order schedulers
                report(i + 1, getattr(p, "_num_timesteps", None) or total)
                return callback_kwargs

            kwargs["callback_on_step_end"] = on_step_end
        elif "callback" in params:  # the older API (TextToVideoSDPipeline): callback(step, timestep, latents)
            kwargs["callback"] = lambda i, t, latents: report(i + 1, total)
            kwargs["callback_steps"] = 1
        try:
            with torch.inference_mode():
                out = pipe(**kwargs)
        except torch.OutOfMemoryError:
            raise MissingDependencyError(f"not enough {self.device.type} memory for {kwargs['num_frames']} frames of "
                                         f"this size; ask for fewer frames or a smaller height/width") from None
        except ValueError as e:  # the pipeline's check_inputs: sizes not divisible by 8/16/32, too many frames...
            raise InputError(f"the {self.class_name} in {self.folder} refused the request: {_first_line(e)}") from None
        if not reported:  # a pipeline without step callbacks: report once, at the end
            report(total, total)
        video = getattr(out, "frames", None)
        clip = to_uint8_frames(out[0] if video is None else video)
        if len(clip) < n_frames:
            raise InputError(f"the {self.class_name} in {self.folder} made {len(clip)} frames, not {n_frames}; "
                             f"ask for at most {len(clip)} frames")
        del out, video
        for i in range(n_frames):
            yield clip[i]
            clip[i] = None  # let a long clip's frames go as they are consumed
