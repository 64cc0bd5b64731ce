"""The causal video model's KV cache on its own: the sink stays, the window slides, memory is flat, the
attention order is sink then window oldest first, recache replaces what it is asked to, reset forgets, and
bad frames get one clear error."""

from __future__ import annotations

import pytest
import torch

from neuralframe.errors import InputError
from neuralframe.generate.caches.kv_cache import KVCache

B, N, C, L = 2, 3, 4, 2


def frame_kv(i: int, prompt: float = 0.0):
    """Keys and values that say which frame (and prompt) made them: keys = i + prompt, values = -(i + p)."""
    return [(torch.full((B, N, C), i + prompt + 100 * layer), torch.full((B, N, C), -(i + prompt + 100 * layer)))
            for layer in range(L)]


def held(cache: KVCache, layer: int = 0) -> list[float]:
    k, v = cache.layer(layer)
    assert torch.equal(v, -k)
    return [float(x) - 100 * layer for x in k[0, ::N, 0]]


def test_sink_then_sliding_window():
    cache = KVCache(layers=L, sink=1, window=3)
    for i in range(2):
        cache.append(i, frame_kv(i))
    assert cache.frames == [0, 1] and held(cache) == [0, 1]
    for i in range(2, 9):
        cache.append(i, frame_kv(i))
    assert cache.frames == [0, 6, 7, 8]  # frame 0 anchors; the window holds the 3 newest
    assert held(cache) == [0, 6, 7, 8] and held(cache, 1) == [0, 6, 7, 8]
    k, v = cache.layer(1)
    assert k.shape == v.shape == (B, 4 * N, C)


def test_memory_is_flat_however_long_the_video():
    cache = KVCache(layers=L, sink=2, window=4)
    cache.append(0, frame_kv(0))
    first = cache.nbytes
    storage = cache._keys.data_ptr()
    for i in range(1, 1000):
        cache.append(i, frame_kv(i))
    assert cache.nbytes == first == 2 * L * 6 * B * N * C * 4
    assert cache._keys.data_ptr() == storage  # the ring buffer is reused, never re-allocated
    assert cache.frames == [0, 1, 996, 997, 998, 999] and held(cache) == [0, 1, 996, 997, 998, 999]


def test_no_sink_and_explicit_eviction():
    cache = KVCache(layers=L, sink=0, window=2)
    for i in range(5):
        cache.append(i, frame_kv(i))
    assert held(cache) == [3, 4]
    cache.evict(1)
    assert cache.frames == [4]
    with pytest.raises(InputError, match="cannot evict 2"):
        cache.evict(2)


def test_recache_replaces_the_window_under_the_new_prompt():
    cache = KVCache(layers=L, sink=1, window=3)
    for i in range(6):
        cache.append(i, frame_kv(i))
    asked = []

    def under_new_prompt(frames):
        asked.append(frames)
        return [frame_kv(f, prompt=0.5) for f in frames]

    assert cache.recache(under_new_prompt) == [3, 4, 5]
    assert asked == [[3, 4, 5]]
    assert held(cache) == [0, 3.5, 4.5, 5.5]  # the sink keeps the old prompt's anchor
    cache.recache(under_new_prompt, include_sink=True)
    assert held(cache) == [0.5, 3.5, 4.5, 5.5]
    cache.append(6, frame_kv(6, 0.5))  # the stream goes on after the switch
    assert held(cache) == [0.5, 4.5, 5.5, 6.5]
    with pytest.raises(InputError, match="returned 1"):
        cache.recache(lambda frames: [frame_kv(0)])
    bad = [frame_kv(f, 0.25) for f in (4, 5)] + [[(torch.zeros(B, N + 1, C), torch.zeros(B, N + 1, C))] * L]
    with pytest.raises(InputError, match="holds frames of"):
        cache.recache(lambda frames: bad)
    assert held(cache) == [0.5, 4.5, 5.5, 6.5]  # a refused recache writes nothing


def test_reset_forgets_and_keeps_the_storage():
    cache = KVCache(layers=L, sink=1, window=2)
    for i in range(4):
        cache.append(i, frame_kv(i))
    storage = cache._keys.data_ptr()
    cache.reset()
    assert len(cache) == 0 and cache.frames == []
    with pytest.raises(InputError, match="empty"):
        cache.layer(0)
    cache.append(10, frame_kv(10))
    assert held(cache) == [10] and cache._keys.data_ptr() == storage


def test_bad_frames_are_clear_errors():
    with pytest.raises(InputError, match="window >= 1"):
        KVCache(layers=1, window=0)
    cache = KVCache(layers=L, sink=1, window=2)
    with pytest.raises(InputError, match="cover 2 layers"):
        cache.append(0, frame_kv(0)[:1])
    cache.append(0, frame_kv(0))
    with pytest.raises(InputError, match="holds frames of"):
        cache.append(1, [(torch.zeros(B, N + 1, C), torch.zeros(B, N + 1, C))] * L)
    with pytest.raises(InputError, match="both be"):
        cache.append(1, [(torch.zeros(B, N, C), torch.zeros(B, N, C + 1))] * L)
    with pytest.raises(InputError, match="layer 5"):
        cache.layer(5)
    assert cache.frames == [0]  # a refused frame changes nothing
