"""Streaming diffusion as users run it: `neuralframe restyle` and `neuralframe stream --effect diffuse` on a
small random-weights pipeline folder (the bundled architecture), prompt schedules, and bad input."""

from __future__ import annotations

import json

import av
import numpy as np
import pytest
import torch
from PIL import Image

from cli_helpers import nf, one_clear_line
from neuralframe.errors import InputError
from neuralframe.generate.diffusion.diffuse import DiffuseSettings, DiffuseStage, parse_schedule, work_size
from neuralframe.streaming.frame import Frame, StreamInfo
from test_stream import _pipe

PROMPT = "a large red star in the centre over a plain blue background"


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("diffuse") / "model"
    _pipe().save_pretrained(folder)
    return folder


def _clip(n: int = 6) -> list[np.ndarray]:
    frames = []
    for i in range(n):
        img = np.tile(np.linspace(30, 220, 64, dtype=np.float32)[None, :, None], (48, 1, 3))
        img[14:34, 8 + 2 * i:28 + 2 * i] = (240, 200, 40)
        frames.append(img.astype(np.uint8))
    return frames


@pytest.fixture()
def folder(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    for i, f in enumerate(_clip()):
        Image.fromarray(f).save(src / f"{i:03d}.png")
    return src


def test_prompt_schedules():
    assert parse_schedule(["a cat"]) == [(0, "a cat")]
    assert parse_schedule(["b:48", "a"]) == [(0, "a"), (48, "b")]
    assert parse_schedule(["ratio 16:9 poster:10", "x"]) == [(0, "x"), (10, "ratio 16:9 poster")]
    assert parse_schedule(["time 10:30 pm"]) == [(0, "time 10:30 pm")]  # ": pm" is text, not a frame
    for bad, words in ((["a:5"], "no prompt for frame 0"), (["a", "b:0"], "same frame"), ([":3", "a"], "no text"),
                       (["a", "b:-2"], "0 or more"), ([], "give a prompt")):
        with pytest.raises(InputError, match=words):
            parse_schedule(bad)


def test_work_size_keeps_the_aspect():
    assert work_size(720, 1280, 64) == (64, 112)  # the shorter side at the model's native size
    assert work_size(48, 64, 64) == (64, 88)
    assert work_size(512, 512, 512) == (512, 512)


def _run_stage(model, prompts, frames):
    stage = DiffuseStage(DiffuseSettings(prompts=tuple(prompts), model=str(model), size=(48, 64)))
    stage.setup(StreamInfo(width=64, height=48, fps=30.0))
    try:
        return [stage.process(Frame(image=torch.from_numpy(f), index=i, timestamp=i / 30)).image
                for i, f in enumerate(frames)], stage
    finally:
        stage.teardown()


def test_the_stage_restyles_deterministically_and_switches_prompts(model):
    frames = _clip(6)
    one, _ = _run_stage(model, [PROMPT], frames)
    again, _ = _run_stage(model, [PROMPT], frames)
    switched, stage = _run_stage(model, [PROMPT, "a small green ring at the top:3"], frames)
    assert all(torch.equal(a, b) for a, b in zip(one, again))
    assert one[0].shape == (48, 64, 3) and (one[3].float() - torch.from_numpy(frames[3]).float()).abs().mean() > 2
    assert all(torch.equal(a, b) for a, b in zip(one[:3], switched[:3]))  # before the switch: the same
    assert all((a.float() - b.float()).abs().mean() > 0.5 for a, b in zip(one[3:], switched[3:]))
    assert stage.summary()["prompt_switches"] == 1 and stage.engine.prompt.startswith("a small green ring")


def _frames_in(path) -> int:
    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(video=0))


def test_restyle_writes_every_frame(model, folder, tmp_path):
    out = tmp_path / "out.mp4"
    r = nf("restyle", str(folder), "-o", str(out), "--prompt", PROMPT, "--prompt", "a large blue heart:4",
           "--model", str(model), "--size", "64x48", "--fps", "12", "--json")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["frames_out"] == 6 and report["diffuse"]["prompt_switches"] == 1
    assert report["diffuse"]["work_size"] == "64x48"
    assert _frames_in(out) == 6
    assert not list(tmp_path.glob(".*partial*"))


def test_stream_effect_diffuse_to_a_folder(model, folder, tmp_path):
    out = tmp_path / "frames"
    r = nf("stream", "--source", str(folder), "--effect", "diffuse", "--prompt", PROMPT, "--model", str(model),
           "--cfg", "embedded", "--bank", "-o", str(out), "--fps", "12", "--json")
    assert r.returncode == 0, r.stderr
    pngs = sorted(out.glob("*.png"))
    assert len(pngs) == 6
    first = np.asarray(Image.open(pngs[0]))
    assert first.shape == (48, 64, 3)
    assert np.abs(first.astype(float) - _clip(1)[0]).mean() > 2  # restyled, not passed through


def test_bad_input_is_one_clear_line(model, folder, tmp_path):
    out = tmp_path / "x.mp4"
    one_clear_line(nf("restyle", str(tmp_path / "missing.mp4"), "-o", str(out), "-p", PROMPT, "--model", str(model)),
                   "missing.mp4")
    one_clear_line(nf("restyle", str(folder), "-o", str(out), "-p", "a:5", "--model", str(model)),
                   "no prompt for frame 0")
    one_clear_line(nf("restyle", str(folder), "-o", str(out), "-p", PROMPT, "--model", str(tmp_path / "none")),
                   "no such model folder")
    one_clear_line(nf("restyle", str(folder), "-o", str(out), "-p", PROMPT, "--model", str(model), "--cfg", "half"),
                   "--cfg 'half'")
    one_clear_line(nf("restyle", str(folder), "-o", str(out), "-p", PROMPT, "--model", str(model), "--steps", "3,x"),
                   "--steps")
    one_clear_line(nf("restyle", "webcam", "-o", str(out), "-p", PROMPT, "--model", str(model)), "stream --effect")
    one_clear_line(nf("stream", "--source", str(folder), "--effect", "diffuse", "--model", str(model)), "--prompt")
    one_clear_line(nf("stream", "--source", str(folder), "--effect", "warm", "--prompt", PROMPT), "--effect diffuse")
    assert not out.exists() and not list(tmp_path.glob(".*partial*"))


def test_restyle_on_onnxruntime_matches_torch(model, folder, tmp_path):
    import os

    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    outs = {}
    for backend in ("torch", "onnxruntime"):
        out = tmp_path / backend
        r = nf("restyle", str(folder), "-o", str(out), "-p", PROMPT, "--model", str(model), "--size", "64x48",
               "--backend", backend, "--json", env=env)
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["diffuse"]["backend"] == backend
        outs[backend] = np.stack([np.asarray(Image.open(p)).astype(float) for p in sorted(out.glob("*.png"))])
    assert outs["torch"].shape == outs["onnxruntime"].shape == (6, 48, 64, 3)
    assert np.abs(outs["torch"] - outs["onnxruntime"]).mean() < 1.0
    one_clear_line(nf("restyle", str(folder), "-o", str(tmp_path / "b.mp4"), "-p", PROMPT, "--model", str(model),
                      "--backend", "onnxruntime", "--bank"), "feature bank runs in torch")
