"""The `neuralframe` command: the typer app, its command tree, and `main`, which turns errors into exit codes.

Each command group has a file here that only parses arguments and hands them to the library; options.py
holds what several share. The tree, in the order `neuralframe --help` lists it:

    info [SCENE]    info.py      versions, threads, devices, capabilities (apps/info.py); a scene file
    demo            demo.py      the bundled tour (apps/demo.py)
    stream          stream.py    a source through an effect into a sink, live (apps/stream.py)
    restyle         restyle.py   a video through streaming diffusion, offline (apps/restyle.py)
    matte           matte.py     people cut out of a video, offline (apps/matte.py)
    view            view.py      a scene in the desktop viewer (viewer/app.py)
    render          render.py    a camera path of a scene to a video (apps/render.py)
    convert         convert.py   a splat scene from one format to another (apps/convert.py)
    generate-image  generate.py  text to image (generate/models/folder.py)
    export          export.py    a model to ONNX or TensorRT (export/run.py)
    generate        generate.py  text to video (apps/generate.py)
    bench NAME      bench.py     neuralframe/bench/NAME.py: `run(...)`, then `print_summary(result)` or JSON
    data NAME       data.py      the bundled scenes and datasets, built by the project's code
    train NAME      train.py     the bundled models' training runs
    eval NAME       eval.py      the trained models' quality

`--ray` (render, restyle, matte, generate) runs the same job on Ray through `neuralframe.distributed.jobs`.
User errors (`NeuralframeError`, bad option values) print one line and exit 2; Ctrl-C exits 130.
"""

from __future__ import annotations

import sys
import traceback
from typing import Any, Optional

import typer

from neuralframe.cli import (bench, convert, data, demo, export, generate, info, matte, render, restyle, stream,
                             train, view)
from neuralframe.cli import eval as evaluation
from neuralframe.cli.options import expand_ray_flag, plain_help
from neuralframe.errors import NeuralframeError, PipelineError

app = typer.Typer(
    name="neuralframe",
    help="Real-time neural graphics and generative media: splat and NeRF scenes, live webcam filters, "
         "video generation and edge export, on a CPU or a GPU.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.command("info")(info.info)
app.command("demo")(demo.demo)
app.command("stream")(stream.stream)
app.command("restyle")(restyle.restyle)
app.command("matte")(matte.matte)
app.command("view")(view.view)
app.command("render")(render.render)
app.command("convert")(convert.convert)
app.command("generate-image")(generate.generate_image)
app.command("export")(export.export)
app.command("generate")(generate.generate)
app.add_typer(bench.app, name="bench")
app.add_typer(data.app, name="data")
app.add_typer(train.app, name="train")
app.add_typer(evaluation.app, name="eval")


def command() -> Any:
    """The click command that `main` runs: typer's tree of `app`, its help texts made plain for rich."""
    tree = typer.main.get_command(app)
    plain_help(tree)
    return tree


def _usage_error_types() -> tuple[type[BaseException], ...]:
    """Click's usage errors: typer >= 0.20 vendors click under its own exception base."""
    types: list[type[BaseException]] = []
    if hasattr(typer, "TyperException"):
        types.append(typer.TyperException)
    try:
        import click

        types.append(click.ClickException)
    except ImportError:  # pragma: no cover
        pass
    return tuple(types)


def main(argv: Optional[list[str]] = None) -> int:
    """Entry point: runs the app and turns user errors into one line and exit code 2."""
    import os

    from neuralframe.console import error_line

    # transformers/diffusers warnings (accelerate, torchvision fallbacks) are not for the command's user
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # per-file "Loading weights" bars
    usage_errors = _usage_error_types()
    try:
        args = expand_ray_flag(list(sys.argv[1:] if argv is None else argv))
        result = command().main(args=args, prog_name="neuralframe", standalone_mode=False)
        if result == 130:  # typer turns a KeyboardInterrupt inside a command into this return value
            error_line("interrupted")
            return 130
        if isinstance(result, int) and not isinstance(result, bool):
            return result
    except typer.Exit as done:
        return done.exit_code
    except usage_errors as error:
        # bad option values and usage errors: the usage line, then the problem
        error.show()
        return 2
    except (typer.Abort, KeyboardInterrupt):
        error_line("interrupted")
        return 130
    except PipelineError as error:
        if not isinstance(error.error, NeuralframeError):
            # a bug, not a user error: keep the traceback
            traceback.print_exception(error.error)
            error_line(str(error))
            return 1
        error_line(str(error))
        return error.exit_code
    except NeuralframeError as error:
        error_line(str(error))
        return error.exit_code
    return 0
