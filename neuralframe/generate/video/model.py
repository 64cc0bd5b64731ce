"""A small causal video diffusion transformer over the tiny-shapes autoencoder's latents.

    model = CausalVideoTransformer(VideoConfig())
    text = model.text_condition(hidden_states, pooled)           # once per prompt
    v, kv = model.step(x_t, t, text, cache)                       # one frame, keys/values from the KV cache
    cache.append(frame, kv)

Each 2x2 patch of a frame's latents is one token (8x8x4 latents: 16 tokens; a quarter of the per-pixel
tokens' cost, which is what lets the model train on a 2-core CPU in an hour). A frame's tokens attend to each
other and, through the keys and values of a `KVCache`, to the frames the cache holds: a **frame sink** (the
first `sink` frames) and a **short window** (the `window` most recent). The model is trained with exactly
that attention pattern, so memory and time per frame are the same at frame 10 and at frame 10,000.

Where a cached frame sits relative to the current one is told by a learned offset embedding added to its
keys and values when they are read (offset 0 is the frame itself, 1..window the distance, window + 1 a sink
frame further back than the window): the cache stores them without it, so an entry never has to be
rewritten as the video moves on.

**Previous-frame input** (`prev_frame`): besides its own noisy latents, each frame's tokens read the latents
of the frame before it, as the cache's last step saw them (at the context noise level), patch by patch, with
a flag channel that says whether there is one (frame 0 has none). Motion between frames is a shift of a
fraction of a latent pixel: through attention alone the model has to find and copy the shape before it can
move it. Handed the real first frame of 40 held-out clips, the model trained 3,476 steps without this input
moved the shape the captioned way in 0.475 of them and kept the prompted shape in 0.36 of the frames (real
clips: 1.0 and 0.80 under the scorer of the time). With the previous frame under each token, copying is
the default and the network learns the shift.

Flow matching (x_t = (1 - t) x_0 + t noise, the network predicts v = noise - x_0), text through
cross-attention to the bundled text encoder's hidden states and adaptive layer norm on the timestep and
the pooled text. Sampling takes `len(config.steps)` network evaluations per frame: each step predicts x_0
and re-noises it to the next level. The last step's input is the frame at the context noise level
(`config.context_t`), and the keys/values of that pass are the ones cached: the model is trained on
context frames noised to that level (teacher forcing with noised context), so no extra pass is needed to
fill the cache.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from neuralframe.errors import InputError


@dataclass(frozen=True)
class VideoConfig:
    latent_channels: int = 4
    latent_size: int = 8
    patch: int = 2  # latent pixels per token side: 2x2 patches of 8x8 latents make 16 tokens a frame
    dim: int = 160
    depth: int = 4
    heads: int = 4
    mlp_ratio: float = 4.0
    text_dim: int = 64
    sink: int = 1
    window: int = 4
    clip_frames: int = 12  # frames of a training clip
    context_t: float = 0.25  # noise level of cached context frames
    steps: tuple[float, ...] = field(default=(1.0, 0.75, 0.5, 0.25))
    prev_frame: bool = True  # each frame also reads the previous frame's latents (see the module docstring)

    def as_dict(self) -> dict:
        d = asdict(self)
        d["steps"] = list(self.steps)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "VideoConfig":
        d = dict(d)
        d["steps"] = tuple(d.get("steps", cls.steps))
        d.setdefault("prev_frame", False)  # folders written before the previous-frame input
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in known})

    @property
    def grid(self) -> int:
        return self.latent_size // self.patch

    @property
    def tokens(self) -> int:
        return self.grid * self.grid

    @property
    def offsets(self) -> int:
        return self.window + 2


def context_frames(frame: int, sink: int, window: int) -> list[int]:
    """The frames a KV cache holds when `frame` is generated: the sink, then the window oldest first."""
    first = list(range(min(sink, frame)))
    return first + list(range(max(sink, frame - window), frame))


def offset_class(frame: int, other: int, window: int) -> int:
    """0 for the frame itself, the distance up to `window`, window + 1 for a sink frame further back."""
    d = frame - other
    if d < 0:
        raise InputError(f"frame {frame} cannot attend to a later frame {other}")
    return d if d <= window else window + 1


def timestep_embedding(t: torch.Tensor, dim: int = 256) -> torch.Tensor:
    """Sinusoidal embedding of t in [0, 1] (scaled by 1000, as diffusion timesteps)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10_000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * 1000.0 * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


def _modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale[:, None]) + shift[:, None]


class TextCondition:
    """A prompt's per-block cross-attention keys/values and its pooled embedding (computed once per prompt)."""

    def __init__(self, kv: list[tuple[torch.Tensor, torch.Tensor]], pooled: torch.Tensor):
        self.kv, self.pooled = kv, pooled  # kv per block: [B, heads, L, dh]; pooled [B, dim]



class Block(nn.Module):
    def __init__(self, cfg: VideoConfig):
        super().__init__()
        d, self.heads = cfg.dim, cfg.heads
        self.norm1 = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        self.qkv = nn.Linear(d, 3 * d)
        self.q_norm = nn.RMSNorm(d // cfg.heads, eps=1e-6)
        self.k_norm = nn.RMSNorm(d // cfg.heads, eps=1e-6)
        self.proj = nn.Linear(d, d)
        # learned embedding of where a key/value's frame sits relative to the query's frame
        self.rel_k = nn.Parameter(torch.zeros(cfg.offsets, d))
        self.rel_v = nn.Parameter(torch.zeros(cfg.offsets, d))
        self.norm2 = nn.LayerNorm(d, eps=1e-6)
        self.cross_q = nn.Linear(d, d)
        self.cross_kv = nn.Linear(cfg.text_dim, 2 * d)
        self.cross_proj = nn.Linear(d, d)
        self.norm3 = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        hidden = int(d * cfg.mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(d, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, d))
        self.ada = nn.Linear(d, 6 * d)
        nn.init.zeros_(self.ada.weight)
        nn.init.zeros_(self.ada.bias)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:  # [M, L, d] -> [M, heads, L, dh]
        m, n, d = x.shape
        return x.view(m, n, self.heads, d // self.heads).transpose(1, 2)

    def text_kv(self, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        k, v = self.cross_kv(hidden).chunk(2, -1)
        return self._heads(k), self._heads(v)

    def _norm(self, x: torch.Tensor, norm: nn.RMSNorm) -> torch.Tensor:
        """Per-head RMS norm of [..., d] (the weight in x's dtype: fused under autocast)."""
        shape = x.shape
        x = x.view(*shape[:-1], self.heads, shape[-1] // self.heads)
        return F.rms_norm(x, x.shape[-1:], norm.weight.to(x.dtype), norm.eps).view(shape)

    def project(self, x: torch.Tensor, c: torch.Tensor):
        """Modulation and this frame's own queries/keys/values (keys normed, without the offset embedding:
        as the cache stores them)."""
        mod = self.ada(F.silu(c)).chunk(6, -1)
        h = _modulate(self.norm1(x), mod[0], mod[1])
        q, k, v = self.qkv(h).chunk(3, -1)
        return mod, self._norm(q, self.q_norm), self._norm(k, self.k_norm), v

    def attend(self, x, mod, q, k, v, ctx_k, ctx_v, ctx_off, ctx_mask, text_kv):
        """Self-attention over the context slots and the frame itself, cross-attention to the text, MLP.

        x, q, k, v: [M, N, d] for M frames; ctx_k/ctx_v: [M, S, N, d] keys/values of S context frames (S may
        be 0); ctx_off: [M, S] offset classes; ctx_mask: [M, S] bool (False where a slot is padding) or None
        when every slot is real. text_kv: [B, heads, L, dh] with M a multiple of B (M / B frames per prompt).
        """
        m, n, d = q.shape
        rel_k, rel_v = self.rel_k.to(k.dtype), self.rel_v.to(v.dtype)
        keys = [k + rel_k[0]]
        values = [v + rel_v[0]]
        if ctx_k is not None and ctx_k.shape[1]:
            keys.insert(0, (ctx_k + rel_k[ctx_off][:, :, None]).flatten(1, 2))
            values.insert(0, (ctx_v + rel_v[ctx_off][:, :, None]).flatten(1, 2))
        keys, values = torch.cat(keys, 1), torch.cat(values, 1)
        mask = None
        if ctx_mask is not None and ctx_k is not None and ctx_k.shape[1]:
            own = torch.ones(m, n, dtype=torch.bool, device=q.device)
            mask = torch.cat([ctx_mask[:, :, None].expand(m, ctx_k.shape[1], n).reshape(m, -1), own], 1)
            mask = mask[:, None, None, :]
        out = F.scaled_dot_product_attention(self._heads(q), self._heads(keys), self._heads(values), attn_mask=mask)
        x = x + mod[2][:, None] * self.proj(out.transpose(1, 2).reshape(m, n, d))
        # cross-attention: all frames of one prompt query its tokens together (no per-frame copies of the text)
        tk, tv = text_kv
        b = tk.shape[0]
        cq = self._heads(self.cross_q(self.norm2(x)).reshape(b, (m // b) * n, d))
        cross = F.scaled_dot_product_attention(cq, tk.to(cq.dtype), tv.to(cq.dtype))
        x = x + self.cross_proj(cross.transpose(1, 2).reshape(m, n, d))
        x = x + mod[5][:, None] * self.mlp(_modulate(self.norm3(x), mod[3], mod[4]))
        return x


class CausalVideoTransformer(nn.Module):
    """See the module docstring."""

    def __init__(self, config: VideoConfig | None = None):
        super().__init__()
        cfg = self.config = config or VideoConfig()
        d = cfg.dim
        if d % cfg.heads:
            raise InputError(f"dim {d} is not a multiple of heads {cfg.heads}")
        if cfg.latent_size % cfg.patch:
            raise InputError(f"latent size {cfg.latent_size} is not a multiple of the patch {cfg.patch}")
        patch_in = cfg.latent_channels * cfg.patch ** 2
        # with prev_frame: the previous frame's patch and a has-a-previous-frame flag follow the frame's own
        self.inp = nn.Linear(patch_in * 2 + cfg.patch ** 2 if cfg.prev_frame else patch_in, d)
        self.pos = nn.Parameter(torch.randn(cfg.tokens, d) * 0.02)
        self.t_mlp = nn.Sequential(nn.Linear(256, d), nn.SiLU(), nn.Linear(d, d))
        self.pooled_proj = nn.Sequential(nn.Linear(cfg.text_dim, d), nn.SiLU(), nn.Linear(d, d))
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.depth))
        self.norm_out = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        self.ada_out = nn.Linear(d, 2 * d)
        self.out = nn.Linear(d, cfg.latent_channels * cfg.patch ** 2)
        for layer in (self.ada_out, self.out):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    # ---- conditioning ----
    def text_condition(self, hidden: torch.Tensor, pooled: torch.Tensor) -> TextCondition:
        """hidden [B, L, text_dim] (the text encoder's last hidden states), pooled [B, text_dim]."""
        return TextCondition([blk.text_kv(hidden) for blk in self.blocks], self.pooled_proj(pooled))

    def _tokens(self, x: torch.Tensor, prev: torch.Tensor | None = None,
                has_prev: torch.Tensor | None = None) -> torch.Tensor:
        """[M, C, H, W] -> [M, N, d]. prev: the previous frames' latents [M, C, H, W] (None: no frame has one);
        has_prev: bool [M], which rows have one (default: all, when prev is given)."""
        p = self.config.patch
        if self.config.prev_frame:
            m = x.shape[0]
            if prev is None:
                prev, has_prev = torch.zeros_like(x), torch.zeros(m, dtype=torch.bool, device=x.device)
            elif has_prev is None:
                has_prev = torch.ones(m, dtype=torch.bool, device=x.device)
            prev = prev.to(x.dtype) * has_prev[:, None, None, None].to(x.dtype)
            flag = has_prev[:, None, None, None].to(x.dtype).expand(m, 1, *x.shape[-2:])
            x = torch.cat([x, prev, flag], 1)
        patches = F.pixel_unshuffle(x, p) if p > 1 else x  # [M, C*p*p, H/p, W/p]
        return self.inp(patches.flatten(2).transpose(1, 2)) + self.pos

    def _out(self, h: torch.Tensor, c: torch.Tensor) -> torch.Tensor:  # [M, N, d] -> [M, C, H, W]
        shift, scale = self.ada_out(F.silu(c)).chunk(2, -1)
        y = self.out(_modulate(self.norm_out(h), shift, scale))
        cfg = self.config
        y = y.transpose(1, 2).reshape(h.shape[0], cfg.latent_channels * cfg.patch ** 2, cfg.grid, cfg.grid)
        return F.pixel_shuffle(y, cfg.patch) if cfg.patch > 1 else y

    def _cond(self, t: torch.Tensor, text: TextCondition) -> torch.Tensor:
        return self.t_mlp(timestep_embedding(t)) + text.pooled

    # ---- one frame against a KV cache (generation) ----
    def step(self, x_t: torch.Tensor, t: float, text: TextCondition, cache=None, frame: int = 0,
             return_kv: bool = False, prev: torch.Tensor | None = None):
        """One network evaluation for frame `frame` ([B, C, H, W] at noise level t) attending to the frames
        `cache` holds; `prev`: the previous frame's latents at the context level (None for frame 0).
        Returns v [B, C, H, W] and, with return_kv, this frame's raw keys/values per layer."""
        b = x_t.shape[0]
        h = self._tokens(x_t, prev)
        c = self._cond(torch.full((b,), float(t), device=x_t.device), text)
        held = cache.frames if cache is not None and len(cache) else []
        off = None
        if held:
            off = torch.tensor([offset_class(frame, f, self.config.window) for f in held], device=x_t.device)
            off = off[None].expand(b, -1)
        kvs = []
        for i, blk in enumerate(self.blocks):
            mod, q, k, v = blk.project(h, c)
            ctx_k = ctx_v = None
            if held:
                ck, cv = cache.layer(i)
                ctx_k = ck.view(b, len(held), self.config.tokens, -1)
                ctx_v = cv.view(b, len(held), self.config.tokens, -1)
            if return_kv:
                kvs.append((k, v))
            h = blk.attend(h, mod, q, k, v, ctx_k, ctx_v, off, None, text.kv[i])
        out = self._out(h, c)
        return (out, kvs) if return_kv else out

    # ---- whole sequences (training, recompute without a cache, KV-recache) ----
    def forward_streams(self, ctx_x: torch.Tensor, ctx_ids: list[int], text: TextCondition,
                        query_x: torch.Tensor | None = None, query_ids: list[int] | None = None,
                        query_t: torch.Tensor | None = None, ctx_t: float | None = None,
                        available: set[int] | None = None, prev_x: torch.Tensor | None = None,
                        has_prev: torch.Tensor | None = None, window: int | None = None):
        """Context frames ctx_x [B, F, C, H, W] (frame ids `ctx_ids`, noise level ctx_t) and optional query
        frames query_x [B, Q, C, H, W] at levels query_t [B, Q], in one pass. Every frame attends to itself
        and to the context frames a KV cache would hold when it is generated (`context_frames`), among those
        in ctx_ids (and `available`, if given). With the previous-frame input, each row (context rows, then
        query rows) reads `prev_x` [B, F + Q, C, H, W] where `has_prev` [F + Q] (bool) says it has one; by
        default a row reads the context frame whose id is one less than its own, if there is one. Returns
        (v_ctx, v_query or None, per-layer raw context keys/values [B, F, N, d]). `window`: a shorter window
        than the trained one to attend to (as a generator holding fewer recent frames does); the offsets stay
        the trained ones."""
        cfg = self.config
        window = cfg.window if window is None else window
        b, f = ctx_x.shape[:2]
        ctx_t = cfg.context_t if ctx_t is None else ctx_t
        pos = {fid: p for p, fid in enumerate(ctx_ids)}
        q = 0 if query_x is None else query_x.shape[1]
        row_ids = list(ctx_ids) + (list(query_ids) if q else [])
        s = cfg.sink + cfg.window
        index = torch.zeros(len(row_ids), s, dtype=torch.long)
        offs = torch.zeros(len(row_ids), s, dtype=torch.long)
        valid = torch.zeros(len(row_ids), s, dtype=torch.bool)
        for r, fid in enumerate(row_ids):
            slots = [j for j in context_frames(fid, cfg.sink, window)
                     if j in pos and (available is None or j in available)]
            for k_, j in enumerate(slots):
                index[r, k_], offs[r, k_], valid[r, k_] = pos[j], offset_class(fid, j, cfg.window), True
        dev = ctx_x.device
        index, offs, valid = index.to(dev), offs.to(dev), valid.to(dev)
        rows = f + q
        x = ctx_x if not q else torch.cat([ctx_x, query_x], 1)  # [B, R, C, H, W]
        prev = None
        if cfg.prev_frame:
            if prev_x is None:
                before = [pos.get(fid - 1, -1) for fid in row_ids]
                has_prev = torch.tensor([j >= 0 for j in before], dtype=torch.bool, device=ctx_x.device)
                prev_x = ctx_x[:, [max(j, 0) for j in before]]
            prev = prev_x.flatten(0, 1)
            has_prev = has_prev.to(ctx_x.device)[None].expand(b, -1).flatten()
        h = self._tokens(x.flatten(0, 1), prev, has_prev)  # [B*R, N, d]
        ts = torch.full((b, f), float(ctx_t), device=dev)
        if q:
            ts = torch.cat([ts, query_t.to(dev).float()], 1)
        c = self._cond(ts.flatten(), TextCondition(text.kv, text.pooled.repeat_interleave(rows, 0)))
        off = offs[None].expand(b, -1, -1).flatten(0, 1)
        mask = valid[None].expand(b, -1, -1).flatten(0, 1)
        kvs = []
        n = cfg.tokens
        for i, blk in enumerate(self.blocks):
            mod, qq, k, v = blk.project(h, c)
            k_ctx = k.view(b, rows, n, -1)[:, :f]  # [B, F, N, d]
            v_ctx = v.view(b, rows, n, -1)[:, :f]
            kvs.append((k_ctx, v_ctx))
            ck = k_ctx[:, index].flatten(0, 1)  # [B*R, S, N, d]
            cv = v_ctx[:, index].flatten(0, 1)
            h = blk.attend(h, mod, qq, k, v, ck, cv, off, mask, text.kv[i])
        out = self._out(h, c).view(b, rows, cfg.latent_channels, cfg.latent_size, cfg.latent_size)
        return out[:, :f], (out[:, f:] if q else None), kvs

    def with_prev_frame(self) -> "CausalVideoTransformer":
        """This model with the previous-frame input added (its weights zero: the new model computes what this
        one does until training uses the input). The way an earlier model is continued with it."""
        if self.config.prev_frame:
            return self
        from dataclasses import replace

        new = CausalVideoTransformer(replace(self.config, prev_frame=True))
        state = self.state_dict()
        w = state.pop("inp.weight")
        state["inp.weight"] = torch.cat([w, torch.zeros(w.shape[0], new.inp.in_features - w.shape[1])], 1)
        new.load_state_dict(state)
        return new.train(self.training)

    # ---- files ----
    def save(self, folder, dtype: torch.dtype = torch.float16) -> None:
        import json
        from pathlib import Path

        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        save_file({k: v.detach().to(dtype).contiguous() for k, v in self.state_dict().items()},
                  str(folder / "transformer.safetensors"))
        (folder / "config.json").write_text(json.dumps(self.config.as_dict(), indent=2))

    @classmethod
    def load(cls, folder) -> "CausalVideoTransformer":
        import json
        from pathlib import Path

        from safetensors.torch import load_file

        folder = Path(folder)
        for name in ("config.json", "transformer.safetensors"):
            if not (folder / name).is_file():
                raise InputError(f"{folder}: no {name}; the video model folder is incomplete (train it with "
                                 "`neuralframe train tiny-shapes-video`)")
        try:
            config = VideoConfig.from_dict(json.loads((folder / "config.json").read_text()))
            state = load_file(str(folder / "transformer.safetensors"))
        except Exception as e:  # a damaged file: one line, the folder named
            raise InputError(f"{folder}: unreadable video model ({type(e).__name__}: {e})") from None
        model = cls(config)
        try:
            model.load_state_dict({k: v.float() for k, v in state.items()})
        except RuntimeError as e:
            raise InputError(f"{folder}: the weights do not match config.json ({str(e).splitlines()[0]})") from None
        return model.eval()
