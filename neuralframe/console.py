"""Terminal output shared by the commands: summaries, progress bars, errors (rich)."""

from __future__ import annotations

import contextlib
import json
import sys
from typing import Any, Callable, Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn, \
    TimeRemainingColumn
from rich.table import Table

console = Console()
err_console = Console(stderr=True)


def emit_json(data: dict) -> None:
    """One JSON object on stdout, indented: what `--json` prints (plain, for other programs to read)."""
    sys.stdout.write(json.dumps(data, indent=2) + "\n")


def note(message: str) -> None:
    """A progress message on stderr, dimmed (stdout keeps the results)."""
    err_console.print(f"[dim]{message}[/]")


def error_line(message: str) -> None:
    """One line on stderr: what is wrong and what to do."""
    from rich.markup import escape

    # escaped: messages hold brackets that are not markup (pip install 'neuralframe[virtualcam]')
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)


@contextlib.contextmanager
def progress_bar(description: str, total: int | None, enabled: bool = True) -> Iterator[Any]:
    """A progress bar (frames done, rate, time left); `advance(n)` on the yielded object."""
    if not enabled or not sys.stderr.isatty() and total is None:
        class _Quiet:
            def advance(self, n: int = 1) -> None:
                pass

            def update(self, **kw: Any) -> None:
                pass

        yield _Quiet()
        return
    columns = [SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TimeRemainingColumn()]
    with Progress(*columns, console=err_console, transient=False) as progress:
        task = progress.add_task(description, total=total, rate="")

        class _Bar:
            def advance(self, n: int = 1) -> None:
                progress.advance(task, n)

            def update(self, **kw: Any) -> None:
                progress.update(task, **kw)

        yield _Bar()


@contextlib.contextmanager
def steps(description: str, enabled: bool = True) -> Iterator[Callable[[str], None]]:
    """A spinner on stderr naming the step under way (`step("writing")`); it leaves nothing behind, so an
    error after it is still one line. Quiet when disabled or when stderr is not a terminal."""
    if not enabled or not err_console.is_terminal:
        yield lambda text: None
        return
    with err_console.status(description) as status:
        yield lambda text: status.update(f"{description}: {text}")


def run_with_progress(pipeline, description: str | None = None, limit: int | None = None, enabled: bool = True):
    """Start `pipeline` and wait for it under a progress bar over its frames (at most `limit`); returns
    the report. The bar's total (and, by default, its label) come from the source's stream info, known
    once the pipeline started."""
    bars: list = []
    pipeline.on_frame = lambda frame: bars[0].advance() if bars else None
    pipeline.start()
    try:
        total = pipeline.info.frames if pipeline.info else None
        if limit is not None:
            total = min(total, limit) if total else limit
        label = description or (pipeline.info.name if pipeline.info else "") or "stream"
        with progress_bar(label, total, enabled=enabled) as bar:
            bars.append(bar)
            return pipeline.wait()
    except KeyboardInterrupt as interrupt:  # a Ctrl-C or SIGTERM outside wait(): the same graceful stop
        pipeline.interrupted(interrupt)


def pipeline_table(report) -> Table:
    """Per-node timing of a pipeline run."""
    table = Table(title=None, show_edge=False, header_style="bold")
    for col, justify in [("node", "left"), ("frames", "right"), ("ms mean", "right"), ("ms p95", "right"),
                         ("max fps", "right"), ("busy", "right")]:
        table.add_column(col, justify=justify)
    for node in report.nodes:
        table.add_row(f"{node['name']} [dim]({node['kind']})[/]", str(node["frames"]), f"{node['ms_mean']:.1f}",
                      f"{node['ms_p95']:.1f}", f"{node['fps_capacity']:.1f}", f"{100 * node['busy']:.0f}%")
    return table


def print_pipeline_report(report, title: str) -> None:
    console.print(f"[bold]{title}[/]")
    console.print(pipeline_table(report))
    extra = []
    if report.dropped:
        extra.append(f"{report.dropped} dropped (latest policy)")
    if report.filtered:
        extra.append(f"{report.filtered} filtered")
    if report.discarded:
        extra.append(f"{report.discarded} discarded")
    console.print(
        f"{report.frames_out} of {report.frames_in} frames in {report.wall_s:.2f} s: [bold]{report.fps:.1f} FPS[/], "
        f"latency p50 {report.latency_ms_p50:.0f} ms, p95 {report.latency_ms_p95:.0f} ms"
        + (f" ({', '.join(extra)})" if extra else "") + f" [dim]\\[{report.status}][/]",
        highlight=False,
    )
    if report.end_reason:
        console.print(f"[yellow]note:[/] {report.end_reason}", highlight=False)
    if report.output:
        console.print(f"wrote [bold]{report.output}[/]", highlight=False)


def print_cluster_summary(summary: dict) -> None:
    """Per-worker throughput of a Ray job and the total."""
    table = Table(title=None, show_edge=False, header_style="bold")
    for col, justify in [("worker", "left"), ("host", "left"), ("units", "right"), ("frames", "right"),
                         ("busy s", "right"), ("fps", "right")]:
        table.add_column(col, justify=justify)
    for w in summary.get("workers", []):
        name = f"{w['worker']} [dim](pid {w['pid']})[/]" + (" [red]died[/]" if w["died"] else "")
        table.add_row(name, w["host"], str(w["units"]), str(w["frames"]), f"{w['busy_s']:.2f}",
                      "-" if w["fps"] is None else f"{w['fps']:.2f}")
    console.print(table)
    retried = summary.get("retried_units", 0)
    after = summary.get("fps_after_setup")
    console.print(f"ray: {summary.get('frames', 0)} frames on {len(summary.get('workers', []))} worker(s), "
                  f"[bold]{after or 0:.2f} FPS[/] in total once the workers were up ({summary.get('setup_s', 0):.1f} s "
                  f"to start them and load their models; {summary.get('fps_total') or 0:.2f} FPS with it)"
                  + (f", {retried} unit(s) retried after a worker died" if retried else ""), highlight=False)
