"""The command line as the tests run it (importable from every test folder: tests/ holds the root conftest)."""

from __future__ import annotations

import os
import subprocess
import sys


def nf(*args, cwd=None, timeout=600, env=None) -> subprocess.CompletedProcess:
    """`neuralframe ARGS...` in a fresh interpreter (environment `env`, default this one), wide terminal,
    output captured."""
    return subprocess.run([sys.executable, "-m", "neuralframe.cli", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout, env={**(env or os.environ), "COLUMNS": "200"})


def one_clear_line(result: subprocess.CompletedProcess, *fragments: str) -> None:
    """A user error as promised: exit code 2, no traceback, one line on stderr naming every fragment."""
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
