"""`neuralframe train tiny-shapes-video` end to end on a tiny budget: the pool, the training loop with its
checkpoint and resume, and the assembled folder that `generate` reads."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from neuralframe.errors import InputError

ROOT = Path(__file__).resolve().parents[2]
BASE = ROOT / "assets" / "models" / "tiny-shapes"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from neuralframe.generate.train.video import record_run, train_video
    from neuralframe.generate.video.model import VideoConfig

    work = tmp_path_factory.mktemp("video-work")
    config = VideoConfig(dim=32, depth=1, heads=2)
    metrics = train_video(work, BASE, None, 2, False, n_clips=8, batch=2, config=config)
    record_run(work, metrics, "neuralframe train tiny-shapes-video --steps 2")
    return work, metrics


def test_training_writes_a_model_and_resumes_from_its_checkpoint(trained):
    from neuralframe.generate.train.video import train_video
    from neuralframe.generate.video.model import VideoConfig

    work, metrics = trained
    assert metrics["steps"] == 2 and np.isfinite(metrics["loss"])
    assert (work / "video" / "transformer.safetensors").is_file()
    pool = __import__("torch").load(work / "video_pool.pt", weights_only=False)
    assert tuple(pool["latents"].shape) == (8, 12, 4, 8, 8)  # 8 clips of 12 frames of 8x8x4 latents
    # the sink's frame: the clip's own first frame unless it switches prompt (then the other clip's)
    same = (pool["anchor"].float() - pool["latents"][:, 0].float()).abs().flatten(1).amax(1) < 1e-2
    assert same.tolist() == (pool["switch"] < 0).tolist()
    more = train_video(work, BASE, None, 3, True, n_clips=8, batch=2, config=VideoConfig(dim=32, depth=1, heads=2))
    assert more["steps"] == 3  # continued from step 2, not from 0


@pytest.mark.timeout(900)  # a 20-setting sampling sweep: about 3 minutes alone on 2 cores, more on a loaded machine
def test_assemble_writes_a_folder_generate_can_read(trained, tmp_path):
    from neuralframe.generate.train.video import assemble_video
    from neuralframe.generate.video.generate import CausalVideoGenerator

    work, _ = trained
    out = tmp_path / "tiny-shapes-video"
    card = assemble_video(work, out, BASE, "neuralframe train tiny-shapes-video --stage assemble", eval_prompts=2,
                          tune_prompts=2)
    saved = json.loads((out / "card.json").read_text())
    assert saved["metrics"] == card["metrics"]
    for key in ("motion_adherence", "frame_adherence", "switch_adherence", "switch_jump_ratio_median"):
        assert 0 <= saved["metrics"][key] <= 100
    assert saved["runs"][0]["command"].startswith("neuralframe train")
    sweep, best = saved["sampling_sweep_tuning_prompts"], saved["defaults"]
    keys = ("window", "keyframe_steps", "stochastic", "warm_start", "motion_guidance", "switch_cold_frames")
    chosen = [e for e in sweep if all(e[k] == best[k] for k in keys)]
    # 2 windows x 2 noise modes x (no warm start, or a warm start with 2 guidance weights x 2 cold-frame counts)
    assert len(sweep) == 20 and len(chosen) == 1
    smooth = [e for e in sweep if e["switch_jump_ratio_median"] <= 2.0] or sweep
    assert chosen[0]["score"] == max(e["score"] for e in smooth)  # the best on the tuning prompts, switches smooth
    assert {e["keyframe_steps"] for e in sweep} == {3}  # a keyframe in 3 steps + the pass caching it: 4
    # direction guidance costs one evaluation: only with a warm start (3 + 1)
    assert all(e["warm_start"] for e in sweep if e["motion_guidance"] != 1.0)
    assert all(e["switch_cold_frames"] == 0 for e in sweep if not e["warm_start"])
    loaded = CausalVideoGenerator(out)
    assert tuple(getattr(loaded, k) for k in keys) == tuple(best[k] for k in keys)  # and used
    assert loaded.guidance == 1.0
    assert (out / Path(saved["base"])).resolve() == BASE.resolve()
    frames = list(CausalVideoGenerator(out).frames([(0, "a large red star rotating in the centre")], 3))
    assert len(frames) == 3 and frames[0].shape == (64, 64, 3) and frames[0].dtype == np.uint8
    assert not list(tmp_path.glob(".*partial*"))
    from PIL import Image

    assert Image.open(out / saved["preview"]["file"]).size == (12 * 128, 5 * 128)  # 4 clips + a switch, 12 frames


def test_assemble_without_training_is_one_line(tmp_path):
    from neuralframe.generate.train.video import assemble_video

    with pytest.raises(InputError, match="train tiny-shapes-video"):
        assemble_video(tmp_path, tmp_path / "out", BASE, "x")
    assert not (tmp_path / "out").exists()


def test_training_can_start_from_a_model_folder(trained, tmp_path):
    """--init-from: a later run continues a model folder's weights (the bundled model has no checkpoint)."""
    from neuralframe.generate.train.video import train_video
    from neuralframe.generate.video.model import CausalVideoTransformer

    work, _ = trained
    start = CausalVideoTransformer.load(work / "video")
    fresh = tmp_path / "work"
    fresh.mkdir()
    (fresh / "video_pool.pt").symlink_to(work / "video_pool.pt")
    metrics = train_video(fresh, BASE, None, 1, False, n_clips=8, batch=2, init_from=work / "video")
    after = CausalVideoTransformer.load(fresh / "video")
    assert metrics["steps"] == 1 and after.config == start.config
    # one small step from the folder's weights, not a fresh initialisation (random weights of +-0.18 at dim 32)
    diff = max((a - b).abs().max().item() for a, b in zip(after.state_dict().values(), start.state_dict().values()))
    assert 0 < diff < 0.05


def test_init_from_a_missing_folder_is_one_line(tmp_path):
    from neuralframe.generate.train.video import train_video

    with pytest.raises(InputError, match="config.json"):
        train_video(tmp_path, BASE, None, 1, False, n_clips=8, batch=2, init_from=tmp_path / "nothing")
    assert not list(tmp_path.iterdir())


def test_blurred_context_keeps_the_sink_sharp_and_softens_the_other_frames():
    import torch

    from neuralframe.generate.train.video import blur_frames

    x = torch.zeros(2, 3, 4, 8, 8)
    x[:, :, :, 2:4, 2:4] = 1.0  # a sharp 2x2 square on every frame, off the 2x2 pooling grid's halves
    out = blur_frames(x, torch.tensor([0.0, 1.0]))
    assert torch.equal(out[0], x[0])  # strength 0: as it was
    assert torch.equal(out[1, 0], x[1, 0])  # the sink's frame stays sharp
    soft = out[1, 1, 0]
    assert soft.max() < 1.0 and soft[2:4, 2:4].mean() > soft[6:, 6:].mean()  # softened, still in place
    assert abs(float(soft.sum()) - float(x[1, 1, 0].sum())) < 0.5  # about as much of the shape's colour


def test_batches_draw_the_requested_share_of_switching_clips():
    import torch

    from neuralframe.generate.train.video import batch_indices

    pool = {"latents": torch.zeros(100, 1), "switch": torch.tensor([3] * 5 + [-1] * 95)}
    idx = batch_indices(pool, 32, torch.Generator().manual_seed(0), switch_share=0.5)
    assert (pool["switch"][idx] >= 0).sum() >= 16  # 5% of the pool, at least half the batch
    none = batch_indices({"latents": torch.zeros(10, 1), "switch": torch.full((10,), -1)}, 4, None)
    assert none.shape == (4,) and int(none.max()) < 10
