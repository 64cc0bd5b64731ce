"""Parity and speed of an exported graph against the torch model, both behind the engine protocol.

    result = check_parity(graph, reference, candidate, tolerance, dynamic=False)
    torch_ms, ort_ms = time_pair(torch_engine, ort_engine, feed, runs=20)

Parity runs fresh random inputs and the graph's real inputs through both engines; a recurrent graph's
real inputs are one sequence, each engine carrying its own states from step to step (so drift through
the recurrence counts). It holds when every element of every output is within the tolerance.
"""

from __future__ import annotations

import statistics
import time
from typing import Any, Callable

import torch

from neuralframe.export.specs import Feed, Graph, Tolerance

Runner = Callable[..., dict[str, torch.Tensor]]


def _stats(want: torch.Tensor, got: torch.Tensor, tol: Tolerance) -> tuple[float, float, float, bool]:
    want, got = want.detach().double().cpu(), got.detach().double().cpu()
    if want.shape != got.shape:
        return float("inf"), float("inf"), float("inf"), False
    finite = bool(torch.isfinite(want).all() and torch.isfinite(got).all())
    diff = (want - got).abs()
    if diff.numel() == 0:
        return 0.0, 0.0, 0.0, True
    excess = float((diff - (tol.atol + tol.rtol * want.abs())).max())
    return float(diff.max()), float(diff.mean()), excess, finite and excess <= 0.0


def compare_steps(reference: Runner, candidate: Runner, steps: list[Feed], recurrent: dict[str, str],
                  tol: Tolerance) -> dict[str, Any]:
    """Run `steps` through both; per output the max and mean abs error over all steps, and whether every
    element was within `tol`."""
    per: dict[str, dict[str, Any]] = {}
    carried_ref: Feed = {}
    carried_cand: Feed = {}
    for feed in steps:
        want = reference(**{**carried_ref, **feed})
        got = candidate(**{**carried_cand, **feed})
        for name, value in want.items():
            mx, mean, excess, ok = _stats(value, got[name], tol)
            row = per.setdefault(name, {"max_abs_err": 0.0, "mean_abs_err": [], "within": True,
                                        "shape": list(value.shape)})
            row["max_abs_err"] = max(row["max_abs_err"], mx)
            row["mean_abs_err"].append(mean)
            row["within"] = row["within"] and ok
        carried_ref = {i: want[o] for o, i in recurrent.items()}
        carried_cand = {i: got[o] for o, i in recurrent.items()}
    outputs = {}
    for name, row in per.items():
        outputs[name] = {"max_abs_err": round_sig(row["max_abs_err"]),
                         "mean_abs_err": round_sig(statistics.mean(row["mean_abs_err"])),
                         "within": row["within"], "shape": row["shape"]}
    return {
        "steps": len(steps),
        "outputs": outputs,
        "max_abs_err": round_sig(max((o["max_abs_err"] for o in outputs.values()), default=0.0)),
        "mean_abs_err": round_sig(statistics.mean([o["mean_abs_err"] for o in outputs.values()]) if outputs else 0.0),
        "passed": all(o["within"] for o in outputs.values()),
    }


def round_sig(v: float) -> float:
    """Four significant figures (keeps small ratios and errors meaningful), NaN and inf as they are."""
    return float(f"{v:.4g}") if v == v and abs(v) != float("inf") else v


def check_parity(graph: Graph, reference: Runner, candidate: Runner, tol: Tolerance, dynamic: bool,
                 seed: int = 0, random_sets: int = 2) -> dict[str, Any]:
    """Random inputs (fresh, seeded; other shapes when `dynamic`) and real inputs, through both runners."""
    gen = torch.Generator().manual_seed(1000 + seed)
    random = compare_steps(reference, candidate, [graph.random_inputs(gen, dynamic) for _ in range(random_sets)],
                           {}, tol)
    real = compare_steps(reference, candidate, graph.real_inputs(), graph.recurrent, tol)
    failed = [f"{kind} '{name}' (max abs error {row['max_abs_err']:.3g})"
              for kind, part in (("random", random), ("real", real))
              for name, row in part["outputs"].items() if not row["within"]]
    return {
        "tolerance": {**tol.to_dict(), "rule": tol.describe()},
        "random": random,
        "real": {**real, "data": graph.real_description},
        "max_abs_err": max(random["max_abs_err"], real["max_abs_err"]),
        "mean_abs_err": round_sig(max(random["mean_abs_err"], real["mean_abs_err"])),
        "passed": random["passed"] and real["passed"],
        "failed": failed,
    }


def time_pair(a: Runner, b: Runner, feed: Feed, runs: int = 20, warmup: int = 3) -> tuple[float, float]:
    """Median milliseconds of `a(**feed)` and `b(**feed)`, called alternately so that machine drift (other
    jobs, frequency changes) hits both alike."""
    for _ in range(warmup):
        a(**feed)
        b(**feed)
    ta, tb = [], []
    for _ in range(max(1, runs)):
        t = time.perf_counter()
        a(**feed)
        ta.append(time.perf_counter() - t)
        t = time.perf_counter()
        b(**feed)
        tb.append(time.perf_counter() - t)
    return round_sig(1e3 * statistics.median(ta)), round_sig(1e3 * statistics.median(tb))


def time_one(a: Runner, feed: Feed, runs: int = 20, warmup: int = 3) -> float:
    for _ in range(warmup):
        a(**feed)
    times = []
    for _ in range(max(1, runs)):
        t = time.perf_counter()
        a(**feed)
        times.append(time.perf_counter() - t)
    return round_sig(1e3 * statistics.median(times))
