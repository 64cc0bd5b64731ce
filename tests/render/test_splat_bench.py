"""Smoke test of `neuralframe bench splat`: the JSON has the shape the issue asks for."""

import json

from neuralframe.bench.splat import run


def test_quick_benchmark_reports_every_field():
    result = json.loads(json.dumps(run(quick=True)))
    rows = result["results"]
    assert {r["impl"] for r in rows} == {"cpu", "reference"}
    for r in rows:
        assert set(r) == {"case", "n_gaussians", "width", "height", "impl", "ms_median", "fps"}
        assert r["ms_median"] > 0 and abs(r["fps"] - 1000.0 / r["ms_median"]) < 0.05 * r["fps"] + 0.01
    case = rows[0]["case"]
    assert result["ratios"]["cpu_vs_reference"][case] > 0
    evals = result["pixel_gaussian_evaluations"][case]
    assert evals["per_frame"] > 0 and evals["per_second"] > 0
    assert result["machine"]["cores_available"] >= 1
    assert set(result["checks"]) == {f"cpu_vs_reference_ge_10_{case}"}
    assert all(isinstance(v, bool) for v in result["checks"].values())
