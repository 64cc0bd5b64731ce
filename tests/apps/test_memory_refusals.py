"""Issue 33, memory: what a user's sizes would allocate is estimated first. `render --size 200000x200000`
and `stream --size 99999x99999` ended in MemoryError tracebacks and `generate --upscale 1000` grew to 23 GB
until the system killed it; now each is one line and exit code 2, before any work, with nothing written.
Sizes within the options' ranges are judged against the memory available (NEURALFRAME_MEMORY_LIMIT pins it
here, so no test depends on the machine)."""

from __future__ import annotations

import os
import struct
import zipfile

import pytest

from cli_helpers import nf, one_clear_line
from neuralframe.backend.memory import LIMIT_ENV


def limited(amount: str) -> dict:
    return {**os.environ, LIMIT_ENV: amount}


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    result = nf("stream", "--source", "pattern", "--size", "96x64", "--frames", "4", "--out", str(path))
    assert result.returncode == 0, result.stderr
    return path


@pytest.fixture(scope="module")
def small_scene(tmp_path_factory):
    from neuralframe.render.splat import save
    from neuralframe.render.splat.procedural import random_scene

    return save(random_scene(200, seed=0, sh_degree=0), tmp_path_factory.mktemp("scene") / "small.splat")


def nothing_beside(folder, *keep) -> None:
    assert sorted(p.name for p in folder.iterdir()) == sorted(keep)


@pytest.mark.parametrize("args, fragment", [
    (["render", "{scene}", "-o", "{out}", "--size", "200000x200000", "--frames", "2"], "200000x200000"),
    (["stream", "--size", "99999x99999", "--frames", "2", "--out", "{out}"], "99999x99999"),
    (["generate", "a red circle", "--upscale", "1000", "-o", "{out}", "--frames", "2"], "--upscale"),
])
def test_the_reported_sizes_are_one_line_before_any_work(tmp_path, small_scene, args, fragment):
    out = tmp_path / "out.mp4"
    result = nf(*[a.format(scene=small_scene, out=out) for a in args], timeout=60)
    one_clear_line(result, fragment)
    nothing_beside(tmp_path)


def test_render_frames_larger_than_memory_are_refused_before_rendering(tmp_path, small_scene):
    out = tmp_path / "orbit.mp4"
    result = nf("render", str(small_scene), "-o", str(out), "--size", "4000x4000", "--frames", "2",
                env=limited("256M"))
    one_clear_line(result, "4000x4000 frames (camera path): about ", "of memory needed, 256 MB available; "
                   "use a smaller --size")
    nothing_beside(tmp_path)


def test_a_stream_pattern_larger_than_memory_is_refused(tmp_path):
    out = tmp_path / "pattern.mp4"
    result = nf("stream", "--size", "4000x4000", "--frames", "2", "--out", str(out), env=limited("256M"))
    one_clear_line(result, "a 4000x4000 test pattern: about 732 MB of memory needed, 256 MB available; use a "
                   "smaller --size")
    nothing_beside(tmp_path)


def test_a_video_whose_frames_will_not_fit_is_refused_before_decoding(tmp_path, clip):
    out = tmp_path / "copy.mp4"
    result = nf("stream", "--source", str(clip), "--out", str(out), env=limited("100K"))
    one_clear_line(result, "96x64 frames (clip.mp4): about ", "100 kB available")
    nothing_beside(tmp_path)


def test_a_restyle_working_size_larger_than_memory_is_refused(tmp_path, clip):
    out = tmp_path / "restyled.mp4"
    result = nf("restyle", str(clip), "-o", str(out), "--prompt", "a large blue star", "--size", "4096x4096",
                "--frames", "1", env=limited("100M"))
    one_clear_line(result, "diffusion at 4096x4096: about 23.0 GB of memory needed, 100 MB available; use a "
                   "smaller --size")
    nothing_beside(tmp_path)


def test_an_rvm_archive_that_declares_gigabytes_is_refused_before_torch_reads_it(tmp_path, clip):
    weights = tmp_path / "rvm.pth"
    with zipfile.ZipFile(weights, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("archive/data.pkl", b"x" * 1000)
        archive.writestr("archive/data/0", b"\x00" * 100_000)
    blob = bytearray(weights.read_bytes())
    struct.pack_into("<I", blob, blob.rfind(b"PK\x01\x02") + 24, 3_000_000_000)  # the directory's inflated size
    weights.write_bytes(bytes(blob))
    result = nf("matte", str(clip), "-o", str(tmp_path / "matte.mp4"), "--model", str(weights))
    one_clear_line(result, f"RVM weights '{weights}': the archive inflates to 2.8 GB, more than the 1.0 GB")
    nothing_beside(tmp_path, "rvm.pth")


@pytest.mark.slow
def test_generate_upscaled_frames_larger_than_memory_are_refused_before_the_first_is_made(tmp_path):
    out = tmp_path / "circle.mp4"
    result = nf("generate", "a red circle", "--upscale", "16", "-o", str(out), "--frames", "2", env=limited("50M"))
    one_clear_line(result, "--upscale 16: 1024x1024 frames: about 79.0 MB of memory needed, 50.0 MB available; "
                   "use a smaller --upscale")
    nothing_beside(tmp_path)
