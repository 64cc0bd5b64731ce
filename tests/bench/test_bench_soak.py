"""`neuralframe bench soak` in a few seconds: both live pipelines run, every frame is accounted for, the
result has its keys and its checks are computed booleans; `--minutes` is range-checked before any work."""

from __future__ import annotations

import json
import threading

import pytest

from neuralframe.bench import soak

KEYS = {"benchmark", "recorded", "machine", "minutes", "seconds_run", "interrupted", "warmup_s", "warmup_rule",
        "window_s", "trend_rule", "frames_produced", "frames_source", "frames_dropped", "frames_unaccounted",
        "memory_growth_mb_per_hour", "memory", "pipelines", "threads_left", "checks", "all_checks_pass",
        "load_average"}
PIPELINE_KEYS = {"work", "status", "frames_source", "frames_delivered", "frames_dropped", "dropped_per_edge",
                 "frames_filtered", "frames_discarded", "frames_unaccounted", "fps_delivered",
                 "index_drift_frames_max", "index_drift_frames_final", "indices_increasing",
                 "timestamp_drift_ms_final", "timestamp_drift_ms_max", "latency_trend", "latency_per_window", "nodes"}


def test_a_short_soak_accounts_for_every_frame(capsys):
    result = soak.run(minutes=0.12)
    json.dumps(result, allow_nan=False)  # strict JSON
    assert KEYS <= set(result)
    assert result["benchmark"] == "soak" and not result["interrupted"]
    assert set(result["pipelines"]) == {"matte", "diffuse"}
    for name, row in result["pipelines"].items():
        assert PIPELINE_KEYS <= set(row), name
        assert row["frames_delivered"] > 0 and row["frames_unaccounted"] == 0, name
        assert row["frames_source"] == row["frames_delivered"] + row["frames_dropped"] + row["frames_filtered"], name
        assert row["index_drift_frames_final"] == 0 and row["indices_increasing"], name  # latest keeps the newest
        assert row["latency_per_window"] and all(w["p50_ms"] <= w["p99_ms"] for w in row["latency_per_window"]
                                                 if w["frames"])
    assert result["frames_unaccounted"] == 0 and result["frames_produced"] > 0
    assert result["memory"]["samples_after_warmup"] >= 2 and result["memory_growth_mb_per_hour"] is not None
    assert result["checks"] and all(type(ok) is bool for ok in result["checks"].values())
    assert result["all_checks_pass"] == all(result["checks"].values())
    assert result["checks"]["frames_unaccounted_zero"] and result["checks"]["threads_joined"]
    assert not [t for t in threading.enumerate() if t.name.startswith("nf-")]  # every worker and the sampler joined
    soak.print_summary(result)
    assert "unaccounted" in capsys.readouterr().out


def test_slope_is_per_hour():
    assert soak.slope_per_hour([0.0, 1800.0, 3600.0], [100.0, 105.0, 110.0]) == pytest.approx(10.0)
    assert soak.slope_per_hour([5.0], [1.0]) is None


@pytest.mark.parametrize("minutes", ["0", "-1", "nan", "inf", "100000"])
def test_minutes_out_of_range_is_one_line_before_any_work(minutes, capsys, monkeypatch):
    from neuralframe.cli import main

    monkeypatch.setattr(soak, "run", lambda **kw: pytest.fail("ran with a bad --minutes"))
    assert main(["bench", "soak", "--minutes", minutes]) == 2
    err = capsys.readouterr().err
    assert "--minutes" in err and "Traceback" not in err
