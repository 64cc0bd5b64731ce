"""Local diffusers text-to-video folders as `neuralframe generate` meets them: recognised by their
model_index.json, loaded offline, frames streamed as uint8 RGB in order with per-step progress and
reproducible seeds, and every broken folder refused with one line naming the broken part.

The folders are tiny randomly initialised pipelines built here the way diffusers' own fast tests build
them (a TextToVideoSDPipeline with a UNet3DConditionModel, an AnimateDiffPipeline with a MotionAdapter),
with the project's real CLIP tokenizer, and written with `save_pretrained`.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from neuralframe.errors import InputError
from neuralframe.generate.tokenizer import load_clip_tokenizer
from neuralframe.generate.video.diffusers_folder import (
    DiffusersVideoGenerator,
    frames_to_request,
    is_diffusers_video_folder,
    to_uint8_frames,
)

ROOT = Path(__file__).resolve().parents[2]
BUNDLED = ROOT / "assets" / "models" / "tiny-shapes"
PROMPT = "a red circle moving left"


def _common_parts() -> dict:
    """A tiny CLIP text encoder over the real vocabulary, a 2x VAE (32 px frames from 16 px latents), DDIM."""
    from diffusers import AutoencoderKL, DDIMScheduler
    from transformers import CLIPTextConfig, CLIPTextModel

    tokenizer = load_clip_tokenizer()
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=8, intermediate_size=16, num_attention_heads=2, num_hidden_layers=1,
        max_position_embeddings=77, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, projection_dim=8))
    vae = AutoencoderKL(block_out_channels=(8, 8), in_channels=3, out_channels=3, latent_channels=4,
                        down_block_types=["DownEncoderBlock2D"] * 2, up_block_types=["UpDecoderBlock2D"] * 2,
                        norm_num_groups=2, sample_size=32)
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                              set_alpha_to_one=False)
    return {"text_encoder": text_encoder, "tokenizer": tokenizer, "vae": vae, "scheduler": scheduler}


def build_text_to_video_sd(folder: Path) -> Path:
    from diffusers import TextToVideoSDPipeline, UNet3DConditionModel

    torch.manual_seed(0)
    unet = UNet3DConditionModel(
        block_out_channels=(4, 8), layers_per_block=1, sample_size=16, in_channels=4, out_channels=4,
        down_block_types=("CrossAttnDownBlock3D", "DownBlock3D"), up_block_types=("UpBlock3D", "CrossAttnUpBlock3D"),
        cross_attention_dim=8, attention_head_dim=4, norm_num_groups=2)
    TextToVideoSDPipeline(unet=unet, **_common_parts()).save_pretrained(folder)
    return folder


def build_animatediff(folder: Path) -> Path:
    from diffusers import AnimateDiffPipeline, MotionAdapter, UNet2DConditionModel

    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        block_out_channels=(8, 16), layers_per_block=1, sample_size=16, in_channels=4, out_channels=4,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=8, norm_num_groups=2)
    adapter = MotionAdapter(block_out_channels=(8, 16), motion_layers_per_block=1, motion_norm_num_groups=2,
                            motion_num_attention_heads=4)
    AnimateDiffPipeline(unet=unet, motion_adapter=adapter, **_common_parts()).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("t2v")
    return {"TextToVideoSDPipeline": build_text_to_video_sd(root / "t2v-sd"),
            "AnimateDiffPipeline": build_animatediff(root / "animatediff")}


def test_video_folders_are_recognised(folders, tmp_path):
    for folder in folders.values():
        assert is_diffusers_video_folder(folder)
    assert not is_diffusers_video_folder(BUNDLED)  # a text-to-image pipeline
    assert not is_diffusers_video_folder(tmp_path)  # no model_index.json
    assert not is_diffusers_video_folder(tmp_path / "nowhere")
    (tmp_path / "model_index.json").write_text("{not json")
    assert not is_diffusers_video_folder(tmp_path)


@pytest.mark.parametrize("pipeline", ["TextToVideoSDPipeline", "AnimateDiffPipeline"])
def test_frames_are_rgb_uint8_in_order_with_progress_and_seeds(folders, pipeline):
    gen = DiffusersVideoGenerator(folders[pipeline])
    assert type(gen.pipeline).__name__ == pipeline
    assert gen.supports_schedule is False and gen.fps == 8
    size = gen.pipeline.unet.config.sample_size * gen.pipeline.vae_scale_factor  # 16 px latents, 2x VAE
    steps = []
    frames = list(gen.frames(PROMPT, n_frames=4, steps=2, seed=0, progress=lambda *step: steps.append(step)))
    assert len(frames) == 4
    for frame in frames:
        assert frame.dtype == np.uint8 and frame.shape == (size, size, 3) == (32, 32, 3)
    assert steps == [(1, 2), (2, 2)]
    assert np.ptp(np.stack(frames)) > 0  # a picture, not a constant
    again = list(gen.frames(PROMPT, n_frames=4, steps=2, seed=0))
    assert all(np.array_equal(a, b) for a, b in zip(frames, again))
    other = list(gen.frames(PROMPT, n_frames=4, steps=2, seed=1))
    assert not all(np.array_equal(a, b) for a, b in zip(frames, other))


def test_size_and_frame_count_follow_the_request(folders):
    gen = DiffusersVideoGenerator(folders["TextToVideoSDPipeline"])
    frames = list(gen.frames(PROMPT, n_frames=3, steps=1, height=16, width=24))
    assert [f.shape for f in frames] == [(16, 24, 3)] * 3
    with pytest.raises(InputError, match="refused the request"):  # the pipeline's own check: multiples of 8
        list(gen.frames(PROMPT, n_frames=2, steps=1, height=20, width=20))
    with pytest.raises(InputError, match="one prompt per video"):
        gen.frames([PROMPT, "a blue square"], n_frames=2)
    with pytest.raises(InputError, match="frames"):
        gen.frames(PROMPT, n_frames=0)


def _break(folder: Path, how: str) -> None:
    if how == "no unet/":
        shutil.rmtree(folder / "unet")
    elif how == "unet without weights":
        for f in (folder / "unet").glob("*.safetensors"):
            f.unlink()
    elif how == "tokenizer without vocabulary":
        for f in (folder / "tokenizer").iterdir():
            if f.name != "tokenizer_config.json":
                f.unlink()
    elif how == "weights left as a Git LFS pointer":
        (folder / "vae" / "diffusion_pytorch_model.safetensors").write_text(
            "version https://git-lfs.github.com/spec/v1\noid sha256:0\nsize 1\n")
    elif how == "truncated text encoder weights":
        weights = folder / "text_encoder" / "model.safetensors"
        weights.write_bytes(weights.read_bytes()[:1000])
    elif how == "an image pipeline":
        index = json.loads((folder / "model_index.json").read_text())
        (folder / "model_index.json").write_text(json.dumps({**index, "_class_name": "StableDiffusionPipeline"}))


@pytest.mark.parametrize("how, fragments", [
    ("no unet/", ["no unet/", "model_index.json lists it", "copy the whole checkpoint folder"]),
    ("unet without weights", ["unet/ has no weights"]),
    ("tokenizer without vocabulary", ["tokenizer/ has no vocabulary"]),
    ("weights left as a Git LFS pointer", ["vae/diffusion_pytorch_model.safetensors", "git lfs pull"]),
    ("truncated text encoder weights", ["text_encoder", "damaged or incomplete"]),
    ("an image pipeline", ["StableDiffusionPipeline", "not a text-to-video pipeline"]),
])
def test_broken_folders_are_refused_in_one_line_naming_the_part(folders, tmp_path, how, fragments):
    folder = tmp_path / "copy"
    shutil.copytree(folders["TextToVideoSDPipeline"], folder)
    _break(folder, how)
    with pytest.raises(InputError) as caught:
        DiffusersVideoGenerator(folder)
    message = str(caught.value)
    assert "\n" not in message and str(folder) in message
    for fragment in fragments:
        assert fragment in message, message


def test_missing_and_foreign_folders_are_refused(tmp_path):
    for folder, fragment in ((tmp_path / "nowhere", "no such folder"), (tmp_path, "no model_index.json"),
                             (BUNDLED, "LatentConsistencyModelPipeline")):
        with pytest.raises(InputError, match=fragment) as caught:
            DiffusersVideoGenerator(folder)
        assert "\n" not in str(caught.value)


def test_every_output_layout_gives_the_same_uint8_frames():
    from PIL import Image

    rng = np.random.default_rng(0)
    clip = rng.random((3, 8, 10, 3), dtype=np.float32)  # [F, H, W, C] in [0, 1]
    expected = to_uint8_frames(clip[None])  # output_type="np": [B, F, H, W, C]
    assert [f.shape for f in expected] == [(8, 10, 3)] * 3 and expected[0].dtype == np.uint8
    pil = [[Image.fromarray(f) for f in expected]]  # output_type="pil": a list of clips
    tensor = torch.from_numpy(clip).permute(0, 3, 1, 2)[None]  # output_type="pt": [B, F, C, H, W]
    for layout in (pil, pil[0], tensor, clip):
        assert all(np.array_equal(a, b) for a, b in zip(to_uint8_frames(layout), expected, strict=True))


def test_frame_counts_match_the_vae_time_compression():
    class Wan:  # time compressed 4x: k * 4 + 1 frames, otherwise diffusers rounds down
        vae_scale_factor_temporal = 4

    assert [frames_to_request(Wan(), n) for n in (1, 4, 5, 6)] == [1, 5, 5, 9]
    assert frames_to_request(object(), 6) == 6
