"""NeRF checkpoints: one safetensors file, the config in its metadata.

Tensors: the field's state (`encoding.params`, MLP weights, `occupancy.density`, `occupancy.mask`)
and, for resuming, the optimiser's moments under `optim.<param>.exp_avg|exp_avg_sq`.
Metadata: `format` = "neuralframe.nerf", `version`, `config` (the `FieldConfig` as JSON) and `train`
(JSON: step, elapsed seconds, metrics).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from neuralframe.errors import InputError, OutputError
from neuralframe.render.nerf.field import FieldConfig, NerfField

FORMAT = "neuralframe.nerf"
VERSION = "1"


def save(path: str | os.PathLike, field: NerfField, optimizer: torch.optim.Optimizer | None = None,
         train_state: dict | None = None) -> Path:
    """Write `field` (and optionally the optimiser state) to `path` atomically."""
    from safetensors.torch import save_file

    path = Path(path)
    tensors = {name: t.detach().contiguous().clone() for name, t in field.state_dict().items()}
    if optimizer is not None:
        names = {id(p): n for n, p in field.named_parameters()}
        for group in optimizer.param_groups:
            for p in group["params"]:
                state = optimizer.state.get(p)
                if not state:
                    continue
                for key in ("exp_avg", "exp_avg_sq"):
                    tensors[f"optim.{names[id(p)]}.{key}"] = state[key].detach().contiguous().clone()
                tensors[f"optim.{names[id(p)]}.step"] = torch.as_tensor(state["step"], dtype=torch.float32).reshape(1)
    metadata = {"format": FORMAT, "version": VERSION, "config": json.dumps(field.config.to_dict()),
                "train": json.dumps(train_state or {})}
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        if path.parent and not path.parent.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
        save_file(tensors, str(tmp), metadata=metadata)
        os.replace(tmp, path)
    except OSError as error:
        if tmp.exists():
            tmp.unlink()
        raise OutputError(f"{path}: cannot be written ({error.strerror or error})") from None
    return path


def read_metadata(path: str | os.PathLike) -> dict:
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: NeRF checkpoint not found")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except Exception as error:  # safetensors raises its own error types for corrupt headers
        raise InputError(f"{path}: not a safetensors file ({error})") from None
    if meta.get("format") != FORMAT:
        raise InputError(f"{path}: not a neuralframe NeRF checkpoint (format '{meta.get('format')}')")
    return meta


def field_bytes(config: FieldConfig) -> int:
    """The bytes of the field a config builds (hash tables, MLPs, occupancy grid), without building it."""
    from neuralframe.render.nerf.hashgrid import layout

    grid = config.grid
    h, g, enc = config.hidden, config.geo_features, grid.n_levels * grid.n_features_per_level
    weights = enc * h + h * g + (g + 16) * h + h * h + h * 3 + 3 * h  # biases are a rounding error here
    # past a few hundred levels, the bound every level reaches (rather than a layout of that many levels)
    entries = layout(grid).total_entries if grid.n_levels <= 256 else grid.n_levels * 2 ** grid.log2_hashmap_size
    occupancy = 5 * config.occupancy_resolution ** 3  # float32 densities and a bool mask
    return 4 * (entries * grid.n_features_per_level + weights) + occupancy


def _check_memory(config: FieldConfig, path: Path) -> None:
    """Before a byte is read: the file's tensors and the field its config builds must fit in memory
    (a config can declare a field far larger than its file)."""
    from neuralframe.backend.memory import check_allocation

    if min(config.hidden, config.geo_features, config.occupancy_resolution) < 1:
        raise InputError(f"{path}: the checkpoint's config declares a field with an empty layer or grid")
    check_allocation(path.stat().st_size + field_bytes(config), f"{path}: the NeRF field its config declares",
                     "free some memory, or use a machine with more")


def load(path: str | os.PathLike, impl: str = "auto") -> tuple[NerfField, dict, dict]:
    """Read a checkpoint: (field, optimiser tensors by name, train state)."""
    from safetensors.torch import load_file

    meta = read_metadata(path)
    try:
        config = FieldConfig.from_dict(json.loads(meta["config"]))
        train_state = json.loads(meta.get("train", "{}"))
    except (KeyError, TypeError, ValueError) as error:
        raise InputError(f"{path}: the checkpoint's config is malformed ({error})") from None
    _check_memory(config, Path(path))
    tensors = load_file(str(path))
    field = NerfField(config, impl=impl)
    state = {k: v for k, v in tensors.items() if not k.startswith("optim.")}
    missing, unexpected = field.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise InputError(f"{path}: tensors do not match the config (missing {missing}, unexpected {unexpected})")
    optim = {k[len("optim."):]: v for k, v in tensors.items() if k.startswith("optim.")}
    return field, optim, train_state


def load_field(path: str | os.PathLike, impl: str = "auto") -> NerfField:
    """The field of a checkpoint, ready to render (`neuralframe view SCENE.safetensors`)."""
    field, _, _ = load(path, impl)
    return field.eval()
