"""Shared by the export tests: one export per model for the whole module (each takes seconds)."""

from __future__ import annotations

import pytest

# Few timed runs and one thread: the tests check that speed is measured, the benchmark measures it.
FAST = {"runs": 2, "threads": 1}


@pytest.fixture(scope="session")
def segmenter_export(tmp_path_factory):
    from neuralframe.export import ExportSettings, export

    out = tmp_path_factory.mktemp("segmenter")
    return out, export(ExportSettings("segmenter", out=str(out), fp16=True, int8=True, **FAST))


@pytest.fixture(scope="session")
def rvm_export(tmp_path_factory):
    from neuralframe.export import ExportSettings, export

    out = tmp_path_factory.mktemp("rvm")
    return out, export(ExportSettings("rvm", out=str(out), random_weights=True, dynamic=True, ratios=(0.5, 1.0),
                                      size=(96, 160), fp16=True, **FAST))


@pytest.fixture(scope="session")
def nerf_export(tmp_path_factory):
    from neuralframe.export import ExportSettings, export

    out = tmp_path_factory.mktemp("nerf")
    return out, export(ExportSettings("nerf-field", out=str(out), random_weights=True, fp16=True, **FAST))


@pytest.fixture(scope="session")
def tiny_shapes_export(tmp_path_factory):
    from neuralframe.export import ExportSettings, export

    out = tmp_path_factory.mktemp("tiny-shapes")
    return out, export(ExportSettings("tiny-shapes", out=str(out), random_weights=True, dynamic=True, fp16=True,
                                      int8=True, **FAST))
