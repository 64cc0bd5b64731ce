"""An output that is the input (the same path, or the same file through a link) is refused before any work,
and the user's file is left exactly as it was: `matte`, `restyle` and `stream` once replaced a 48-frame clip
with a 4-frame result."""

from __future__ import annotations

import os

import pytest

from cli_helpers import nf, one_clear_line


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    result = nf("stream", "--source", "pattern", "--size", "96x64", "--frames", "12", "--out", str(path))
    assert result.returncode == 0, result.stderr
    return path


@pytest.mark.parametrize("command", [
    ["matte", "{clip}", "-o", "{out}", "--frames", "4"],
    ["matte", "{clip}", "-o", "{tmp}/other.mp4", "--alpha", "{out}", "--frames", "4"],
    ["restyle", "{clip}", "-o", "{out}", "--prompt", "a large blue star", "--frames", "4"],
    ["stream", "--source", "{clip}", "--out", "{out}", "--frames", "4"],
])
@pytest.mark.parametrize("through_link", [False, True])
def test_the_input_as_output_is_refused_and_left_as_it_was(clip, tmp_path, command, through_link):
    out = clip
    if through_link:
        out = tmp_path / "link.mp4"
        os.symlink(clip, out)
    before = clip.read_bytes()
    args = [a.format(clip=clip, out=out, tmp=tmp_path) for a in command]
    one_clear_line(nf(*args), "is the input")
    assert clip.read_bytes() == before
    assert not (tmp_path / "other.mp4").exists()
