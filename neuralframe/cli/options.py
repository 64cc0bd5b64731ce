"""What several commands share: option types, argument parsers and help texts.

Help texts are plain text. `plain_help` makes them so for rich, once over the whole command tree (see
`neuralframe.cli.command`): it escapes what rich would read as markup (the brackets in
pip install 'neuralframe[distributed]') and joins a docstring's hard line breaks, so that rich wraps each
paragraph to the terminal.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Any, Optional

import typer

from neuralframe.backend.memory import LIMIT_ENV
from neuralframe.errors import InputError


MAX_SIDE = 16384  # pixels on a side of any frame a command makes (H.264 levels stop at 8192)


def parse_size(text: Optional[str]) -> Optional[tuple[int, int]]:
    """'WIDTHxHEIGHT' -> (height, width), each side 1 to MAX_SIDE; None stays None."""
    if text is None:
        return None
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise InputError(f"size '{text}' is not WIDTHxHEIGHT (for example 1280x720)") from None
    if not (0 < w <= MAX_SIDE and 0 < h <= MAX_SIDE):
        raise InputError(f"size '{text}' must have sides from 1 to {MAX_SIDE:,} pixels")
    return h, w


def frame_size(default: Optional[str], help: str, memory: bool = True) -> Any:
    """A WIDTHxHEIGHT option: checked by `parse_size` as typer reads it (before any work), its range in --help;
    `memory`: frames of this size go through a pipeline, which checks them against the memory available."""
    def check(param: typer.CallbackParam, value: Optional[str]) -> Optional[str]:
        parse_size(value)
        return value

    fits = (f", and frames that fit in the memory available (checked before any work; {LIMIT_ENV} sets a lower "
            "ceiling)") if memory else ""
    return typer.Option(default, help=f"{help} Range: sides from 1 to {MAX_SIDE:,} pixels{fits}.", callback=check)


@dataclass(frozen=True)
class Range:
    """A numeric option's range, declared once: what it admits (NaN and infinities never) and the words that
    --help and the error say."""

    low: float
    high: float
    says: str
    low_open: bool = False  # the low end itself is not admitted (a frame rate above 0)

    def admits(self, value: float) -> bool:
        if not math.isfinite(value) or value > self.high:
            return False
        return value > self.low if self.low_open else value >= self.low

    def callback(self, param: typer.CallbackParam, value):
        """Typer's check: an InputError naming the option (one line, exit 2) before any work."""
        for v in value if isinstance(value, (list, tuple)) else [value]:
            if v is not None and not self.admits(v):
                raise InputError(f"{param.opts[0]} must be {self.says}, got {v}")
        return value


def between(low: float, high: float) -> Range:
    return Range(low, high, f"from {low:,} to {high:,}")


COUNT = between(1, 10_000_000)  # frames, prompts, runs, rounds, samples
FRAMES_AT_LEAST_4 = between(4, 10_000_000)
LONG_RUN = between(100, 10_000_000)
STEPS = between(1, 1000)  # sampling or denoising steps
SEED = between(0, 2**32 - 1)
THREADS = between(1, 1024)
UPSCALE = between(1, 16)
SIDE = between(8, 8192)  # a square image's side in pixels
GAUSSIANS = between(0, 1_000_000_000)
SPLAT_BUDGET = between(1, 1_000_000_000)  # Gaussians drawn per frame
PIXELS = Range(0, 1000, "from 0 to 1,000 pixels")  # a screen-space error
SCENE_GAUSSIANS = between(1, 64 * 1024 * 1024)  # a scene file's count (the readers' MAX_GAUSSIANS)
SH_DEGREE = between(0, 3)
FPS = Range(0, 1000, "above 0 and at most 1,000", low_open=True)
SECONDS = Range(0, 10**7, "a number of seconds above 0", low_open=True)
RATIO = Range(0, 1, "above 0 and at most 1", low_open=True)
SHARE = Range(0, 1, "from 0 to 1")
GUIDANCE = Range(0, 100, "a number from 0 to 100")


def ranged(default: Any, *names: str, within: Range, help: str, **extra: Any) -> Any:
    """A typer option whose value must lie `within` a range: the range is stated at the end of its help."""
    return typer.Option(default, *names, help=f"{help} Range: {within.says}.", callback=within.callback, **extra)


def torch_device(param: typer.CallbackParam, value: Optional[str]) -> Optional[str]:
    """Typer's check of --device: cpu, cuda, cuda:N or auto."""
    if value is not None and not (value in ("cpu", "cuda", "auto") or (value.startswith("cuda:")
                                                                         and value[5:].isdigit())):
        raise InputError(f"{param.opts[0]} must be cpu, cuda, cuda:N or auto, got {value}")
    return value


def plain_help(command: Any) -> None:
    """Make the help texts of `command`, its options and all its subcommands plain text for rich.

    Duck-typed over click's objects (typer vendors its own click).
    """
    from rich.markup import escape

    def plain(text: str) -> str:
        return escape("\n\n".join(" ".join(paragraph.split()) for paragraph in text.split("\n\n")))

    if command.help:
        command.help = plain(command.help)
    for param in command.params:
        if getattr(param, "help", None):
            param.help = plain(param.help)
    for sub in getattr(command, "commands", {}).values():
        plain_help(sub)


# the splat formats neuralframe.render.splat.formats reads (kept here as text: importing the registry loads torch)
SCENE_FORMATS = (".ply, .compressed.ply, .splat, .spz, .sog (or a SOG folder / its meta.json), .glb/.gltf "
                 "(KHR_gaussian_splatting), .ksplat")


# ---- --json: the run report (product commands) or one JSON object (benchmarks, evaluations) ----

JsonReport = Annotated[bool, typer.Option("--json", help="Print the run report as JSON.")]
JsonObject = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]


# ---- --ray and its companions: render, restyle, matte (and generate, with a clip per unit) ----

RAY_HELP = ("Run on Ray: `--ray` alone (or `--ray local`) starts a local Ray with this machine's cores; "
            "`--ray auto` or `--ray HOST:PORT` joins a running cluster. Needs pip install "
            "'neuralframe[distributed]'.")
Ray = Annotated[Optional[str], typer.Option("--ray", help=RAY_HELP)]
Workers = Annotated[Optional[int], ranged(
    "--workers", within=COUNT, help="With --ray: number of workers (default: the cluster's CPUs / "
                                          "--cpus-per-worker).")]
CpusPerWorker = Annotated[int, ranged("--cpus-per-worker", within=THREADS,
                                      help="With --ray: CPU threads each worker uses and reserves.")]
UnitFrames = Annotated[Optional[int], ranged(
    "--unit-frames", within=COUNT, help="With --ray: frames per unit of work (default: units shrink from a "
                                              "quarter of a worker's share towards 2 frames at the end, at most 64).")]


def expand_ray_flag(args: list[str]) -> list[str]:
    """`--ray` with no address (last, or before another option) means `--ray local`."""
    out = []
    for i, arg in enumerate(args):
        out.append(arg)
        if arg == "--ray" and (i + 1 == len(args) or args[i + 1].startswith("-")):
            out.append("local")
    return out


def ray_settings(address: str, workers: Optional[int], cpus_per_worker: int):
    """The Ray options as `RaySettings`; a missing `ray` package fails here, before any work starts."""
    from neuralframe.distributed import RaySettings, require_ray

    require_ray()
    return RaySettings(address=address, workers=workers, cpus_per_worker=cpus_per_worker)


def print_ray_run(report, summary: dict, title: str, as_json: bool) -> None:
    """A Ray run's pipeline report and per-worker summary, as tables or as one JSON object."""
    from neuralframe.console import emit_json, print_cluster_summary, print_pipeline_report

    if as_json:
        emit_json({**report.to_dict(), "ray": summary})
        return
    print_pipeline_report(report, title)
    print_cluster_summary(summary)


# ---- matting: stream's matting effects and matte ----

MODEL_HELP = ("Matting model: an RVM state dict (.pth, e.g. the official rvm_mobilenetv3.pth; Robust Video "
              "Matting; its archive inflating to at most 1 GB) or a .tflite selfie segmenter. Default: the bundled "
              "segmenter with refinement.")
RATIO_HELP = ("RVM only: the scale its network runs at, in (0, 1]. Default: about 480 px on the long side "
              "(0.375 at 1280x720, 0.25 at 1920x1080, 1 for small frames).")
BACKEND_HELP = ("Where the matting network runs: torch, onnxruntime (our module exported to ONNX on start) or "
                "tensorrt (that export built into a cached float16 engine; NVIDIA GPU with `pip install "
                "tensorrt`). With --effect diffuse: where the diffusion networks run (torch, onnxruntime or "
                "tensorrt; see neuralframe restyle --help).")


def matting_backend(backend: str) -> str:
    """The matting runners' name for a --backend value ("onnxruntime" and "onnx" are the same)."""
    from neuralframe.backend.runtime import resolve_backend

    name = resolve_backend(backend)
    if name == "tensorrt":
        from neuralframe.backend.runtime import require_tensorrt

        require_tensorrt("--backend tensorrt")  # one line now, not after the video is opened
    return {"onnxruntime": "onnx"}.get(name, name)


# ---- streaming diffusion: restyle, and stream's diffuse effect (there prefixed by `for_diffuse`) ----

DIFFUSERS_FOLDER_HELP = "A local diffusers pipeline folder (default: the bundled tiny-shapes model)."
PROMPT_HELP = ("The prompt; repeat as \"TEXT:N\" to switch prompts at frame N (e.g. --prompt \"a large blue "
               "star\" --prompt \"a large red heart:48\").")
STEPS_HELP = ("The denoising steps, comma-separated indices into a 50-step LCM schedule (later ones keep more of "
              "the input; one batched network call per frame whatever their number).")
CFG_HELP = ("Guidance mode: embedded (the model's guidance embedding; the default when it has one), none, full, "
            "self or initialize (residual CFG; self is the default otherwise).")
GUIDANCE_HELP = "Guidance scale (default: the model card's, else 1.2)."
BANK_HELP = "The StreamV2V feature bank (attends to past frames' features: steadier video)."
TINY_VAE_HELP = ("Decode frames with the model's tiny autoencoder (FOLDER/vae_tiny, TAESD-style): its decoder is "
                 "about 3x faster at 128x128, the frames slightly softer.")


def for_diffuse(text: str) -> str:
    """A diffusion option's help as `stream` shows it, beside the matting options: "Diffuse: the prompt; ..."."""
    return "Diffuse: " + text[0].lower() + text[1:]


# ---- the rest that two commands share ----

MOVING_GAUSSIANS_HELP = ("While the camera moves, a splat scene with more Gaussians than this draws a cut of its "
                         "level-of-detail tree (built once, cached) under a splat budget that starts at this many "
                         "and follows the frame time; at rest it refines to every Gaussian (0: always every "
                         "Gaussian, no tree).")
THREADS_HELP = "CPU threads for torch and onnxruntime alike (default: their own defaults)."
