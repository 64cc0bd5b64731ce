"""Local diffusers pipeline folders: check one is complete, load it offline, make images with it.

    pipe = load_pipeline("assets/models/tiny-shapes")          # any local Stable-Diffusion-family folder
    image = generate_image(pipe, "a large red star", steps=4, seed=0)   # uint8 [H, W, 3]

A missing folder, a folder without `model_index.json`, a part that `model_index.json` lists but the
folder lacks (or holds without its config or weights), or a part whose config.json disagrees with its weights
(`generate/models/parts.py`) is an `InputError` naming the part.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch

from neuralframe.assets import asset
from neuralframe.errors import InputError, MissingDependencyError
from neuralframe.generate.models.card import read_card
from neuralframe.generate.models.parts import check_parts

BUNDLED = asset("models", "tiny-shapes")
_CONFIGS = ("config.json", "scheduler_config.json", "tokenizer_config.json", "preprocessor_config.json")
_WEIGHTS = (".safetensors", ".bin", ".pt", ".ckpt", ".onnx")
_NO_WEIGHTS = ("scheduler", "tokenizer", "tokenizer_2", "feature_extractor")


def check_pipeline_folder(path: str | os.PathLike) -> dict:
    """The folder's model_index.json, after checking that every part it lists is present."""
    path = Path(path)
    if path == BUNDLED and not path.is_dir():
        raise InputError(f"the bundled tiny-shapes model is not in this checkout ({BUNDLED} is missing): train it "
                         "with `neuralframe train tiny-shapes`, or pass a diffusers pipeline folder with --model")
    if not path.is_dir():
        raise InputError(f"{path}: no such model folder; pass a local diffusers pipeline folder with --model")
    index_path = path / "model_index.json"
    if not index_path.is_file():
        raise InputError(f"{path}: not a diffusers pipeline folder (no model_index.json)")
    try:
        index = json.loads(index_path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise InputError(f"{index_path}: unreadable ({e}); the folder is damaged") from None
    if not isinstance(index, dict):
        raise InputError(f"{index_path}: not a diffusers model index (a JSON object); the folder is damaged")
    for name, spec in index.items():
        if name.startswith("_") or not isinstance(spec, list) or len(spec) != 2 or spec[0] is None:
            continue
        part = path / name
        if not part.is_dir():
            raise InputError(f"{path}: the '{name}' part is missing (no {name}/ folder); the folder is incomplete")
        files = [f.name for f in part.iterdir()]
        if not any(c in files for c in _CONFIGS) and not any(f.endswith((".json", ".txt", ".model")) for f in files):
            raise InputError(f"{path}: the '{name}' part has no config file; the folder is incomplete")
        if name not in _NO_WEIGHTS and "tokenizer" not in name and not any(f.endswith(_WEIGHTS) for f in files):
            raise InputError(f"{path}: the '{name}' part has no weights file; the folder is incomplete")
    check_parts(path, model_parts(path, index))
    return index


def model_parts(path: Path, index: dict) -> list[str]:
    """The folders of `path` that hold a network: those model_index.json lists, and the tiny autoencoder and a
    ControlNet beside them."""
    listed = [name for name, spec in index.items() if not name.startswith("_") and isinstance(spec, list)
              and len(spec) == 2 and spec[0] is not None and name not in _NO_WEIGHTS and "tokenizer" not in name]
    return listed + [name for name in (TINY_VAE, "controlnet") if name not in listed and (path / name).is_dir()]


def load_pipeline(path: str | os.PathLike = BUNDLED, dtype: torch.dtype = torch.float32):
    """The folder's own pipeline class (diffusers' DiffusionPipeline.from_pretrained), offline, on the CPU."""
    index = check_pipeline_folder(path)
    try:
        from diffusers import DiffusionPipeline
    except ImportError as e:  # pragma: no cover - diffusers is a core dependency
        raise MissingDependencyError("text-to-image needs diffusers: pip install diffusers") from e
    from diffusers.utils import logging as diffusers_logging

    bars = diffusers_logging.is_progress_bar_enabled()
    diffusers_logging.disable_progress_bar()  # no "Loading pipeline components" bar for a local folder
    try:
        pipe = DiffusionPipeline.from_pretrained(str(path), local_files_only=True, dtype=dtype)
    except (OSError, ValueError, KeyError, RuntimeError, json.JSONDecodeError) as e:
        check_parts(Path(path), model_parts(Path(path), index), strict=True)  # name the part when it is one
        raise InputError(f"{path}: cannot load the pipeline ({str(e).splitlines()[0]})") from None
    finally:
        if bars:
            diffusers_logging.enable_progress_bar()
    pipe.set_progress_bar_config(disable=True)
    return pipe


TINY_VAE = "vae_tiny"  # a TAESD-style tiny autoencoder beside the model (not in model_index.json)


def load_tiny_vae(path: str | os.PathLike, required: bool = True, dtype: torch.dtype = torch.float32):
    """The tiny autoencoder of a pipeline folder (FOLDER/vae_tiny, a diffusers AutoencoderTiny), or a path to
    such a folder itself; None when absent and not `required`."""
    path = Path(path)
    folder = path if (path / "config.json").is_file() and not (path / "model_index.json").is_file() else path / TINY_VAE
    if not (folder / "config.json").is_file():
        if not required:
            return None
        raise InputError(f"{path}: no tiny autoencoder (expected {folder}/config.json and its weights); train one "
                         "with `neuralframe train tiny-shapes --stage tiny-vae` or run without --tiny-vae")
    from diffusers import AutoencoderTiny

    check_parts(folder.parent, [folder.name])
    try:
        vae = AutoencoderTiny.from_pretrained(folder, local_files_only=True, torch_dtype=dtype)
    except (OSError, ValueError, KeyError, RuntimeError, json.JSONDecodeError) as e:
        check_parts(folder.parent, [folder.name], strict=True)
        raise InputError(f"{folder}: cannot load the tiny autoencoder ({str(e).splitlines()[0]})") from None
    return vae.eval().requires_grad_(False)


def card_defaults(path: str | os.PathLike) -> dict:
    """Sampling defaults from the folder's card.json (steps, guidance_scale), if it has one, as written there
    (`neuralframe.generate.models.card.ImageDefaults` reads them as a frozen dataclass)."""
    return read_card(path).get("defaults", {})


def pipeline_images(pipe, prompts: list[str], steps: int = 4, seed: int = 0, guidance_scale: float | None = None,
                    size: int | None = None, output_type: str = "np", device: str | torch.device = "cpu"):
    """The pipeline's own outputs (`output_type` "np": float images in [0, 1]; "latent": the scaled latents),
    one per prompt, each from its own seeded noise (seed + i, drawn on `device`)."""
    if steps < 1:
        raise InputError(f"steps must be >= 1, got {steps}")
    generators = [torch.Generator(device=device).manual_seed(seed + i) for i in range(len(prompts))]
    kwargs = {}
    if guidance_scale is not None:
        kwargs["guidance_scale"] = float(guidance_scale)
    if size is not None:
        kwargs["height"] = kwargs["width"] = size
    with torch.inference_mode():
        out = pipe(prompt=list(prompts), num_inference_steps=steps, generator=generators, output_type=output_type,
                   **kwargs)
    return out.images


def generate_images(pipe, prompts: list[str], steps: int = 4, seed: int = 0, guidance_scale: float | None = None,
                    size: int | None = None) -> np.ndarray:
    """uint8 [B, H, W, 3] images, one per prompt, each from its own seeded noise (seed + i)."""
    images = pipeline_images(pipe, prompts, steps, seed, guidance_scale, size)
    return (np.clip(images, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def generate_image(pipe, prompt: str, steps: int = 4, seed: int = 0, guidance_scale: float | None = None) -> np.ndarray:
    return generate_images(pipe, [prompt], steps, seed, guidance_scale)[0]
