"""Causal video generation: the model (`model`), frame-by-frame generation with a KV cache (`generate`)."""
