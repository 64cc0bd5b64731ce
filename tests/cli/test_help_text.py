"""Help texts reach the reader as written: brackets are not taken for rich markup, and a docstring's line
breaks do not break the rendered paragraph (rich wraps it to the terminal)."""

from __future__ import annotations

import pytest


def _help(monkeypatch, capsys, *args: str, columns: int = 500) -> str:
    from neuralframe.cli import main

    monkeypatch.setenv("COLUMNS", str(columns))  # wide enough that rich wraps no help text
    capsys.readouterr()
    assert main([*args, "--help"]) == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("command,text", [
    ("restyle", "Needs pip install 'neuralframe[distributed]'."),
    ("generate", "Needs pip install 'neuralframe[distributed]'. Each clip is one unit."),
    ("stream", "needs pip install 'neuralframe[virtualcam]' and a v4l2loopback device"),
    ("stream", "or virtualcam[:DEVICE] (a virtual webcam"),
    ("stream", "replace:IMAGE|VIDEO|#RRGGBB, blur[:STRENGTH], or diffuse"),
])
def test_brackets_in_help_texts_are_shown(monkeypatch, capsys, command, text):
    assert text in _help(monkeypatch, capsys, command)


def test_docstrings_flow_as_paragraphs(monkeypatch, capsys):
    listing = _help(monkeypatch, capsys)
    restyle = next(line for line in listing.splitlines() if " restyle " in line)
    assert ("engine; every frame is processed, in order. With --ray, chunks of the video run on Ray workers, each "
            "warmed up on the frames before it.") in restyle
    bench = _help(monkeypatch, capsys, "bench")
    assert "the int8 accuracy change, in one run." in bench
    own = _help(monkeypatch, capsys, "restyle")
    assert "engine; every frame is processed, in order." in own
