"""Shared test setup: markers defined once, caches kept out of the home folder, no hub access."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("NUMBA_CACHE_DIR", str(ROOT / ".cache" / "numba"))
os.environ.setdefault("HF_HOME", str(ROOT / ".cache" / "hf"))
os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(Path(tempfile.gettempdir()) / "nf-inductor"))
os.environ.setdefault("XDG_CACHE_HOME", tempfile.mkdtemp(prefix="nf-test-cache-"))  # level-of-detail trees, exports
# a local Ray in the tests: no token authentication (its folder is the one `--ray` picks by itself)
os.environ.setdefault("RAY_AUTH_MODE", "disabled")


REQUIRE_DISPLAY = "NEURALFRAME_REQUIRE_DISPLAY"  # set by .ci/run: a display test may not be skipped


def _has_cuda() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:  # pragma: no cover
        return False


def kernel_impls(op: str, cuda: bool = False, besides_reference: bool = False) -> list:
    """Every implementation of dispatch op `op` that runs on this machine's CPU, as test parameters; with
    `cuda`, "cuda" too, marked `cuda` (skipped without a GPU); with `besides_reference`, all but the reference
    (a test that compares with the reference would compare the reference with itself)."""
    from neuralframe.backend import dispatch

    names = [n for n in dispatch.REGISTRY.get(op).available("cpu") if not (besides_reference and n == "reference")]
    params = [pytest.param(name, id=name) for name in names]
    if cuda:
        params.append(pytest.param("cuda", id="cuda", marks=pytest.mark.cuda))
    return params


def pytest_configure(config):
    config.addinivalue_line("markers", "kernel(op, cuda=False): run the test once per implementation of dispatch "
                                       "op `op` (its `impl` argument), the one list every kernel test uses")


def pytest_generate_tests(metafunc):
    # `pytestmark = pytest.mark.kernel("fused.resize")` in a kernel's test module: every test taking `impl`
    # runs over the op's implementations (the module imports the op's package, which registers them); a test
    # named "..._match(es)_reference..." over every implementation but the reference
    marker = metafunc.definition.get_closest_marker("kernel")
    explicit = any("impl" in (names.replace(" ", "").split(",") if isinstance(names, str) else names)
                   for names in (m.args[0] for m in metafunc.definition.iter_markers("parametrize")))
    if marker is not None and "impl" in metafunc.fixturenames and not explicit:
        against = "_reference" in metafunc.definition.name and "match" in metafunc.definition.name
        metafunc.parametrize("impl", kernel_impls(*marker.args, **marker.kwargs, besides_reference=against))


def pytest_collection_modifyitems(config, items):
    skip_cuda = pytest.mark.skip(reason="needs a CUDA GPU")
    skip_display = pytest.mark.skip(reason="needs a display (run under xvfb-run)")
    cuda = _has_cuda()
    display = bool(os.environ.get("DISPLAY"))
    if os.environ.get(REQUIRE_DISPLAY) == "1" and not display and any("display" in i.keywords for i in items):
        # CI promises the window tests: without a display they must fail, not skip and pass
        raise pytest.UsageError(f"{REQUIRE_DISPLAY}=1 but no DISPLAY: run the tests under xvfb-run")
    for item in items:
        if "cuda" in item.keywords and not cuda:
            item.add_marker(skip_cuda)
        if "display" in item.keywords and not display:
            item.add_marker(skip_display)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    # under CI (REQUIRE_DISPLAY) a display test that skips itself (no window could open) is a failure
    outcome = yield
    report = outcome.get_result()
    if report.skipped and "display" in item.keywords and os.environ.get(REQUIRE_DISPLAY) == "1":
        report.outcome = "failed"
        report.longrepr = f"a display test skipped under CI ({REQUIRE_DISPLAY}=1): {report.longrepr}"
