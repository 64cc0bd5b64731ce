"""Model cards: the sampling defaults a model folder's card.json sets, read once as frozen dataclasses."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from neuralframe.errors import InputError
from neuralframe.generate.models.card import ImageDefaults, VideoCard, VideoDefaults

ROOT = Path(__file__).resolve().parents[2]
IMAGE = ROOT / "assets" / "models" / "tiny-shapes"
VIDEO = ROOT / "assets" / "models" / "tiny-shapes-video"


def test_the_bundled_cards_defaults_are_what_card_json_says():
    image = json.loads((IMAGE / "card.json").read_text())["defaults"]
    assert ImageDefaults.read(IMAGE) == ImageDefaults(steps=image["steps"], guidance_scale=image["guidance_scale"])
    card = json.loads((VIDEO / "card.json").read_text())
    video = VideoCard.read(VIDEO)
    assert video.base == (VIDEO / card["base"]).resolve() == IMAGE.resolve()
    assert video.fps == card["fps"]
    assert {k: getattr(video.defaults, k) for k in card["defaults"]} == card["defaults"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        video.defaults.window = 1


def test_a_folder_without_a_card_gets_the_plain_defaults(tmp_path):
    assert ImageDefaults.read(tmp_path) == ImageDefaults()
    card = VideoCard.read(tmp_path)
    assert card.defaults == VideoDefaults() and card.fps == 8.0
    assert card.base == (tmp_path / "../tiny-shapes").resolve()


def test_a_damaged_card_is_one_line(tmp_path):
    (tmp_path / "card.json").write_text("{not json")
    with pytest.raises(InputError, match="card.json: unreadable .*damaged"):
        ImageDefaults.read(tmp_path)
