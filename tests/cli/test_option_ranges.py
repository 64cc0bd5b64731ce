"""Numeric and device options out of range are one clear line and exit code 2, before any work (they were a
ZeroDivisionError in render, a libx264 traceback in matte, NaN images from --guidance nan, a torch error for
--device tpu)."""

from __future__ import annotations

import pytest

from cli_helpers import nf, one_clear_line
from neuralframe.assets import asset

SCENE = str(asset("scenes", "motorcycle.ply"))


@pytest.mark.parametrize("args, fragment", [
    (["render", SCENE, "-o", "{tmp}/o.mp4", "--fps", "0"], "--fps must be above 0"),
    (["render", SCENE, "-o", "{tmp}/o.mp4", "--fps", "nan"], "--fps must be above 0"),
    (["matte", SCENE, "-o", "{tmp}/o.mp4", "--fps", "-5"], "--fps must be above 0"),
    (["stream", "--source", "pattern", "--fps", "0"], "--fps must be above 0"),
    (["stream", "--source", "pattern", "--device", "tpu"], "--device must be cpu, cuda"),
    (["restyle", SCENE, "-o", "{tmp}/o.mp4", "--prompt", "a star", "--guidance", "nan"], "--guidance must be a number from 0 to 100"),
    (["generate", "a red star", "-o", "{tmp}/o.mp4", "--steps", "0"], "--steps must be from 1 to 1,000"),
    (["generate", "a red star", "-o", "{tmp}/o.mp4", "--device", "tpu"], "--device must be cpu, cuda"),
    (["generate", "a red star", "-o", "{tmp}/o.mp4", "--fps", "-1"], "--fps must be above 0"),
    (["generate-image", "a red star", "-o", "{tmp}/o.png", "--guidance", "inf"], "--guidance must be a number from 0 to 100"),
])
def test_out_of_range_options_are_one_line_and_write_nothing(tmp_path, args, fragment):
    one_clear_line(nf(*[a.format(tmp=tmp_path) for a in args]), fragment)
    assert list(tmp_path.iterdir()) == []


def _numeric_options(command, path=("neuralframe",)):
    import typing

    for param in command.params:
        annotation = param.type_descriptor.annotation
        kinds = set(typing.get_args(annotation)) | {annotation}
        kinds |= {a for k in list(kinds) for a in typing.get_args(k)}  # Optional[list[float]]
        if param.opts[0].startswith("-") and kinds & {int, float}:
            yield " ".join(path), param
    for name, sub in getattr(command, "commands", {}).items():
        yield from _numeric_options(sub, (*path, name))


def test_every_numeric_option_is_checked_and_states_its_range():
    """The ranges are declared once (cli/options.py) and every int or float option uses one: a value outside
    is refused by name before any work, and --help says what is admitted."""
    from neuralframe.cli import command

    options = list(_numeric_options(command()))
    assert len(options) > 60
    unchecked = [f"{where} {param.opts[0]}" for where, param in options
                 if param.callback is None or "Range:" not in (param.help or "")]
    assert unchecked == []
