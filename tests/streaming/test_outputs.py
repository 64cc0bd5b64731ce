"""Every command that writes a file checks its output before any work (`streaming.outputs`): a folder that is
missing, is a file, or cannot hold files (os.access says yes under /proc, where creating one fails), and an
extension that no writer owns (`render -o out.docx` once wrote a video under that name). Each is one line, exit
code 2, nothing left at or beside the output, and a file already there byte-identical."""

from __future__ import annotations

import pytest

from cli_helpers import nf, one_clear_line
from neuralframe.assets import asset
from neuralframe.errors import OutputError
from neuralframe.streaming.outputs import check_output

SCENE = str(asset("scenes", "motorcycle.ply"))
SINKS = "write a .mp4, .mkv or .mov video, or a folder for PNG images"
PROC = "cannot hold new files"
COMMANDS = ("render", "matte", "restyle", "stream", "generate", "generate-image", "convert", "export", "view",
            "data", "train")


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    from neuralframe.streaming import Pipeline
    from neuralframe.streaming.sinks import VideoFileSink
    from neuralframe.streaming.sources import PatternSource

    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    Pipeline(PatternSource(64, 48, frames=4), [], VideoFileSink(path)).run()
    return path


@pytest.mark.parametrize("command,fragments", [
    (["render", SCENE, "-o", "/proc/self/out.mp4", "--frames", "2"], ["'/proc/self/out.mp4'", PROC]),
    (["render", SCENE, "-o", "{out}/out.docx", "--frames", "2"], ["'.docx' is not a format written here", SINKS]),
    (["render", SCENE, "-o", "{out}/missing/out.mp4"], ["folder '{out}/missing' does not exist"]),
    (["render", SCENE, "-o", "{out}/taken.txt/out.mp4"], ["'{out}/taken.txt' is a file, not a folder"]),
    (["render", SCENE, "-o", "{out}/taken"], ["it is a file, not a folder"]),
    (["render", SCENE, "-o", "{out}/full"], ["output folder '{out}/full' is not empty"]),
    (["matte", "{clip}", "-o", "{out}/o.mp4", "--rgba", "/proc/self/rgba"], [PROC]),
    (["matte", "{clip}", "-o", "{out}/o.mp4", "--alpha", "{out}/alpha.docx"], ["'.docx'", SINKS]),
    (["restyle", "{clip}", "-o", "/proc/self/o.mp4", "--prompt", "a large blue star"], [PROC]),
    (["stream", "--source", "pattern", "--out", "{out}/o.docx", "--frames", "2"], ["'.docx'", SINKS]),
    (["generate", "a red star", "-o", "{out}/o.docx"], ["'.docx'", "write a .mp4, .mkv or .mov video"]),
    (["generate", "a red star", "-o", "/proc/self/o.mp4"], [PROC]),
    (["generate", "--prompts", "{out}/taken.txt", "-o", "{out}/clips.mp4"], ["it names a '.mp4' file", "folder"]),
    (["generate-image", "a red star", "-o", "/proc/self/o.png"], [PROC]),
    (["generate-image", "a red star", "-o", "{out}/o.jpg"], ["'.jpg' is not a format written here; write a .png"]),
    (["convert", SCENE, "/proc/self/o.spz"], [PROC]),
    (["export", "segmenter", "-o", "/proc/self/graphs"], [PROC]),
    (["export", "segmenter", "-o", "{out}/graphs.onnx"], ["it names a '.onnx' file", "a folder for the graphs"]),
    (["view", "--screenshot", "/proc/self/s.png"], [PROC]),
    (["view", "--screenshot", "{out}/s.docx"], ["'.docx'", "write a .png image"]),
    (["data", "shapes", "--preview", "/proc/self/s.png"], [PROC]),
    (["train", "nerf", "{out}/data", "-o", "/proc/self/nerf.safetensors"], [PROC]),
], ids=lambda v: None if v[0] not in COMMANDS else f"{v[0]} {next(a for a in v[1:] if a[0] in '/{' and a != SCENE)}")
def test_an_output_that_cannot_be_written_is_refused_before_any_work(clip, tmp_path, command, fragments):
    out = tmp_path / "out"
    out.mkdir()
    (out / "taken.txt").write_bytes(b"a file the user keeps\n")
    (out / "taken").write_bytes(b"another\n")
    (out / "full").mkdir()
    (out / "full" / "keep.png").write_bytes(b"x")
    (out / "out.docx").write_bytes(b"the user's document\n")
    before = {p: p.read_bytes() if p.is_file() else None for p in out.rglob("*")}
    args = [a.format(out=out, clip=clip) for a in command]
    one_clear_line(nf(*args), *(f.format(out=out) for f in fragments))
    assert {p: p.read_bytes() if p.is_file() else None for p in out.rglob("*")} == before  # nothing new, nothing changed


def test_check_output_rules(tmp_path):
    """The rules on their own: owned extensions (longest endings too), folders, and what is accepted."""
    assert check_output(tmp_path / "a.compressed.ply", (".ply",), accepts="a scene") == tmp_path / "a.compressed.ply"
    assert check_output(tmp_path / "frames", (".mp4",), accepts="x", folder=True) == tmp_path / "frames"
    assert check_output(tmp_path, (".mp4",), accepts="x", folder=True) == tmp_path  # an existing folder
    with pytest.raises(OutputError, match="the name has no extension; write a .png image"):
        check_output(tmp_path / "image", (".png",), accepts="a .png image")
    with pytest.raises(OutputError, match="it is a folder; write a .png image"):
        check_output(tmp_path, (".png",), accepts="a .png image")
    (tmp_path / "in.mp4").write_bytes(b"input")
    with pytest.raises(OutputError, match="is the input"):
        check_output(tmp_path / "in.mp4", (".mp4",), accepts="x", inputs=[tmp_path / "in.mp4"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]  # the probes left nothing
