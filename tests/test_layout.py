"""The layout holds (README "How the code is laid out"): the layers of pyproject.toml's import-linter
contract with no ignored imports, no import cycles between modules, no file over 600 lines, and tests/
mirroring the package."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "neuralframe"
MAX_LINES = 600


def _contracts() -> list[dict]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]


def test_the_import_contract_holds_with_no_ignored_imports():
    assert all("ignore_imports" not in c for c in _contracts())
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")
    if lint is None:
        pytest.fail("lint-imports is missing: pip install -e '.[dev]' installs import-linter")
    result = subprocess.run([lint, "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-4000:]


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_two_modules_import_each_other_directly_or_in_a_ring():
    grimp = pytest.importorskip("grimp", reason="grimp comes with import-linter (the dev extra)")
    g = grimp.build_graph("neuralframe", cache_dir=None)
    # a package's __init__ re-exporting its own submodules is not a cycle between files
    graph = {m: {i for i in g.find_modules_directly_imported_by(m) if not m.startswith(i + ".")}
             for m in g.modules}
    assert _cycles(graph) == []


def test_the_ring_finder_finds_a_ring():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_file_over_600_lines():
    long = {str(p.relative_to(ROOT)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert long == {}, "split these by concept"


def test_tests_mirror_the_package():
    data = {"fixtures", "golden", "__pycache__", "reliability"}  # reliability: the cross-command suites
    strays = [str(d.relative_to(ROOT)) for d in (ROOT / "tests").rglob("*") if d.is_dir() and d.name not in data
              and not any(part in data for part in d.relative_to(ROOT / "tests").parts)
              and not (PACKAGE / d.relative_to(ROOT / "tests")).is_dir()]
    assert strays == [], "a test folder should name the package folder it tests"
