"""Caches of the generative models' state across frames (`kv_cache`: the causal video model's keys and
values, a frame sink plus a short window)."""
