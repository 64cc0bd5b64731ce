"""`neuralframe train tiny-shapes-video`: the causal video model of the tiny-shapes world.

    pool    captioned clips rendered by the procedural generator, encoded once with the bundled autoencoder
            and text encoder (both frozen)                                   -> WORK/video_pool.pt
    video   teacher forcing with noised context, in the KV cache's attention pattern -> WORK/video/
    assemble the model folder + card                                      -> assets/models/tiny-shapes-video

**Training scheme: teacher forcing with noised context.** Each training clip (12 frames) is seen twice in
one pass: as context (every frame noised to the fixed level `context_t` = 0.25) and as targets (every
frame at its own random level). A target frame attends to itself and to the context frames that a KV cache
would hold when that frame is generated (the frame sink and the short window), so training and generation
share one attention pattern. At generation the last of the four sampling steps runs exactly at
`context_t`, and its keys/values go into the cache: no extra pass fills it, and the noise on the context
hides the small errors of generated frames (the model never learned to trust context pixel-exact).

**Previous frame.** Each frame, target or context, also reads the context version of the frame before it
(`VideoConfig.prev_frame`), as generation hands it the previous frame's last-step input.

**Prompt switches.** A quarter of the clips switch prompt at a random frame k: the video cross-fades over
six frames from shape A to shape B (same track and background, another shape and colour), and the context
is encoded under B's caption, as it is after a KV-recache at generation. The loss covers frames from k on.

**Blurred context** (`CONTEXT_BLUR`): in half of the clips the window's context frames (not the sink) are
blurred in latent space by a random amount (a 2x2 average, upsampled again, blended in) before they are
noised, and the context stream is asked for the sharp frame all the same. Generated frames lose their shape
a little at a time (colour and position hold, edges soften) and the next frames copy what they see; with a
context that is not always sharp the model learns to take the shape from the sink and the caption, and the
last sampling step (the context level) sharpens a frame that came in soft. The same idea as noise on the
context, aimed at the error generated frames actually make.

**Switch clips are drawn more often** (`SWITCH_SAMPLE`): a share of every batch comes from the clips that
switch prompt, so the fade to a new shape is seen in more steps than the pool's share of such clips gives.

**The short window is trained too** (`SHORT_WINDOW`): the generator may hold fewer recent frames than the
model was trained with (the card's `window`, chosen by the sampling sweep between 1 and the trained window:
fewer copies of a generated frame's small errors in view), a context a model trained only in the full
window's pattern never saw. Half of the batches attend in the pattern of the sink and one recent frame
(`forward_streams(window=SHORT_WINDOW_FRAMES)`, offsets unchanged), the other half in the full window, so
both settings the sweep compares are ones the model was trained on.

**The sink is the first frame under the current caption** (the clip's `anchor`): frame 0, or for a switching
clip frame 0 of shape B's clip. At generation the base image model draws that frame for each prompt
(frame 0, and the re-anchored sink after a switch), so the sink always shows what the caption asks for
and the frames that follow have a picture of the new shape to fade towards.

The bundled text encoder and autoencoder stay frozen: the video model reads the text encoder's hidden
states (cross-attention) and pooled output (adaptive norm). Motion words (moving, rotating, bouncing) were
never in the image captions, so their embeddings are the text encoder's untrained ones; they are still
distinct tokens, and cross-attention learns what they mean.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from neuralframe.backend.device import machine_line
from neuralframe.errors import InputError
from neuralframe.generate.data.clips import FADE_FRAMES, switch_clip
from neuralframe.generate.data.generator import ShapesConfig, ShapesGenerator
from neuralframe.generate.data.worlds import VIDEO_WORLD
from neuralframe.generate.models.frozen import FrozenParts
from neuralframe.generate.train.loop import optimizer_step, save_atomic, train_device, train_loop

TRAIN_SEED = 300_000_000
N_CLIPS = 8_000
SWITCH_FRACTION = 0.25
BATCH = 32
LR = 5e-4
CTX_LOSS_WEIGHT = 0.5
FIRST_FRAME_WEIGHT = 1.0  # 4.0 until the first frame came from the image model (see the generator)
MOTION_WEIGHT = 4.0
# frame 1 is where a generated video's motion starts: every later frame can carry on the motion it sees in
# its context, frame 1 has only the first frame and the caption to take the direction from
SECOND_FRAME_WEIGHT = 4.0
CONTEXT_BLUR = 0.5  # share of clips whose window context is blurred (see the module docstring)
SWITCH_SAMPLE = 0.5  # share of every batch drawn from the clips that switch prompt
# share of batches trained in the attention pattern of the shortest window the sampling sweep tries (the sink
# and one recent frame, see the module docstring), the rest with the full trained window
SHORT_WINDOW = 0.5
SHORT_WINDOW_FRAMES = 1
DROP_CAPTION = 0.1  # clips trained on the empty prompt: classifier-free guidance for a video's first frame


def render_clips(seeds: list[int], switch_fraction: float = SWITCH_FRACTION, config: ShapesConfig = VIDEO_WORLD):
    """Pixels [n, T, H, W, 3], captions, switch frames (-1: none) and anchors [n, H, W, 3] of training clips
    `seeds`. The anchor is the first frame of the clip under its (last) caption: frame 0 itself, or for a
    switching clip frame 0 of the clip it switches to (what the sink holds after a switch, see the module
    docstring)."""
    gen = ShapesGenerator(config)
    pixels, captions, switches, anchors = [], [], [], []
    for s in seeds:
        rng = np.random.default_rng([s, 11])
        if rng.random() < switch_fraction:
            k = int(rng.integers(1, config.frames - FADE_FRAMES))
            p, _, caption, _, b = switch_clip(gen, s, k)
            anchor = b.pixels[0]
        else:
            v = gen.video(s)
            p, caption, k = v.pixels, v.caption, -1
            anchor = p[0]
        pixels.append(p)
        captions.append(caption)
        switches.append(k)
        anchors.append(anchor)
    return np.stack(pixels), captions, switches, np.stack(anchors)


def _render_chunk(args):
    seeds, switch_fraction = args
    return render_clips(seeds, switch_fraction)


@torch.no_grad()
def build_pool(parts: FrozenParts, n_clips: int, first_seed: int = TRAIN_SEED, workers: int = 1,
               chunk: int = 500, switch_fraction: float = SWITCH_FRACTION,
               progress: Callable[[int, int], None] | None = None) -> dict:
    """Latents [n, T, C, h, w] (float16), text hidden states and pooled outputs, switch frames."""
    chunks = [(list(range(first_seed + i, first_seed + min(i + chunk, n_clips))), switch_fraction)
              for i in range(0, n_clips, chunk)]
    if workers > 1:
        import multiprocessing as mp

        pool = mp.get_context("spawn").Pool(workers)
        results = pool.imap(_render_chunk, chunks)
    else:
        pool, results = None, map(_render_chunk, chunks)
    lat, hid, pooled, sw, anchor = [], [], [], [], []
    done = 0
    try:
        for pixels, captions, switches, anchors in results:
            n, t = pixels.shape[:2]
            z = torch.cat([parts.encode_frames(p) for p in np.array_split(pixels.reshape(n * t, *pixels.shape[2:]),
                                                                          max(1, n * t // 2048))])
            z = z.view(n, t, *z.shape[1:])
            lat.append(z.half())
            first = z[:, 0].clone()  # the anchor of a clip that does not switch is its own first frame
            switched = [i for i, k in enumerate(switches) if k >= 0]
            if switched:
                first[switched] = parts.encode_frames(anchors[switched])
            anchor.append(first.half())
            h, p = parts.encode_text(captions)
            hid.append(h.half())
            pooled.append(p.half())
            sw.append(torch.tensor(switches))
            done += n
            if progress is not None:
                progress(done, n_clips)
    finally:
        if pool is not None:
            pool.close()
            pool.join()
    empty_hidden, empty_pooled = parts.encode_text([""])
    return {"latents": torch.cat(lat), "hidden": torch.cat(hid), "pooled": torch.cat(pooled),
            "switch": torch.cat(sw).to(parts.device), "anchor": torch.cat(anchor), "empty_hidden": empty_hidden.half(),
            "empty_pooled": empty_pooled.half()}


def sample_levels(b: int, t: int, steps: tuple[float, ...], device, generator=None) -> torch.Tensor:
    """Noise levels of target frames: half uniform in (0, 1], half the sampler's own levels."""
    u = torch.rand(b, t, device=device, generator=generator).clamp_min(1e-3)
    levels = torch.tensor(steps, device=device)
    pick = levels[torch.randint(0, len(steps), (b, t), device=device, generator=generator)]
    use = torch.rand(b, t, device=device, generator=generator) < 0.5
    return torch.where(use, pick, u)


def blur_frames(x: torch.Tensor, strength: torch.Tensor) -> torch.Tensor:
    """Latents [B, T, C, h, w] with frames 1.. blended towards their 2x2-average blur by `strength` [B] (0: as
    they are, 1: fully blurred); frame 0 (the sink's) stays sharp."""
    import torch.nn.functional as F

    b, t = x.shape[:2]
    flat = x[:, 1:].flatten(0, 1)
    soft = F.interpolate(F.avg_pool2d(flat, 2), size=flat.shape[-2:], mode="bilinear", align_corners=False)
    soft = soft.view(b, t - 1, *x.shape[2:])
    rest = x[:, 1:] + strength.to(x.dtype)[:, None, None, None, None] * (soft - x[:, 1:])
    return torch.cat([x[:, :1], rest], 1)


def batch_indices(pool: dict, batch: int, generator=None, switch_share: float = SWITCH_SAMPLE) -> torch.Tensor:
    """Pool clips of one batch: `switch_share` of them from the clips that switch prompt, the rest from all."""
    n = len(pool["latents"])
    device = pool["latents"].device
    idx = torch.randint(0, n, (batch,), device=device, generator=generator)
    switched = torch.nonzero(pool["switch"] >= 0).flatten().to(device)
    n_sw = int(round(batch * switch_share)) if len(switched) else 0
    if n_sw:
        pick = torch.randint(0, len(switched), (n_sw,), device=device, generator=generator)
        idx[:n_sw] = switched[pick]
    return idx


def video_loss(model, pool: dict, idx: torch.Tensor, generator=None,
               window: int | None = None) -> tuple[torch.Tensor, dict]:
    """Flow-matching loss of one batch of pool clips `idx` (targets and context predictions); `window`: the
    recent frames each frame attends to besides the sink (None: the trained window)."""
    cfg = model.config
    x0 = pool["latents"][idx].float()  # [B, T, C, h, w]
    b, t = x0.shape[:2]
    dev = x0.device
    hidden, pooled = pool["hidden"][idx].float(), pool["pooled"][idx].float()
    if "empty_hidden" in pool:
        drop = torch.rand(b, device=dev, generator=generator) < DROP_CAPTION
        hidden = torch.where(drop[:, None, None], pool["empty_hidden"].float(), hidden)
        pooled = torch.where(drop[:, None], pool["empty_pooled"].float(), pooled)
    text = model.text_condition(hidden, pooled)
    ids = list(range(t))
    n_ctx = torch.randn(x0.shape, device=dev, generator=generator)
    blur = torch.rand(b, device=dev, generator=generator) * (
        torch.rand(b, device=dev, generator=generator) < CONTEXT_BLUR)
    ctx = (1 - cfg.context_t) * blur_frames(x0, blur) + cfg.context_t * n_ctx
    prev_x = has_prev = None
    if cfg.prev_frame:  # each frame reads the frame before it as the cache saw it (frame 0: none)
        prev_x = torch.cat([torch.zeros_like(ctx[:, :1]), ctx[:, :-1]], 1).repeat(1, 2, 1, 1, 1)
        has_prev = (torch.arange(t, device=dev) > 0).repeat(2)
    if "anchor" in pool:  # the sink holds the first frame under the clip's caption (see render_clips)
        anchor = (1 - cfg.context_t) * pool["anchor"][idx].float() + cfg.context_t * n_ctx[:, 0]
        ctx = torch.cat([anchor[:, None], ctx[:, 1:]], 1)
    levels = sample_levels(b, t, cfg.steps, dev, generator)
    n_q = torch.randn(x0.shape, device=dev, generator=generator)
    lv = levels[:, :, None, None, None]
    xt = (1 - lv) * x0 + lv * n_q
    v_ctx, v_q, _ = model.forward_streams(ctx, ids, text, xt, ids, levels, prev_x=prev_x, has_prev=has_prev,
                                          window=window)
    # frames before a switch are only context for the frames after it
    k = pool["switch"][idx].clamp_min(0)
    weight = (torch.arange(t, device=dev)[None] >= k[:, None]).float()  # [B, T]
    # the first frame has no context: it is a text-to-image problem, the hardest of the clip, and every later
    # frame copies what it drew, so it weighs more
    weight[:, 0] *= FIRST_FRAME_WEIGHT
    weight[:, 1] *= SECOND_FRAME_WEIGHT
    # motion is a small change between frames that copying the context already gets nearly right: latent
    # pixels that change from the previous frame weigh more, so the loss does not drown it
    change = torch.zeros_like(x0[:, :, :1])
    change[:, 1:] = (x0[:, 1:] - x0[:, :-1]).abs().mean(2, keepdim=True)
    pixel_w = 1.0 + MOTION_WEIGHT * change
    err_q = ((v_q.float() - (n_q - x0)) ** 2 * pixel_w).mean((2, 3, 4)) / pixel_w.mean((2, 3, 4))
    # the context stream's target is the sharp frame, whatever blur its input had: v = (x_ctx - x0) / t
    # (n_ctx - x0 where the input was not blurred)
    err_c = ((v_ctx.float() - (ctx - x0) / cfg.context_t) ** 2).mean((2, 3, 4))
    denom = weight.sum().clamp_min(1.0)
    loss_q = (err_q * weight).sum() / denom
    loss_c = (err_c * weight).sum() / denom
    return loss_q + CTX_LOSS_WEIGHT * loss_c, {"loss": float(loss_q.detach()), "loss_ctx": float(loss_c.detach())}


def train_video(work: Path, base: str | Path, seconds: float | None, steps: int | None, resume: bool,
                progress: Callable[[dict], None] | None = None, n_clips: int = N_CLIPS, workers: int = 1,
                config=None, batch: int = BATCH, init_from: str | Path | None = None) -> dict:
    """Build (or load) the clip pool, train the model, save WORK/video/ (EMA weights). Returns metrics.
    `init_from`: a video model folder (the bundled one, say) whose weights and config the model and its EMA
    start from, with a fresh optimizer: how a later run continues the bundled model without its checkpoint."""
    from neuralframe.generate.train.t2i import EMA
    from neuralframe.generate.video.model import CausalVideoTransformer, VideoConfig

    work = Path(work)
    device = train_device()
    start_model = CausalVideoTransformer.load(init_from) if init_from else None  # a bad folder fails first
    parts = FrozenParts(base, device)
    pool_path = work / "video_pool.pt"
    started = time.time()
    pool = None
    if pool_path.exists():
        from neuralframe.backend.weights import load_weights

        pool = load_weights(pool_path, f"latent pool '{pool_path}'", map_location=device)
        if len(pool["latents"]) < n_clips or "empty_hidden" not in pool or "anchor" not in pool:
            pool = None
    if pool is None:
        pool = build_pool(parts, n_clips, workers=workers,
                          progress=None if progress is None else
                          (lambda d, n: progress({"stage": "pool", "step": d, "steps": n, "progress": d / n})))
        save_atomic({k: v.cpu() for k, v in pool.items()}, pool_path)
    pool_seconds = time.time() - started
    pool = {k: (v if k.startswith("empty") else v[:n_clips]) for k, v in pool.items()}

    if start_model is not None and (config is None or config.prev_frame):
        start_model = start_model.with_prev_frame()
    model = (start_model or CausalVideoTransformer(config or VideoConfig())).train().to(device)
    ema = EMA(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=0.01, betas=(0.9, 0.99))
    g = torch.Generator(device=device).manual_seed(0)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else torch.autocast(
        "cpu", enabled=False)

    def step_fn(step: int) -> dict:
        idx = batch_indices(pool, batch, g)
        short = bool(torch.rand((), generator=g, device=device) < SHORT_WINDOW)
        with autocast:
            loss, metrics = video_loss(model, pool, idx, g, window=SHORT_WINDOW_FRAMES if short else None)
        optimizer_step(optimizer, loss, model.parameters())
        ema.update(model, step)
        return metrics

    result = train_loop("video", {"model": model, "ema": ema.module}, optimizer, step_fn,
                        work / "checkpoints" / "video.pt", seconds, steps, resume, LR, progress)
    ema.module.save(work / "video")
    metrics = {"steps": result.steps, "seconds": round(result.seconds, 1), "pool_seconds": round(pool_seconds, 1),
               "clips": n_clips, "batch": batch, "parameters": sum(p.numel() for p in model.parameters()),
               **{k: round(v, 5) for k, v in result.metrics.items()}}
    (work / "video" / "train_metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics


def assemble_video(work: Path, out: Path, base: str | Path, command: str, eval_prompts: int = 100,
                   progress: Callable[[int, int], None] | None = None, tune_prompts: int = 24) -> dict:
    """Write the model folder OUT (config.json, transformer.safetensors, card.json with the training runs, the
    sampling defaults chosen on `tune_prompts` tuning prompts and the metrics on `eval_prompts`
    others), through a temporary folder renamed into place."""
    import shutil
    import tempfile

    from neuralframe.generate.models.classifier import ShapeClassifier
    from neuralframe.generate.video.evaluate import evaluate_video, tune_sampling
    from neuralframe.generate.video.generate import CausalVideoGenerator

    work, out = Path(work), Path(out)
    src = work / "video"
    if not (src / "transformer.safetensors").is_file():
        raise InputError(f"no trained video model in {src}: run `neuralframe train tiny-shapes-video` first")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    tmp.chmod(0o755)  # mkdtemp's 0700 would stay on the model folder once renamed
    try:
        for name in ("config.json", "transformer.safetensors"):
            shutil.copy2(src / name, tmp / name)
        base_rel = Path(os.path.relpath(Path(base).resolve(), out.resolve()))
        runs = json.loads((work / "video_runs.json").read_text()) if (work / "video_runs.json").is_file() else []
        card = {
            "name": out.name,
            "description": "A causal text-to-video diffusion transformer over the tiny-shapes autoencoder's latents "
                           "(64x64 frames): frame by frame with a KV cache holding a frame sink and a short window, "
                           "each frame also reading the previous one, 4 network evaluations per frame, KV-recache "
                           "on prompt switches. With defaults.keyframe_steps > 0 the first frame (and the sink "
                           "after a prompt switch) is drawn by the base text-to-image model.",
            "trained_by": "neuralframe's own code (neuralframe.generate.train.video); no pretrained weights",
            "base": str(base_rel),
            "data": f"neuralframe.generate.data.ShapesGenerator videos ('train' split) of {VIDEO_WORLD.frames} frames: "
                    f"motions {', '.join(VIDEO_WORLD.motions)}; shapes, colours, sizes and backgrounds of the "
                    f"tiny-shapes world; {int(SWITCH_FRACTION * 100)}% of clips switch prompt with a "
                    f"{FADE_FRAMES}-frame cross-fade",
            "training_scheme": "teacher forcing with noised context; the sink holds the first frame under the "
                               "clip's current caption (see neuralframe/generate/train/video.py)",
            "retrain": "neuralframe train tiny-shapes-video",
            "fps": 8,
            "runs": runs,
            "command": command,
        }
        (tmp / "card.json").write_text(json.dumps(card, indent=2))
        scorer = ShapeClassifier.load()
        gen = CausalVideoGenerator(tmp)
        card["defaults"], card["sampling_sweep_tuning_prompts"] = tune_sampling(gen, scorer, prompts=tune_prompts)
        (tmp / "card.json").write_text(json.dumps(card, indent=2))
        gen = CausalVideoGenerator(tmp)
        card["metrics"] = evaluate_video(gen, scorer, prompts=eval_prompts, progress=progress)
        card["metrics"]["device"] = "cpu"
        card["metrics"]["threads"] = torch.get_num_threads()
        card["metrics"]["machine"] = machine_line()
        card["preview"] = write_preview(gen, tmp / "preview.png")
        card["size_mb"] = round(sum(f.stat().st_size for f in tmp.iterdir()) / 1e6, 2)
        (tmp / "card.json").write_text(json.dumps(card, indent=2))
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return card


PREVIEW_PROMPTS = (
    "a large red star moving right from the left over a plain blue background",
    "a large yellow circle moving down from the top on a plain purple background",
    "a plain white background with a large green heart rotating in the centre",
    "a large blue square bouncing at the bottom over an orange gradient",
)


def write_preview(gen, path: Path, prompts=PREVIEW_PROMPTS, frames: int = 12, switch_at: int = 6) -> dict:
    """A contact sheet of generated clips (a row a clip, frame 0 on the left, 2x size), and a last row that
    switches from the first prompt to the third at frame `switch_at`. Returns what each row shows."""
    from PIL import Image

    schedules = [[(0, p)] for p in prompts] + [[(0, prompts[0]), (switch_at, prompts[2])]]
    rows = [np.concatenate(list(gen.frames(s, frames, seed=i)), 1) for i, s in enumerate(schedules)]
    sheet = Image.fromarray(np.concatenate(rows, 0))
    sheet.resize((sheet.width * 2, sheet.height * 2), Image.NEAREST).save(path)
    return {"file": path.name, "frames": frames,
            "rows": [" then ".join(f"'{p}' from frame {f}" for f, p in s) for s in schedules]}


def record_run(work: Path, metrics: dict, command: str) -> None:
    """Append one training run (its command, budget spent and machine) to WORK/video_runs.json."""
    path = Path(work) / "video_runs.json"
    runs = json.loads(path.read_text()) if path.is_file() else []
    runs.append({"command": command, "machine": machine_line(), **metrics})
    path.write_text(json.dumps(runs, indent=2))
