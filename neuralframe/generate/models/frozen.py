"""The frozen parts of a text-to-image folder that the video model builds on: its tokenizer, text encoder
and autoencoder, on one device. The video generator encodes prompts and decodes frames with them; the
video training stage encodes its clip pool with the same ones.

    parts = FrozenParts("assets/models/tiny-shapes", torch.device("cpu"))
    hidden, pooled = parts.encode_text(["a large red star"])     # [1, 77, D], [1, D]
    z = parts.encode_frames(pixels)                              # uint8 [n, H, W, 3] -> [n, C, h, w]
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from neuralframe.generate.data.pixels import to_model_range, to_uint8


class FrozenParts:
    """The folder's tokenizer, text encoder and autoencoder, frozen, on `device`.

    Args:
        base: a diffusers text-to-image folder (the bundled tiny-shapes model, say).
        device: where the encoders run.
    """

    def __init__(self, base: str | Path, device: torch.device):
        from diffusers import AutoencoderKL
        from transformers import CLIPTextModel

        from neuralframe.generate.models.folder import check_pipeline_folder
        from neuralframe.generate.tokenizer import load_folder_tokenizer

        base = Path(base)
        check_pipeline_folder(base)
        self.device = device
        self.tokenizer = load_folder_tokenizer(base / "tokenizer")
        self.text_encoder = CLIPTextModel.from_pretrained(base / "text_encoder").eval().requires_grad_(False).to(device)
        self.vae = AutoencoderKL.from_pretrained(base / "vae").eval().requires_grad_(False).to(device)
        self.scale = float(self.vae.config.scaling_factor)

    @torch.no_grad()
    def encode_text(self, captions: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Hidden states [n, 77, D] and pooled outputs [n, D] of n captions."""
        from neuralframe.generate.tokenizer import CONTEXT_LENGTH

        ids = self.tokenizer(captions, padding="max_length", max_length=CONTEXT_LENGTH, truncation=True,
                             return_tensors="pt").input_ids.to(self.device)
        out = self.text_encoder(ids)
        return out.last_hidden_state, out.pooler_output

    @torch.no_grad()
    def encode_frames(self, pixels_uint8: np.ndarray) -> torch.Tensor:  # uint8 [n, H, W, 3] -> [n, C, h, w]
        """uint8 [n, H, W, 3] -> scaled latent means [n, C, h, w]."""
        x = to_model_range(pixels_uint8).to(self.device)
        return self.vae.encode(x).latent_dist.mean * self.scale

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> np.ndarray:  # [n, C, h, w] -> uint8 [n, H, W, 3]
        """Scaled latents [n, C, h, w] -> uint8 [n, H, W, 3]."""
        return to_uint8(self.vae.decode(latents.to(self.device) / self.scale).sample.cpu())
