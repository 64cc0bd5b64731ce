"""The hostile-input suite: every command given corrupt, truncated, lying or special inputs, options out of
range, and outputs it cannot or must not write.

Each refused case: exit code 2, at most two lines on stderr, no traceback, nothing new at or beside the
output path, an existing file there byte-identical, no thread left running, and code in a pickled file never
run. Each degenerate but valid case: exit code 0 and an output that opens. The cases run in-process (the
command's `main`), so that the whole suite costs seconds, not an interpreter per case.
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import pytest

import hostile as h
from neuralframe.cli import main

RED = "a large red circle in the centre on a plain white background"


@dataclass(frozen=True)
class Case:
    """One invocation: `argv` with {in} (the built input), {out} (the output folder), {clip}, {scene} and
    {one} (valid inputs); `build(folder, valid)` makes {in}; `existing` puts a file at the output first."""

    id: str
    argv: tuple[str, ...]
    build: Optional[Callable[[Path, dict], Path]] = None
    existing: Optional[str] = None  # an output name (in {out}) that holds a user's file before the run
    ok: bool = False  # degenerate but valid: exit 0, and `check(out)` holds
    check: Optional[Callable[[Path], None]] = field(default=None, compare=False)


# ---- inputs ----

SCENE_FORMATS = ("ply", "compressed.ply", "splat", "spz", "sog", "glb", "gltf")


def _from_valid(name: str, how: Callable[..., Path]) -> Callable[[Path, dict], Path]:
    return lambda folder, valid: how(folder, valid[name])


def _named(how: Callable[..., Path], name: str) -> Callable[[Path, dict], Path]:
    return lambda folder, valid: how(folder, name)


def _link_to(target: str, name: str) -> Callable[[Path, dict], Path]:
    def build(folder: Path, valid: dict) -> Path:
        path = folder / name
        path.symlink_to(target)
        return path
    return build


SCENES: dict[str, Callable[[Path, dict], Path]] = {}
for fmt in SCENE_FORMATS:
    SCENES[f"{fmt}-empty"] = _named(h.empty, f"scene.{fmt}")
    SCENES[f"{fmt}-truncated"] = _from_valid(f"scene.{fmt}", h.truncated)
    SCENES[f"{fmt}-garbage"] = _named(h.garbage, f"scene.{fmt}")
    SCENES[f"{fmt}-a-png"] = _named(h.png_as, f"scene.{fmt}")
SCENES.update({
    "ksplat-empty": _named(h.empty, "scene.ksplat"),
    "ksplat-garbage": _named(h.garbage, "scene.ksplat"),
    "ply-lying-count": _from_valid("scene.ply", h.ply_lying_count),
    "ply-nan": _from_valid("scene.ply", h.ply_nan),
    "splat-ragged": _from_valid("scene.splat", h.splat_ragged),
    "spz-lying-count": _from_valid("scene-v3.spz", h.spz_lying_count),
    "spz-gzip-bomb": _from_valid("scene-v3.spz", h.spz_bomb),
    "sog-lying-count": _from_valid("scene.sog", h.sog_lying_count),
    "sog-zip-bomb": _from_valid("scene.sog", h.sog_zip_bomb),
    "gltf-lying-count": _from_valid("scene.gltf", h.glb_lying_count),
    "folder-named-ply": _named(h.folder_as, "scene.ply"),
    "dev-zero-as-ply": _link_to("/dev/zero", "zero.ply"),
    "fifo-as-ply": lambda folder, valid: _fifo(folder, "pipe.ply"),
    "missing": lambda folder, valid: folder / "nope.ply",
    "unknown-extension": _named(h.garbage, "scene.obj"),
})


def _fifo(folder: Path, name: str) -> Path:
    import os

    path = folder / name
    os.mkfifo(path)
    return path


VIDEOS: dict[str, Callable[[Path, dict], Path]] = {
    "empty-mp4": _named(h.empty, "clip.mp4"),
    "truncated-mp4": _from_valid("clip.mp4", h.truncated),
    "text-as-mp4": _named(h.text_as, "clip.mp4"),
    "garbage-mp4": _named(h.garbage, "clip.mp4"),
    "empty-folder": _named(h.folder_as, "frames"),
    "folder-of-bad-png": lambda folder, valid: _bad_png_folder(folder),
    "dev-zero-as-mp4": _link_to("/dev/zero", "zero.mp4"),
    "fifo-as-mp4": lambda folder, valid: _fifo(folder, "pipe.mp4"),
    "missing": lambda folder, valid: folder / "nope.mp4",
}


def _bad_png_folder(folder: Path) -> Path:
    root = folder / "frames"
    root.mkdir()
    h.garbage(root, "0001.png")
    h.empty(root, "0002.png")
    return root


# ---- the cases ----

SCENE_COMMANDS = {
    "info": ("info", "{in}"),
    "render": ("render", "{in}", "-o", "{out}/o.mp4", "--frames", "2", "--size", "32x24"),
    "convert": ("convert", "{in}", "{out}/o.ply"),
}
VIDEO_COMMANDS = {
    "matte": ("matte", "{in}", "-o", "{out}/o.mp4", "--frames", "2"),
    "stream": ("stream", "--source", "{in}", "--out", "{out}/o.mp4", "--frames", "2"),
    "restyle": ("restyle", "{in}", "-o", "{out}/o.mp4", "--prompt", RED, "--frames", "2"),
}
# a .splat has no header: cut at a record boundary it is a smaller scene, not a damaged one
VALID_SCENES = {"splat-truncated"}
SCENE_CHECKS = {"render": lambda out: _has_frames("o.mp4", 2)(out), "convert": lambda out: _opens_scene("o.ply", 300)(out)}
EXISTING = {"render": "o.mp4", "convert": "o.ply", "matte": "o.mp4", "stream": "o.mp4", "restyle": "o.mp4"}


def _cases() -> list[Case]:
    cases = []
    for command, argv in SCENE_COMMANDS.items():
        for key, build in SCENES.items():
            if key in VALID_SCENES:  # degenerate but valid: the command works on it
                cases.append(Case(f"{command}-scene-{key}", argv, build, ok=True, check=SCENE_CHECKS.get(command)))
            else:
                cases.append(Case(f"{command}-scene-{key}", argv, build, existing=EXISTING.get(command)))
    for command, argv in VIDEO_COMMANDS.items():
        for key, build in VIDEOS.items():
            cases.append(Case(f"{command}-video-{key}", argv, build, existing=EXISTING[command]))
    render_path = ("render", "{scene}", "-o", "{out}/o.mp4", "--frames", "2", "--size", "32x24", "--path", "{in}")
    for kind in ("invalid", "empty-list", "number", "missing-keys", "nan", "negative-size", "huge-size", "binary"):
        cases.append(Case(f"render-cameras-{kind}", render_path, lambda f, v, k=kind: h.camera_json(f, k)))
    for kind in ("missing", "invalid", "no-frames", "missing-image", "bad-matrix"):
        cases.append(Case(f"train-nerf-dataset-{kind}", ("train", "nerf", "{in}", "-o", "{out}/o.safetensors",
                                                          "--steps", "1"), lambda f, v, k=kind: h.nerf_dataset(f, k)))
    for kind in ("empty", "comments", "binary", "missing"):
        cases.append(Case(f"generate-prompts-{kind}", ("generate", "--prompts", "{in}", "-o", "{out}/clips"),
                          lambda f, v, k=kind: h.prompts_file(f, k)))
    cases += _model_cases() + _option_cases() + _output_cases() + _valid_cases()
    return cases


def _model_cases() -> list[Case]:
    cases = []
    for kind in ("empty", "broken-index", "missing-unet", "truncated-unet", "unet-config-disagrees"):
        build = (lambda f, v, k=kind: h.model_folder(f, k))
        cases.append(Case(f"generate-image-model-{kind}", ("generate-image", RED, "--model", "{in}", "-o",
                                                            "{out}/o.png"), build, existing="o.png"))
        cases.append(Case(f"restyle-model-{kind}", ("restyle", "{clip}", "-o", "{out}/o.mp4", "--prompt", RED,
                                                     "--model", "{in}", "--frames", "2"), build))
    cases.append(Case("generate-model-empty", ("generate", RED, "--model", "{in}", "-o", "{out}/o.mp4"),
                      lambda f, v: h.model_folder(f, "empty")))
    cases.append(Case("generate-image-model-missing", ("generate-image", RED, "--model", "{out}/nope", "-o",
                                                        "{out}/o.png")))
    matte = ("matte", "{clip}", "-o", "{out}/o.mp4", "--frames", "2", "--model", "{in}")
    for key, build in {"pickled-code-pth": lambda f, v: h.pickled_code_pth(f),
                       "plain-pickle-pth": lambda f, v: h.pickle_not_torch(f),
                       "empty-pth": _named(h.empty, "rvm.pth"), "truncated-pth": lambda f, v: _truncated_pth(f),
                       "garbage-tflite": _named(h.garbage, "seg.tflite"), "text-tflite": _named(h.text_as, "s.tflite"),
                       "missing-pth": lambda f, v: f / "nope.pth", "unknown-kind": _named(h.garbage, "m.onnx")}.items():
        cases.append(Case(f"matte-model-{key}", matte, build, existing="o.mp4"))
    return cases


def _truncated_pth(folder: Path) -> Path:
    import torch

    path = folder / "rvm.pth"
    torch.save({"w": torch.zeros(1000)}, path)
    path.write_bytes(path.read_bytes()[:300])
    return path


OPTIONS = {
    "render": (("render", "{scene}", "-o", "{out}/o.mp4", "--frames", "2", "--size", "32x24"),
               [("--fps", v) for v in ("0", "-5", "1e9", "nan")]
               + [("--frames", v) for v in ("0", "-1", "1e12", str(10**12))]
               + [("--size", v) for v in ("0x0", "99999x99999", "axb", "200000x200000", "-4x4", "64")]),
    "matte": (("matte", "{clip}", "-o", "{out}/o.mp4", "--frames", "2"),
              [("--fps", "-5"), ("--fps", "nan"), ("--frames", "0"), ("--downsample-ratio", "0"),
               ("--downsample-ratio", "1.5"), ("--downsample-ratio", "nan")]),
    "stream": (("stream", "--source", "pattern", "--out", "{out}/o.mp4", "--frames", "2"),
               [("--fps", "0"), ("--fps", "inf"), ("--size", "99999x99999"), ("--frames", "-3"),
                ("--similarity", "2"), ("--guidance", "nan"), ("--seed", "-1"), ("--device", "tpu")]),
    "generate": (("generate", RED, "-o", "{out}/o.mp4", "--frames", "2"),
                 [("--upscale", "0"), ("--upscale", "1000"), ("--steps", "0"), ("--fps", "nan"), ("--frames", "0"),
                  ("--seed", str(2**40)), ("--fps", "0"), ("--device", "tpu")]),
    "generate-image": (("generate-image", RED, "-o", "{out}/o.png"),
                       [("--guidance", "inf"), ("--steps", "0"), ("--seed", "-5"), ("--steps", "1e9")]),
    "restyle": (("restyle", "{clip}", "-o", "{out}/o.mp4", "--prompt", RED, "--frames", "2"),
                [("--guidance", "nan"), ("--fps", "0"), ("--frames", "0"), ("--seed", "-1"), ("--size", "0x0"),
                 ("--steps", "x,y"), ("--steps", "-3")]),
    "view": (("view", "{scene}"), [("--target-fps", "0"), ("--seconds", "-1"), ("--moving-gaussians", "-5"),
                                   ("--size", "0x0")]),
    "export": (("export", "rvm", "-o", "{out}/x"), [("--opset", "99"), ("--runs", "0"), ("--threads", "0")]),
    "convert": (("convert", "{scene}", "{out}/o.spz"), [("--sh-degree", "7"), ("--max-gaussians", "0"),
                                                         ("--spz-version", "9")]),
    "train-nerf": (("train", "nerf", "{out}", "-o", "{out}/o.safetensors"), [("--steps", "0"), ("--seconds", "nan")]),
    "eval": (("eval", "tiny-shapes"), [("--prompts", "0"), ("--steps", "-2")]),
    "data": (("data", "nerf-synthetic", "{out}/d"), [("--size", "0"), ("--n-train", "-1")]),
    "bench-pipeline": (("bench", "pipeline"), [("--frames", "0"), ("--repeats", "nan")]),
}


def _option_cases() -> list[Case]:
    return [Case(f"{command}-option{name}={value}", (*argv, name, value), existing=EXISTING.get(command))
            for command, (argv, values) in OPTIONS.items() for name, value in values]


def _output_cases() -> list[Case]:
    writers = {
        "render": ("render", "{scene}", "--frames", "2", "--size", "32x24", "-o"),
        "matte": ("matte", "{clip}", "--frames", "2", "-o"),
        "stream": ("stream", "--source", "pattern", "--frames", "2", "--out"),
        "restyle": ("restyle", "{clip}", "--prompt", RED, "--frames", "2", "-o"),
        "generate": ("generate", RED, "--frames", "2", "-o"),
        "generate-image": ("generate-image", RED, "-o"),
        "convert": ("convert", "{scene}"),
    }
    bad = {"unwritable": "/proc/self/o.{ext}", "unowned-extension": "{out}/o.docx",
           "missing-folder": "{out}/nope/o.{ext}", "file-as-folder": "{in}/o.{ext}"}
    cases = []
    for command, argv in writers.items():
        ext = {"generate-image": "png", "convert": "spz"}.get(command, "mp4")
        for key, out in bad.items():
            build = (lambda f, v: h.text_as(f, "afile")) if key == "file-as-folder" else None
            cases.append(Case(f"{command}-output-{key}", (*argv, out.replace("{ext}", ext)), build))
    cases.append(Case("matte-output-is-input", ("matte", "{in}", "-o", "{in}", "--frames", "2"),
                      lambda f, v: _copy(v["clip.mp4"], f / "clip.mp4")))
    cases.append(Case("convert-output-is-input", ("convert", "{in}", "{in}"),
                      lambda f, v: _copy(v["scene.ply"], f / "scene.ply")))
    cases.append(Case("render-png-folder-under-a-file", ("render", "{scene}", "--frames", "2", "--size", "32x24", "-o",
                                                      "{in}/frames"), lambda f, v: h.text_as(f, "afile")))
    return cases


def _copy(source: Path, target: Path) -> Path:
    target.write_bytes(source.read_bytes())
    return target


def _frames(path: Path) -> int:
    import av

    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def _has_frames(name: str, n: int) -> Callable[[Path], None]:
    def check(out: Path) -> None:
        assert _frames(out / name) == n
    return check


def _opens_scene(name: str, n: int) -> Callable[[Path], None]:
    def check(out: Path) -> None:
        from neuralframe.render.splat.formats import load

        assert load(out / name).n == n
    return check


def _valid_cases() -> list[Case]:
    return [
        Case("render-one-gaussian", ("render", "{one}", "-o", "{out}/o.mp4", "--frames", "1", "--size", "16x16"),
             ok=True, check=_has_frames("o.mp4", 1)),
        Case("render-2x2", ("render", "{scene}", "-o", "{out}/o.mp4", "--frames", "2", "--size", "2x2"),
             ok=True, check=_has_frames("o.mp4", 2)),
        Case("render-odd-size", ("render", "{scene}", "-o", "{out}/o.mp4", "--frames", "2", "--size", "31x17"),
             ok=True, check=_has_frames("o.mp4", 2)),
        Case("convert-one-gaussian", ("convert", "{one}", "{out}/o.spz"), ok=True, check=_opens_scene("o.spz", 1)),
        Case("info-one-gaussian", ("info", "{one}"), ok=True),
        Case("stream-one-frame", ("stream", "--source", "pattern", "--size", "32x24", "--frames", "1", "--out",
                                  "{out}/o.mp4"), ok=True, check=_has_frames("o.mp4", 1)),
        Case("matte-one-frame", ("matte", "{clip}", "-o", "{out}/o.mp4", "--frames", "1"), ok=True,
             check=_has_frames("o.mp4", 1)),
    ]


CASES = _cases()


@pytest.fixture(scope="session")
def valid(tmp_path_factory) -> dict:
    return h.valid_inputs(tmp_path_factory.mktemp("valid"))


@pytest.fixture(autouse=True)
def _libraries_as_a_fresh_process_has_them():
    """`main` runs in-process here, after other tests that may have turned diffusers' and transformers' logging
    up (and bound their handlers to a captured stream since closed). A command starts in a fresh process with
    both at "error" (neuralframe.cli.main sets that before they load): give each case the same."""
    import logging
    import sys

    loggers = [logging.getLogger(name) for name in ("diffusers", "transformers")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
        for handler in logger.handlers:
            if isinstance(handler, logging.StreamHandler) and getattr(handler.stream, "closed", False):
                handler.stream = sys.stderr  # not setStream: it flushes the closed one first
    yield
    for logger, level in zip(loggers, levels):
        logger.setLevel(level)


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(folder.rglob("*")) if not p.is_fifo()}


def _threads_settle(before: set[int], timeout: float = 5.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while True:
        left = [t for t in threading.enumerate() if t.ident not in before and t.is_alive()]
        if not left or time.monotonic() > deadline:
            return [t.name for t in left]
        time.sleep(0.05)


def test_the_suite_covers_every_command_and_input_kind():
    assert len(CASES) >= 150
    commands = {c.argv[0] for c in CASES}
    assert commands >= {"info", "render", "convert", "matte", "stream", "restyle", "generate", "generate-image",
                        "view", "export", "train", "eval", "data", "bench"}
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_input(case: Case, valid, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)  # `view` must refuse its options before it looks for a window
    inputs, out = tmp_path / "in", tmp_path / "out"
    inputs.mkdir()
    out.mkdir()
    built = case.build(inputs, valid) if case.build else None
    if case.existing:
        (out / case.existing).write_bytes(b"a user's file that must survive")
    names = {"in": built, "out": out, "clip": valid["clip.mp4"], "scene": valid["scene.ply"],
             "one": valid["one.ply"]}
    argv = [a.format(**{k: str(v) for k, v in names.items()}) for a in case.argv]
    before_out, before_in = _digest(out), _digest(inputs)
    before_threads = {t.ident for t in threading.enumerate()}
    capsys.readouterr()

    code = main(argv)

    captured = capsys.readouterr()
    assert "Traceback" not in captured.err + captured.out, captured.err
    assert _threads_settle(before_threads) == []
    assert not (inputs / "PWNED").exists(), "code in a pickled file ran"
    if case.ok:
        assert code == 0, captured.err
        if case.check:
            case.check(out)
        return
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert code == 2, (code, captured.err[-2000:])
    assert 1 <= len(lines) <= 2, captured.err
    assert _digest(out) == before_out, "the run left something at or beside the output, or changed a file"
    assert _digest(inputs) == before_in, "the run changed its input"
