"""The bundled tiny-shapes models: diffusers/transformers classes at sizes a laptop CPU trains.

    vae = build_vae()              # AutoencoderKL, 64x64x3 <-> 8x8x4 (8x downsampling, 4 latent channels)
    text = build_text_encoder()    # CLIPTextModel over the bundled CLIP BPE vocabulary (49,408 tokens)
    unet = build_unet()            # UNet2DConditionModel on 8x8x4 latents, cross-attending to the text
    unet = build_unet(time_cond_proj_dim=W_EMBED_DIM)   # the few-step student with a guidance embedding

They are the standard classes, so the saved folder loads in diffusers' own pipelines. The sizes were
chosen to train on a 2-core CPU within an hour while staying under the 40 MB budget.
"""

from __future__ import annotations

import math

import torch

from neuralframe.generate.tokenizer import CONTEXT_LENGTH, VOCAB_SIZE

IMAGE_SIZE = 64
LATENT_SIZE = IMAGE_SIZE // 8
LATENT_CHANNELS = 4
TEXT_DIM = 64
W_EMBED_DIM = 64  # the guidance embedding's width (unet.config.time_cond_proj_dim)


def build_vae():
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(16, 32, 64, 64),
        layers_per_block=1,
        latent_channels=LATENT_CHANNELS,
        # 4 or more channels per group: with one channel per group (16 groups on the first 16 channels) every
        # GroupNorm erased each channel's mean, the flat background's colour, which then had to survive on
        # the residual path alone (tinted, blurry reconstructions)
        norm_num_groups=4,
        sample_size=IMAGE_SIZE,
        scaling_factor=1.0,  # set from the trained encoder's latent spread (see train.vae)
    )


def build_text_encoder():
    from transformers import CLIPTextConfig, CLIPTextModel

    config = CLIPTextConfig(
        vocab_size=VOCAB_SIZE,
        hidden_size=TEXT_DIM,
        intermediate_size=4 * TEXT_DIM,
        projection_dim=TEXT_DIM,
        num_hidden_layers=3,
        num_attention_heads=4,
        max_position_embeddings=CONTEXT_LENGTH,
        bos_token_id=49406,
        eos_token_id=49407,
        pad_token_id=49407,
    )
    return CLIPTextModel(config)


def build_unet(time_cond_proj_dim: int | None = None):
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(
        sample_size=LATENT_SIZE,
        in_channels=LATENT_CHANNELS,
        out_channels=LATENT_CHANNELS,
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        block_out_channels=(64, 128),
        layers_per_block=1,
        cross_attention_dim=TEXT_DIM,
        attention_head_dim=8,
        norm_num_groups=8,  # 8 or more channels per group (see build_vae)
        time_cond_proj_dim=time_cond_proj_dim,
    )


def student_from_teacher(teacher) -> torch.nn.Module:
    """A copy of `teacher` with a guidance embedding input; the embedding starts at zero, so the student
    starts out computing exactly what the teacher does."""
    student = build_unet(time_cond_proj_dim=W_EMBED_DIM)
    missing, unexpected = student.load_state_dict(teacher.state_dict(), strict=False)
    if unexpected or any("cond_proj" not in k for k in missing):
        raise RuntimeError(f"teacher and student differ beyond the guidance embedding: {missing} {unexpected}")
    torch.nn.init.zeros_(student.time_embedding.cond_proj.weight)
    return student


def guidance_embedding(w: torch.Tensor, dim: int = W_EMBED_DIM) -> torch.Tensor:
    """Sinusoidal embedding of guidance weights `w` [B] (the convention of diffusers' LCM pipelines,
    which pass guidance_scale - 1): [B, dim]."""
    w = w.float() * 1000.0
    half = dim // 2
    freqs = torch.exp(torch.arange(half, dtype=torch.float32) * -(math.log(10000.0) / (half - 1)))
    angles = w[:, None] * freqs[None, :]
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)


def parameter_count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
