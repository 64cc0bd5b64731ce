"""The export report as tables on the terminal (rich): one per graph, one line per fact."""

from __future__ import annotations

from typing import Any

from rich.markup import escape
from rich.table import Table


def _shape(io: dict[str, Any]) -> str:
    dims = ", ".join(str(d) for d in io["shape"])
    return f"{io['name']} [{dims}] {io['dtype']}"


def _size(n: int) -> str:
    return f"{n / 1e6:.2f} MB" if n >= 1e5 else f"{n / 1e3:.1f} kB"


def _lint(lint: dict[str, Any]) -> str:
    if lint["ok"]:
        return f"[green]ok[/] (TensorRT {lint['tensorrt']}: all operators and types supported)"
    parts = []
    if lint["unsupported_ops"]:
        parts.append("unsupported ops: " + ", ".join(f"{k} x{v}" for k, v in lint["unsupported_ops"].items()))
    if lint["unsupported_types"]:
        parts.append("unsupported types: " + ", ".join(lint["unsupported_types"]))
    parts += lint.get("restrictions", [])
    if not lint["opset_ok"]:
        parts.append(f"opset outside {lint['opsets'][0]}..{lint['opsets'][1]}")
    return f"[red]{escape('; '.join(parts))}[/]"


def _parity(p: dict[str, Any]) -> str:
    mark = "[green]pass[/]" if p["passed"] else "[red]FAIL[/]"
    return (f"{mark} random max {p['random']['max_abs_err']:.2e} mean {p['random']['mean_abs_err']:.2e}; "
            f"real max {p['real']['max_abs_err']:.2e} mean {p['real']['mean_abs_err']:.2e} "
            f"[dim](tolerance atol {p['tolerance']['atol']:g} rtol {p['tolerance']['rtol']:g})[/]")


def graph_table(g: dict[str, Any]) -> Table:
    table = Table(title=f"[bold]{g['name']}[/]", title_justify="left", show_header=False, show_edge=False,
                  pad_edge=False)
    table.add_column("item", style="bold", no_wrap=True)
    table.add_column("value")
    table.add_row("weights", escape(g["weights"]))
    table.add_row("opset", str(g["opset"]))
    for io in g["inputs"]:
        table.add_row("input", escape(_shape(io)))
    for io in g["outputs"]:
        table.add_row("output", escape(_shape(io)))
    dyn = {io["name"]: io["dynamic_axes"] for io in g["inputs"] + g["outputs"] if io["dynamic_axes"]}
    table.add_row("dynamic axes", escape(", ".join(f"{k} {v}" for k, v in dyn.items())) if dyn else "none (static)")
    for precision, f in g["files"].items():
        table.add_row(f"file {precision}", f"{escape(f['path'])} ({_size(f['bytes'])})")
    table.add_row("onnx.checker", "[green]ok[/]" if g["checker"] == "ok" else f"[red]{escape(g['checker'])}[/]")
    table.add_row("TensorRT lint", _lint(g["tensorrt_lint"]))
    for precision, p in g["parity"].items():
        table.add_row(f"parity {precision}", _parity(p))
    if "fp16" in g:
        table.add_row("fp16 note", f"[dim]{escape(g['fp16']['note'])}[/]")
    if "int8" in g:
        a = g["int8"]["accuracy"]
        counted = [k for k in ("frames", "images", "prompts") if k in a]
        extra = {k: v for k, v in a.items() if isinstance(v, (int, float)) and k not in counted}
        line = f"{a['metric']}: " + ", ".join(f"{k} {v}" for k, v in extra.items())
        line += "".join(f" ({a[k]} {k})" for k in counted) + (f" ({a['note']})" if a.get("note") else "")
        table.add_row("int8 accuracy", escape(line))
        table.add_row("int8 lint", _lint(g["int8"]["tensorrt_lint"]))
    s = g["speed"]
    speed = f"torch {s['torch_ms']:.2f} ms, onnxruntime {s['ort_ms']:.2f} ms ([bold]{s['ratio_ort_vs_torch']:.2f}x[/])"
    if "ort_fp16_ms" in s:
        speed += f", fp16 {s['ort_fp16_ms']:.2f} ms"
    if "ort_int8_ms" in s:
        speed += f", int8 {s['ort_int8_ms']:.2f} ms"
    table.add_row("speed (cpu)", speed + f" [dim]median of {s['runs']}[/]")
    for precision, t in g.get("tensorrt", {}).items():
        sp = t["speed"]
        table.add_row(f"TensorRT {precision}", escape(f"{t['file']['path']}: {sp['tensorrt_ms']:.2f} ms vs torch "
                                                      f"{sp['torch_cuda_ms']:.2f} ms on {sp['device']}"))
    for note in g["notes"]:
        table.add_row("note", f"[dim]{escape(note)}[/]")
    return table


def print_report(report: dict[str, Any]) -> None:
    from neuralframe.console import console

    for g in report["graphs"]:
        console.print(graph_table(g))
        console.print()
    status = "[green]passed[/]" if report["passed"] else "[red]failed[/]"
    console.print(f"export {report['model']} -> {report['to']} ({', '.join(report['precisions'])}): {status}; "
                  f"report [bold]{escape(report.get('report', ''))}[/]", highlight=False)
