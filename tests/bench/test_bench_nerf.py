"""`neuralframe bench nerf --quick`: every stage runs, each implementation is sampled alike, and the checks
(absolute floors) are computed and hold at the quick run's floors (the full run is benchmarks/nerf.json)."""

from __future__ import annotations

import pytest

from neuralframe.bench import nerf


@pytest.mark.slow
def test_the_quick_run_measures_every_stage_and_passes_its_floors():
    result = nerf.run(quick=True)
    assert set(result["encode_points_per_s"]) >= {"reference", "cpu"}
    assert result["train_steps"] > 0 and result["render_fps"]["200x200"] > 0
    assert len(result["checks"]) == 3 and all(isinstance(v, bool) for v in result["checks"].values())
    assert all(result["checks"].values()), result["checks"]
