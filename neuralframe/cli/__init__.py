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
User errors (`NeuralframeError`, bad option values) print one line and exit 2; a failed stage exits 1 (one line
naming the stage; a bug's traceback before it); Ctrl-C exits 130 and SIGTERM 143, a pipeline's output then
holding the frames so far (neuralframe.ctrlc, streaming/pipeline.py).
"""

from __future__ import annotations

import sys
import traceback
from typing import Any, Optional

import typer

from neuralframe import ctrlc
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


def _usage_message(error: BaseException) -> str:
    """Click's usage error as one line: the problem, then the command whose --help explains it."""
    message = error.format_message() if hasattr(error, "format_message") else str(error)
    message = " ".join(message.split())
    ctx = getattr(error, "ctx", None)
    if ctx is not None:
        message += f" (see `{ctx.command_path} --help`)"
    return message


def _keep_interrupts(tree: Any, kept: list) -> None:
    """Typer turns a KeyboardInterrupt into exit code 130 and drops it: keep it in `kept`, so that `main` can
    tell a SIGTERM (`ctrlc.Terminated`) from a Ctrl-C and say what the interrupted run left."""
    for name in ("make_context", "invoke"):
        def keeping(*args, _method=getattr(tree, name), **kwargs):
            try:
                return _method(*args, **kwargs)
            except KeyboardInterrupt as interrupt:
                kept.append(interrupt)
                raise
        setattr(tree, name, keeping)


def _interrupted(interrupt: KeyboardInterrupt) -> int:
    """The line and exit code of an interrupted command: 130 for Ctrl-C, 143 for SIGTERM, and where the
    frames so far went when a pipeline finalised them (`Pipeline.interrupted`)."""
    from neuralframe.console import error_line

    terminated = isinstance(interrupt, ctrlc.Terminated)
    line = "terminated (SIGTERM)" if terminated else "interrupted"
    report = getattr(interrupt, "report", None)
    if report is not None and report.output and report.frames_out:
        line += f": the {report.frames_out} frames so far are in {report.output}"
    error_line(line)
    return ctrlc.Terminated.exit_code if terminated else 130


def main(argv: Optional[list[str]] = None) -> int:
    """Entry point: runs the app and turns user errors into one line and exit code 2."""
    import os

    from neuralframe.console import error_line

    # transformers/diffusers warnings (accelerate, torchvision fallbacks) are not for the command's user
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # per-file "Loading weights" bars
    usage_errors = _usage_error_types()
    kept: list[KeyboardInterrupt] = []
    try:
        with ctrlc.graceful_sigterm():  # SIGTERM stops a command as Ctrl-C does (neuralframe.ctrlc)
            args = expand_ray_flag(list(sys.argv[1:] if argv is None else argv))
            tree = command()
            _keep_interrupts(tree, kept)
            result = tree.main(args=args, prog_name="neuralframe", standalone_mode=False)
        if result == 130:  # typer turns a KeyboardInterrupt inside a command into this return value
            return _interrupted(kept[-1] if kept else KeyboardInterrupt())
        if isinstance(result, int) and not isinstance(result, bool):
            return result
    except typer.Exit as done:
        return done.exit_code
    except usage_errors as error:
        # bad option values and usage errors: one line, the problem and where the help is
        error_line(_usage_message(error))
        return getattr(error, "exit_code", 2) or 2
    except typer.Abort:
        return _interrupted(KeyboardInterrupt())
    except KeyboardInterrupt as interrupt:
        return _interrupted(interrupt)
    except PipelineError as error:
        if isinstance(error.error, OSError):  # a full disk, a lost mount: neither a bug nor the user's input
            reason = error.error.strerror or str(error.error)
            error_line(f"stage '{error.stage}' failed: {reason}; nothing was written")
            return 1
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
