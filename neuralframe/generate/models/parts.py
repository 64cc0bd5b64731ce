"""The parts of a diffusers folder (unet, vae, text_encoder, vae_tiny, controlnet, ...) checked against their own
config.json before anything loads.

A config that builds other keys or shapes than its weights hold is one line naming the part and the first key
that differs. Left to the loaders, diffusers raises a screenful of size mismatches, and transformers silently
initialises the layers it does not find in the weights (a text encoder would quietly steer images with noise).

Each part is built from its config on the meta device (no memory, no weights) and compared with the
safetensors headers (no tensor is read). Parts in other formats (.bin, .ckpt) are left to the loader.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
from pathlib import Path
from typing import Iterable, Iterator

from neuralframe.errors import InputError


@contextlib.contextmanager
def _libraries_quiet() -> Iterator[None]:
    """diffusers and transformers warn about config keys a class does not take (a tiny autoencoder's config
    written with its encoder's channels): building a model to read its shapes is not the place to say so."""
    loggers = [logging.getLogger(name) for name in ("diffusers", "transformers")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def built_shapes(part: Path) -> tuple[dict[str, tuple[int, ...]], list[str]] | None:
    """(key -> shape of the model the part's config.json builds, patterns of keys its loader ignores), or None
    when the config names no diffusers or transformers model class."""
    import torch

    try:
        config = json.loads((part / "config.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None  # no config, or one the loader reports in its own words
    if not isinstance(config, dict):
        return None
    if isinstance(config.get("_class_name"), str):
        import diffusers

        cls = getattr(diffusers, config["_class_name"], None)
        make = (lambda: cls.from_config(config)) if cls is not None and hasattr(cls, "from_config") else None
    elif isinstance(config.get("architectures"), list) and config["architectures"]:
        import transformers

        cls = getattr(transformers, str(config["architectures"][0]), None)
        make = (lambda: cls(cls.config_class.from_pretrained(str(part), local_files_only=True))) \
            if cls is not None and getattr(cls, "config_class", None) is not None else None
    else:
        return None
    if make is None or not isinstance(cls, type) or not issubclass(cls, torch.nn.Module):
        return None
    try:
        with torch.device("meta"), _libraries_quiet():
            model = make()
    except Exception as error:  # noqa: BLE001 - a user's config can fail a constructor in any way
        first = (str(error).splitlines() or [type(error).__name__])[0]
        raise InputError(f"{part.parent}: the '{part.name}' part's config.json cannot build a {cls.__name__} "
                         f"({first}); the folder is damaged") from None
    tied = getattr(model, "_tied_weights_keys", None) or ()  # stored once, under either name
    tied = [*tied.keys(), *tied.values()] if isinstance(tied, dict) else list(tied)
    ignored = [*(getattr(model, "_keys_to_ignore_on_load_unexpected", None) or []),
               *(getattr(model, "_keys_to_ignore_on_load_missing", None) or []), r"num_batches_tracked$",
               *(re.escape(str(k)) for k in tied)]
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}, ignored


def stored_shapes(part: Path) -> dict[str, tuple[int, ...]] | None:
    """Key -> shape over the part's .safetensors files (headers only); None when it has none. A file whose
    header cannot be read, or whose data the file does not hold in full, is an InputError naming it."""
    from safetensors import safe_open

    files = sorted(part.glob("*.safetensors"))
    if not files:
        return None
    shapes: dict[str, tuple[int, ...]] = {}
    for file in files:
        try:
            with safe_open(str(file), "pt") as f:
                shapes.update({k: tuple(f.get_slice(k).get_shape()) for k in f.keys()})
        except Exception as error:  # noqa: BLE001 - safetensors raises its own types for a damaged header
            first = (str(error).splitlines() or [type(error).__name__])[0]
            raise InputError(f"{file}: the '{part.name}' part's weights are damaged or incomplete ({first}); copy "
                             "the model folder again") from None
    return shapes


def disagreement(part: Path, strict: bool = False) -> str | None:
    """What differs between a part's config and its weights, in a user's words; None when they agree.

    Keys missing on one side and extra on the other may be a renamed older layout that the loader converts:
    only `strict` (after the loader failed) reports those."""
    built = built_shapes(part)
    stored = stored_shapes(part) if built is not None else None
    if built is None or stored is None:
        return None
    expected, ignored = built
    keep = lambda key: not any(re.search(pattern, key) for pattern in ignored)  # noqa: E731
    for key, shape in expected.items():
        if key in stored and stored[key] != shape:
            return f"'{key}' is {list(stored[key])} in the weights but {list(shape)} by the config"
    missing = [k for k in expected if k not in stored and keep(k)]
    extra = [k for k in stored if k not in expected and keep(k)]
    if missing and (strict or not extra):
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        return f"the weights lack '{missing[0]}'{more}, which the config builds"
    if extra and (strict or not missing):
        more = f" (and {len(extra) - 1} more)" if len(extra) > 1 else ""
        return f"the weights hold '{extra[0]}'{more}, which the config does not build"
    return None


def check_parts(folder: Path, names: Iterable[str], strict: bool = False) -> None:
    """An InputError naming the first part of `folder` whose config.json and weights disagree."""
    for name in names:
        part = folder / name
        if not (part / "config.json").is_file():
            continue
        what = disagreement(part, strict)
        if what is not None:
            raise InputError(f"{folder}: the '{name}' part's config.json disagrees with its weights: {what}; the "
                             "folder is damaged or mixes two models")
