"""`neuralframe info`: versions, threads, devices and optional capabilities (apps/info.py)."""

from __future__ import annotations

import typer


def info(as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of tables.")) -> None:
    """Versions, threads, devices and which optional capabilities are present."""
    from neuralframe.apps import info as info_mod
    from neuralframe.console import emit_json

    data = info_mod.collect()
    emit_json(data) if as_json else info_mod.print_info(data)
