"""Backgrounds: what each spec parses to, the pixels each puts behind the person, one-line errors."""

import pytest
import torch

from neuralframe.errors import InputError
from neuralframe.matting.backgrounds import (AlphaView, BlurBackground, ColorBackground, ImageBackground,
                                             parse_background, parse_color)
from neuralframe.streaming.frame import Frame


def test_specs_pick_the_background(tmp_path):
    import cv2
    import numpy as np

    image = tmp_path / "bg.png"
    cv2.imwrite(str(image), np.zeros((8, 8, 3), np.uint8))
    assert isinstance(parse_background("#00b140"), ColorBackground)
    assert parse_color("#00b140") == (0, 177, 64)
    assert isinstance(parse_background(str(image)), ImageBackground)
    assert parse_background("blur").strength == 24.0 and parse_background("blur:").strength == 24.0
    assert isinstance(parse_background("blur:8"), BlurBackground) and parse_background("blur:8").strength == 8.0


def test_composite_over_a_colour_and_the_alpha_view():
    h, w = 4, 6
    foreground = torch.full((h, w, 3), 200, dtype=torch.uint8)
    alpha = torch.zeros(h, w)
    alpha[:, :3] = 1.0
    frame = Frame(image=foreground, index=0, timestamp=0.0)
    colour = parse_background("#102030")
    colour.setup(h, w)
    out = colour.composite(foreground, alpha, frame)
    assert (out[:, :3] == 200).all() and (out[:, 3:] == torch.tensor([16, 32, 48], dtype=torch.uint8)).all()
    grey = AlphaView().composite(foreground, alpha, frame)
    assert grey.shape == (h, w, 3) and (grey[:, :3] == 255).all() and (grey[:, 3:] == 0).all()


@pytest.mark.parametrize("spec,message", [
    ("#12345", "colour '#12345' is not #RRGGBB"),
    ("#gg0000", "is not #RRGGBB"),
    ("/nonexistent/bg.jpg", "does not exist"),
    ("", "replace needs a background"),
    ("blur:soft", "blur strength 'soft' is not a number"),
    ("blur:-3", "must be positive, got -3"),
])
def test_background_errors(spec, message):
    with pytest.raises(InputError, match=message):
        parse_background(spec)


def test_a_folder_or_another_file_is_not_a_background(tmp_path):
    with pytest.raises(InputError, match="is a folder"):
        parse_background(str(tmp_path))
    other = tmp_path / "notes.txt"
    other.write_text("x")
    with pytest.raises(InputError, match="is neither an image"):
        parse_background(str(other))
