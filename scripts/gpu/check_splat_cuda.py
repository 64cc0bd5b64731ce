"""Check and time neuralframe's gsplat CUDA splat rasterizer (`impl="cuda"`) against the reference.

Runs on a CUDA machine, from the repository root, with gsplat importable (it JIT-compiles its CUDA
sources on first use; set TORCH_EXTENSIONS_DIR and MAX_JOBS for that build). It installs nothing.

    PYTHONPATH=.:/tmp/site TORCH_EXTENSIONS_DIR=/tmp/torch_ext MAX_JOBS=16 \
        python3 scripts/gpu/check_splat_cuda.py --out "$OUT"

Phases, most important first, each one writing the JSON again (so a run cut short keeps what it had):
1. environment and the gsplat build (timed);
2. correctness: `impl="cuda"` against `impl="reference"` (both on the GPU) on the bundled motorcycle
   scene and procedural scenes (SH degrees 0-3, a lower evaluated degree, antialiased mode,
   backgrounds, an off-axis posed camera with an off-centre principal point, non-square pixels,
   Gaussians behind the camera or none at all). Reported per case: max / mean abs error and PSNR of
   rgb, alpha and depth errors, the share of pixels off by more than one 8-bit level, and the same
   against the reference with its alpha clamp set to gsplat's 0.999 (the one documented difference,
   so that what is left is the CUDA path's own rounding);
3. timing of the cuda path at 1280x720 and 1920x1080 (CUDA events per frame after warm-up, median of
   many; also the raw `gsplat.rasterization` call on pre-activated inputs, to show the wrapper cost);
4. timing of the reference on the same GPU (fewer repeats; skipped when the time budget runs out).

GSPLAT_BUILD_S, when set, is the build time measured by a step before this script that imported
gsplat.cuda._backend (the device command does the build under `timeout` so that a slow build cannot
take the checks down with it); the script then only loads the cached extension.

The reference's per-Gaussian stage (projection, culling, SH) runs in float64, its blending in float32;
gsplat runs everything in float32 with fast math.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

T0 = float(os.environ.get("CHECK_T0", time.time()))  # the command's start, for the time budget

from neuralframe.render.camera import Camera, intrinsics  # noqa: E402
from neuralframe.render.splat import Gaussians, io, procedural  # noqa: E402
from neuralframe.render.splat import ref as ref_mod  # noqa: E402
from neuralframe.render.splat.rasterize import rasterize  # noqa: E402
from neuralframe.render.splat.stereo import stereo_cameras  # noqa: E402

MOTORCYCLE = ROOT / "assets" / "scenes" / "motorcycle.ply"
SIZES = [(1280, 720), (1920, 1080)]


def elapsed() -> float:
    return time.time() - T0


def log(msg: str) -> None:
    print(f"[{elapsed():7.1f}s] {msg}", flush=True)


# ---------------------------------------------------------------------------------------------
# helpers


@contextlib.contextmanager
def ref_alpha_max(value: float):
    """Temporarily set the reference's alpha clamp (0.99 by spec; gsplat clamps at 0.999)."""
    old = ref_mod.ALPHA_MAX
    ref_mod.ALPHA_MAX = float(np.float32(value))
    try:
        yield
    finally:
        ref_mod.ALPHA_MAX = old


def compare(out, ref) -> dict:
    """Errors of `out` against `ref` (RenderOutputs on the same device)."""
    d_rgb = (out.rgb.float() - ref.rgb.float()).abs()
    mse = float((d_rgb ** 2).mean())
    psnr = "inf" if mse == 0 else round(10.0 * math.log10(1.0 / mse), 2)
    d_alpha = (out.alpha - ref.alpha).abs()
    both = (out.alpha > 0.5) & (ref.alpha > 0.5)
    res = {
        "finite": bool(torch.isfinite(out.rgb).all() and torch.isfinite(out.alpha).all()
                       and torch.isfinite(out.depth).all()),
        "shapes_match": tuple(out.rgb.shape) == tuple(ref.rgb.shape),
        "rgb_max_abs": float(d_rgb.max()) if d_rgb.numel() else 0.0,
        "rgb_mean_abs": float(d_rgb.mean()) if d_rgb.numel() else 0.0,
        "rgb_psnr_db": psnr,
        "px_over_1_255": float((d_rgb.amax(-1) > 1.0 / 255.0).float().mean()),
        "px_over_8_255": float((d_rgb.amax(-1) > 8.0 / 255.0).float().mean()),
        "alpha_max_abs": float(d_alpha.max()),
        "alpha_mean_abs": float(d_alpha.mean()),
        "ref_coverage": float((ref.alpha > 0.5).float().mean()),
    }
    if both.any():
        rel = ((out.depth - ref.depth).abs() / ref.depth.abs().clamp(min=1e-6))[both]
        res["depth_rel_max"] = float(rel.max())
        res["depth_rel_mean"] = float(rel.mean())
    return res


def cuda_ms(fn, warmup: int, iters: int, max_s: float) -> dict:
    """Per-call GPU time with CUDA events (median of `iters`), and wall time per call with sync."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    events = []
    t = time.perf_counter()
    for i in range(iters):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        events.append((a, b))
        if time.perf_counter() - t > max_s and i >= 9:
            break
    torch.cuda.synchronize()
    wall = (time.perf_counter() - t) / len(events)
    ms = sorted(a.elapsed_time(b) for a, b in events)
    return {"ms_median": round(statistics.median(ms), 3), "ms_p10": round(ms[len(ms) // 10], 3),
            "ms_p90": round(ms[(9 * len(ms)) // 10], 3), "ms_min": round(ms[0], 3),
            "wall_ms_per_frame": round(1000 * wall, 3), "iters": len(ms),
            "fps_median": round(1000.0 / statistics.median(ms), 1)}


def wall_ms(fn, repeats: int, max_s: float):
    """Host time per call with a synchronize after each (for slow calls), and the last result."""
    t_all = time.perf_counter()
    out = fn()  # warm-up
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        if time.perf_counter() - t_all > max_s and times:
            break
        t = time.perf_counter()
        out = fn()
        torch.cuda.synchronize()
        times.append(1000 * (time.perf_counter() - t))
    return {"ms_median": round(statistics.median(times), 2), "ms_min": round(min(times), 2),
            "iters": len(times), "fps_median": round(1000.0 / statistics.median(times), 3)}, out


def raw_gsplat_call(g: Gaussians, cam: Camera):
    """`gsplat.rasterization` with inputs activated once, outside the timed region."""
    import gsplat

    dev = g.device
    args = dict(means=g.means, quats=g.quats, scales=torch.exp(g.scales), opacities=torch.sigmoid(g.opacities),
                colors=g.sh, viewmats=cam.viewmat.to(dev, torch.float32)[None],
                Ks=cam.K.to(dev, torch.float32)[None], width=cam.width, height=cam.height,
                near_plane=cam.near, far_plane=cam.far, sh_degree=g.sh_degree, eps2d=0.3, tile_size=16,
                render_mode="RGB+ED")
    return lambda: gsplat.rasterization(**args)


def machine() -> dict:
    props = torch.cuda.get_device_properties(0)
    info = {
        "gpu": torch.cuda.get_device_name(0),
        "capability": ".".join(map(str, torch.cuda.get_device_capability(0))),
        "sm_count": props.multi_processor_count,
        "gpu_memory_gib": round(props.total_memory / 2**30, 1),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    for key, cmd in (("nvcc", ["nvcc", "--version"]),
                     ("nvidia_smi", ["nvidia-smi", "--query-gpu=name,driver_version,clocks.sm,clocks.max.sm,"
                                     "power.draw,temperature.gpu", "--format=csv,noheader"])):
        try:
            text = subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout.strip()
            info[key] = text.splitlines()[-1] if text else ""
        except Exception as e:  # noqa: BLE001
            info[key] = f"unavailable: {e}"
    return info


_EMPTY_PROBE = """
import torch, gsplat
z = lambda *s: torch.zeros(*s, device="cuda")
q = z(0, 4)
out = gsplat.rasterization(means=z(0, 3), quats=q, scales=z(0, 3), opacities=z(0), colors=z(0, 1, 3),
                           viewmats=torch.eye(4, device="cuda")[None],
                           Ks=torch.tensor([[50.0, 0, 32], [0, 50.0, 24], [0, 0, 1]], device="cuda")[None],
                           width=64, height=48, sh_degree=0, render_mode="RGB+ED")
torch.cuda.synchronize()
print("EMPTY_OK", tuple(out[0].shape), float(out[1].max()))
"""


def probe_empty_scene() -> dict:
    """Raw `gsplat.rasterization` on zero Gaussians, in a child process (it may crash the process)."""
    try:
        p = subprocess.run([sys.executable, "-c", _EMPTY_PROBE], capture_output=True, text=True, timeout=120)
        return {"returncode": p.returncode, "stdout": p.stdout.strip()[-300:], "stderr_tail": p.stderr.strip()[-600:]}
    except Exception as e:  # noqa: BLE001
        return {"error": f"{type(e).__name__}: {e}"}


def test_threshold_emulation(dev) -> list[dict]:
    """tests/render/test_splat_rasterize.py::test_matches_reference_on_random_scenes, measured for
    the cuda path as it is and with opacities capped at 0.99 (the test wants, per channel, mean error
    <= 1e-5 and max error <= 1e-3 for rgb, alpha and depth / 6)."""
    rows = []
    cap = math.log(0.99 / 0.01)
    for n, degree, aa, seed in [(1, 0, False, 0), (40, 1, False, 1), (600, 2, True, 2), (3000, 3, False, 3),
                                (3000, 0, True, 4)]:
        g = procedural.random_scene(n, seed=seed, sh_degree=degree, log_scale_mean=-2.0 if seed % 2 else -3.0)
        cam = procedural.front_camera(70 + seed, 50 + seed, near=0.05)
        kw = {"antialiased": aa, "background": torch.tensor([0.1, 0.2, 0.3])}
        want = rasterize(g, cam, impl="reference", **kw)
        gd = g.to(dev)
        capped = Gaussians(gd.means, gd.quats, gd.scales, gd.opacities.clamp(max=cap), gd.sh)
        row = {"params": [n, degree, aa, seed]}
        for label, scene in (("as_is", gd), ("opacity_capped_0.99", capped)):
            got = rasterize(scene, cam, impl="cuda", **kw)
            worst_mean, worst_max = 0.0, 0.0
            for name in ("rgb", "alpha", "depth"):
                a, b = getattr(want, name), getattr(got, name).cpu()
                if name == "depth":
                    a, b = a / 6.0, b / 6.0
                err = (a - b).abs().reshape(a.shape[0], a.shape[1], -1)
                worst_mean = max(worst_mean, err.mean((0, 1)).max().item())
                worst_max = max(worst_max, err.amax((0, 1)).max().item())
            row[label] = {"worst_mean": worst_mean, "worst_max": worst_max,
                          "passes": worst_mean <= 1e-5 and worst_max <= 1e-3}
        rows.append(row)
    return rows


# ---------------------------------------------------------------------------------------------
# scenes


def posed_camera(w: int, h: int) -> Camera:
    """Off-axis pose, off-centre principal point, near plane inside the scene's box."""
    K = intrinsics(w, h, 70.0, cx=0.47 * w, cy=0.55 * h)
    return Camera.look_at((0.6, -0.4, -1.5), (0.0, 0.2, 3.0), K, w, h, near=0.2)


def correctness_cases(moto: Gaussians | None):
    """(name, scene, camera, kwargs): small enough for the reference to be quick."""
    cases = []
    if moto is not None:
        left, right = stereo_cameras()
        cases += [
            ("motorcycle_left_741x500", moto, left, {}),
            ("motorcycle_right_741x500_bg", moto, right, {"background": (0.1, 0.5, 0.9)}),
            ("motorcycle_left_1280x720_nonsquare_px", moto, left.resized(1280, 720), {}),
        ]
    r3 = procedural.random_scene(20_000, seed=1, sh_degree=3)
    cases += [
        ("random20k_sh3_front_320x240", r3, procedural.front_camera(320, 240), {}),
        ("random20k_sh3_eval_deg1_aa_white_bg", r3, procedural.front_camera(320, 240),
         {"sh_degree": 1, "antialiased": True, "background": (1.0, 1.0, 1.0)}),
        ("random20k_sh2_posed_400x300", procedural.random_scene(20_000, seed=2, sh_degree=2), posed_camera(400, 300), {}),
        ("random5k_sh1_posed_aa_333x207", procedural.random_scene(5_000, seed=5, sh_degree=1, log_scale_mean=-1.8),
         posed_camera(333, 207), {"antialiased": True}),
        ("surface100k_sh3_bench_640x480", procedural.surface_scene(100_000, seed=3), procedural.bench_camera(640, 480), {}),
        ("edge_all_behind_camera_bg", procedural.random_scene(1_000, seed=4, box=((-2, 2), (-1.5, 1.5), (-5.0, -1.0))),
         procedural.front_camera(64, 48), {"background": (0.3, 0.3, 0.3)}),
        ("edge_no_gaussians", Gaussians.from_colors(torch.zeros(0, 3), torch.zeros(0, 3), torch.ones(0)),
         procedural.front_camera(64, 48), {}),
    ]
    return cases


# ---------------------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.environ.get("OUT", "."))
    ap.add_argument("--budget-s", type=float, default=560.0, help="stop starting work after this many "
                    "seconds since CHECK_T0 (the command's start)")
    args = ap.parse_args()
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    result: dict = {"benchmark": "splat_cuda", "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "notes": ["reference: per-Gaussian stage in float64, blending in float32 (ref.py)",
                              "gsplat: float32 throughout, -use_fast_math, alpha clamp 0.999 (ref: 0.99)",
                              "vs_reference_gsplat_clamp: the reference with ALPHA_MAX patched to 0.999",
                              "ms_median: CUDA events around one whole rasterize() call, median"]}

    def save() -> None:
        (out_dir / "splat_cuda.json").write_text(json.dumps(result, indent=2))

    assert torch.cuda.is_available(), "needs a CUDA GPU"
    dev = torch.device("cuda")
    result["machine"] = machine()
    log(f"GPU {result['machine']['gpu']}, torch {torch.__version__}")

    # ---- 1. the gsplat build ----
    import gsplat

    result["gsplat_version"] = gsplat.__version__
    ext_dir = os.environ.get("TORCH_EXTENSIONS_DIR", "")
    cached = bool(ext_dir) and any(Path(ext_dir).rglob("gsplat_cuda.so"))
    log(f"gsplat {gsplat.__version__}: loading its CUDA extension (cached build: {cached})")
    t = time.perf_counter()
    from gsplat.cuda._backend import _C

    build_s = time.perf_counter() - t
    # GSPLAT_BUILD_S: the time of the build when a step before this script ran it (see the docstring).
    result["build"] = {"seconds": round(float(os.environ.get("GSPLAT_BUILD_S") or build_s), 1),
                       "load_seconds_in_this_script": round(build_s, 1), "cached": cached, "loaded": _C is not None,
                       "MAX_JOBS": os.environ.get("MAX_JOBS"), "TORCH_CUDA_ARCH_LIST": os.environ.get("TORCH_CUDA_ARCH_LIST")}
    log(f"extension {'loaded' if _C is not None else 'NOT loaded'} after {build_s:.1f}s")
    save()
    if _C is None:
        log("gsplat's CUDA extension is unavailable: stopping")
        return 1

    # ---- 2. correctness ----
    result["raw_gsplat_empty_scene"] = probe_empty_scene()
    log(f"raw gsplat on an empty scene: {result['raw_gsplat_empty_scene']}")
    try:
        result["test_random_scene_thresholds"] = test_threshold_emulation(dev)
    except Exception as e:  # noqa: BLE001
        result["test_random_scene_thresholds"] = f"error: {type(e).__name__}: {e}"
    log(f"test thresholds: {result['test_random_scene_thresholds']}")
    save()
    moto = io.load(MOTORCYCLE).to(dev) if MOTORCYCLE.exists() else None
    checks = []
    for name, g, cam, kw in correctness_cases(moto):
        g = g.to(dev)
        row = {"case": name, "n_gaussians": g.n, "sh_degree": g.sh_degree, "width": cam.width,
               "height": cam.height, **{k: (list(v) if isinstance(v, tuple) else v) for k, v in kw.items()}}
        try:
            out = rasterize(g, cam, impl="cuda", **kw)
            torch.cuda.synchronize()
            ref = rasterize(g, cam, impl="reference", **kw)
            with ref_alpha_max(0.999):
                ref999 = rasterize(g, cam, impl="reference", **kw)
            row["vs_reference"] = compare(out, ref)
            row["vs_reference_gsplat_clamp"] = compare(out, ref999)
            # A candidate emulation of the reference's 0.99 clamp: opacities capped at 0.99 before
            # gsplat (exact at a Gaussian's centre, 1% low elsewhere for opacities above 0.99).
            capped = Gaussians(g.means, g.quats, g.scales, g.opacities.clamp(max=math.log(0.99 / 0.01)), g.sh)
            row["cuda_opacity_capped_0.99_vs_reference"] = compare(rasterize(capped, cam, impl="cuda", **kw), ref)
            row["opacities_above_0.99"] = int((torch.sigmoid(g.opacities) > 0.99).sum())
            if g.n <= 20_000:  # the reference itself, CPU against GPU
                ref_cpu = rasterize(g.cpu(), cam, impl="reference", **kw)
                row["reference_gpu_vs_cpu_rgb_max_abs"] = float((ref.rgb.cpu() - ref_cpu.rgb).abs().max()) \
                    if ref_cpu.rgb.numel() else 0.0
        except Exception as e:  # noqa: BLE001
            row["error"] = f"{type(e).__name__}: {e}"
        checks.append(row)
        v = row.get("vs_reference", {})
        log(f"check {name}: " + (row["error"] if "error" in row else
            f"psnr {v['rgb_psnr_db']} dB, max {v['rgb_max_abs']:.2e}, "
            f"gsplat-clamp psnr {row['vs_reference_gsplat_clamp']['rgb_psnr_db']}, "
            f"capped-opacity psnr {row['cuda_opacity_capped_0.99_vs_reference']['rgb_psnr_db']}"))
        result["checks"] = checks
        save()

    # ---- 3. cuda timing; 4. reference timing ----
    scenes = []
    if moto is not None:
        left = stereo_cameras()[0]
        scenes.append(("motorcycle_92k_sh0", moto, lambda w, h: left.resized(w, h)))
    surf = procedural.surface_scene(1_000_000, seed=0).to(dev)
    scenes.append(("surface_100k_sh3", procedural.surface_scene(100_000, seed=0).to(dev), procedural.bench_camera))
    scenes.append(("surface_1m_sh3", surf, procedural.bench_camera))
    timings = []
    for name, g, make_cam in scenes:
        for w, h in SIZES:
            cam = make_cam(w, h)
            row = {"case": f"{name}_{w}x{h}", "n_gaussians": g.n, "width": w, "height": h}
            try:
                row["cuda"] = cuda_ms(lambda: rasterize(g, cam, impl="cuda"), warmup=10, iters=200, max_s=4.0)
                row["gsplat_raw"] = cuda_ms(raw_gsplat_call(g, cam), warmup=5, iters=200, max_s=3.0)
            except Exception as e:  # noqa: BLE001
                row["error"] = f"{type(e).__name__}: {e}"
            timings.append(row)
            log(f"time {row['case']}: cuda {row.get('cuda', {}).get('ms_median')} ms, "
                f"raw gsplat {row.get('gsplat_raw', {}).get('ms_median')} ms")
            result["timing"] = timings
            save()
    result["peak_gpu_memory_gib_cuda_phase"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)

    for (name, g, make_cam), rows in zip(scenes, [timings[i:i + len(SIZES)] for i in range(0, len(timings), len(SIZES))]):
        for (w, h), row in zip(SIZES, rows):
            if elapsed() > args.budget_s - 20:
                row["reference"] = "skipped: time budget"
                continue
            cam = make_cam(w, h)
            try:
                left_s = max(5.0, args.budget_s - 20 - elapsed())
                row["reference"], ref = wall_ms(lambda: rasterize(g, cam, impl="reference"), repeats=3,
                                                max_s=min(30.0, left_s))
                out = rasterize(g, cam, impl="cuda")
                row["vs_reference"] = compare(out, ref)
                if "cuda" in row:
                    row["speedup_cuda_vs_reference"] = round(row["reference"]["ms_median"] / row["cuda"]["ms_median"], 1)
                del ref, out
            except Exception as e:  # noqa: BLE001
                row["reference"] = f"error: {type(e).__name__}: {e}"
            torch.cuda.empty_cache()
            log(f"reference {row['case']}: {row['reference']}")
            result["timing"] = timings
            save()

    result["peak_gpu_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    result["total_seconds"] = round(elapsed(), 1)
    save()

    # ---- table ----
    print()
    print(f"gsplat {result['gsplat_version']} on {result['machine']['gpu']}; build {result['build']['seconds']} s")
    print(f"{'check':42s} {'PSNR dB':>8s} {'max abs':>9s} {'mean abs':>9s} {'>1/255':>7s} {'PSNR@.999':>9s} "
          f"{'max@.999':>9s} {'PSNRcap':>8s} {'maxcap':>9s}")
    for row in checks:
        if "error" in row:
            print(f"{row['case']:42s} ERROR {row['error'][:80]}")
            continue
        v, u = row["vs_reference"], row["vs_reference_gsplat_clamp"]
        c = row["cuda_opacity_capped_0.99_vs_reference"]
        print(f"{row['case']:42s} {str(v['rgb_psnr_db']):>8s} {v['rgb_max_abs']:9.2e} {v['rgb_mean_abs']:9.2e} "
              f"{v['px_over_1_255']:7.4f} {str(u['rgb_psnr_db']):>9s} {u['rgb_max_abs']:9.2e} "
              f"{str(c['rgb_psnr_db']):>8s} {c['rgb_max_abs']:9.2e}")
    print(f"{'timing':32s} {'cuda ms':>8s} {'raw ms':>8s} {'ref ms':>9s} {'speedup':>8s} {'PSNR dB':>8s}")
    for row in timings:
        ref = row.get("reference")
        ref_ms = ref["ms_median"] if isinstance(ref, dict) else "-"
        print(f"{row['case']:32s} {str(row.get('cuda', {}).get('ms_median', 'ERR')):>8s} "
              f"{str(row.get('gsplat_raw', {}).get('ms_median', 'ERR')):>8s} {str(ref_ms):>9s} "
              f"{str(row.get('speedup_cuda_vs_reference', '-')):>8s} "
              f"{str(row.get('vs_reference', {}).get('rgb_psnr_db', '-')):>8s}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
