"""The shape/colour scorer: a small CNN trained on the procedural data that names the shape and the
colour of the one shape in a 64x64 image. It scores generated images against their prompts.

    clf = ShapeClassifier.load("assets/models/shape-classifier")
    shape, colour = clf.predict(images)           # images float [B, 3, 64, 64] in [-1, 1]; class indices
    SHAPES[shape[0]], list(COLOURS)[colour[0]]    # ("star", "red")

Saved as `config.json` + `model.safetensors` in one folder.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from torch import nn

from neuralframe.assets import asset
from neuralframe.errors import InputError
from neuralframe.generate.data.vocab import COLOURS, SHAPES

DEFAULT_DIR = asset("models", "shape-classifier")


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.SiLU(),
        nn.Conv2d(cout, cout, 3, padding=1, stride=2, bias=False), nn.BatchNorm2d(cout), nn.SiLU(),
    )


class ShapeClassifier(nn.Module):
    """Conv net 64x64 -> 4x4 features -> two heads (shape logits, colour logits)."""

    def __init__(self, width: int = 32, n_shapes: int = len(SHAPES), n_colours: int = len(COLOURS)):
        super().__init__()
        self.config = {"width": width, "n_shapes": n_shapes, "n_colours": n_colours, "image_size": 64}
        w = width
        self.features = nn.Sequential(_block(3, w), _block(w, 2 * w), _block(2 * w, 4 * w), _block(4 * w, 4 * w))
        self.shape_head = nn.Linear(4 * w * 2, n_shapes)
        self.colour_head = nn.Linear(4 * w * 2, n_colours)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.features(images)
        pooled = torch.cat([f.mean((2, 3)), f.amax((2, 3))], dim=1)
        return self.shape_head(pooled), self.colour_head(pooled)

    @torch.no_grad()
    def predict(self, images: torch.Tensor, batch: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
        """Class indices (shape [B], colour [B]) for images [B, 3, 64, 64] in [-1, 1]."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise InputError(f"the classifier takes images [B, 3, H, W], got {tuple(images.shape)}")
        if images.shape[-2:] != (64, 64):
            images = torch.nn.functional.interpolate(images.float(), size=(64, 64), mode="area")
        self.eval()
        device = next(self.parameters()).device
        shapes, colours = [], []
        for chunk in images.float().split(batch):
            s, c = self(chunk.to(device))
            shapes.append(s.argmax(1).cpu())
            colours.append(c.argmax(1).cpu())
        return torch.cat(shapes), torch.cat(colours)

    def save(self, folder: str | os.PathLike) -> Path:
        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in self.state_dict().items()}, str(folder / "model.safetensors"))
        (folder / "config.json").write_text(json.dumps(
            {**self.config, "shapes": list(SHAPES), "colours": list(COLOURS)}, indent=2))
        return folder

    @classmethod
    def load(cls, folder: str | os.PathLike = DEFAULT_DIR) -> "ShapeClassifier":
        from safetensors.torch import load_file

        folder = Path(folder)
        for name in ("config.json", "model.safetensors"):
            if not (folder / name).is_file():
                raise InputError(f"{folder}: no {name}; train the scorer with "
                                 "`neuralframe train tiny-shapes --stage classifier`")
        config = json.loads((folder / "config.json").read_text())
        model = cls(config["width"], config["n_shapes"], config["n_colours"])
        model.load_state_dict(load_file(str(folder / "model.safetensors")))
        return model.eval()
