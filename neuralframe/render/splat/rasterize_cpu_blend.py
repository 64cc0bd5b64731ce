"""The blending stage of the CPU splat rasterizer (`rasterize_cpu.py`, stage 4), compiled with Numba.

A 32 x 32 work tile keeps its pixels' state (transmittance, colour, depth sum, pixel centres) as a struct of
arrays, in columns of LANES = 8 pixels stored row after row, and walks its Gaussians front to back. In each
column a Gaussian's footprint reaches, it visits the rows its alpha >= 1/255 ellipse reaches there
(`_column_rows`, from the record's extent and shape, with the margin the projection built in), less rows at
either end whose pixels have all stopped: consecutive memory, evaluated LANES pixels at a time by two loops
that LLVM vectorizes (AVX2 or wider, `_blend_run`): alpha, with sigma in float32 by the reference's formula
and order of operations and exp(-sigma) by a float32 polynomial (`exp_minus`), and the reference's tests
(sigma >= 0, alpha >= 1/255) as lane masks; then the blending, stopping a pixel before a Gaussian that would
take its transmittance to 1e-4 or below. A tile stops once all its pixels have.
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic

from neuralframe.render.splat import rasterize_ref as ref

# Work tiles. The image does not depend on the tiling (see rasterize_ref.py), so the kernel uses wider tiles
# than the reference's 16 x 16: fewer (tile, Gaussian) pairs.
TW = 32
TH = 32
LANES = 8  # pixels of a row of a (chunk) column: one AVX2 vector of float32
COLUMNS = TW // LANES
# Records of the visible Gaussians, one float32 row of 16 (64 bytes, one cache line) each:
# mx, my, conic (a, b, c) as the blending reads it, opacity, r, g, b, depth, the half extents hx, hy of the
# ellipse sigma <= thr (thr: a little over ln(255 opacity), the alpha >= 1/255 footprint) and its shape
# s = -b/c, e = (ac - b^2)/c^2, u_top = b hy/a: the ellipse is v = s u +- sqrt(e (hx^2 - u^2)) in pixel
# offsets (u, v) from the centre, lowest (v = -hy) at u = u_top and highest at u = -u_top.
# rasterize_cpu_project.py compiles this layout (and `fma`) into its cached code, and Numba's disk cache only
# watches a function's own file: after changing them, touch that file too (or clear the cache).
REC = 16
R_MX, R_MY, R_A, R_B, R_C, R_O, R_R, R_G, R_BL, R_Z, R_HX, R_HY, R_S, R_E, R_UT = range(15)

_F32 = np.float32
_ALPHA_MAX = _F32(ref.ALPHA_MAX)
_ALPHA_MIN = _F32(ref.ALPHA_MIN)
_T_MIN = _F32(ref.T_MIN)
_ZERO = _F32(0.0)
_MIN_ALPHA = _F32(1e-10)  # the reference's clamp before dividing the depth sum by alpha
_HALF = _F32(0.5)
_ONE = _F32(1.0)
# exp(-s) = 2^-n exp(r), n = round(s / ln 2), r = n ln 2 - s in two parts (the high part has 10 significant
# bits, so n * ln2_hi is exact), exp(r) = 1 + r + r^2 q(r) with q of degree 4 fitted to the relative error
# of exp on |r| <= ln(2) / 2 (least squares with Lawson's reweighting towards the minimax fit: 3e-9). In
# float32 with fused multiply-adds: within 1.01 ulp of the exact value over [0, 87], 90% correctly rounded.
_LOG2E = _F32(1.4426950408889634)
_LN2_HI = _F32(0.693359375)
_LN2_LO = _F32(0.6931471805599453 - 0.693359375)
_Q0, _Q1, _Q2, _Q3, _Q4 = (_F32(c) for c in (0.4999999345162592, 0.16666520688656794, 0.041668387373902396,
                                              0.008368709961338587, 0.001381461309337675))
_S_HIGH = _F32(87.0)  # exp(-87) is still a normal float32; alpha there is far below 1/255
_EXP_ONE = _F32(127 << 23)  # the bit pattern of 2^0
_EXP_STEP = _F32(-(1 << 23))  # and its change per halving
# Sections of a tile's state buffer, one float32 per pixel each (struct of arrays, pixels in `_pixel` order):
# transmittance (T < 0 marks a pixel that has stopped, its transmittance is -T; pixels outside the image
# start stopped), colour, depth sum, pixel centres, and the alpha of the Gaussian being blended. Sections are
# 64 bytes more than 4 KiB apart, so that their addresses differ in the low 12 bits (which a CPU compares
# first to tell whether a load waits for a store). Unsigned copies index it inside the vectorized loops.
_S_R, _S_G, _S_B, _S_Z, _S_PX, _S_PY, _S_A, _S_SIZE = (s * (TW * TH + 16) for s in range(1, 9))
_U_R, _U_G, _U_B, _U_Z, _U_PX, _U_PY, _U_A = (np.uint64(s) for s in (_S_R, _S_G, _S_B, _S_Z, _S_PX, _S_PY, _S_A))
# A tile's pixel centres relative to its corner, in that order.
_LOCAL_X = np.array([(k // (TH * LANES)) * LANES + k % LANES + 0.5 for k in range(TW * TH)], np.float32)
_LOCAL_Y = np.array([(k // LANES) % TH + 0.5 for k in range(TW * TH)], np.float32)


@intrinsic
def _f32_from_bits(typingctx, i):
    """The float32 whose bit pattern is the low 32 bits of the integer `i` (a bitcast, vectorizable)."""
    if not isinstance(i, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        v = args[0]
        if i.bitwidth != 32:
            v = builder.trunc(v, ir.IntType(32))
        return builder.bitcast(v, ir.FloatType())

    return types.float32(i), codegen


@intrinsic
def _lowest_bit(typingctx, x):
    """The index of the lowest set bit of the int64 x != 0 (llvm.cttz: one instruction)."""
    if x != types.int64:
        return None

    def codegen(context, builder, signature, args):
        i64 = ir.IntType(64)
        fn = builder.module.declare_intrinsic("llvm.cttz", [i64], ir.FunctionType(i64, [i64, ir.IntType(1)]))
        return builder.call(fn, [args[0], ir.Constant(ir.IntType(1), 1)])

    return types.int64(types.int64), codegen


@intrinsic
def _highest_bit(typingctx, x):
    """The index of the highest set bit of the int64 x != 0 (63 - llvm.ctlz)."""
    if x != types.int64:
        return None

    def codegen(context, builder, signature, args):
        i64 = ir.IntType(64)
        fn = builder.module.declare_intrinsic("llvm.ctlz", [i64], ir.FunctionType(i64, [i64, ir.IntType(1)]))
        return builder.sub(ir.Constant(i64, 63), builder.call(fn, [args[0], ir.Constant(ir.IntType(1), 1)]))

    return types.int64(types.int64), codegen


@intrinsic
def fma(typingctx, a, b, c):
    """a * b + c in float32 with one rounding (llvm.fma: one instruction on AVX2 machines, vectorizable)."""
    if not (a == b == c == types.float32):
        return None

    def codegen(context, builder, signature, args):
        f32 = ir.FloatType()
        fn = builder.module.declare_intrinsic("llvm.fma", [f32], ir.FunctionType(f32, [f32, f32, f32]))
        return builder.call(fn, args)

    return types.float32(types.float32, types.float32, types.float32), codegen


@njit(inline="always")
def exp_minus(s):  # pragma: no cover - compiled
    """exp(-s) in float32 for s >= 0 (s clamped at 87), branch-free so that a loop over it vectorizes."""
    s = min(s, _S_HIGH)
    n = np.floor(fma(s, _LOG2E, _HALF))
    r = fma(n, _LN2_LO, fma(n, _LN2_HI, -s))
    q = fma(fma(fma(fma(_Q4, r, _Q3), r, _Q2), r, _Q1), r, _Q0)
    # 2^-n from its bit pattern (127 - n) << 23, made in float32 (exact) so that the loop holds no 64-bit
    # integer vectors
    return (fma(q, r * r, r) + _ONE) * _f32_from_bits(np.int32(fma(n, _EXP_STEP, _EXP_ONE)))


@njit(cache=True, nogil=True, parallel=True)
def blend(t0, t1, tiles_x, pairs, offsets, rec, bg, out_rgb, out_alpha, out_depth, evals):  # pragma: no cover
    """Front-to-back blending of work tiles t0 to t1 - 1, in raster order (see the module docstring).

    pairs, offsets: tile t blends rec[pairs[offsets[t]:offsets[t + 1]]], front to back.
    rec: [M, REC] float32 records. bg: [3] float32 background (zeros for none).
    Writes the image: out_rgb [H, W, 3] (colour + T bg), out_alpha [H, W] (1 - T), out_depth [H, W]
    (expected depth, sum T_i a_i z_i / alpha, 0 where alpha is 0), in float32 with the operations of
    `ref.rasterize`; and evals[t]: pixel-Gaussian evaluations of tile t (alpha values computed: whole rows of
    chunk columns, stopped pixels included).
    """
    for t in prange(t0, t1):
        evals[t] = blend_tile(t, tiles_x, pairs, offsets, rec, bg, out_rgb, out_alpha, out_depth)


@njit(cache=True, nogil=True)
def blend_tile(t, tiles_x, pairs, offsets, rec, bg, out_rgb, out_alpha, out_depth):  # pragma: no cover
    """One work tile of `blend`; returns its pixel-Gaussian evaluations."""
    height, width = out_alpha.shape
    x0 = (t % tiles_x) * TW
    y0 = (t // tiles_x) * TH
    x1 = min(x0 + TW, width)
    y1 = min(y0 + TH, height)
    st = np.empty(_S_SIZE, np.float32)
    st[_S_R:_S_PX] = _ZERO
    # Pixel centres as the reference makes them, float32(x) + 0.5 (= float32(x0) + (x - x0 + 0.5), exactly);
    # pixels outside the image start stopped.
    fx0, fy0, w, h = _F32(x0), _F32(y0), _F32(x1 - x0), _F32(y1 - y0)
    for kk in range(TW * TH):
        k = np.uint64(kk)
        lx, ly = _LOCAL_X[k], _LOCAL_Y[k]
        st[k + _U_PX] = fx0 + lx
        st[k + _U_PY] = fy0 + ly
        st[k] = _ONE if (lx < w) & (ly < h) else -_ONE
    n_done = TW * TH - (x1 - x0) * (y1 - y0)
    # Per chunk column, a bit per row whose LANES pixels have all stopped.
    rows_done = np.zeros(COLUMNS, np.int64)
    if n_done:
        for col in range(COLUMNS):
            rows_done[col] = _rows_stopped(st, col, 0, TH - 1, 0)
    n_eval = 0
    for p in range(offsets[t], offsets[t + 1]):
        g = pairs[p]
        mx, my = np.float64(rec[g, R_MX]), np.float64(rec[g, R_MY])
        hx, hy = np.float64(rec[g, R_HX]), np.float64(rec[g, R_HY])
        # The footprint's bounding box in the tile (pixel centres within hx, hy of the centre).
        r0 = max(y0, int(math.ceil(my - hy - 0.5))) - y0
        r1 = min(y1 - 1, int(math.floor(my + hy - 0.5))) - y0
        c0 = max(x0, int(math.ceil(mx - hx - 0.5))) - x0
        c1 = min(x1 - 1, int(math.floor(mx + hx - 0.5))) - x0
        if r1 < r0 or c1 < c0:
            continue
        for col in range(c0 // LANES, c1 // LANES + 1):
            done = rows_done[col]
            q0, q1 = r0, r1
            if c0 // LANES != c1 // LANES:
                q0, q1 = _column_rows(rec, g, _F32(x0 + col * LANES - mx), _F32(hx), _F32(hy), _F32(my - y0),
                                      r0, r1)
            # Leave out the rows at either end whose pixels have all stopped.
            live = ~done & ((2 << q1) - (1 << q0)) if q0 <= q1 else 0
            if live == 0:
                continue
            q0, q1 = _lowest_bit(live), _highest_bit(live)
            k0, k1 = _pixel(q0, col * LANES), _pixel(q1 + 1, col * LANES)
            n_stop = _blend_run(st, rec, g, k0, k1)
            n_eval += k1 - k0
            if n_stop:
                n_done += n_stop
                rows_done[col] = _rows_stopped(st, col, q0, q1, done)
        if n_done == TW * TH:
            break
    # Out to the image, through flat views (C-contiguous arrays) and unsigned indices.
    f_rgb, f_alpha, f_depth = out_rgb.reshape(-1), out_alpha.reshape(-1), out_depth.reshape(-1)
    bg_r, bg_g, bg_b = bg[0], bg[1], bg[2]
    for lr in range(y1 - y0):
        for col in range(COLUMNS):
            k = np.uint64(_pixel(lr, col * LANES))
            q = np.uint64((y0 + lr) * width + x0 + col * LANES)
            for j in range(np.uint64(max(min(LANES, x1 - x0 - col * LANES), 0))):
                tk = abs(st[k + j])
                alpha = _ONE - tk
                f_rgb[np.uint64(3) * (q + j)] = st[k + j + _U_R] + tk * bg_r
                f_rgb[np.uint64(3) * (q + j) + np.uint64(1)] = st[k + j + _U_G] + tk * bg_g
                f_rgb[np.uint64(3) * (q + j) + np.uint64(2)] = st[k + j + _U_B] + tk * bg_b
                f_alpha[q + j] = alpha
                f_depth[q + j] = st[k + j + _U_Z] / max(alpha, _MIN_ALPHA)
    return n_eval


@njit(inline="always")
def _column_rows(rec, g, u0, hx, hy, cy, r0, r1):  # pragma: no cover - compiled
    """The rows r0 ... r1 of Gaussian g's bounding box that its ellipse reaches inside the chunk column whose
    pixel centres are u = u0 + 0.5 ... u0 + LANES - 0.5 from the centre (cy: the centre's row, tile-relative).
    In u and v (the row's pixel centre minus the centre), the boundary is v = s u +- sqrt(e (hx^2 - u^2)),
    with its extremes v = -+hy at u = +-u_top (see `R_S`)."""
    # In float32 (as the record holds them): errors of a few 1e-7 relative, far inside the margin of thr.
    s, e, u_top = rec[g, R_S], rec[g, R_E], rec[g, R_UT]
    ua = max(u0 + _HALF, -hx)
    ub = min(u0 + _F32(LANES - 0.5), hx)
    sa = math.sqrt(max(e * (hx * hx - ua * ua), _ZERO))
    sb = math.sqrt(max(e * (hx * hx - ub * ub), _ZERO))
    v0 = min(s * ua - sa, s * ub - sb)
    v1 = max(s * ua + sa, s * ub + sb)
    # (tests without branches: which way they go is anybody's guess)
    v0 = -hy if (ua <= u_top) & (u_top <= ub) else v0
    v1 = hy if (ua <= -u_top) & (-u_top <= ub) else v1
    return max(r0, int(np.ceil(cy + v0 - _HALF))), min(r1, int(np.floor(cy + v1 - _HALF)))


@njit(inline="always")
def _rows_stopped(st, col, a, b, done):  # pragma: no cover - compiled
    """`done` with the bits of the rows a ... b of chunk column col set where all LANES pixels have stopped."""
    for r in range(a, b + 1):
        k = _pixel(r, col * LANES)
        stopped = True
        for j in range(LANES):
            stopped &= st[k + j] < _ZERO
        if stopped:
            done |= 1 << r
    return done


@njit(inline="always")
def _pixel(lr, lc):  # pragma: no cover - compiled
    """Index in a tile's state of the pixel at row lr, column lc: chunk columns of LANES pixels, row by row."""
    return (lc // LANES) * (TH * LANES) + lr * LANES + lc % LANES


@njit(inline="always")
def _blend_run(st, rec, g, k0, k1):  # pragma: no cover - compiled
    """Blends Gaussian `g` into the tile's pixels k0 ... k1 - 1 (whole rows of one chunk column); returns how
    many of them stopped. Two loops LLVM vectorizes (no branches, every access at a constant offset from the
    same unsigned index: no wrap-around test, no aliasing check; an int32 count): alpha (0 where the
    reference skips the Gaussian), then the blending; each needs few enough registers for AVX2's 16."""
    mx, my = rec[g, R_MX], rec[g, R_MY]
    ca, cb, cc = rec[g, R_A], rec[g, R_B], rec[g, R_C]
    o = rec[g, R_O]
    for kk in range(k0, k1):
        k = np.uint64(kk)
        dx = mx - st[k + _U_PX]
        dy = my - st[k + _U_PY]
        # The reference's sigma, in float32 and in its order of operations.
        sigma = _HALF * (ca * dx * dx + cc * dy * dy) + cb * dx * dy
        alpha = min(o * exp_minus(sigma), _ALPHA_MAX)
        st[k + _U_A] = alpha if (sigma >= _ZERO) & (alpha >= _ALPHA_MIN) else _ZERO
    cr, cg, cbl, cz = rec[g, R_R], rec[g, R_G], rec[g, R_BL], rec[g, R_Z]
    n_stop = np.int32(0)
    for kk in range(k0, k1):
        k = np.uint64(kk)
        alpha = st[k + _U_A]
        tk = st[k]
        used = (tk > _ZERO) & (alpha > _ZERO)
        t_next = tk * (_ONE - alpha)
        stop = used & (t_next <= _T_MIN)
        add = used & (t_next > _T_MIN)
        vis = alpha * tk if add else _ZERO
        st[k + _U_R] = fma(vis, cr, st[k + _U_R])
        st[k + _U_G] = fma(vis, cg, st[k + _U_G])
        st[k + _U_B] = fma(vis, cbl, st[k + _U_B])
        st[k + _U_Z] = fma(vis, cz, st[k + _U_Z])
        st[k] = t_next if add else (-tk if stop else tk)
        n_stop = np.int32(n_stop + stop)
    return n_stop
