"""Benchmarks behind `neuralframe bench NAME [--json]`: each module has `run(...) -> dict` (the measures, one
JSON-able dict: what --json prints) and `print_summary(result)` (what the command prints without --json).

Every speed claim is a ratio measured side by side in one run, with the absolute figures beside it.
"""

from __future__ import annotations


def stamp() -> dict:
    """When, from which code and on what a result was measured: UTC date and time, the git commit of the
    checkout (with "+changes" when its files differ from that commit; None outside a git checkout) and the
    machine (`backend.device.machine_info`). `neuralframe bench ... --json` adds it as "recorded"."""
    import subprocess
    import time
    from pathlib import Path

    from neuralframe.backend.device import machine_info

    root = Path(__file__).resolve().parents[2]
    commit = None
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=10)
        if head.returncode == 0:
            dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                                   capture_output=True, text=True, timeout=30)
            commit = head.stdout.strip() + ("+changes" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        pass
    return {"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "commit": commit, "machine": machine_info()}
