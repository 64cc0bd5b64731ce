"""The procedural captioned data: determinism, coverage of the vocabularies, captions that say what the
pixels show, motions that move the shape the way they are named, and held-out prompts never trained on."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import numpy as np
import pytest

from neuralframe.errors import InputError
from neuralframe.generate.data import (
    BACKGROUNDS,
    COLOURS,
    MOTIONS,
    PHOTOS,
    POSITIONS,
    SHAPES,
    SIZES,
    TEXTURES,
    HoldOut,
    ShapesConfig,
    ShapesGenerator,
)
from neuralframe.generate.data.attributes import shade


@pytest.fixture(scope="module")
def gen():
    return ShapesGenerator(ShapesConfig(size=64))


def _digest(s) -> str:
    return hashlib.sha256(s.pixels.tobytes() + s.caption.encode()).hexdigest()


def test_same_seed_same_pixels_and_caption(gen):
    other = ShapesGenerator(ShapesConfig(size=64))
    for seed in range(12):
        a, b = gen.image(seed), other.image(seed)
        assert a.caption == b.caption and a.attributes == b.attributes
        np.testing.assert_array_equal(a.pixels, b.pixels)
        np.testing.assert_array_equal(gen.video(seed).pixels, other.video(seed).pixels)
    assert len({_digest(gen.image(seed)) for seed in range(12)}) == 12


def test_same_seed_same_pixels_in_another_process(gen):
    # covers every background kind, photographs included
    seeds = list(range(8))
    assert {gen.image(s).attributes.background for s in seeds} == set(BACKGROUNDS)
    code = (
        "import hashlib, json\nfrom neuralframe.generate.data import ShapesConfig, ShapesGenerator\n"
        "g = ShapesGenerator(ShapesConfig(size=64))\n"
        f"print(json.dumps([hashlib.sha256(g.image(s).pixels.tobytes() + g.image(s).caption.encode()).hexdigest()"
        f" for s in {seeds}]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == [_digest(gen.image(s)) for s in seeds]


def test_every_value_of_every_attribute_appears(gen):
    stills = [gen.image(seed).attributes for seed in range(300)]
    videos = [gen.attributes(seed, video=True) for seed in range(300)]
    assert {a.shape for a in stills} == set(SHAPES)
    assert {a.colour for a in stills} == set(COLOURS)
    assert {a.size for a in stills} == set(SIZES)
    assert {a.position for a in stills} == set(POSITIONS)
    assert {a.texture for a in stills} == set(TEXTURES)
    assert {a.background for a in stills} == set(BACKGROUNDS)
    assert {a.photo for a in stills} - {None} == set(PHOTOS)
    assert {a.motion for a in videos} == set(MOTIONS)
    assert all(a.motion is None for a in stills)
    assert len(SHAPES) >= 5 and len(COLOURS) >= 8


def test_captions_name_the_attributes(gen):
    for seed in range(150):
        for s in (gen.image(seed), gen.video(seed)):
            a, text = s.attributes, s.caption
            words = text.split()
            assert a.shape in words and a.colour in words and a.size in words, text
            if a.texture != "solid":
                assert a.texture in words, text
            if a.background == "photo":
                assert f"a photo of {PHOTOS[a.photo]}" in text, text
            else:
                assert a.background_colour in words and {"plain": "plain", "gradient": "gradient", "noise": "noise"}[
                    a.background
                ] in words, text
            if a.motion is None:
                assert POSITIONS[a.position][2] in text, text
            elif a.motion in ("left", "right", "up", "down"):
                assert f"moving {a.motion} from the {a.position}" in text, text
            else:
                assert {"rotate": "rotating", "grow": "growing", "bounce": "bouncing"}[a.motion] in words, text
    example = gen.video(0).caption
    assert example[0].islower() and "  " not in example


def _rgb(name: str) -> np.ndarray:
    return np.asarray(COLOURS[name], np.int32)


def test_solid_shape_pixels_have_the_named_colour():
    gen = ShapesGenerator(ShapesConfig(size=64, sizes=("large",), textures=("solid",), backgrounds=("plain",)))
    seen = set()
    for seed in range(80):
        s = gen.image(seed)
        a, px = s.attributes, s.pixels.astype(np.int32)
        seen.add(a.shape)
        cx, cy = np.round(s.centres[0]).astype(int)
        if a.shape != "ring":  # a ring's centre is its hole
            assert np.abs(px[cy, cx] - _rgb(a.colour)).max() <= 1, (a, px[cy, cx])
        inside, outside = s.mask > 0.999, s.mask < 0.001
        assert inside.sum() > 100
        assert np.abs(px[inside] - _rgb(a.colour)).max() <= 1
        assert np.abs(px[outside] - _rgb(a.background_colour)).max() <= 1
    assert seen == set(SHAPES)


def test_textured_shape_mixes_its_colour_and_its_shade():
    gen = ShapesGenerator(ShapesConfig(size=64, sizes=("large",), textures=("striped", "dotted", "checkered")))
    for seed in range(30):
        s = gen.image(seed)
        c, d = _rgb(s.attributes.colour).astype(np.float32), shade(COLOURS[s.attributes.colour])
        px = s.pixels[s.mask > 0.999].astype(np.float32)  # [P, 3]
        t = np.clip(((px - c) @ (d - c)) / ((d - c) @ (d - c)), 0, 1)
        off_line = np.linalg.norm(px - (c + t[:, None] * (d - c)), axis=1)
        assert off_line.max() < 2.0
        assert (t < 0.05).mean() > 0.2 and (t > 0.95).mean() > 0.1  # both colours really show


def test_edges_are_antialiased_and_areas_are_exact():
    gen = ShapesGenerator(ShapesConfig(size=128, shapes=("circle", "square"), textures=("solid",)))
    for seed in range(10):
        s = gen.image(seed)
        r = float(s.radii[0])
        area = np.pi * r * r if s.attributes.shape == "circle" else (2 * 0.78 * r) ** 2
        assert abs(s.mask.sum() - area) / area < 0.01
        edge = (s.mask > 0.05) & (s.mask < 0.95)
        assert edge.sum() > 2 * r  # a soft edge all around, not a hard 0/1 boundary


def test_drawing_inside_the_bounding_square_loses_nothing():
    # the generator draws each shape only inside 1.2 radii of its centre: the whole-image coverage agrees
    from neuralframe.generate.data.raster import shape_layer

    gen = ShapesGenerator(ShapesConfig(size=64, sizes=("large",)))
    xs = np.arange(64, dtype=np.float32) + 0.5
    rgb = np.ones(3, np.float32)
    for shape in SHAPES:
        for angle in (0.0, 0.4, 1.0):
            alpha, _ = shape_layer(shape, "solid", rgb, rgb, xs, xs, (32.0, 32.0), 16.0, angle)
            x0, x1 = gen._span(32.0, 16.0)
            inside = np.zeros_like(alpha)
            inside[x0:x1, x0:x1] = alpha[x0:x1, x0:x1]
            assert alpha.sum() > 100 and np.abs(alpha - inside).max() == 0, shape


def _centroid_and_area(frame: np.ndarray, background: np.ndarray) -> tuple[np.ndarray, float]:
    diff = np.abs(frame.astype(np.int32) - background).sum(-1) > 30
    ys, xs = np.nonzero(diff)
    return np.array([xs.mean(), ys.mean()]), float(diff.sum())


@pytest.mark.parametrize("motion", ["left", "right", "up", "down", "grow", "bounce"])
def test_motion_moves_the_shape_as_named(motion):
    gen = ShapesGenerator(
        ShapesConfig(size=64, frames=8, motions=(motion,), backgrounds=("plain",), textures=("solid",))
    )
    for seed in range(4):
        v = gen.video(seed)
        assert v.pixels.shape == (8, 64, 64, 3) and v.attributes.motion == motion
        bg = _rgb(v.attributes.background_colour)
        track = [_centroid_and_area(f, bg) for f in v.pixels]
        xy = np.array([c for c, _ in track])  # [T, 2]
        area = np.array([a for _, a in track])
        dx, dy = np.diff(xy[:, 0]), np.diff(xy[:, 1])
        if motion == "left":
            assert (dx < 0).all() and xy[0, 0] - xy[-1, 0] > 10 and np.abs(dy).max() < 0.5
        elif motion == "right":
            assert (dx > 0).all() and xy[-1, 0] - xy[0, 0] > 10 and np.abs(dy).max() < 0.5
        elif motion == "up":  # image y grows downwards
            assert (dy < 0).all() and xy[0, 1] - xy[-1, 1] > 10 and np.abs(dx).max() < 0.5
        elif motion == "down":
            assert (dy > 0).all() and xy[-1, 1] - xy[0, 1] > 10 and np.abs(dx).max() < 0.5
        elif motion == "grow":
            assert (np.diff(area) > 0).all() and area[-1] > 3 * area[0]
        elif motion == "bounce":
            assert xy[:, 1].min() < xy[0, 1] - 8 and abs(xy[-1, 1] - xy[0, 1]) < 1.0


def test_rotate_turns_the_shape_in_place():
    gen = ShapesGenerator(ShapesConfig(size=64, motions=("rotate",), shapes=("square", "triangle", "star")))
    for seed in range(6):
        v = gen.video(seed)
        assert abs(float(v.angles[-1] - v.angles[0])) > np.radians(100)
        assert np.abs(v.centres - v.centres[0]).max() == 0
        changed = np.abs(np.diff(v.mask, axis=0)).reshape(len(v.mask) - 1, -1).max(1)  # [T - 1]
        assert (changed > 0.5).all()  # every frame turns visibly
        assert np.abs(v.mask[0] - v.mask[-1]).max() > 0.5  # and the last frame is not the first


def test_heldout_prompts_never_appear_in_training(gen):
    train = [gen.image(seed, "train") for seed in range(200)]
    held = [gen.image(seed, "eval") for seed in range(200)]
    rule = gen.config.holdout
    assert not any(rule.is_heldout(s.attributes) for s in train)
    assert all(rule.is_heldout(s.attributes) for s in held)
    assert not {rule.key(s.attributes) for s in train} & {rule.key(s.attributes) for s in held}
    assert not {s.caption for s in train} & {s.caption for s in held}
    # the rule holds out roughly its fraction of all combinations
    drawn = [gen.attributes(seed, "all") for seed in range(2000)]
    assert 0.06 < np.mean([rule.is_heldout(a) for a in drawn]) < 0.14


def test_compositional_holdout_keeps_whole_pairs_out():
    gen = ShapesGenerator(ShapesConfig(size=32, holdout=HoldOut(fraction=0.2, fields=("shape", "colour"))))
    train = {(a.shape, a.colour) for a in (gen.attributes(s, "train") for s in range(400))}
    held = {(a.shape, a.colour) for a in (gen.attributes(s, "eval") for s in range(400))}
    assert held and train and not train & held


def test_bad_config_is_a_clear_error(gen):
    with pytest.raises(InputError, match="shapes"):
        ShapesConfig(shapes=("hexagon",))
    with pytest.raises(InputError, match="split"):
        gen.image(0, split="test")
    with pytest.raises(InputError, match="non-negative"):
        gen.image(-1)
    with pytest.raises(InputError, match="fraction"):
        HoldOut(fraction=1.0)


def test_photo_backgrounds_are_real_photographs():
    gen = ShapesGenerator(ShapesConfig(size=64, backgrounds=("photo",), photos=("chelsea",), sizes=("small",)))
    s = gen.image(0)
    assert s.attributes.photo == "chelsea" and "a photo of a cat" in s.caption
    background = s.pixels[s.mask < 0.001].astype(np.float32)
    assert background.std(0).mean() > 10  # texture, not a flat colour
    assert len(np.unique(background.reshape(-1, 3), axis=0)) > 500


def test_contact_sheet_tiles_the_samples():
    from neuralframe.generate.data.preview import contact_sheet

    gen = ShapesGenerator(ShapesConfig(size=32, frames=4))
    sheet, samples = contact_sheet(gen, range(10), columns=4)
    assert sheet.shape == (3 * 32, 4 * 32, 3) and sheet.dtype == np.uint8
    np.testing.assert_array_equal(sheet[32:64, 32:64], samples[5].pixels)
    strip, videos = contact_sheet(gen, range(2), video=True)
    assert strip.shape == (2 * 32, 4 * 32, 3)
    np.testing.assert_array_equal(strip[32:, 96:], videos[1].pixels[3])
