import pytest

from neuralframe.backend import dispatch
from neuralframe.errors import InputError, MissingDependencyError


def _op(name):
    # a private registry per test: the process-wide one is for the package's own ops
    return dispatch.Registry().op(name)


def test_auto_prefers_cpu_kernel_then_reference():
    op = _op("double")
    op.register("reference", lambda x: ("ref", 2 * x))
    assert op.name_for("auto", "cpu") == "reference"
    op.register("cpu", lambda x: ("cpu", 2 * x), device="cpu")
    assert op.name_for("auto", "cpu") == "cpu"
    assert op(3, impl="auto", device="cpu") == ("cpu", 6)
    assert op(3, impl="reference") == ("ref", 6)
    # a CPU kernel never runs on a CUDA device: auto falls back to the reference there
    assert op.name_for("auto", "cuda:0") == "reference"


def test_missing_package_says_what_to_install():
    op = _op("fancy")
    op.register("reference", lambda: "ref")
    op.register("cuda", "surely_not_a_module_xyz.kernels:run", requires=("surely_not_a_module_xyz",),
                device="cuda", hint="pip install 'neuralframe[cuda]'")
    assert op.name_for("auto", "cuda") == "reference"
    with pytest.raises(MissingDependencyError, match=r"not installed \(pip install 'neuralframe\[cuda\]'\)"):
        op.resolve("cuda", "cuda")
    assert op.available() == ["reference"]


def test_broken_fast_path_is_cached_and_auto_falls_back():
    op = _op("broken")
    op.register("reference", lambda: "ref")
    op.register("cpu", "neuralframe.no_such_module:fn")
    assert op.name_for("auto") == "reference"
    with pytest.raises(MissingDependencyError, match="failed to load"):
        op.resolve("cpu")
    assert "cpu" not in op.available()


def test_unknown_impl_and_wrong_device():
    op = _op("x")
    op.register("reference", lambda: 1)
    op.register("cuda", lambda: 2, device="cuda")
    with pytest.raises(InputError, match="has no implementation 'cpu'"):
        op.resolve("cpu")
    with pytest.raises(InputError, match="runs on cuda only"):
        op.resolve("cuda", "cpu")
    with pytest.raises(ValueError):
        op.register("fast", lambda: 3)
    with pytest.raises(InputError, match="unknown implementation"):
        dispatch.check_impl("turbo")


def test_package_registry_lists_fused_ops():
    from neuralframe.backend import fused  # noqa: F401

    assert "fused.resize" in dispatch.REGISTRY.names()
    assert dispatch.op("fused.resize").available("cpu") == ["reference", "cpu"]
