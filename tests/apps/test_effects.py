"""The effect registry: what each `--effect` text parses to, the stages it builds, the help texts derived
from it, and the one-line errors for options that do not go with an effect."""

import pytest

from neuralframe.apps import effects
from neuralframe.apps.effects import EFFECT_HELP, EFFECT_OPTION_HELP, effect_chain, parse_effect
from neuralframe.errors import InputError


class _Diffuse:
    """Stands in for DiffuseSettings: only its prompts are read before the stages are built."""

    def __init__(self, *prompts):
        self.prompts = prompts


def test_help_texts_list_the_registry():
    assert EFFECT_HELP == ("none, warm, cool, sepia, gray, matte, replace:IMAGE|VIDEO|#RRGGBB, blur[:STRENGTH] "
                           "or diffuse")
    assert EFFECT_OPTION_HELP == ("none, warm, cool, sepia, gray, matte, replace:IMAGE|VIDEO|#RRGGBB, "
                                  "blur[:STRENGTH], or diffuse (streaming diffusion to --prompt).")
    matting = {name for name, kind in effects.REGISTRY.items() if issubclass(kind, effects.Matting)}
    assert set(effects.MATTING_NAMES.split(", ")) == matting


@pytest.mark.parametrize("text,kind", [
    ("none", effects.Grade), ("sepia", effects.Grade), ("matte", effects.AlphaMatte), ("matte:", effects.AlphaMatte),
    ("blur:24", effects.Blur), ("replace:#00b140", effects.Replace), ("diffuse", effects.Diffuse),
    ("warm:3", None), ("diffuse:x", None), (" blur", None), ("sparkle", None),
])
def test_parse_effect(text, kind):
    effect = parse_effect(text)
    assert (type(effect) if effect is not None else None) is kind


def test_stages_per_kind():
    assert effect_chain("none") == []
    assert [s.name for s in effect_chain("none", (32, 48))] == ["resize"]
    assert [(s.name, s.grade) for s in effect_chain("warm")] == [("color-resize", "warm")]
    assert [s.name for s in effect_chain("blur:8")] == ["segment", "blur"]
    assert [s.name for s in effect_chain("replace:#102030")] == ["segment", "replace"]
    assert [s.name for s in effect_chain("matte")] == ["segment", "matte"]


@pytest.mark.parametrize("effect,options,message", [
    ("psychedelic", {}, f"unknown effect 'psychedelic': use {EFFECT_HELP}"),
    ("warm:3", {}, "unknown effect 'warm:3'"),
    ("warm", {"model": "x.pth"}, "--model and --downsample-ratio go with the matting effects (matte, blur, replace), "
                                 "not 'warm'"),
    ("psychedelic", {"downsample_ratio": 0.5}, "go with the matting effects (matte, blur, replace), not 'psychedelic'"),
    ("blur", {"diffuse": _Diffuse("a")}, "--prompt goes with --effect diffuse, not 'blur'"),
    ("psychedelic", {"diffuse": _Diffuse("a"), "model": "x"}, "--prompt goes with --effect diffuse"),
    ("diffuse", {"downsample_ratio": 0.5}, "--downsample-ratio goes with the matting effects "
                                           "(matte, blur, replace), not diffuse"),
    ("diffuse", {}, "--effect diffuse needs a prompt"),
    ("matte:1", {}, "effect 'matte' takes no argument, got 'matte:1'"),
    ("replace", {}, "effect 'replace' needs a background"),
    ("replace:", {}, "effect 'replace' needs a background"),
    ("replace:#12345", {}, "is not #RRGGBB"),
    ("replace:/nonexistent/bg.jpg", {}, "does not exist"),
    ("blur:soft", {}, "is not a number"),
    ("blur:-3", {}, "must be positive"),
    ("matte", {"downsample_ratio": 0.5}, "applies to an RVM model only"),
    ("blur", {"matte_backend": "tensorflow"}, "unknown matting backend 'tensorflow': use torch or onnx or tensorrt"),
])
def test_effect_errors(effect, options, message):
    with pytest.raises(InputError) as error:
        effect_chain(effect, **options)
    assert message in str(error.value)
