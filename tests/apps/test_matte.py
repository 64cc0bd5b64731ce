"""The offline `matte` job: every frame reaches every output, files are valid, errors are clear."""

import pytest

from neuralframe.errors import InputError
from neuralframe.apps.matte import MatteJob, run


@pytest.fixture(scope="module")
def clip_path(tmp_path_factory):
    from neuralframe.matting.media import make_clip
    from neuralframe.streaming import Pipeline
    from neuralframe.streaming.frame import Frame, StreamInfo
    from neuralframe.streaming.pipeline import Source
    from neuralframe.streaming.sinks import VideoFileSink

    clip = make_clip(5, (180, 320), moving=True)

    class Frames(Source):
        def __init__(self):
            self.i = 0

        def open(self):
            return StreamInfo(width=320, height=180, fps=30.0, frames=5)

        def read(self):
            if self.i >= 5:
                return None
            f = Frame(image=clip.frames[self.i], index=self.i, timestamp=self.i / 30)
            self.i += 1
            return f

    path = tmp_path_factory.mktemp("clip") / "person.mp4"
    Pipeline(Frames(), [], VideoFileSink(path)).run()
    return path


def _frames(path):
    from neuralframe.streaming.sources import VideoFileSource

    src = VideoFileSource(path)
    src.open()
    out = []
    while (f := src.read()) is not None:
        out.append(f.image)
    src.close()
    return out


def test_matte_job_writes_every_output(clip_path, tmp_path):
    import cv2

    job = MatteJob(str(clip_path), out=str(tmp_path / "out.mp4"), alpha=str(tmp_path / "alpha.mp4"),
                   rgba=str(tmp_path / "rgba"), background="#0000ff")
    report = run(job, progress=False)
    assert report.status == "completed" and report.frames_in == report.frames_out == 5
    comp, alpha = _frames(tmp_path / "out.mp4"), _frames(tmp_path / "alpha.mp4")
    assert len(comp) == len(alpha) == 5 and comp[0].shape == (180, 320, 3)
    assert comp[0][5:30, 5:40, 2].float().mean() > 200  # the background, painted blue
    assert alpha[0][5:30, 5:40].float().mean() < 20 and alpha[0][120:170, 140:180].float().mean() > 200
    pngs = sorted((tmp_path / "rgba").glob("*.png"))
    assert len(pngs) == 5
    rgba = cv2.imread(str(pngs[0]), cv2.IMREAD_UNCHANGED)
    assert rgba.shape == (180, 320, 4) and rgba[5:30, 5:40, 3].mean() < 20
    assert not list(tmp_path.glob(".*partial*"))


def test_matte_job_errors(clip_path, tmp_path):
    with pytest.raises(InputError, match="nothing to write"):
        run(MatteJob(str(clip_path)), progress=False)
    with pytest.raises(InputError, match="does not exist"):
        run(MatteJob(str(tmp_path / "missing.mp4"), out=str(tmp_path / "o.mp4")), progress=False)
    with pytest.raises(InputError, match="webcam"):
        run(MatteJob("webcam", out=str(tmp_path / "o.mp4")), progress=False)
    with pytest.raises(InputError, match="is not #RRGGBB"):
        run(MatteJob(str(clip_path), out=str(tmp_path / "o.mp4"), background="#zz"), progress=False)
    assert not (tmp_path / "o.mp4").exists()
