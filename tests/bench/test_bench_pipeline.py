"""`neuralframe bench pipeline` in a quick run: both sides do the same work, the result has its keys and its
checks are computed (the recorded full run is benchmarks/pipeline.json)."""

from __future__ import annotations

from neuralframe.bench import pipeline


def test_a_small_run_reports_both_sides_and_computes_its_checks():
    result = pipeline.run(frames=12, repeats=2, size=(96, 128))
    assert result["fps_pipeline"] > 0 and result["fps_loop"] > 0
    assert len(result["fps_loop_runs"]) == len(result["fps_pipeline_runs"]) == 2
    assert abs(result["ratio"] - result["fps_pipeline"] / result["fps_loop"]) < 0.01
    assert set(result["checks"]) == {"pipeline_not_slower_than_loop", "fps_pipeline_ge_20"}
    assert all(isinstance(v, bool) for v in result["checks"].values())
