"""Objective quality of the causal video model on prompts it never saw ("eval" split of the video world).

- **motion adherence**: clips captioned with a direction (left, right, up, down): the generated shape's
  centroid (the pixels nearer the prompt's shape colour than its background colours) moves that way,
  first three frames against the last three, by at least `MIN_TRAVEL_PX` pixels.
- **frame adherence**: every frame of every clip, scored by the bundled shape/colour classifier: both the
  shape and the colour match the prompt (and, to show which is missing, each on its own).
- **switch adherence**: a prompt switch at frame k to another shape and colour (same motion, position and
  background): frames from k + 8 on are scored against the new prompt, and the frame difference at the
  switch (frame k - 1 to k) is compared with the clip's median frame difference (`switch_jump_ratio`; the
  requirement is at most 2). Switch clips use the motions that keep a shape in view however long the video
  runs (rotate, bounce).

The bundled model's scores are in assets/models/tiny-shapes-video/card.json ("metrics", and the sampling
sweep on the tuning prompts in "sampling_sweep_tuning_prompts") and benchmarks/video.json.
"""

from __future__ import annotations

import time
from typing import Callable

import numpy as np

from neuralframe.generate.data.attributes import shade
from neuralframe.generate.data.clips import switch_partner
from neuralframe.generate.data.generator import ShapesGenerator
from neuralframe.generate.data.pixels import to_model_range
from neuralframe.generate.data.vocab import COLOURS, SHAPES
from neuralframe.generate.data.worlds import VIDEO_WORLD

EVAL_SEED = 400_000_000
TUNE_SEED = 410_000_000  # held-out prompts for choosing sampling defaults, apart from the ones scored
DIRECTIONS = ("left", "right", "up", "down")
STAY = ("rotate", "bounce")
MIN_TRAVEL_PX = 2.0
SWITCH_AFTER = 8
MAX_JUMP = 2.0  # the frame difference at a switch, at most this many median frame differences


def eval_samples(n: int, motions: tuple[str, ...], first_seed: int = EVAL_SEED):
    """n held-out video samples (attributes, caption, seed) whose motion is one of `motions`."""
    gen = ShapesGenerator(VIDEO_WORLD)
    out, seed = [], first_seed
    while len(out) < n:
        a = gen.attributes(seed, "eval", video=True)
        if a.motion in motions:
            out.append(seed)
        seed += 1
    return gen, out


def centroid(image: np.ndarray, colour: str, background: str | None) -> tuple[float, float] | None:
    """(x, y) of the pixels that look like the shape's colour rather than the background; None if none do."""
    px = image.reshape(-1, 3).astype(np.float32)
    c = np.asarray(COLOURS[colour], np.float32)
    d_shape = np.linalg.norm(px - c, axis=1)
    if background is not None:
        b = np.asarray(COLOURS[background], np.float32)
        d_bg = np.minimum(np.linalg.norm(px - b, axis=1), np.linalg.norm(px - shade(b), axis=1))
        mask = (d_shape < d_bg) & (d_shape < 90.0)
    else:
        mask = d_shape < 60.0
    if mask.sum() < 4:
        return None
    h, w = image.shape[:2]
    ys, xs = np.divmod(np.nonzero(mask)[0], w)
    return float(xs.mean() + 0.5), float(ys.mean() + 0.5)


def moved(frames: list[np.ndarray], motion: str, colour: str, background: str | None) -> bool:
    cs = [centroid(f, colour, background) for f in frames]
    first = [c for c in cs[:3] if c is not None]
    last = [c for c in cs[-3:] if c is not None]
    if not first or not last:
        return False
    dx = np.mean([c[0] for c in last]) - np.mean([c[0] for c in first])
    dy = np.mean([c[1] for c in last]) - np.mean([c[1] for c in first])
    want = {"left": (-dx, dy), "right": (dx, dy), "up": (-dy, dx), "down": (dy, dx)}[motion]
    return bool(want[0] >= MIN_TRAVEL_PX and want[0] > abs(want[1]))


def _scores(classifier, frames: np.ndarray, shape: str, colour: str) -> tuple[np.ndarray, np.ndarray]:
    """Per frame of `frames` (uint8 [N, H, W, 3]): whether the shape, and whether the colour, is the prompted
    one (bool [N] each)."""
    s, c = classifier.predict(to_model_range(frames))
    return (s == SHAPES.index(shape)).numpy(), (c == list(COLOURS).index(colour)).numpy()



def evaluate_video(gen, classifier, prompts: int = 100, switch_prompts: int | None = None, frames: int | None = None,
                   seed: int = 0, progress: Callable[[int, int], None] | None = None,
                   first_seed: int = EVAL_SEED) -> dict:
    """The metrics above for a `CausalVideoGenerator`; clips of `frames` frames (the training clip length)."""
    frames = frames or gen.config.clip_frames
    switch_prompts = prompts if switch_prompts is None else switch_prompts
    world, seeds = eval_samples(prompts, DIRECTIONS, first_seed=first_seed)
    total = prompts + switch_prompts
    moves, frame_ok, shape_ok, colour_ok, per_motion = [], [], [], [], {m: [] for m in DIRECTIONS}
    start = time.perf_counter()
    n_frames = 0
    for i, s in enumerate(seeds):
        sample = world.video(s, "eval")
        a = sample.attributes
        clip = list(gen.frames([(0, sample.caption)], frames, seed=seed + i))
        n_frames += len(clip)
        ok = moved(clip, a.motion, a.colour, a.background_colour)
        moves.append(ok)
        per_motion[a.motion].append(ok)
        s_ok, c_ok = _scores(classifier, np.stack(clip), a.shape, a.colour)
        frame_ok.extend((s_ok & c_ok).tolist())
        shape_ok.extend(s_ok.tolist())
        colour_ok.extend(c_ok.tolist())
        if progress is not None:
            progress(i + 1, total)
    seconds = time.perf_counter() - start
    sw = evaluate_switches(gen, classifier, switch_prompts, seed=seed, first_seed=first_seed + 1_000_000,
                           progress=None if progress is None else (lambda d, n: progress(prompts + d, total)))
    return {"prompts": prompts, "frames_per_clip": frames,
            "motion_adherence": round(float(np.mean(moves)), 4),
            "motion_adherence_per_direction": {m: round(float(np.mean(v)), 3) for m, v in per_motion.items() if v},
            "frame_adherence": round(float(np.mean(frame_ok)), 4),
            "frame_shape_adherence": round(float(np.mean(shape_ok)), 4),
            "frame_colour_adherence": round(float(np.mean(colour_ok)), 4),
            **sw, "seconds_per_frame": round(seconds / max(n_frames, 1), 4)}


def evaluate_switches(gen, classifier, n: int, k: int = 8, seed: int = 0,
                      progress: Callable[[int, int], None] | None = None, first_seed: int = EVAL_SEED + 1_000_000) -> dict:
    """Switch adherence and smoothness over n held-out clips (see the module docstring)."""
    if n <= 0:
        return {}
    world, seeds = eval_samples(n, STAY, first_seed=first_seed)
    after, ratios, before = [], [], []
    length = k + SWITCH_AFTER + 4
    for i, s in enumerate(seeds):
        a_sample = world.video(s, "eval")
        shape, colour = switch_partner(world, s, "eval")
        b_sample = world.video_variant(s, "eval", shape=shape, colour=colour)
        clip = np.stack(list(gen.frames([(0, a_sample.caption), (k, b_sample.caption)], length, seed=seed + i)))
        a = a_sample.attributes
        before.extend(np.logical_and(*_scores(classifier, clip[:k], a.shape, a.colour)).tolist())
        after.extend(np.logical_and(*_scores(classifier, clip[k + SWITCH_AFTER:], shape, colour)).tolist())
        diffs = np.abs(np.diff(clip.astype(np.float32), axis=0)).mean(axis=(1, 2, 3))  # diffs[j]: frame j -> j+1
        ratios.append(float(diffs[k - 1] / max(np.median(diffs), 1e-6)))
        if progress is not None:
            progress(i + 1, n)
    return {"switch_prompts": n, "switch_frame": k,
            "switch_adherence": round(float(np.mean(after)), 4),
            "switch_adherence_before": round(float(np.mean(before)), 4),
            "switch_jump_ratio_median": round(float(np.median(ratios)), 3),
            "switch_smooth_rate": round(float(np.mean(np.asarray(ratios) <= MAX_JUMP)), 4)}


def tune_sampling(gen, classifier, keyframe_steps=(3,), stochastic=(True, False), warm_start=(False, True),
                  motion_guidance=(1.0, 3.0), windows=(1, None), switch_cold_frames=(0, 4), prompts: int = 24,
                  progress: Callable[[int, int], None] | None = None) -> tuple[dict, list[dict]]:
    """The sampling defaults with the best mean of motion, frame and switch adherence on tuning prompts (held
    out, and apart from those `evaluate_video` scores; `prompts` motion clips and half as many switches): how
    the first frame is drawn (0: by the video model itself; n: by the base image model in n steps plus the
    video model's pass that caches it, n + 1 <= 4 network evaluations), fresh or carried-on noise between
    steps, whether later frames start from the previous one (`warm_start`), and the weight of the direction
    guidance (`motion_guidance`, one evaluation more: only with a warm start, which keeps a frame at 4), how
    many recent frames the cache holds (`windows`; None: the trained window), and with a warm start how many
    frames after a prompt switch start from noise instead (`switch_cold_frames`: the new prompt is followed
    sooner, the switch itself is less smooth). Settings whose median jump at a switch is within the
    requirement (`MAX_JUMP` times the median frame difference) rank before those that are not.
    Returns (best settings, every setting scored)."""
    keys = ("window", "keyframe_steps", "stochastic", "warm_start", "motion_guidance", "switch_cold_frames")
    saved = {k: getattr(gen, k) for k in keys}
    windows = sorted({gen.config.window if n is None else int(n) for n in windows})
    settings = [(int(n), int(k), bool(s), bool(w), float(g), int(c)) for n in windows for k in keyframe_steps
                for s in stochastic for w in warm_start for g in motion_guidance for c in switch_cold_frames
                if (w or g == 1.0) and (w or c == min(switch_cold_frames))]
    sweep = []
    try:
        for n, k, s, w, g, c in settings:
            for key, value in zip(keys, (n, k, s, w, g, c if w else 0)):
                setattr(gen, key, value)
            m = evaluate_video(gen, classifier, prompts=prompts, switch_prompts=max(1, prompts // 2),
                               first_seed=TUNE_SEED)
            sweep.append({"window": n, "keyframe_steps": k, "stochastic": s, "warm_start": w, "motion_guidance": g,
                          "switch_cold_frames": gen.switch_cold_frames,
                          "motion_adherence": m["motion_adherence"], "frame_adherence": m["frame_adherence"],
                          "switch_adherence": m["switch_adherence"],
                          "switch_jump_ratio_median": m["switch_jump_ratio_median"],
                          "score": round((m["motion_adherence"] + m["frame_adherence"] + m["switch_adherence"]) / 3, 4)})
            if progress is not None:
                progress(len(sweep), len(settings))
    finally:
        for key, value in saved.items():
            setattr(gen, key, value)
    # smooth switches first, then the score; ties: fewer evaluations, fewer cold frames
    best = max(sweep, key=lambda e: (e["switch_jump_ratio_median"] <= MAX_JUMP, e["score"], -e["keyframe_steps"],
                                     -e["switch_cold_frames"]))
    return {"first_frame_guidance": 1.0, **{k: best[k] for k in keys}, "motion_guidance_t": gen.motion_guidance_t}, sweep
