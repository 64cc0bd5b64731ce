"""Matting stages: pixels of composites with a known alpha, the real path on a photo, the two-thread form,
the engines a stage runs on."""

import pytest
import torch

from neuralframe.errors import InputError
from neuralframe.matting.backgrounds import AlphaView, parse_background
from neuralframe.matting.matters import MatteSettings
from neuralframe.matting.stages import MatteStage, matte_stages
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


def _stage(background, h=48, w=64):
    stage = MatteStage(background)
    stage.setup(StreamInfo(width=w, height=h, fps=30.0))
    stage.matter = _KnownAlpha()
    return stage


def _frame(h=48, w=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return Frame(image=torch.randint(0, 256, (h, w, 3), dtype=torch.uint8, generator=g), index=0, timestamp=0.0)


def test_replace_colour_keeps_the_person_and_paints_the_rest():
    frame = _frame()
    out = _stage(parse_background("#102030")).process(frame)
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
    out = _stage(parse_background(str(path))).process(_frame())
    assert (out.image[:, 32:] == torch.tensor([255, 0, 0], dtype=torch.uint8)).all()


def test_blur_smooths_the_background_only():
    frame = _frame()
    out = _stage(parse_background("blur:12")).process(frame)
    assert torch.equal(out.image[:, :32], frame.image[:, :32])
    background = out.image[:, 40:].float()
    assert background.std() < 0.3 * frame.image[:, 40:].float().std()  # noise averaged away
    assert abs(background.mean() - frame.image.float().mean()) < 12  # the same brightness


def test_matte_outputs_the_alpha_as_grey():
    out = _stage(AlphaView()).process(_frame())
    assert (out.image[:, :32] == 255).all() and (out.image[:, 32:] == 0).all()


def test_real_photo_background_is_replaced(astronaut):
    stage = MatteStage(parse_background("#00ff00"))
    stage.setup(StreamInfo(width=512, height=512, fps=30.0))
    out = stage.process(Frame(image=astronaut, index=0, timestamp=0.0)).image
    corner = out[10:60, 450:500].float().mean((0, 1))  # background, top right
    assert corner[1] > 230 and corner[0] < 25 and corner[2] < 25
    face = (out[200:260, 200:260].int() - astronaut[200:260, 200:260].int()).abs().float().mean()
    assert face < 3  # her face is untouched
    stage.teardown()


def test_split_stages_give_the_same_frames(astronaut):
    one = MatteStage(parse_background("blur"))
    two = matte_stages(parse_background("blur"))
    info = StreamInfo(width=512, height=512, fps=30.0)
    one.setup(info)
    for s in two:
        s.setup(info)
    for i in range(2):
        frame = Frame(image=astronaut, index=i, timestamp=i / 30)
        a = one.process(frame).image
        b = two[1].process(two[0].process(frame)).image
        assert (a.int() - b.int()).abs().max() <= 1


def test_a_frame_that_is_not_rgb_is_one_clear_error():
    stage = _stage(AlphaView())
    with pytest.raises(InputError, match=r"frame 0 is \[48, 64\], expected \[H, W, 3\]"):
        stage.process(Frame(image=torch.zeros((48, 64), dtype=torch.uint8), index=0, timestamp=0.0))


def test_split_stages_say_which_stage_is_missing():
    composite = matte_stages(parse_background("blur"))[1]
    composite.setup(StreamInfo(width=64, height=48, fps=30.0))
    with pytest.raises(InputError, match="a segment stage must come first"):
        composite.process(_frame())


def test_engines_come_from_the_app_for_other_backends():
    """Without engines a stage runs torch; another backend's engines are built by the app and handed in."""
    from neuralframe.export.matting import ExportedEngines, matting_engines
    from neuralframe.matting.engines import TorchEngines

    assert matting_engines("torch", "cpu") == TorchEngines("cpu")
    assert matting_engines("onnx") == ExportedEngines("onnx")
    stage = MatteStage(AlphaView(), MatteSettings(backend="onnx"))
    with pytest.raises(InputError, match="needs its engines from the app"):
        stage.setup(StreamInfo(width=64, height=48, fps=30.0))
