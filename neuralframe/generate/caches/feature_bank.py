"""StreamV2V's feature bank: self-attention that also looks at past frames, for temporally steady streams.

    bank = FeatureBank(strength=2.0, interval=1, max_frames=4)
    engine = StreamEngine(pipe, bank=bank)      # attaches to the UNet's mid-block self-attention

Three ideas from StreamV2V (Liang et al. 2024), on diffusers' attention-processor interface:

- **Extended self-attention.** Each banked self-attention layer (`attn1` of the transformer blocks in
  `blocks`: the UNet's mid block by default, `None` for all of them) keeps the keys and values of
  earlier frames. A new frame's queries attend to its own keys and values *and* the banked ones, so the
  layer can copy appearance from what it produced before. `strength` weighs the banked tokens against the
  frame's own (an additive log-bias on their attention logits: 1 is equal footing, 0 switches the bank
  off).
- **Feature fusion.** Each output token of the layer is compared (cosine) with the banked outputs; where
  the nearest one is at least `fusion_threshold` similar, the two are blended with weight `fusion`.
- **A bounded bank.** Every `interval`-th frame is stored. Beyond `max_frames` frames' worth of tokens,
  new tokens are merged into their most similar banked tokens (bipartite soft matching, as in token
  merging) instead of growing the bank, so memory and cost stay fixed however long the stream runs. The
  merged tokens' counts (their weight in attention) are rescaled to `max_frames` frames' worth, so older
  frames fade instead of piling up.

The stream batch holds one latent per denoising step ("slot"), each at its own timestep; the bank is kept
per slot, so a slot only sees features from the same denoising step of earlier frames. The engine tells
the bank, before each UNet call, which slot every batch element belongs to and which elements to store
(`begin`). State is explicit: `reset()` empties it; `detach()` restores the original processors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from neuralframe.errors import InputError


@dataclass
class _LayerBank:
    keys: torch.Tensor  # [S, T, C]
    values: torch.Tensor  # [S, T, C]
    outputs: torch.Tensor  # [S, T, C]
    counts: torch.Tensor  # [S, T] how many tokens each banked token stands for


@dataclass
class FeatureBank:
    """See the module docstring.

    Args:
        strength: weight of the banked keys in self-attention (0 turns extended attention off).
        interval: store the features of every `interval`-th processed frame.
        max_frames: the bank holds at most this many frames' worth of tokens per layer and slot.
        fusion: blend weight of the nearest banked output feature (0 turns feature fusion off).
        fusion_threshold: cosine similarity a banked output needs to be fused.
        blocks: the UNet blocks whose self-attention layers use the bank, as prefixes of diffusers'
            processor names (`"mid_block"`, `"up_blocks.1"`, ...); `None` banks every self-attention layer.

    The defaults were chosen on `neuralframe bench stream`'s panning and static clips with the bundled
    model (the mean absolute difference between consecutive outputs, and prompt adherence); the figures
    for these defaults, with and without the bank, are recorded in benchmarks/stream.json
    (`temporal_diff_*`, `adherence_bank` / `adherence_nobank`). What the sweep showed: banking every
    self-attention layer steadied the panning clip but made the static one flicker more (the decoder's
    high-resolution layers copy the previous frames' camera noise); the mid block alone steadies both at
    the same adherence. More strength or more frames did not steady the static clip and more frames cost
    adherence; fewer frames steadied the panning clip less; adding down_blocks.1 traded the static clip for
    the panning one. Feature fusion made both worse (the nearest banked token by cosine is often from
    another place in the frame), so it is off by default.
    """

    strength: float = 2.0
    interval: int = 1
    max_frames: int = 4
    fusion: float = 0.0
    fusion_threshold: float = 0.9
    blocks: tuple[str, ...] | None = ("mid_block",)
    layers: dict[str, _LayerBank] = field(default_factory=dict, repr=False)
    frames_stored: int = 0
    calls: int = 0

    def __post_init__(self):
        if self.strength < 0:
            raise InputError(f"bank strength must be >= 0, got {self.strength}")
        if self.interval < 1:
            raise InputError(f"bank interval must be >= 1 frame, got {self.interval}")
        if self.max_frames < 1:
            raise InputError(f"bank max_frames must be >= 1, got {self.max_frames}")
        if not 0.0 <= self.fusion <= 1.0:
            raise InputError(f"bank fusion weight must be in [0, 1], got {self.fusion}")
        self._slots: torch.Tensor | None = None
        self._store: torch.Tensor | None = None
        self._originals: dict = {}
        self._unet = None

    # ---- wiring ----
    def attach(self, unet) -> "FeatureBank":
        """Route the self-attention layers of `unet` (those in `blocks`) through the bank."""
        if self._unet is not None and self._unet is not unet:
            raise InputError("this feature bank is attached to another UNet; use one bank per engine")
        processors = dict(unet.attn_processors)
        wired = {name: (_BankedAttention(self, name) if self._banks(name) else proc)
                 for name, proc in processors.items()}
        if not any(isinstance(p, _BankedAttention) for p in wired.values()):
            where = "" if self.blocks is None else f" in the blocks {', '.join(self.blocks)}"
            raise InputError(f"the UNet has no self-attention layers{where} for a feature bank")
        self._unet, self._originals = unet, processors
        unet.set_attn_processor(wired)
        return self

    def _banks(self, name: str) -> bool:
        if not name.endswith("attn1.processor"):
            return False
        return self.blocks is None or any(name == b or name.startswith(b.rstrip(".") + ".") for b in self.blocks)

    def detach(self) -> None:
        """Give the UNet its original attention processors back."""
        if self._unet is not None:
            self._unet.set_attn_processor(self._originals)
            self._unet = None

    def reset(self) -> None:
        self.layers.clear()
        self.frames_stored = 0
        self.calls = 0

    def begin(self, slots: torch.Tensor, store: torch.Tensor) -> None:
        """Before a UNet call: the slot of every batch element [B] and which elements to store ([B] bool,
        one per slot at most)."""
        self._slots = slots
        self.calls += 1
        keep = (self.calls - 1) % self.interval == 0
        self._store = store if keep else None
        if keep:
            self.frames_stored += 1

    @property
    def tokens(self) -> int:
        """Banked tokens over all layers and slots (bounded by max_frames)."""
        return sum(b.keys.shape[0] * b.keys.shape[1] for b in self.layers.values())

    # ---- the per-layer work ----
    def _extend(self, name: str, key: torch.Tensor, value: torch.Tensor) -> tuple:
        bank = self.layers.get(name)
        if bank is None or self.strength == 0 or self._slots is None or bank.keys.shape[-1] != key.shape[-1]:
            return key, value, None
        bk, bv = bank.keys[self._slots], bank.values[self._slots]
        bias = torch.zeros(key.shape[1] + bk.shape[1], dtype=key.dtype, device=key.device)
        # banked tokens that stand for several merged ones keep their weight (log count), times strength
        bias = bias.expand(key.shape[0], -1).clone()
        bias[:, key.shape[1]:] = math.log(self.strength) + bank.counts[self._slots].to(key.dtype).log()
        return torch.cat([key, bk], 1), torch.cat([value, bv], 1), bias

    def _fuse(self, name: str, out: torch.Tensor) -> torch.Tensor:
        bank = self.layers.get(name)
        if bank is None or self.fusion == 0 or self._slots is None or bank.outputs.shape[-1] != out.shape[-1]:
            return out
        past = bank.outputs[self._slots]  # [B, T, C]
        sim = F.normalize(out, dim=-1) @ F.normalize(past, dim=-1).transpose(1, 2)  # [B, N, T]
        sim = sim.masked_fill(bank.counts[self._slots][:, None, :] == 0, -2.0)  # empty places never match
        best, idx = sim.max(-1)
        nearest = torch.gather(past, 1, idx[..., None].expand(-1, -1, out.shape[-1]))
        w = (best >= self.fusion_threshold).to(out.dtype)[..., None] * self.fusion
        return out + w * (nearest - out)

    def _remember(self, name: str, key: torch.Tensor, value: torch.Tensor, out: torch.Tensor) -> None:
        if self._store is None or not bool(self._store.any()):
            return
        sel = self._store.nonzero().flatten()
        slots = self._slots[sel]
        k, v, o = key[sel].detach(), value[sel].detach(), out[sel].detach()
        bank = self.layers.get(name)
        n_slots = int(self._slots.max()) + 1
        if bank is None or bank.keys.shape[0] != n_slots or bank.keys.shape[-1] != k.shape[-1]:
            shape = (n_slots, k.shape[1], k.shape[-1])
            bank = _LayerBank(k.new_zeros(shape), k.new_zeros(shape), k.new_zeros(shape),
                              k.new_zeros(shape[:2]))
            bank.keys[slots], bank.values[slots], bank.outputs[slots] = k, v, o
            bank.counts[slots] = 1.0
            self.layers[name] = bank
            return
        new_counts = k.new_ones(k.shape[:2])
        keys, values, outputs, counts = (torch.cat([b[slots], n], 1) for b, n in
                                         ((bank.keys, k), (bank.values, v), (bank.outputs, o),
                                          (bank.counts, new_counts)))
        capacity = self.max_frames * k.shape[1]
        if keys.shape[1] > capacity:
            keys, values, outputs, counts = _merge(keys, values, outputs, counts, bank.keys.shape[1], capacity)
            # the bank stands for `max_frames` frames, not every frame ever merged: without this the counts
            # (and with them the banked tokens' attention weight, log count) grew every frame and the stream
            # drifted towards the bank even on a static input; rescaled, older frames fade geometrically
            total = counts.sum(1, keepdim=True)
            counts = counts * (capacity / total).clamp(max=1.0)
        if keys.shape[1] != bank.keys.shape[1]:  # the bank grows (until full): rebuild it at the new length
            parts = []
            for x in (bank.keys, bank.values, bank.outputs, bank.counts):
                y = x.new_zeros((n_slots, keys.shape[1], *x.shape[2:]))
                y[:, :x.shape[1]] = x  # slots not stored this time keep what they had
                parts.append(y)
            bank = _LayerBank(*parts)
            self.layers[name] = bank
        bank.keys[slots], bank.values[slots], bank.outputs[slots], bank.counts[slots] = keys, values, outputs, counts


def _merge(keys, values, outputs, counts, old: int, capacity: int):
    """Bipartite soft matching: the banked tokens (the first `old`) are one side, the new tokens the other;
    the new tokens most similar to a banked one are merged into it (count-weighted means) until the bank
    fits `capacity`; the rest are appended."""
    a_k, b_k = keys[:, :old], keys[:, old:]
    r = keys.shape[1] - capacity  # tokens to merge away, <= the new ones
    sim = F.normalize(b_k, dim=-1) @ F.normalize(a_k, dim=-1).transpose(1, 2)  # [S, N, T]
    score, match = sim.max(-1)  # each new token's best banked token
    order = score.argsort(-1, descending=True)
    merged, kept = order[:, :r], order[:, r:].sort(-1).values
    dst = torch.gather(match, 1, merged)  # [S, r]

    def combine(x):
        a, b = x[:, :old], x[:, old:]
        ca, cb = counts[:, :old], counts[:, old:]
        if x.dim() == 2:  # the counts themselves
            total = a.scatter_add(1, dst, torch.gather(b, 1, merged))
            return torch.cat([total, torch.gather(b, 1, kept)], 1)
        c = x.shape[-1]
        weighted = (a * ca[..., None]).scatter_add(1, dst[..., None].expand(-1, -1, c),
                                                   torch.gather(b * cb[..., None], 1,
                                                                merged[..., None].expand(-1, -1, c)))
        total = ca.scatter_add(1, dst, torch.gather(cb, 1, merged))
        # a banked token with no count is an empty place (a slot not yet stored): it stays zero
        return torch.cat([weighted / total.clamp_min(1e-6)[..., None], torch.gather(b, 1, kept[..., None].expand(-1, -1, c))], 1)

    return combine(keys), combine(values), combine(outputs), combine(counts)


class _BankedAttention:
    """diffusers' scaled-dot-product self-attention, with the bank's extended keys, fusion and memory."""

    def __init__(self, bank: FeatureBank, name: str):
        self.bank, self.name = bank, name

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None,
                 *args, **kwargs):
        if encoder_hidden_states is not None or attention_mask is not None or attn.spatial_norm is not None:
            raise RuntimeError("the feature bank wraps plain self-attention layers only")
        residual = hidden_states
        ndim = hidden_states.ndim
        if ndim == 4:
            b, c, h, w = hidden_states.shape
            hidden_states = hidden_states.view(b, c, h * w).transpose(1, 2)
        batch = hidden_states.shape[0]
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)
        query, key, value = attn.to_q(hidden_states), attn.to_k(hidden_states), attn.to_v(hidden_states)
        ext_key, ext_value, bias = self.bank._extend(self.name, key, value)
        heads = attn.heads
        head_dim = key.shape[-1] // heads

        def split(x):
            return x.view(batch, -1, heads, head_dim).transpose(1, 2)

        mask = bias[:, None, None, :] if bias is not None else None
        out = F.scaled_dot_product_attention(split(query), split(ext_key), split(ext_value), attn_mask=mask)
        out = out.transpose(1, 2).reshape(batch, -1, heads * head_dim).to(query.dtype)
        out = attn.to_out[1](attn.to_out[0](out))
        out = self.bank._fuse(self.name, out)
        self.bank._remember(self.name, key, value, out)
        if ndim == 4:
            out = out.transpose(-1, -2).reshape(b, c, h, w)
        if attn.residual_connection:
            out = out + residual
        return out / attn.rescale_output_factor
