"""Numeric and device options out of range are one clear line and exit code 2, before any work (they were a
ZeroDivisionError in render, a libx264 traceback in matte, NaN images from --guidance nan, a torch error for
--device tpu)."""

from __future__ import annotations

import pytest

from cli_helpers import nf, one_clear_line
from neuralframe.assets import asset

SCENE = str(asset("scenes", "motorcycle.ply"))


@pytest.mark.parametrize("args, fragment", [
    (["render", SCENE, "-o", "{tmp}/o.mp4", "--fps", "0"], "--fps must be a positive number"),
    (["render", SCENE, "-o", "{tmp}/o.mp4", "--fps", "nan"], "--fps must be a positive number"),
    (["matte", SCENE, "-o", "{tmp}/o.mp4", "--fps", "-5"], "--fps must be a positive number"),
    (["stream", "--source", "pattern", "--fps", "0"], "--fps must be a positive number"),
    (["stream", "--source", "pattern", "--device", "tpu"], "--device must be cpu, cuda"),
    (["restyle", SCENE, "-o", "{tmp}/o.mp4", "--prompt", "a star", "--guidance", "nan"], "--guidance must be a finite"),
    (["generate", "a red star", "-o", "{tmp}/o.mp4", "--steps", "0"], "--steps must be at least 1"),
    (["generate", "a red star", "-o", "{tmp}/o.mp4", "--device", "tpu"], "--device must be cpu, cuda"),
    (["generate", "a red star", "-o", "{tmp}/o.mp4", "--fps", "-1"], "--fps must be a positive number"),
    (["generate-image", "a red star", "-o", "{tmp}/o.png", "--guidance", "inf"], "--guidance must be a finite"),
])
def test_out_of_range_options_are_one_line_and_write_nothing(tmp_path, args, fragment):
    one_clear_line(nf(*[a.format(tmp=tmp_path) for a in args]), fragment)
    assert list(tmp_path.iterdir()) == []
