"""Export entry for Robust Video Matting: one graph per downsample ratio, recurrent state explicit.

`downsample_ratio` sets the scale of a Resize inside the network; TensorRT and most edge runtimes want
that scale static, so each ratio is its own graph, "rvm-ratio0.25" and so on, with the scale baked in
(as `RVMStep` does). Inputs src [N, 3, H, W] and r1i..r4i, outputs fgr, pha and r1o..r4o (the names of
the official ONNX files); the first frame takes zero states (`RVM.initial_state`), each next frame the
states the previous one returned. --dynamic frees N, H and W (and the states' sizes with them).

No RVM weights are bundled: --model takes the official rvm_mobilenetv3.pth (or any state dict of the
same architecture); --random-weights exports the architecture with seeded random weights.
"""

from __future__ import annotations

import torch

from neuralframe.errors import InputError
from neuralframe.export.data import person_frames, to_frame_tensor
from neuralframe.export.specs import BuildOptions, Feed, Graph, check_model_path

# The ratios the matting stage picks (about 480 px on the long side): 1920x1080, 1280x720, small frames;
# each graph's example frame is the size its ratio is meant for.
DEFAULT_RATIOS = {0.25: (1080, 1920), 0.375: (720, 1280), 1.0: (288, 512)}
INPUTS = ("src", "r1i", "r2i", "r3i", "r4i")
OUTPUTS = ("fgr", "pha", "r1o", "r2o", "r3o", "r4o")


def random_rvm(seed: int = 0):
    """An RVM with seeded random weights and batch-norm statistics, alpha centred in (0, 1) (so outputs are
    not trivially clamped: parity on them means something)."""
    from neuralframe.matting.rvm import RVM

    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = RVM()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.copy_(0.1 * torch.randn(module.num_features, generator=gen))
                module.running_var.copy_(0.5 + torch.rand(module.num_features, generator=gen))
        model.project_mat.conv.bias[3] = 0.5  # alpha around 0.5, not clamped to 0 everywhere
    return model.eval()


def _graph(model, ratio: float, size: tuple[int, int], weights: str) -> Graph:
    from neuralframe.matting.rvm import RVMStep, state_shapes

    step = RVMStep(model, ratio).eval()
    h, w = size

    def feed(src: torch.Tensor) -> Feed:
        states = model.initial_state(src, ratio)
        return dict(zip(INPUTS, (src, *states)))

    def random_inputs(gen: torch.Generator, dynamic: bool) -> Feed:
        n, hh, ww = (2, h // 2 + 7, w // 2 + 5) if dynamic else (1, h, w)
        src = torch.rand(n, 3, hh, ww, generator=gen)
        shapes = state_shapes(hh, ww, ratio, n)
        return dict(zip(INPUTS, (src, *(torch.rand(s, generator=gen) * 2 - 1 for s in shapes))))

    def real_inputs() -> list[Feed]:
        frames = person_frames(2, (h, w), seed=5)  # 4 frames: each person twice, moving
        first = feed(to_frame_tensor(frames[0]))
        return [first] + [{"src": to_frame_tensor(f)} for f in frames[1:]]

    axes = {"src": {0: "N", 2: "H", 3: "W"}, "fgr": {0: "N", 2: "H", 3: "W"}, "pha": {0: "N", 2: "H", 3: "W"}}
    for i in range(1, 5):
        axes[f"r{i}i"] = axes[f"r{i}o"] = {0: "N", 2: f"h{i}", 3: f"w{i}"}
    shapes_opt = state_shapes(h, w, ratio, 1)
    lo, hi = (max(32, h // 4), max(32, w // 4)), (h * 2, w * 2)
    profile = {"src": ((1, 3, *lo), (1, 3, h, w), (1, 3, *hi))}
    states = zip(state_shapes(*lo, ratio, 1), shapes_opt, state_shapes(*hi, ratio, 1))
    for i, (s_lo, s_opt, s_hi) in enumerate(states, 1):
        profile[f"r{i}i"] = (s_lo, s_opt, s_hi)
    return Graph(
        name=f"rvm-ratio{ratio:g}", module=step, reference=step,
        inputs=INPUTS, outputs=OUTPUTS,
        example=lambda: feed(torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(0))),
        random_inputs=random_inputs, real_inputs=real_inputs,
        real_description=f"4-frame sequence: bundled people over a moving background at {w}x{h} (seed 5), "
                         "states carried frame to frame from zeros",
        dynamic_axes=axes, recurrent={f"r{i}o": f"r{i}i" for i in range(1, 5)}, profile=profile,
        weights=weights,
        notes=[f"downsample_ratio {ratio:g} is a static Resize scale in this graph (one graph per ratio); "
               f"example frame {w}x{h}",
               "states: pass zeros (RVM.initial_state) for the first frame, then r1o..r4o as r1i..r4i"],
    )


def build(options: BuildOptions) -> list[Graph]:
    from neuralframe.matting.rvm import check_downsample_ratio, load_rvm

    path = check_model_path(options.model_path, (".pth", ".pt"), "an RVM MobileNetV3 state dict")
    if path is None and not options.random_weights:
        raise InputError("rvm: no RVM weights are bundled; pass --model rvm_mobilenetv3.pth (the official "
                         "MobileNetV3 state dict) or --random-weights to export the architecture")
    if path is not None:
        model, weights = load_rvm(path), f"{path.name}"
    else:
        model, weights = random_rvm(options.seed), f"random (seed {options.seed}): architecture only"
    ratios = options.ratios or tuple(DEFAULT_RATIOS)
    graphs = []
    for ratio in dict.fromkeys(check_downsample_ratio(r) for r in ratios):
        size = options.size or DEFAULT_RATIOS.get(ratio, (720, 1280))
        graphs.append(_graph(model, ratio, size, weights))
    return graphs
