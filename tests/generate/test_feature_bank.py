"""The StreamV2V feature bank on the bundled architecture (random weights): its attention reproduces
diffusers' own when switched off, it changes the stream once it holds past frames, it stays bounded, it
merges by counts, and it gives the UNet back."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neuralframe.errors import InputError
from neuralframe.generate.caches.feature_bank import FeatureBank, _merge
from neuralframe.generate.diffusion.stream import StreamEngine

from test_stream import PROMPT, _frames, _pipe


@pytest.fixture(scope="module")
def pipe():
    return _pipe()


def _run(pipe, frames, bank=None, cfg=None, steps=(20, 35)):
    engine = StreamEngine(pipe, t_index_list=steps, cfg=cfg, guidance_scale=1.5, bank=bank).prepare(PROMPT)
    try:
        return [engine(f).clone() for f in frames], engine
    finally:
        engine.close()


def _moving(n: int) -> list[torch.Tensor]:
    """A bright square sliding one pixel per frame over a gradient (a slowly moving input)."""
    out = []
    for i in range(n):
        img = np.tile(np.linspace(40, 200, 64, dtype=np.float32)[None, :, None], (64, 1, 3))
        img[20:40, 10 + i:30 + i] = (230, 60, 40)
        out.append(torch.from_numpy(img.astype(np.uint8)))
    return out


def test_a_switched_off_bank_reproduces_diffusers_attention(pipe):
    frames = _moving(5)
    plain, _ = _run(pipe, frames)
    off, _ = _run(pipe, frames, FeatureBank(strength=0.0, fusion=0.0))
    for a, b in zip(plain, off):
        assert (a.int() - b.int()).abs().max() <= 1


def _attention_outputs(pipe, frames, bank=None):
    """The first self-attention layer's output, call by call: where the bank acts (a random-weight UNet's
    residual paths and autoencoder flatten its effect by the time it reaches pixels)."""
    layer = next(m for name, m in pipe.unet.named_modules() if name.endswith("attn1"))
    seen = []
    hook = layer.register_forward_hook(lambda m, a, out: seen.append(out.detach().clone()))
    try:
        _, engine = _run(pipe, frames, bank)
    finally:
        hook.remove()
    return seen, engine


def test_the_bank_changes_the_stream_only_once_it_holds_past_frames(pipe):
    frames = _frames(6, seed=3)  # distinct frames: the banked features differ from the current ones
    plain, _ = _attention_outputs(pipe, frames)
    banked, engine = _attention_outputs(pipe, frames, FeatureBank(strength=1.0, fusion=0.5, fusion_threshold=0.0,
                                                                  blocks=None))
    assert len(plain) == len(banked) == 6
    torch.testing.assert_close(banked[0], plain[0])  # nothing banked before the first frame
    # past frames now move every later call by as much as a new input frame moves it (the random-weight
    # UNet's attention output barely depends on its input, so that is the scale to compare with)
    frame_change = min((plain[i] - plain[i - 1]).abs().mean() for i in range(2, 6))
    for a, b in zip(plain[2:], banked[2:]):
        assert (a - b).abs().mean() > 0.5 * frame_change
    assert engine.bank.frames_stored == 6


def test_a_repeated_frame_attends_to_its_own_copy_unchanged(pipe):
    """Softmax attention over [k; k] with values [v; v] is attention over k, v: a bank that holds exactly
    the current frame's features (a static input) leaves the output as it was."""
    frame = _moving(1)[0]
    plain, _ = _run(pipe, [frame] * 4, steps=(35,))
    banked, _ = _run(pipe, [frame] * 4, FeatureBank(strength=1.0, fusion=0.0), steps=(35,))
    for a, b in zip(plain, banked):
        assert (a.int() - b.int()).abs().max() <= 1


def test_the_bank_stays_bounded(pipe):
    bank = FeatureBank(max_frames=2)
    engine = StreamEngine(pipe, t_index_list=(20, 35), bank=bank).prepare(PROMPT)
    sizes = []
    for f in _frames(9):
        engine(f)
        sizes.append(bank.tokens)
    assert sizes[3] > sizes[0]  # grows while filling
    assert sizes[4] == sizes[-1]  # then holds: 2 frames' worth per layer and slot
    per_frame = sum(b.keys.shape[0] * b.keys.shape[1] for b in bank.layers.values()) // 2
    assert bank.tokens == 2 * per_frame
    for layer in bank.layers.values():  # the banked tokens stand for 2 frames, not for every frame merged
        assert float(layer.counts.sum(1).max()) <= layer.keys.shape[1] + 1e-3
    engine.reset()
    assert bank.tokens == 0 and bank.frames_stored == 0
    engine.close()


def test_interval_stores_every_nth_frame(pipe):
    bank = FeatureBank(interval=3)
    _run(pipe, _frames(7), bank)
    assert bank.frames_stored == 3  # frames 1, 4, 7


def test_guidance_modes_with_a_bank(pipe):
    for cfg, nfe in (("full", 4), ("initialize", 3), ("self", 2)):
        pipe2 = _pipe(embedded=False)
        outs, engine = _run(pipe2, _frames(3), FeatureBank(), cfg=cfg)
        assert outs[-1].shape == (64, 64, 3)
        assert engine.evaluations == 3 * nfe


def test_close_gives_the_unet_back(pipe):
    before = {k: type(v) for k, v in pipe.unet.attn_processors.items()}
    engine = StreamEngine(pipe, bank=FeatureBank()).prepare(PROMPT)
    assert any("Banked" in type(v).__name__ for v in pipe.unet.attn_processors.values())
    engine.close()
    assert {k: type(v) for k, v in pipe.unet.attn_processors.items()} == before


def test_the_bank_wraps_the_chosen_blocks_only(pipe):
    def banked_layers(bank):
        engine = StreamEngine(pipe, bank=bank).prepare(PROMPT)
        try:
            return sorted(k for k, v in pipe.unet.attn_processors.items() if "Banked" in type(v).__name__)
        finally:
            engine.close()

    self_attention = sorted(k for k in pipe.unet.attn_processors if k.endswith("attn1.processor"))
    assert banked_layers(FeatureBank()) == [k for k in self_attention if k.startswith("mid_block.")]
    assert banked_layers(FeatureBank(blocks=None)) == self_attention
    assert banked_layers(FeatureBank(blocks=("up_blocks.1",))) == [k for k in self_attention
                                                                   if k.startswith("up_blocks.1.")]
    # a prefix is a whole block name: "up_blocks.1" is not "up_blocks.10"
    assert not FeatureBank(blocks=("up_blocks.1",))._banks("up_blocks.10.attentions.0.transformer_blocks.0"
                                                          ".attn1.processor")
    with pytest.raises(InputError, match="no self-attention layers in the blocks nowhere"):
        StreamEngine(pipe, bank=FeatureBank(blocks=("nowhere",))).prepare(PROMPT)
    assert not any("Banked" in type(v).__name__ for v in pipe.unet.attn_processors.values())


def test_merging_is_a_count_weighted_mean():
    keys = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [1.0, 0.1], [-1.0, 0.0]]])  # 2 banked, 2 new
    counts = torch.tensor([[3.0, 1.0, 1.0, 1.0]])
    k, v, o, c = _merge(keys, keys * 2, keys * 3, counts, old=2, capacity=3)
    assert c.tolist() == [[4.0, 1.0, 1.0]]  # [1, 0.1] merged into [1, 0] (most similar); [-1, 0] kept
    assert torch.allclose(k[0, 0], torch.tensor([1.0, 0.025]))
    assert torch.allclose(v[0, 0], 2 * k[0, 0]) and torch.allclose(k[0, 2], torch.tensor([-1.0, 0.0]))


def test_bad_settings_are_one_clear_error():
    for kwargs, words in ((dict(interval=0), "interval"), (dict(max_frames=0), "max_frames"),
                          (dict(strength=-1), "strength"), (dict(fusion=2), "fusion")):
        with pytest.raises(InputError, match=words):
            FeatureBank(**kwargs)


def test_a_full_bank_merging_over_many_frames_keeps_a_static_stream_steady(pipe):
    """Two denoising slots (the second one empty on the first call) and a bank that merges from the third
    frame on: the output stays what it is without a bank (an empty place in the bank must never leak)."""
    frame = _moving(1)[0]
    plain, _ = _run(pipe, [frame] * 8)
    banked, engine = _run(pipe, [frame] * 8, FeatureBank(max_frames=1, fusion=0.0))
    for a, b in zip(plain[2:], banked[2:]):
        assert (a.float() - b.float()).abs().mean() < 3.0
    assert all(torch.isfinite(layer.keys).all() for layer in engine.bank.layers.values())
