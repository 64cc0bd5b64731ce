"""The streaming diffusion engine on a small randomly initialised pipeline (the bundled architecture):
its per-step constants against diffusers' LCM scheduler, the stream batch's pipelining, the guidance modes
(their network evaluations counted by wrapping the UNet, and how they combine predictions), prompt
switching and the similarity filter."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neuralframe.errors import InputError
from neuralframe.generate.diffusion.guidance import GUIDANCE, make_guidance
from neuralframe.generate.diffusion.stream import SimilarityFilter, StreamEngine


def _pipe(embedded: bool = True):
    from diffusers import LatentConsistencyModelPipeline, LCMScheduler

    from neuralframe.generate.models.architectures import W_EMBED_DIM, build_text_encoder, build_unet, build_vae
    from neuralframe.generate.models.schedulers import noise_scheduler
    from neuralframe.generate.tokenizer import load_clip_tokenizer

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


@pytest.fixture(scope="module")
def plain_pipe():
    return _pipe(embedded=False)


# network evaluations per frame with S = 3 steps: residual CFG evaluates no negative branch ("self") or
# one, on the new frame's slot ("initialize"); full CFG evaluates it for every slot
NFE_3_STEPS = {"embedded": 3, "none": 3, "full": 6, "self": 3, "initialize": 4}


@pytest.mark.parametrize("cfg", NFE_3_STEPS)
def test_guidance_modes_count_their_evaluations(cfg, pipe, plain_pipe):
    from neuralframe.generate.evaluate import CountingUNet

    unet_pipe = pipe if cfg == "embedded" else plain_pipe
    engine = StreamEngine(unet_pipe, t_index_list=[10, 25, 40], cfg=cfg, guidance_scale=1.5).prepare(PROMPT)
    counter = CountingUNet(unet_pipe.unet)
    try:
        for f in _frames(3, seed=2):
            out = engine(f)
    finally:
        counter.restore()
    assert counter.evaluations == 3 * NFE_3_STEPS[cfg] == 3 * engine.guidance.evaluations(3) == engine.evaluations
    assert out.shape == (64, 64, 3)


def test_guidance_combines_as_residual_and_classifier_free_guidance(plain_pipe):
    """At scale 1 every mode is the conditional prediction; at scale 0 it is the negative one: the negative
    prompt's prediction (evaluated first in the batch) or residual CFG's `delta` times the slot's noise."""
    s, delta = 3, 0.5
    noise, cond, uncond = torch.randn(3, s, 4, 2, 2).unbind()
    outputs = {"none": cond, "full": torch.cat([uncond, cond]), "self": cond,
               "initialize": torch.cat([uncond[:1], cond])}
    negative = {"none": cond, "full": uncond, "self": delta * noise,
                "initialize": torch.cat([uncond[:1], delta * noise[1:]])}
    for name, eps in outputs.items():
        for scale, want in ((1.0, cond), (0.0, negative[name])):
            guidance = make_guidance(name, plain_pipe.unet, scale, delta)
            guidance.prepare(noise, plain_pipe.unet)
            assert guidance.batch(noise).shape[0] == eps.shape[0] == guidance.evaluations(s)
            torch.testing.assert_close(guidance.combine(eps), want, rtol=0, atol=1e-6)
    text = make_guidance("initialize", plain_pipe.unet, 1.5).text_batch(torch.ones(1, 2, 3), torch.zeros(1, 2, 3), s)
    assert text[:, 0, 0].tolist() == [0.0, 1.0, 1.0, 1.0]  # the negative prompt first, then one per slot


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
    with pytest.raises(InputError, match=f"unknown cfg mode 'double': use one of {', '.join(GUIDANCE)}"):
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
