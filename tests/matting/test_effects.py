"""Matting effects: pixels of composites with a known alpha, the real path on a photo, errors."""

import pytest
import torch

from neuralframe.errors import InputError
from neuralframe.matting import effects
from neuralframe.streaming.frame import Frame, StreamInfo


class _KnownAlpha:
    """Stands in for the segmenter + refiner: left half person (1), right half background (0)."""

    timings = {"segment": 0.0, "refine": 0.0}
    foreground = None  # composite the frame itself, as the segmenter path does

    def __call__(self, image):
        a = torch.zeros(image.shape[:2])
        a[:, : image.shape[1] // 2] = 1.0
        return a

    def close(self):
        pass


def _stage(spec, h=48, w=64):
    stage = effects.effect_stage(spec)
    stage.setup(StreamInfo(width=w, height=h, fps=30.0))
    stage.matter = _KnownAlpha()
    return stage


def _frame(h=48, w=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return Frame(image=torch.randint(0, 256, (h, w, 3), dtype=torch.uint8, generator=g), index=0, timestamp=0.0)


def test_replace_colour_keeps_the_person_and_paints_the_rest():
    frame = _frame()
    out = _stage("replace:#102030").process(frame)
    assert torch.equal(out.image[:, :32], frame.image[:, :32])
    assert (out.image[:, 32:] == torch.tensor([16, 32, 48], dtype=torch.uint8)).all()
    assert out.metadata["alpha"].shape == (48, 64)


def test_replace_image_covers_the_frame(tmp_path):
    import cv2
    import numpy as np

    path = tmp_path / "bg.png"
    bg = np.zeros((20, 40, 3), np.uint8)
    bg[:] = (0, 0, 255)  # BGR: red
    cv2.imwrite(str(path), bg)
    out = _stage(f"replace:{path}").process(_frame())
    assert (out.image[:, 32:] == torch.tensor([255, 0, 0], dtype=torch.uint8)).all()


def test_blur_smooths_the_background_only():
    frame = _frame()
    out = _stage("blur:12").process(frame)
    assert torch.equal(out.image[:, :32], frame.image[:, :32])
    background = out.image[:, 40:].float()
    assert background.std() < 0.3 * frame.image[:, 40:].float().std()  # noise averaged away
    assert abs(background.mean() - frame.image.float().mean()) < 12  # the same brightness


def test_matte_outputs_the_alpha_as_grey():
    out = _stage("matte").process(_frame())
    assert (out.image[:, :32] == 255).all() and (out.image[:, 32:] == 0).all()


def test_real_photo_background_is_replaced(astronaut):
    stage = effects.effect_stage("replace:#00ff00")
    stage.setup(StreamInfo(width=512, height=512, fps=30.0))
    out = stage.process(Frame(image=astronaut, index=0, timestamp=0.0)).image
    corner = out[10:60, 450:500].float().mean((0, 1))  # background, top right
    assert corner[1] > 230 and corner[0] < 25 and corner[2] < 25
    face = (out[200:260, 200:260].int() - astronaut[200:260, 200:260].int()).abs().float().mean()
    assert face < 3  # her face is untouched
    stage.teardown()


def test_split_stages_give_the_same_frames(astronaut):
    one = effects.effect_stage("blur")
    two = effects.effect_stages("blur")
    info = StreamInfo(width=512, height=512, fps=30.0)
    one.setup(info)
    for s in two:
        s.setup(info)
    for i in range(2):
        frame = Frame(image=astronaut, index=i, timestamp=i / 30)
        a = one.process(frame).image
        b = two[1].process(two[0].process(frame)).image
        assert (a.int() - b.int()).abs().max() <= 1


@pytest.mark.parametrize("spec,message", [
    ("sparkle", "unknown matting effect 'sparkle'"),
    ("replace", "needs a background"),
    ("replace:#12345", "is not #RRGGBB"),
    ("replace:#gg0000", "is not #RRGGBB"),
    ("replace:/nonexistent/bg.jpg", "does not exist"),
    ("blur:soft", "is not a number"),
    ("blur:-3", "must be positive"),
    ("matte:1", "takes no argument"),
])
def test_effect_errors(spec, message):
    with pytest.raises(InputError, match=message):
        effects.effect_stage(spec)


def test_is_matting_effect():
    assert effects.is_matting_effect("blur:20") and effects.is_matting_effect("replace:#000000")
    assert not effects.is_matting_effect("warm")
