"""RVM as the matting model: `--model rvm_mobilenetv3.pth` in `matte` and `stream`, the recurrent state carried
from frame to frame and reset per stream, RVM's foreground in the composite, clear errors for bad files."""

import json

import pytest
import torch

from neuralframe.errors import InputError
from neuralframe.matting.backgrounds import AlphaView, parse_background
from neuralframe.matting.matters import MatteSettings
from neuralframe.matting.rvm import RVM, state_shapes
from neuralframe.matting.rvm_matter import RVMMatter, default_downsample_ratio
from neuralframe.matting.stages import MatteStage, matte_stages
from neuralframe.streaming.frame import Frame, StreamInfo

H, W = 96, 160


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # the runners share 2 cores; torch's spinning thread pool is many times slower under contention
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """A randomly initialised RVM saved as the official file is (its state_dict, torch.save)."""
    torch.manual_seed(0)
    model = RVM()
    with torch.no_grad():
        # a fresh head puts the raw alpha below 0, where the clamp flattens it: centre it on 0.5 and widen it,
        # so the matte varies over the frame and differences in the recurrent state show in it
        model.project_mat.conv.bias[3] = 0.5
        model.project_mat.conv.weight[3] *= 4
    path = tmp_path_factory.mktemp("rvm") / "rvm_mobilenetv3.pth"
    torch.save(model.state_dict(), path)
    return path


@pytest.fixture(scope="module")
def frames():
    from neuralframe.streaming.sources import PatternSource

    pattern = PatternSource(W, H, frames=4)
    return [torch.from_numpy(pattern.render(i)) for i in range(4)]


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """A 4-frame 160x96 H.264 clip of the moving test pattern."""
    from neuralframe.streaming import Pipeline
    from neuralframe.streaming.sinks import VideoFileSink
    from neuralframe.streaming.sources import PatternSource

    path = tmp_path_factory.mktemp("clip") / "in.mp4"
    Pipeline(PatternSource(W, H, frames=4), [], VideoFileSink(path)).run()
    return path


def _cli(capsys, *args):
    """Run the command line in this process: (exit code, stdout, stderr)."""
    from neuralframe.cli import main

    capsys.readouterr()
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def _decode(path):
    from neuralframe.streaming.sources import VideoFileSource

    source = VideoFileSource(path)
    source.open()
    images = []
    while (frame := source.read()) is not None:
        images.append(frame.image)
    source.close()
    return images


def test_matte_command_with_rvm_weights(capsys, weights, clip, tmp_path):
    out, alpha = tmp_path / "out.mp4", tmp_path / "alpha.mp4"
    code, stdout, stderr = _cli(capsys, "matte", clip, "-o", out, "--alpha", alpha, "--model", weights,
                                "--frames", 3, "--json")
    assert code == 0, stderr
    report = json.loads(stdout)
    assert report["status"] == "completed" and report["frames_in"] == report["frames_out"] == 3
    composite, matte = _decode(out), _decode(alpha)
    assert len(composite) == len(matte) == 3
    assert composite[0].shape == matte[0].shape == (H, W, 3)
    # the alpha is RVM's: a matte that varies over the frame, not the segmenter's (which finds nobody here)
    assert matte[0].float().std() > 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["alpha.mp4", "out.mp4"]


def test_stream_effect_with_rvm_weights(capsys, weights, clip, tmp_path):
    code, stdout, stderr = _cli(capsys, "stream", "--source", clip, "--effect", "blur", "--model", weights,
                                "--downsample-ratio", "0.5", "--out", tmp_path / "blur.mp4", "--json")
    assert code == 0, stderr
    report = json.loads(stdout)
    assert report["frames_out"] == 4 and report["accounted"]
    assert [n["name"] for n in report["nodes"]] == ["decode", "rvm", "blur", "encode"]
    assert [f.shape for f in _decode(tmp_path / "blur.mp4")] == [(H, W, 3)] * 4


def test_recurrent_state_is_carried_and_reset(weights, frames):
    matter = RVMMatter(weights).prepare(H, W)
    assert matter.ratio == 1.0 and matter.state is None  # a small frame runs at full size, from zero state
    first = matter(frames[0])
    assert first.shape == (H, W) and first.dtype == torch.float32
    assert [tuple(r.shape) for r in matter.state] == list(state_shapes(H, W, 1.0))
    assert all(r.abs().max() > 0 for r in matter.state)  # the state after frame 0 is what frame 1 starts from
    after_first = matter.state
    carried = matter(frames[1])
    assert any((a - b).abs().max() > 1e-4 for a, b in zip(matter.state, after_first))  # and it moves on
    matter.reset()
    fresh = matter(frames[1])
    assert (carried - fresh).abs().max().item() > 1e-3  # the history changes the matte: the state is used
    # a new stream starts from zero: frame 0 again gives frame 0's matte exactly
    matter.prepare(H, W)
    assert matter.state is None
    torch.testing.assert_close(matter(frames[0]), first, rtol=0, atol=0)


def test_stage_setup_starts_a_new_stream(weights, frames):
    stage = MatteStage(AlphaView(), MatteSettings(model=str(weights)))
    info = StreamInfo(width=W, height=H, fps=30.0)
    stage.setup(info)
    first = stage.process(Frame(frames[0], 0, 0.0)).image
    stage.process(Frame(frames[1], 1, 1 / 30))
    assert stage.matter.state is not None
    stage.teardown()
    stage.setup(info)  # the same stage on a second stream
    assert stage.matter.state is None
    assert torch.equal(stage.process(Frame(frames[0], 0, 0.0)).image, first)


def test_composite_uses_rvm_alpha_and_foreground(weights, frames):
    from neuralframe.backend import fused

    settings = MatteSettings(model=str(weights))
    stage = MatteStage(parse_background("#102030"), settings, name="replace")
    stage.setup(StreamInfo(width=W, height=H, fps=30.0))
    out = stage.process(Frame(frames[0], 0, 0.0))
    reference = RVMMatter(weights).prepare(H, W)
    alpha = reference(frames[0])
    torch.testing.assert_close(out.metadata["alpha"], alpha, rtol=0, atol=0)  # pha as it is: no refinement
    assert torch.equal(out.metadata["foreground"], reference.foreground)
    assert not torch.equal(reference.foreground, frames[0])  # RVM's own foreground, not the frame
    background = torch.tensor([16, 32, 48], dtype=torch.uint8).expand(H, W, 3).contiguous()
    assert torch.equal(out.image, fused.composite(reference.foreground, alpha, background))
    # the two-thread form (rvm | composite) gives the same frames
    rvm_stage, composite = matte_stages(parse_background("#102030"), settings, name="replace")
    info = StreamInfo(width=W, height=H, fps=30.0)
    composite.setup(rvm_stage.setup(info))
    assert rvm_stage.name == "rvm"
    for i in range(2):
        single = stage.process(Frame(frames[i], i, i / 30)).image if i else out.image
        split = composite.process(rvm_stage.process(Frame(frames[i], i, i / 30))).image
        assert torch.equal(single, split)


def test_downsample_ratio_default_and_explicit(weights, frames):
    assert default_downsample_ratio(1080, 1920) == 0.25
    assert default_downsample_ratio(720, 1280) == 0.375
    assert default_downsample_ratio(2160, 3840) == 0.125
    assert default_downsample_ratio(H, W) == 1.0
    assert RVMMatter(weights).prepare(720, 1280).ratio == 0.375
    matter = RVMMatter(weights, downsample_ratio=0.5).prepare(H, W)
    alpha = matter(frames[0])  # the network at 48x80, the deep guided filter back to full size
    assert matter.ratio == 0.5 and alpha.shape == (H, W) and matter.foreground.shape == (H, W, 3)
    assert [tuple(r.shape) for r in matter.state] == list(state_shapes(H, W, 0.5))


def test_onnx_backend_matches_torch(weights, frames):
    pytest.importorskip("onnxruntime")
    from neuralframe.export.matting import matting_engines

    ours = RVMMatter(weights).prepare(H, W)
    onnx = RVMMatter(weights, engines=matting_engines("onnx")).prepare(H, W)
    for frame in frames[:2]:  # the second frame runs on the state each backend carried itself
        torch.testing.assert_close(onnx(frame), ours(frame), rtol=0, atol=1e-4)
        assert (onnx.foreground.int() - ours.foreground.int()).abs().max() <= 1
    onnx.close()


def _bad_weights(tmp_path, weights, kind):
    path = tmp_path / "rvm_mobilenetv3.pth"
    state = torch.load(weights, weights_only=True)
    if kind == "not a state dict":
        torch.save([torch.zeros(3)], path)
    elif kind == "wrong keys":
        torch.save({"encoder." + k: v for k, v in state.items()}, path)
    elif kind == "wrong shape":
        torch.save(dict(state, **{"project_mat.conv.weight": torch.zeros(4, 32, 1, 1)}), path)
    elif kind == "not torch.save":
        path.write_bytes(b"these are not weights\n" * 20)
    return path


@pytest.mark.parametrize("kind,fragment", [
    ("missing", "does not exist"),
    ("not a state dict", "are not a state dict"),
    ("wrong keys", "missing key 'backbone.features.0.0.weight'"),
    ("wrong shape", "'project_mat.conv.weight' should be [4, 16, 1, 1], got [4, 32, 1, 1]"),
    ("not torch.save", "could not be read: it is not a file written by torch.save"),
])
def test_bad_model_files_are_one_line(capsys, weights, clip, tmp_path, kind, fragment):
    path = tmp_path / "nowhere" / "rvm_mobilenetv3.pth" if kind == "missing" else _bad_weights(tmp_path, weights, kind)
    out = tmp_path / "out.mp4"
    code, _, stderr = _cli(capsys, "matte", clip, "-o", out, "--model", path, "--frames", 2)
    assert code == 2 and "Traceback" not in stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert str(path) in lines[0] and fragment in lines[0]
    assert not out.exists() and not list(tmp_path.glob(".*partial*"))


def test_option_errors(weights, clip):
    with pytest.raises(InputError, match="applies to an RVM model only"):
        MatteStage(parse_background("blur"), MatteSettings(downsample_ratio=0.5))
    with pytest.raises(InputError, match=r"downsample_ratio must be in \(0, 1\]"):
        MatteStage(parse_background("blur"), MatteSettings(model=str(weights), downsample_ratio=1.5))
    with pytest.raises(InputError, match="neither an RVM state dict"):
        MatteStage(parse_background("blur"), MatteSettings(model=str(clip)))
    with pytest.raises(InputError, match="is a folder"):
        MatteStage(parse_background("blur"), MatteSettings(model=str(clip.parent)))
    from neuralframe.apps.stream import StreamSettings, build

    with pytest.raises(InputError, match="go with the matting effects"):
        build(StreamSettings(effect="warm", model=str(weights)))


def test_model_file_picks_the_stages(weights):
    from neuralframe.matting.segmenter import model_path

    tflite = matte_stages(parse_background("blur"), MatteSettings(model=str(model_path("landscape"))), name="blur")
    rvm = matte_stages(parse_background("blur"), MatteSettings(model=str(weights)), name="blur")
    default = matte_stages(parse_background("blur"), name="blur")
    assert [s.name for s in tflite] == [s.name for s in default] == ["segment", "blur"]
    assert [s.name for s in rvm] == ["rvm", "blur"]
