"""The streaming diffusion engine on a small randomly initialised pipeline (the bundled architecture):
its per-step constants against diffusers' LCM scheduler, the stream batch's pipelining, the network
evaluations of each guidance mode, prompt switching and the similarity filter."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neuralframe.errors import InputError
from neuralframe.generate.diffusion.stream import SimilarityFilter, StreamEngine, nfe_per_frame


def _pipe(embedded: bool = True):
    from diffusers import LatentConsistencyModelPipeline, LCMScheduler

    from neuralframe.generate.models.architectures import W_EMBED_DIM, build_text_encoder, build_unet, build_vae
    from neuralframe.generate.tokenizer import load_clip_tokenizer
    from neuralframe.generate.train.t2i import noise_scheduler

    torch.manual_seed(0)
    unet = build_unet(time_cond_proj_dim=W_EMBED_DIM if embedded else None).eval()
    vae, text = build_vae().eval(), build_text_encoder().eval()
    vae.register_to_config(scaling_factor=0.5)
    return LatentConsistencyModelPipeline(vae=vae, text_encoder=text, tokenizer=load_clip_tokenizer(), unet=unet,
                                          scheduler=LCMScheduler.from_config(noise_scheduler().config),
                                          safety_checker=None, feature_extractor=None, requires_safety_checker=False)


@pytest.fixture(scope="module")
def pipe():
    return _pipe()


def _frames(n: int, seed: int = 0) -> list[torch.Tensor]:
    rng = np.random.default_rng(seed)
    return [torch.from_numpy(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)) for _ in range(n)]


PROMPT = "a large red star in the centre over a plain blue background"


@torch.no_grad()
def _lcm_chain(pipe, frame: torch.Tensor, steps: list[int], noises: torch.Tensor, guidance: float) -> torch.Tensor:
    """The same denoising, written with diffusers' LCMScheduler.step, one step at a time."""
    from diffusers import LCMScheduler

    from neuralframe.generate.models.architectures import guidance_embedding

    scheduler = LCMScheduler.from_config(pipe.scheduler.config)
    scheduler.set_timesteps(50)
    ts = scheduler.timesteps[steps]
    ids = pipe.tokenizer([PROMPT], padding="max_length", max_length=77, return_tensors="pt").input_ids
    text = pipe.text_encoder(ids)[0]
    w = guidance_embedding(torch.tensor([guidance - 1.0]))
    x = frame.permute(2, 0, 1)[None].float() / 127.5 - 1
    x0 = pipe.vae.encode(x).latent_dist.mean * pipe.vae.config.scaling_factor
    for i, t in enumerate(ts):
        scheduler._step_index = None
        ab = scheduler.alphas_cumprod[t]
        xt = ab.sqrt() * x0 + (1 - ab).sqrt() * noises[i:i + 1]
        eps = pipe.unet(xt, t, encoder_hidden_states=text, timestep_cond=w).sample
        scheduler._init_step_index(t)
        x0 = scheduler.step(eps, t, xt, return_dict=False)[1]  # the denoised estimate
    image = pipe.vae.decode(x0 / pipe.vae.config.scaling_factor).sample
    return ((image[0].clamp(-1, 1) + 1) * 127.5 + 0.5).to(torch.uint8).permute(1, 2, 0)


def test_one_step_matches_diffusers_lcm_scheduler(pipe):
    engine = StreamEngine(pipe, t_index_list=[30], guidance_scale=2.0).prepare(PROMPT)
    frame = _frames(1)[0]
    got = engine(frame)
    want = _lcm_chain(pipe, frame, [30], engine.slot_noise, 2.0)
    assert got.shape == (64, 64, 3) and got.dtype == torch.uint8
    assert (got.int() - want.int()).abs().max() <= 1


def test_stream_batch_pipelines_frames(pipe):
    """With two steps, the frame leaving at call k is frame k-1 taken through both steps; each call costs
    one batched evaluation of two latents."""
    engine = StreamEngine(pipe, t_index_list=[20, 35], guidance_scale=1.5).prepare(PROMPT)
    frames = _frames(4, seed=1)
    outs = [engine(f) for f in frames]
    assert engine.evaluations == 4 * 2
    for k in (1, 2, 3):
        want = _lcm_chain(pipe, frames[k - 1], [20, 35], engine.slot_noise, 1.5)
        assert (outs[k].int() - want.int()).abs().max() <= 1, k
    engine.reset()
    again = [engine(f) for f in frames]
    assert all(torch.equal(a, b) for a, b in zip(outs, again))  # state is explicit and resettable


@pytest.mark.parametrize("cfg", ["none", "full", "self", "initialize"])
def test_guidance_modes_count_their_evaluations(cfg):
    pipe = _pipe(embedded=False)
    engine = StreamEngine(pipe, t_index_list=[10, 25, 40], cfg=cfg, guidance_scale=1.5).prepare(PROMPT)
    for f in _frames(3, seed=2):
        out = engine(f)
    assert engine.evaluations == 3 * nfe_per_frame(cfg, 3)
    assert out.shape == (64, 64, 3)
    assert nfe_per_frame("self", 3) == 3 and nfe_per_frame("full", 3) == 6 and nfe_per_frame("initialize", 3) == 4


def test_self_guidance_differs_from_none_and_full_reduces_to_none_at_scale_one():
    pipe = _pipe(embedded=False)
    frames = _frames(3, seed=3)
    runs = {}
    for cfg, g in (("none", 1.0), ("full", 1.0), ("self", 1.8)):
        engine = StreamEngine(pipe, t_index_list=[20, 35], cfg=cfg, guidance_scale=g).prepare(PROMPT)
        runs[cfg] = [engine(f) for f in frames][-1].int()
    assert (runs["none"] - runs["full"]).abs().max() <= 1  # cond + 1 * (cond - uncond) - ... = cond
    assert (runs["none"] - runs["self"]).abs().float().mean() > 0.5


def test_prompt_switch_reencodes_only(pipe):
    engine = StreamEngine(pipe, t_index_list=[25]).prepare(PROMPT)
    frame = _frames(1, seed=4)[0]
    unet = engine.unet
    a = engine(frame)
    engine.update_prompt("a small green ring at the top over a yellow gradient")
    b = engine(frame)
    engine.update_prompt(PROMPT)
    c = engine(frame)
    assert engine.unet is unet
    assert not torch.equal(a, b) and torch.equal(a, c)


def test_txt2img_stream(pipe):
    engine = StreamEngine(pipe, t_index_list=[0, 25], mode="txt2img").prepare(PROMPT)
    outs = [engine() for _ in range(3)]
    assert torch.equal(outs[1], outs[2])  # same prompt, same fixed noise: the same picture
    engine.update_prompt("a large white heart")
    assert not torch.equal(engine(), outs[2])


def test_similarity_filter_skips_static_input(pipe):
    sim = SimilarityFilter(threshold=0.9, max_skip=4)
    engine = StreamEngine(pipe, t_index_list=[25], similarity=sim).prepare(PROMPT)
    frame = _frames(1, seed=5)[0]
    outs = [engine(frame) for _ in range(11)]
    # identical frames: skip 4, process 1, skip 4, process 1 ... (the first frame is always processed)
    assert engine.evaluations == 3 and sim.skipped == 8
    assert all(torch.equal(o, outs[0]) for o in outs)
    moving = _frames(6, seed=6)
    sim.reset()
    engine.reset()
    for f in moving:
        engine(f)
    assert sim.skipped == 0 and engine.evaluations == 6


def test_engine_errors(pipe):
    with pytest.raises(InputError, match="unknown cfg mode"):
        StreamEngine(pipe, cfg="double")
    with pytest.raises(InputError, match="t_index_list"):
        StreamEngine(pipe, t_index_list=[30, 10])
    with pytest.raises(InputError, match="guidance embedding"):
        StreamEngine(_pipe(embedded=False), cfg="embedded")
    engine = StreamEngine(pipe, t_index_list=[25])
    with pytest.raises(InputError, match="prepare"):
        engine(_frames(1)[0])
    engine.prepare(PROMPT)
    with pytest.raises(InputError, match=r"uint8 \[64, 64, 3\]"):
        engine(torch.zeros(32, 32, 3, dtype=torch.uint8))
    with pytest.raises(InputError, match="threshold"):
        SimilarityFilter(threshold=1.5)
