"""`neuralframe bench video`: the causal video model, measured in one run.

- `fps_generate`: frames per second of `neuralframe generate`'s generator (4 network evaluations per frame
  against the KV cache, then the autoencoder's decoder), over `frames` frames.
- `ratio_kvcache_vs_window_recompute` (the checked speed claim, >= 2.5): the same model without a cache,
  recomputing every evaluation the keys/values of just the frames attention can see (the sink and the
  window: what the cache holds), over the same frames and seeds, in the same alternating blocks;
  `window_recompute_max_abs_difference` is how far its video is from the cache's (its context frames no
  longer see their own earlier frames).
- `ratio_kvcache_vs_recompute` (a labelled extra): the same model without a cache, over the same frames: every
  network evaluation recomputes all the context (every earlier frame, each attending to its own sink and
  window, together with the current frame), as a causal transformer without a KV cache does; it makes the
  same video (`outputs_identical`: bit for bit; `outputs_max_abs_difference` otherwise, checked <= 1e-3). Network time only (the decoder is the same in both), in alternating
  blocks; `ratio_kvcache_vs_recompute_with_decode` includes decoding.
- `peak_mem_mb_100` / `peak_mem_mb_1000`: the process's peak resident memory during a run of 100 and of
  1,000 frames (sampled every frame), and `peak_mem_growth_mb_*` the most it rose over the run's start; `ms_per_frame_first_100` / `ms_per_frame_last_100` of the long run
  show time per frame staying flat, and `kv_cache_mb` is the cache's storage, allocated once.
- `motion_adherence`, `frame_adherence`, `switch_adherence`: `neuralframe.generate.video.evaluate` on
  `prompts` held-out prompts.
"""

from __future__ import annotations

import statistics
import time
from typing import Callable

import torch

from neuralframe.apps.generate import rss_mb

PROMPT = "a large red star rotating in the centre over a plain blue background"


def _time(gen, frames: int, use_cache: bool, decode: bool, seed: int = 0, window: bool = False) -> float:
    start = time.perf_counter()
    for z in gen.latents([(0, PROMPT)], frames, seed=seed, use_cache=use_cache, recompute_window=window):
        if decode:
            gen.decode(z)
    return time.perf_counter() - start


def _long_run(gen, frames: int) -> dict:
    base = rss_mb()
    peak, stamps = base, []
    cache = gen.new_cache()
    for z in gen.latents([(0, PROMPT)], frames, seed=1, cache=cache):
        gen.decode(z)
        stamps.append(time.perf_counter())
        peak = max(peak, rss_mb())
    per = [1000 * (b - a) for a, b in zip(stamps, stamps[1:])]
    return {"peak_mb": round(peak, 1), "growth_mb": round(peak - base, 2), "first_100": round(statistics.median(per[:100]), 2),
            "last_100": round(statistics.median(per[-100:]), 2), "cache_mb": round(cache.nbytes / 1e6, 3)}


def run(model=None, frames: int = 64, prompts: int = 100, blocks: int = 3, long_frames: int = 1000,
        quick: bool = False, progress: Callable[[str], None] | None = None) -> dict:
    from neuralframe.generate.evaluate import CountingCalls, CountingUNet
    from neuralframe.generate.models.classifier import ShapeClassifier
    from neuralframe.generate.video.evaluate import evaluate_video
    from neuralframe.generate.video.generate import BUNDLED_VIDEO, CausalVideoGenerator

    say = progress or (lambda m: None)
    if quick:
        frames, prompts, blocks, long_frames = 16, 4, 1, 120
    gen = CausalVideoGenerator(model or BUNDLED_VIDEO)
    _time(gen, 4, True, True)  # warm-up
    _time(gen, 4, False, False)
    _time(gen, 4, False, False, window=True)
    cached, window, recompute, cached_dec, recompute_dec = [], [], [], [], []
    for b in range(blocks):
        say(f"block {b + 1}/{blocks}: {frames} frames with the KV cache, then recomputing the context")
        counters = (CountingCalls(gen.model, "step"), CountingUNet(gen._image_pipe().unet))
        try:
            cached.append(_time(gen, frames, True, False))
        finally:
            for counter in counters:
                counter.restore()
        # counted on the timed run itself, by wrapping the networks: the video model's steps and the image
        # model's UNet (the keyframe), each call's batch
        nfe = sum(counter.evaluations for counter in counters) / frames
        window.append(_time(gen, frames, False, False, window=True))
        recompute.append(_time(gen, frames, False, False))
        cached_dec.append(_time(gen, frames, True, True))
        recompute_dec.append(_time(gen, frames, False, True))
    with_cache = torch.cat(list(gen.latents([(0, PROMPT)], frames, seed=5)))
    without = torch.cat(list(gen.latents([(0, PROMPT)], frames, seed=5, use_cache=False)))
    same, difference = torch.equal(with_cache, without), float((with_cache - without).abs().max())
    windowed = torch.cat(list(gen.latents([(0, PROMPT)], frames, seed=5, use_cache=False, recompute_window=True)))
    window_difference = float((with_cache - windowed).abs().max())
    t_gen = statistics.median(cached_dec)
    say(f"memory and time per frame over 100 and {long_frames} frames")
    short = _long_run(gen, 100 if not quick else 30)
    long = _long_run(gen, long_frames)
    say(f"quality on {prompts} held-out prompts")
    scorer = ShapeClassifier.load()
    quality = evaluate_video(gen, scorer, prompts=prompts)
    ratio = statistics.median(recompute) / statistics.median(cached)
    ratio_window = statistics.median(window) / statistics.median(cached)
    result = {
        "model": str(model or BUNDLED_VIDEO),
        "frames": frames,
        "threads": torch.get_num_threads(),
        "network_evaluations_per_frame": nfe,
        "sink": gen.config.sink, "window": gen.window, "trained_window": gen.config.window,
        "fps_generate": round(frames / t_gen, 2),
        "fps_recompute": round(frames / statistics.median(recompute_dec), 2),
        "ratio_kvcache_vs_window_recompute": round(ratio_window, 3),
        "window_recompute_max_abs_difference": window_difference,
        "ms_network_per_frame_window_recompute": round(1000 * statistics.median(window) / frames, 2),
        "ratio_kvcache_vs_recompute": round(ratio, 3),  # every earlier frame recomputed: an extra, not the claim
        "outputs_identical": same,  # bit for bit (torch.equal)
        "outputs_max_abs_difference": difference,  # the latents' largest difference (their scale is about 1)
        "ratio_kvcache_vs_recompute_with_decode": round(statistics.median(recompute_dec) / t_gen, 3),
        "ms_network_per_frame_kvcache": round(1000 * statistics.median(cached) / frames, 2),
        "ms_network_per_frame_recompute": round(1000 * statistics.median(recompute) / frames, 2),
        "peak_mem_mb_100": short["peak_mb"],
        "peak_mem_mb_1000": long["peak_mb"],
        "peak_mem_growth_mb_100": short["growth_mb"],
        "peak_mem_growth_mb_1000": long["growth_mb"],
        "long_run_frames": long_frames,
        "ms_per_frame_first_100": long["first_100"],
        "ms_per_frame_last_100": long["last_100"],
        "kv_cache_mb": long["cache_mb"],
        "motion_adherence": quality["motion_adherence"],
        "frame_adherence": quality["frame_adherence"],
        "switch_adherence": quality.get("switch_adherence"),
        "quality": quality,
    }
    result["checks"] = {
        "ratio_kvcache_vs_window_recompute_ge_2.5": ratio_window >= 2.5,
        "outputs_same_within_1e-3": difference <= 1e-3,
        "motion_adherence_ge_0.8": quality["motion_adherence"] >= 0.8,
        "frame_adherence_ge_0.8": quality["frame_adherence"] >= 0.8,
        "switch_adherence_ge_0.8": (quality.get("switch_adherence") or 0) >= 0.8,
        "switch_jump_le_2x_median": (quality.get("switch_jump_ratio_median") or 99) <= 2.0,
        "memory_flat_within_10pct": long["peak_mb"] <= 1.1 * short["peak_mb"],
        "time_per_frame_flat_within_20pct": long["last_100"] <= 1.2 * long["first_100"],
    }
    return result


def print_summary(result: dict) -> None:
    """`result` as `neuralframe bench video` prints it: the measures in one line, then the checks."""
    from neuralframe.console import console

    console.print(f"generate {result['fps_generate']} FPS; KV cache {result['ratio_kvcache_vs_window_recompute']}x "
                  f"faster than recomputing the window it holds ({result['ratio_kvcache_vs_recompute']}x than "
                  f"recomputing every earlier frame); peak memory {result['peak_mem_mb_100']} MB (100 frames) vs "
                  f"{result['peak_mem_mb_1000']} MB ({result['long_run_frames']}); motion adherence "
                  f"{result['motion_adherence']}, frame adherence {result['frame_adherence']}, switch adherence "
                  f"{result['switch_adherence']}", highlight=False)
    console.print(f"checks: {result['checks']}", highlight=False, markup=False)
