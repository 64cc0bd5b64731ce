"""The causal video model's mechanics on small random-weight models: the KV-cache path computes what the
whole sequence computes, memory stays flat, prompt switches recache, the training loss runs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neuralframe.errors import InputError
from neuralframe.generate.caches.kv_cache import KVCache
from neuralframe.generate.video.generate import parse_schedule
from neuralframe.generate.video.model import CausalVideoTransformer, VideoConfig, context_frames, offset_class


def _random_model(**kw) -> CausalVideoTransformer:
    torch.manual_seed(0)
    model = CausalVideoTransformer(VideoConfig(dim=32, depth=2, heads=2, **kw)).eval()
    with torch.no_grad():
        for p in model.parameters():
            if (p == 0).all():  # zero-initialised layers would hide mistakes
                p.normal_(0, 0.1)
    return model


def _text(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    return model.text_condition(torch.randn(1, 77, 64, generator=g), torch.randn(1, 64, generator=g))


def test_the_cache_holds_the_sink_and_the_window():
    assert context_frames(0, 1, 4) == []
    assert context_frames(3, 1, 4) == [0, 1, 2]
    assert context_frames(9, 1, 4) == [0, 5, 6, 7, 8]
    assert [offset_class(9, j, 4) for j in context_frames(9, 1, 4)] == [5, 4, 3, 2, 1]  # 5: the far sink
    assert offset_class(2, 0, 4) == 2  # a sink frame still within the window keeps its distance


def test_frame_by_frame_with_the_kv_cache_equals_the_whole_sequence_at_once():
    model = _random_model()
    text = _text(model)
    xs = torch.randn(1, 10, 4, 8, 8)
    with torch.no_grad():
        whole, _, _ = model.forward_streams(xs, list(range(10)), text)
        cache = KVCache(2, sink=1, window=4)
        for f in range(10):
            v, kv = model.step(xs[:, f], model.config.context_t, text, cache, frame=f, return_kv=True,
                               prev=xs[:, f - 1] if f else None)  # each frame also reads the one before it
            assert torch.allclose(v, whole[:, f], atol=1e-5), f"frame {f}"
            cache.append(f, kv)
    assert cache.frames == [0, 6, 7, 8, 9]


def test_attention_is_causal():
    """Changing frame 8 changes frame 9 (it attends to it) and none of frames 0..7."""
    model = _random_model()
    text = _text(model)
    xs = torch.randn(1, 10, 4, 8, 8)
    with torch.no_grad():
        base, _, _ = model.forward_streams(xs, list(range(10)), text)
        near = xs.clone()
        near[:, 8] += 5.0
        out, _, _ = model.forward_streams(near, list(range(10)), text)
    assert not torch.allclose(out[:, 9], base[:, 9], atol=1e-4)
    assert torch.allclose(out[:, :8], base[:, :8], atol=1e-6)


class _Parts:
    """Stand-in for the frozen text encoder and autoencoder: deterministic text features, identity decode."""

    scale = 1.0

    def encode_text(self, captions):
        g = torch.Generator().manual_seed(sum(map(ord, captions[0])))
        return torch.randn(1, 77, 64, generator=g), torch.randn(1, 64, generator=g)

    def decode(self, z):
        return ((z[:, :3].clamp(-1, 1) + 1) * 127.5).to(torch.uint8).permute(0, 2, 3, 1).numpy()


def _generator(model):
    from neuralframe.generate.video.generate import CausalVideoGenerator

    gen = CausalVideoGenerator.__new__(CausalVideoGenerator)
    gen.model, gen.config, gen.device = model, model.config, torch.device("cpu")
    gen.parts, gen.tiny, gen.evaluations, gen.fps, gen.size = _Parts(), None, 0, 8.0, 8
    gen.guidance, gen.stochastic, gen._empty, gen.keyframe_steps, gen.warm_start = 1.0, True, None, 0, False
    gen.motion_guidance, gen.motion_guidance_t, gen.switch_cold_frames = 1.0, 0.5, 0
    gen.window = model.config.window
    return gen


def test_memory_is_flat_however_long_the_video_runs():
    gen = _generator(_random_model())
    cache = gen.new_cache()
    addresses = set()
    for f, _ in enumerate(gen.latents([(0, "a large red star rotating in the centre")], 300, cache=cache)):
        if f >= 1:
            addresses.add(cache._keys.data_ptr())
        assert len(cache) == min(f + 1, 5)
    assert len(addresses) == 1  # one storage, allocated by the first frame, never re-allocated
    assert gen.evaluations == 300 * 4


def test_a_prompt_switch_keeps_the_frames_before_it_and_changes_the_ones_after():
    gen = _generator(_random_model())
    a = "a large red star rotating in the centre over a plain blue background"
    b = "a large green heart rotating in the centre over a plain blue background"
    plain = torch.cat(list(gen.latents([(0, a)], 12, seed=3)))
    switched = torch.cat(list(gen.latents([(0, a), (6, b)], 12, seed=3)))
    assert torch.equal(plain[:6], switched[:6])
    assert not torch.allclose(plain[6:], switched[6:], atol=1e-3)


@pytest.mark.parametrize("warm_start", [False, True])
def test_without_a_cache_recomputing_all_context_makes_the_same_video(warm_start):
    gen = _generator(_random_model())
    gen.warm_start = warm_start
    cached = torch.cat(list(gen.latents([(0, "a red star")], 12, seed=1)))
    # a warm start skips the first (pure-noise) step of every frame after the first
    assert gen.evaluations == 4 + 11 * (3 if warm_start else 4)
    recomputed = torch.cat(list(gen.latents([(0, "a red star")], 12, seed=1, use_cache=False)))
    # long past the window: the cache stores exactly what recomputing every earlier frame gives
    assert torch.allclose(cached, recomputed, atol=1e-4)


def test_a_shorter_window_at_generation_holds_fewer_frames_and_still_equals_recomputing():
    gen = _generator(_random_model())
    a, b = "a red star rotating in the centre", "a green heart rotating in the centre"
    gen.warm_start = True
    full = torch.cat(list(gen.latents([(0, a), (7, b)], 12, seed=1)))
    gen.window = 1
    cache = gen.new_cache()
    held = []
    for _ in gen.latents([(0, a)], 8, seed=1, cache=cache):
        held.append(list(cache.frames))
    assert held[-1] == [0, 7] and held[3] == [0, 3]  # the sink and the one most recent frame
    short = torch.cat(list(gen.latents([(0, a), (7, b)], 12, seed=1)))
    assert torch.equal(full[:2], short[:2])  # frames 0 and 1 see the same context either way
    assert not torch.allclose(full[2:], short[2:], atol=1e-3)  # frames 2+ see less context: another video
    # the recompute path attends to the same one recent frame
    short = torch.cat(list(gen.latents([(0, a)], 12, seed=1)))
    recomputed = torch.cat(list(gen.latents([(0, a)], 12, seed=1, use_cache=False)))
    assert torch.allclose(short, recomputed, atol=1e-4)


def test_direction_guidance_reads_the_opposite_prompt_and_the_cache_still_equals_recomputing():
    from neuralframe.generate.video.generate import opposite_caption

    assert opposite_caption("a red star moving right from the left over a plain blue background") == \
        "a red star moving left from the left over a plain blue background"
    assert opposite_caption("a large red star rotating in the centre") is None
    gen = _generator(_random_model())
    gen.warm_start = True
    prompt = "a red star moving up from the bottom"
    plain = torch.cat(list(gen.latents([(0, prompt)], 12, seed=1)))
    gen.motion_guidance, gen.evaluations = 4.0, 0
    read = []
    encode = gen.parts.encode_text
    gen.parts.encode_text = lambda captions: (read.append(captions[0]), encode(captions))[1]
    guided = torch.cat(list(gen.latents([(0, prompt)], 12, seed=1)))
    assert "a red star moving down from the bottom" in read
    assert gen.evaluations == 4 + 11 * 4  # warm start (3) + the guided step's second evaluation
    assert torch.equal(plain[0], guided[0]) and not torch.allclose(plain[1:], guided[1:], atol=1e-3)
    recomputed = torch.cat(list(gen.latents([(0, prompt)], 12, seed=1, use_cache=False)))
    assert torch.allclose(guided, recomputed, atol=1e-4)
    gen.evaluations = 0
    list(gen.latents([(0, "a red star rotating in the centre")], 12, seed=1))
    assert gen.evaluations == 4 + 11 * 3  # no direction, nothing to guide


def test_frames_after_a_switch_start_from_noise_not_from_the_old_prompts_frame():
    gen = _generator(_random_model())
    gen.warm_start, gen.switch_cold_frames = True, 4
    a, b = "a red star rotating in the centre", "a green heart rotating in the centre"
    warm_only = torch.cat(list(gen.latents([(0, a)], 12, seed=1)))
    gen.evaluations = 0
    switched = torch.cat(list(gen.latents([(0, a), (6, b)], 12, seed=1)))
    # frame 0: 4; frames 1-5 warm: 3; the recache of the 5 held frames; frames 6-9 from noise: 4; 10-11 warm: 3
    assert gen.evaluations == 4 + 5 * 3 + 5 + 4 * 4 + 2 * 3
    assert torch.equal(warm_only[:6], switched[:6])
    gen.evaluations = 0
    list(gen.latents([(0, a)], 12, seed=1))
    assert gen.evaluations == 4 + 11 * 3  # no switch: every later frame warm


def test_prompt_schedules_parse_and_bad_ones_say_why():
    assert parse_schedule("a", ["b:24", "c:8"]) == [(0, "a"), (8, "c"), (24, "b")]
    assert parse_schedule(None, ["a star: red"]) == [(0, "a star: red")]  # a colon inside the text is text
    with pytest.raises(InputError, match="frame 0"):
        parse_schedule(None, ["b:5"])
    with pytest.raises(InputError, match="same frame"):
        parse_schedule("a", ["b:0"])
    with pytest.raises(InputError, match="no prompt"):
        parse_schedule(None, None)


def test_switch_clips_cross_fade_from_one_shape_to_another():
    from neuralframe.generate.data import ShapesGenerator
    from neuralframe.generate.data.clips import FADE_FRAMES, switch_clip
    from neuralframe.generate.data.worlds import VIDEO_WORLD

    gen = ShapesGenerator(VIDEO_WORLD)
    pixels, before, after, a, b = switch_clip(gen, 5, k=3)
    assert np.array_equal(pixels[:3], a.pixels[:3])
    assert np.array_equal(pixels[3 + FADE_FRAMES:], b.pixels[3 + FADE_FRAMES:])
    steps = np.abs(np.diff(pixels.astype(np.float32), axis=0)).mean(axis=(1, 2, 3))
    jump = np.abs(a.pixels[3].astype(np.float32) - b.pixels[3]).mean()
    assert steps[2] < 0.5 * jump  # the switch is spread over the fade, not one cut
    assert a.attributes.shape != b.attributes.shape and a.attributes.colour != b.attributes.colour
    assert np.allclose(a.centres, b.centres)  # same track
    assert before != after and before.split()[-6:] == after.split()[-6:]  # same motion and background words


def test_the_training_loss_runs_and_falls_on_a_tiny_pool():
    from neuralframe.generate.train.video import video_loss

    torch.manual_seed(0)
    model = CausalVideoTransformer(VideoConfig(dim=32, depth=1, heads=2))
    g = torch.Generator().manual_seed(0)
    # each clip repeats one random frame: later frames are predictable from the context
    pool = {"latents": torch.randn(4, 1, 4, 8, 8, generator=g).expand(4, 12, 4, 8, 8).half(), "hidden": torch.randn(4, 77, 64).half(),
            "pooled": torch.randn(4, 64).half(), "switch": torch.tensor([-1, -1, 3, -1])}
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    idx = torch.arange(4)
    losses = []
    for _ in range(40):
        loss, metrics = video_loss(model, pool, idx, torch.Generator().manual_seed(1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(metrics["loss"])
    assert np.isfinite(losses).all()
    assert np.mean(losses[-5:]) < 0.8 * np.mean(losses[:5])


def test_the_training_loss_in_the_short_window_pattern_does_not_read_older_frames():
    from neuralframe.generate.train.video import video_loss

    model = _random_model()  # two layers: a frame's keys in layer 2 depend on what it read in layer 1
    g = torch.Generator().manual_seed(0)
    # the loss covers frames 5.. (a switch at 5); frame 1 is only something they might attend to
    pool = {"latents": torch.randn(2, 12, 4, 8, 8, generator=g), "hidden": torch.randn(2, 77, 64, generator=g),
            "pooled": torch.randn(2, 64, generator=g), "switch": torch.tensor([5, 5])}
    changed = dict(pool, latents=pool["latents"].clone())
    changed["latents"][:, 1] += 3.0

    @torch.no_grad()
    def loss(p, window):
        return float(video_loss(model, p, torch.arange(2), torch.Generator().manual_seed(1), window=window)[0])

    # the short window: the sink and one recent frame (frames 5.. read 0 and 3.., never frame 1)
    assert loss(changed, 1) == pytest.approx(loss(pool, 1), abs=1e-6)
    # the trained window of 4 reaches back to frame 1 from frame 5
    assert abs(loss(changed, None) - loss(pool, None)) > 1e-5  # float noise is below 1e-6


def test_a_damaged_model_folder_is_one_line(tmp_path):
    with pytest.raises(InputError, match="config.json"):
        CausalVideoTransformer.load(tmp_path)
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "transformer.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(InputError, match="unreadable"):
        CausalVideoTransformer.load(tmp_path)


def test_still_caption_turns_the_motion_into_the_start_position():
    from neuralframe.generate.video.generate import still_caption

    assert (still_caption("a large red star moving right from the top left over a plain blue background")
            == "a large red star in the top left over a plain blue background")
    assert (still_caption("a plain white background with a large green heart rotating in the centre")
            == "a plain white background with a large green heart in the centre")
    assert still_caption("a blue square bouncing at the bottom on an orange gradient") == \
        "a blue square at the bottom on an orange gradient"
    assert still_caption("a cat on a sofa") == "a cat on a sofa"


def test_the_first_frame_is_the_keyframe_and_a_switch_re_anchors_the_sink(monkeypatch):
    gen = _generator(_random_model())
    keys = {}

    def keyframe(prompt, seed):  # stands in for the base image model
        keys[prompt] = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(len(prompt)))
        gen.evaluations += 3
        return keys[prompt]

    gen.keyframe, gen.keyframe_steps = keyframe, 3
    recached = []
    real = gen.model.forward_streams

    def spy(ctx_x, ctx_ids, *args, **kw):
        recached.append((ctx_x.clone(), list(ctx_ids)))
        return real(ctx_x, ctx_ids, *args, **kw)

    monkeypatch.setattr(gen.model, "forward_streams", spy)
    a, b = "a red star rotating in the centre", "a green heart rotating in the centre, then"
    latents = list(gen.latents([(0, a), (6, b)], 9, seed=0))
    assert torch.equal(latents[0], keys[a])  # frame 0 is the image model's, not the video model's
    # 4 evaluations a frame (frame 0: 3 image-model steps and the pass that caches it), then the switch's
    # keyframe and the recache of the 5 held frames
    assert gen.evaluations == 9 * 4 + 3 + 5
    (ctx, ids), = recached
    assert ids == [0, 2, 3, 4, 5]
    sink = ctx[:, 0]  # at the context level: 0.75 * keyframe + 0.25 * noise, of the new prompt's keyframe
    ct = gen.config.context_t
    assert (sink - (1 - ct) * keys[b]).std() < 1.5 * ct
    assert (sink - (1 - ct) * keys[a]).std() > 0.8
