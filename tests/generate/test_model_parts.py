"""A diffusers folder whose part's config.json disagrees with its weights is one line naming the part and the
first key that differs (`generate/models/parts.py`), before anything loads: diffusers raised a screenful of
size mismatches (exit 1), and transformers silently initialised the layers it did not find."""

from __future__ import annotations

import json
import os

import pytest

from cli_helpers import nf, one_clear_line
from neuralframe.errors import InputError
from neuralframe.generate.models.folder import BUNDLED, check_pipeline_folder
from neuralframe.generate.models.parts import disagreement

pytestmark = pytest.mark.skipif(not (BUNDLED / "model_index.json").is_file(), reason="no bundled tiny-shapes model")


def _copy_with(tmp_path, part: str, **changes):
    """The bundled folder, its weights linked (not copied), with `part`/config.json edited."""
    folder = tmp_path / "model"
    for src in BUNDLED.rglob("*"):
        dst = folder / src.relative_to(BUNDLED)
        if src.is_dir():
            dst.mkdir(parents=True, exist_ok=True)
        elif src.name == "config.json" or src.suffix == ".json":
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.write_text(src.read_text())
        else:
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(src, dst)
    config = folder / part / "config.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), **changes}, indent=2))
    return folder


def test_the_bundled_folder_agrees_with_itself():
    for part in ("unet", "vae", "text_encoder", "vae_tiny"):
        assert disagreement(BUNDLED / part, strict=True) is None, part
    check_pipeline_folder(BUNDLED)


@pytest.mark.parametrize("part,changes,fragments", [
    ("unet", {"cross_attention_dim": 32}, ["'down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.weight' is "
                                           "[64, 64] in the weights but [64, 32] by the config"]),
    ("vae", {"latent_channels": 8}, ["' is ", "in the weights but", "by the config"]),
    # transformers would load these with the missing layer freshly initialised, and say nothing
    ("text_encoder", {"num_hidden_layers": 4}, ["the weights lack '", "encoder.layers.3.", "(and 15 more)"]),
    ("text_encoder", {"num_hidden_layers": 2}, ["the weights hold '", "encoder.layers.2.", "(and 15 more)"]),
    ("vae_tiny", {"latent_channels": 8}, ["in the weights but", "by the config"]),
])
def test_a_part_that_disagrees_with_its_weights_is_named(tmp_path, part, changes, fragments):
    folder = _copy_with(tmp_path, part, **changes)
    with pytest.raises(InputError) as error:
        check_pipeline_folder(folder)
    message = str(error.value)
    assert f"the '{part}' part's config.json disagrees with its weights" in message
    for fragment in fragments:
        assert fragment in message, message


def test_a_config_that_cannot_build_its_model_is_named(tmp_path):
    folder = _copy_with(tmp_path, "unet", down_block_types=["CrossAttnDownBlock2D"])  # one block, two widths
    with pytest.raises(InputError, match="the 'unet' part's config.json cannot build a UNet2DConditionModel"):
        check_pipeline_folder(folder)


def test_generate_image_names_the_part_in_one_line(tmp_path):
    folder = _copy_with(tmp_path, "unet", cross_attention_dim=32)
    out = tmp_path / "image.png"
    out.write_bytes(b"the user's earlier image")
    one_clear_line(nf("generate-image", "a large red star", "--model", str(folder), "-o", str(out)),
                   f"{folder}: the 'unet' part's config.json disagrees with its weights",
                   "'down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.weight' is [64, 64]")
    assert out.read_bytes() == b"the user's earlier image"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["image.png", "model"]
