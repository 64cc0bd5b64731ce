"""`neuralframe bench data --quick`: the rates are measured and clear their floors (benchmarks/data.json has
the full run)."""

from __future__ import annotations

from neuralframe.bench import data


def test_the_quick_run_measures_each_rate_and_checks_its_floor():
    result = data.run(quick=True)
    assert set(result["checks"]) == {f"{name}_ge_{floor:g}" for name, floor in data.FLOORS.items()}
    assert all(result[name] > 0 for name in data.FLOORS)
    assert all(result["checks"].values()), result
