"""The command tree, guarded: every command and option of `neuralframe` (names, flags, types, defaults, ranges,
help texts, and the order `--help` lists the commands in) against tests/cli/golden/commands.json.

A change to a command or an option fails here on purpose. When the change is meant, regenerate the golden file
and read its diff before committing:

    NEURALFRAME_REGEN_GOLDEN=1 .venv/bin/python -m pytest tests/cli/test_command_tree.py
"""

from __future__ import annotations

import json
import os
from pathlib import Path

GOLDEN = Path(__file__).parent / "golden" / "commands.json"


def command_tree(command, path: tuple[str, ...] = (), out: dict | None = None) -> dict:
    """{"neuralframe": ..., "bench splat": {"help": ..., "params": [...]}, ...} from the click objects that
    `neuralframe.cli.main` runs (duck-typed: typer vendors its own click)."""
    out = {} if out is None else out
    params = []
    for p in command.params:
        entry = {"name": p.name, "opts": list(p.opts) + list(getattr(p, "secondary_opts", [])),
                 "kind": type(p).__name__,
                 "type": p.bare_type() if hasattr(p, "bare_type") else getattr(p.type, "name", None),
                 "metavar": p.metavar, "required": p.required, "multiple": p.multiple,
                 "default": "<callable>" if callable(p.default) else repr(p.default),
                 "is_flag": getattr(p, "is_flag", False), "help": getattr(p, "help", None)}
        bounds = p if hasattr(p, "min") else getattr(p, "type", None)  # typer keeps min/max on the option
        if getattr(bounds, "min", None) is not None or getattr(bounds, "max", None) is not None:
            entry["range"] = [bounds.min, bounds.max]
        params.append(entry)
    node = {"help": command.help, "params": params}
    subcommands = getattr(command, "commands", None)
    if subcommands is not None:
        node["commands"] = list(subcommands)  # the order --help lists them in
    out[" ".join(path) or "neuralframe"] = node
    for name, sub in (subcommands or {}).items():
        command_tree(sub, path + (name,), out)
    return out


def test_the_command_tree_matches_the_golden_file():
    from neuralframe.cli import command

    now = command_tree(command())
    if os.environ.get("NEURALFRAME_REGEN_GOLDEN"):
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(json.dumps(now, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    golden = json.loads(GOLDEN.read_text(encoding="utf-8"))
    changed = sorted(name for name in golden.keys() | now.keys() if golden.get(name) != now.get(name))
    assert not changed, (f"the command line changed: {changed}; if that is meant, regenerate the golden file "
                         "(see this test's docstring) and review its diff")


def test_the_tree_finds_a_changed_option(monkeypatch):
    from neuralframe.cli import command

    tree = command()
    before = command_tree(tree)
    stream = tree.commands["stream"]
    monkeypatch.setattr(stream.params[0], "default", "webcam")
    after = command_tree(tree)
    assert [name for name in before if before[name] != after[name]] == ["stream"]
