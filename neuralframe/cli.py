"""The `neuralframe` command: one small function per subcommand; the work lives in the library.

User errors (`NeuralframeError`, bad option values) print one line and exit 2; Ctrl-C exits 130.
"""

from __future__ import annotations

import json
import sys
import traceback
from typing import Optional

import typer

from neuralframe.errors import InputError, NeuralframeError, PipelineError

app = typer.Typer(
    name="neuralframe",
    help="Real-time neural graphics and generative media: splat and NeRF scenes, live webcam filters, "
         "video generation and edge export, on a CPU or a GPU.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
bench_app = typer.Typer(help="Benchmarks: each prints a summary, or one JSON object with --json.",
                        no_args_is_help=True)
app.add_typer(bench_app, name="bench")


def _size(text: Optional[str]) -> Optional[tuple[int, int]]:
    """'WIDTHxHEIGHT' -> (height, width)."""
    if text is None:
        return None
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise InputError(f"size '{text}' is not WIDTHxHEIGHT (for example 1280x720)") from None
    if w <= 0 or h <= 0:
        raise InputError(f"size '{text}' must be positive")
    return h, w


def _emit_json(data: dict) -> None:
    sys.stdout.write(json.dumps(data, indent=2) + "\n")


@app.command()
def info(as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of tables.")) -> None:
    """Versions, threads, devices and which optional capabilities are present."""
    from neuralframe import info as info_mod

    data = info_mod.collect()
    _emit_json(data) if as_json else info_mod.print_info(data)


@app.command()
def demo(
    out: str = typer.Option("out/demo", "--out", "-o", help="Folder for the demo's outputs."),
    frames: int = typer.Option(150, help="Frames of the moving test pattern."),
    as_json: bool = typer.Option(False, "--json", help="Print the run report as JSON."),
) -> None:
    """Run the bundled demo: a moving test pattern through the frame pipeline into OUT/pattern.mp4."""
    from neuralframe import demo as demo_mod

    report = demo_mod.run(out, frames=frames, progress=not as_json)
    if as_json:
        _emit_json(report)


@app.command()
def stream(
    source: str = typer.Option("pattern", "--source", "-s",
                               help="A video file, an image folder, webcam, webcam:N, or pattern."),
    out: Optional[str] = typer.Option(None, "--out", "-o",
                                      help="A .mp4/.mkv/.mov file, or a folder for PNG frames. Default: none "
                                           "(measure only)."),
    effect: str = typer.Option("none", "--effect", "-e", help="none, warm, cool, sepia or gray."),
    size: Optional[str] = typer.Option(None, help="Output size WIDTHxHEIGHT (default: the source's)."),
    frames: Optional[int] = typer.Option(None, help="Stop after N frames (the pattern defaults to 150)."),
    fps: Optional[float] = typer.Option(None, help="Frame rate of the pattern or image folder, and of the output."),
    policy: str = typer.Option("auto", help="Queue policy: auto (latest for webcams, block otherwise), block, "
                                            "latest."),
    impl: str = typer.Option("auto", help="Kernel implementation: auto, cpu or reference."),
    loop: bool = typer.Option(False, help="Loop a video file."),
    as_json: bool = typer.Option(False, "--json", help="Print the run report as JSON."),
) -> None:
    """Run a source through an effect into a file, a folder or nowhere; Ctrl-C stops cleanly."""
    from neuralframe.console import print_pipeline_report
    from neuralframe.streaming.run import StreamSettings, run

    settings = StreamSettings(source=source, out=out, effect=effect, size=_size(size), frames=frames, fps=fps,
                              policy=policy, impl=impl, loop=loop)
    report = run(settings, progress=not as_json)
    if as_json:
        _emit_json(report.to_dict())
    else:
        print_pipeline_report(report, f"stream {source} -> {out or 'null'} [{effect}]")


@bench_app.command("pipeline")
def bench_pipeline(
    frames: int = typer.Option(240, help="Frames in the 720p test input."),
    repeats: int = typer.Option(3, help="Alternating loop/pipeline rounds (the median is reported)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Threaded pipeline vs a plain single-threaded loop: decode -> fused stage -> encode, 720p."""
    from neuralframe.bench import pipeline as bench
    from neuralframe.console import err_console

    result = bench.run(frames=frames, repeats=repeats,
                       progress=None if as_json else (lambda m: err_console.print(f"[dim]{m}[/]")))
    if as_json:
        _emit_json(result)
    else:
        from neuralframe.console import console

        console.print(f"pipeline [bold]{result['fps_pipeline']:.1f} FPS[/] vs loop {result['fps_loop']:.1f} FPS: "
                      f"[bold]{result['ratio']:.2f}x[/] ({result['width']}x{result['height']}, {result['frames']} "
                      f"frames, {result['cpu_cores']} cores)", highlight=False)


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
    from neuralframe.console import error_line

    command = typer.main.get_command(app)
    usage_errors = _usage_error_types()
    try:
        command.main(args=argv, prog_name="neuralframe", standalone_mode=False)
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


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
