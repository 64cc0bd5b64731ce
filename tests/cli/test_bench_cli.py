"""`neuralframe bench NAME`: the benchmark's `run` result, printed by its own `print_summary`, or as JSON."""

from __future__ import annotations

import json

RESULT = {"fps_pipeline": 55.123, "fps_loop": 30.5, "ratio": 1.807, "width": 1280, "height": 720, "frames": 24,
          "cpu_cores": 2, "checks": {"pipeline_not_slower_than_loop": True}}


def _bench(monkeypatch, capsys, *args: str):
    import neuralframe.bench.pipeline as bench
    from neuralframe.cli import main

    calls = []
    monkeypatch.setattr(bench, "run", lambda **options: calls.append(options) or RESULT)
    capsys.readouterr()
    code = main(["bench", "pipeline", *args])
    out, err = capsys.readouterr()
    return code, out, calls


def test_bench_prints_the_summary_line(monkeypatch, capsys):
    code, out, calls = _bench(monkeypatch, capsys, "--frames", "24")
    assert code == 0
    assert out == ("pipeline 55.1 FPS vs loop 30.5 FPS: 1.81x (1280x720, 24 frames, 2 cores)\n"
                   "checks: {'pipeline_not_slower_than_loop': True}\n")
    assert calls[0]["frames"] == 24 and calls[0]["progress"] is not None


def test_bench_json_is_the_result_alone(monkeypatch, capsys):
    code, out, calls = _bench(monkeypatch, capsys, "--json")
    result = json.loads(out)
    recorded = result.pop("recorded")  # when, from which commit and on what machine it was measured
    assert code == 0 and result == RESULT
    assert recorded["date"].endswith("Z") and recorded["machine"]["cores"] >= 1 and "commit" in recorded
    assert calls[0]["progress"] is None  # nothing but the JSON object
