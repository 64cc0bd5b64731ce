"""The effect registry: every `--effect` of `neuralframe stream` is a small object behind one table.

    effect = parse_effect("blur:24")        # Blur('blur:24'); None for a name nobody registered
    chain = effect_chain("blur:24", size=None, matte_backend="onnx")     # the stages, options checked

An effect kind says how it is typed (`usage`, which the help texts list), which of `--model`,
`--downsample-ratio` and `--prompt` it takes (`options`; `effect_chain` checks them all in one place), and
builds its stages from the stream's options (`ChainOptions`). The kinds: `Grade` (a colour grade from
`fused.GRADES`, or `none`: one fused `streaming.stages.ColorResize`), `Matting` (`matte`,
`replace:IMAGE|VIDEO|#RRGGBB`, `blur[:STRENGTH]`: the `neuralframe.matting` stages on engines built for
`--backend`) and `Diffuse` (streaming diffusion to `--prompt`). A new effect is one class and one entry in
`REGISTRY`; the help texts `EFFECT_HELP` (errors) and `EFFECT_OPTION_HELP` (`--effect`) follow from it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from neuralframe.backend.fused import GRADES
from neuralframe.errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    from neuralframe.matting.backgrounds import Background
    from neuralframe.streaming.pipeline import Stage

# the matting effects as the option errors name them
MATTING_NAMES = "matte, blur, replace"


@dataclass(frozen=True)
class ChainOptions:
    """What the effects' stages take besides the effect: `neuralframe stream`'s other options."""

    size: tuple[int, int] | None = None
    impl: str = "auto"
    matte_backend: str = "torch"
    device: str = "cpu"
    model: str | None = None
    downsample_ratio: float | None = None
    diffuse: Any = None  # DiffuseSettings (neuralframe.generate.diffusion.diffuse) or None


class Effect:
    """One `--effect` as typed: `name` (the text up to the first colon) picks its kind in `REGISTRY`."""

    usage: ClassVar[str | None] = None  # how the help texts list it, when that is more than its name
    note: ClassVar[str] = ""  # what the option's help adds in brackets
    options: ClassVar[frozenset[str]] = frozenset()  # which of "model", "downsample_ratio", "prompt" it takes
    takes_argument: ClassVar[bool] = False  # NAME:ARGUMENT

    def __init__(self, name: str, text: str):
        self.name = name
        self.text = text

    def stages(self, options: ChainOptions) -> list["Stage"]:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.text!r})"


class Grade(Effect):
    """A colour grade and the resize to `--size` in one fused stage; `none` only resizes (when asked)."""

    def stages(self, options: ChainOptions) -> list["Stage"]:
        from neuralframe.streaming.stages import ColorResize

        if self.name == "none" and options.size is None:
            return []
        return [ColorResize(options.size, "identity" if self.name == "none" else self.name, impl=options.impl)]


class Matting(Effect):
    """A matting effect (`matte`, `replace:...`, `blur[:...]`): the alpha of each frame over a background,
    on two threads (`neuralframe.matting.stages.matte_stages`), the networks on engines for `--backend`."""

    options = frozenset({"model", "downsample_ratio"})
    takes_argument = True  # checked when the stages are built, after the option checks

    def background(self, argument: str, impl: str) -> "Background":
        raise NotImplementedError

    def stages(self, options: ChainOptions) -> list["Stage"]:
        from neuralframe.export.matting import matting_engines
        from neuralframe.matting.matters import MatteSettings
        from neuralframe.matting.stages import matte_stages

        text = self.text.strip()
        background = self.background(text.partition(":")[2], options.impl)
        settings = MatteSettings(backend=options.matte_backend, device=options.device, model=options.model,
                                 downsample_ratio=options.downsample_ratio, impl=options.impl)
        return matte_stages(background, settings, options.size, name=self.name,
                            engines=matting_engines(settings.backend, settings.device))


class AlphaMatte(Matting):
    """`matte`: the alpha itself, as a grey picture."""

    def background(self, argument: str, impl: str) -> "Background":
        from neuralframe.matting.backgrounds import AlphaView

        if argument:
            raise InputError(f"effect 'matte' takes no argument, got '{self.text.strip()}'")
        return AlphaView()


class Replace(Matting):
    """`replace:IMAGE|VIDEO|#RRGGBB`: the person over another background."""

    usage = "replace:IMAGE|VIDEO|#RRGGBB"

    def background(self, argument: str, impl: str) -> "Background":
        from neuralframe.matting.backgrounds import parse_background

        if not argument:
            raise InputError("effect 'replace' needs a background: replace:IMAGE, replace:VIDEO or replace:#RRGGBB")
        return parse_background(argument, impl)


class Blur(Matting):
    """`blur[:STRENGTH]`: the person over the frame itself, blurred."""

    usage = "blur[:STRENGTH]"

    def background(self, argument: str, impl: str) -> "Background":
        from neuralframe.matting.backgrounds import parse_background

        return parse_background(self.text.strip(), impl)  # "blur" or "blur:STRENGTH", as a background


class Diffuse(Effect):
    """Streaming diffusion: the engine restyles every frame to `--prompt`, then the resize to `--size`."""

    note = "streaming diffusion to --prompt"
    options = frozenset({"model", "prompt"})

    def stages(self, options: ChainOptions) -> list["Stage"]:
        from neuralframe.apps.restyle import diffuse_stage
        from neuralframe.streaming.stages import ColorResize

        diffuse = options.diffuse
        if diffuse is None or not diffuse.prompts:
            raise InputError("--effect diffuse needs a prompt: --prompt \"TEXT\"")
        if options.model is not None:
            diffuse = dataclasses.replace(diffuse, model=options.model)
        chain: list = [diffuse_stage(diffuse)]
        if options.size is not None:
            chain.append(ColorResize(options.size, "identity", impl=options.impl))
        return chain


# in the order the help texts list them
REGISTRY: dict[str, type[Effect]] = {
    **{name: Grade for name in ("none", *(g for g in GRADES if g != "identity"))},
    "matte": AlphaMatte, "replace": Replace, "blur": Blur, "diffuse": Diffuse,
}


def _listed(notes: bool) -> list[str]:
    return [(kind.usage or name) + (f" ({kind.note})" if notes and kind.note else "")
            for name, kind in REGISTRY.items()]


EFFECT_HELP = ", ".join(_listed(False)[:-1]) + " or " + _listed(False)[-1]  # for errors
EFFECT_OPTION_HELP = ", ".join(_listed(True)[:-1]) + ", or " + _listed(True)[-1] + "."  # for --effect's help


def parse_effect(text: str) -> Effect | None:
    """The effect typed as `--effect TEXT`, or None when no kind takes that text."""
    name, colon, _ = text.partition(":")
    kind = REGISTRY.get(name)
    if kind is None or (colon and not kind.takes_argument):
        return None
    return kind(name, text)


def effect_chain(effect: str, size=None, impl: str = "auto", matte_backend: str = "torch", device: str = "cpu", *,
                 model: str | None = None, downsample_ratio: float | None = None, diffuse=None) -> list["Stage"]:
    """The stages for `--effect`, after checking that the other options go with it: a colour grade (one
    fused stage), a matting effect (segment, then refine + composite, or with an RVM model rvm, then
    composite, on two threads) or streaming diffusion (`diffuse`, then the resize to `size`)."""
    chosen = parse_effect(effect)
    takes = chosen.options if chosen is not None else frozenset()
    if "prompt" not in takes and diffuse is not None and diffuse.prompts:
        raise InputError(f"--prompt goes with --effect diffuse, not '{effect}'")
    if "model" not in takes and (model is not None or downsample_ratio is not None):
        raise InputError(f"--model and --downsample-ratio go with the matting effects ({MATTING_NAMES}), "
                         f"not '{effect}'")
    if "downsample_ratio" not in takes and downsample_ratio is not None:
        raise InputError(f"--downsample-ratio goes with the matting effects ({MATTING_NAMES}), not {effect}")
    if chosen is None:
        raise InputError(f"unknown effect '{effect}': use {EFFECT_HELP}")
    return chosen.stages(ChainOptions(size=size, impl=impl, matte_backend=matte_backend, device=device, model=model,
                                      downsample_ratio=downsample_ratio, diffuse=diffuse))
