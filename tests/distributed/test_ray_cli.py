"""`--ray` as users type it: the same frames as without it, a summary per worker, Ctrl-C and errors that leave
no Ray process, temporary folder or partial file behind, and a clear line when Ray is not installed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cli_helpers import nf, one_clear_line

ROOT = Path(__file__).resolve().parents[2]
SCENE = str(ROOT / "assets" / "scenes" / "motorcycle.ply")


@pytest.fixture()
def ray_tmp():
    """A fresh folder for the command's local Ray (NEURALFRAME_RAY_TMPDIR), so that the checks for leftovers
    look at this command's Ray only. `--ray` needs no variable (test_ray_temp_dir.py); this one is short at
    any clone path: /tmp/nft-XXXXXXXX, under which the command makes its own nf-XXXXXXXX."""
    import shutil
    import tempfile

    from neuralframe.distributed.cluster import longest_socket_path, socket_path_limit

    folder = Path(tempfile.mkdtemp(prefix="nft-", dir="/tmp"))
    assert longest_socket_path(str(folder / "nf-XXXXXXXX"), pid=4194304) <= socket_path_limit()
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def _env(ray_tmp: Path) -> dict:
    return {**os.environ, "NEURALFRAME_RAY_TMPDIR": str(ray_tmp), "RAY_AUTH_MODE": "disabled"}


def _leftovers(ray_tmp: Path) -> tuple[list[str], list[int]]:
    from neuralframe.distributed.cluster import ray_processes

    return sorted(p.name for p in ray_tmp.iterdir()), ray_processes(str(ray_tmp))


def test_render_with_ray_writes_the_same_frames_and_reports_each_worker(tmp_path, ray_tmp):
    pytest.importorskip("ray")
    env = _env(ray_tmp)
    args = ("render", SCENE, "--frames", "6", "--size", "160x96")
    assert nf(*args, "-o", str(tmp_path / "single")).returncode == 0
    r = nf(*args, "-o", str(tmp_path / "ray"), "--ray", "--workers", "2", "--unit-frames", "2", "--json", env=env)
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["frames_out"] == 6 and report["status"] == "completed"
    workers = report["ray"]["workers"]
    assert len(workers) == 2 and sum(w["frames"] for w in workers) == 6 and all(w["fps"] > 0 for w in workers)
    single = sorted((tmp_path / "single").glob("*.png"))
    distributed = sorted((tmp_path / "ray").glob("*.png"))
    assert len(distributed) == 6
    for a, b in zip(single, distributed):
        assert np.array_equal(np.asarray(Image.open(a)), np.asarray(Image.open(b))), b.name
    assert _leftovers(ray_tmp) == ([], [])  # the local Ray is gone, and its folder


@pytest.mark.parametrize("when", ["starting", "rendering"])
def test_ctrl_c_stops_the_ray_job_cleanly(tmp_path, ray_tmp, when):
    """Ctrl-C while Ray starts and the workers compile their kernels (a cold Numba cache: the slowest start),
    and once the job renders. Either way the command says "interrupted" (exit code 130) and nothing is left
    behind but, once frames were written, a valid video of the frames so far."""
    pytest.importorskip("ray")
    env = {**_env(ray_tmp), "NUMBA_CACHE_DIR": str(tmp_path / "numba")}
    out = tmp_path / "orbit.mp4"
    log = open(tmp_path / "log.txt", "w")
    # a terminal's Ctrl-C goes to the whole process group: the command, and the Ray it started
    proc = subprocess.Popen([sys.executable, "-m", "neuralframe.cli", "render", SCENE, "-o", str(out), "--frames",
                             "400", "--size", "320x180", "--ray", "--unit-frames", "4"], stdout=log, stderr=log,
                            env=env, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 120
        if when == "starting":  # Ray's session folder exists: Ray is starting its processes and workers
            while not list(ray_tmp.glob("*/session_*")) and time.monotonic() < deadline and proc.poll() is None:
                time.sleep(0.05)
            time.sleep(1.0)
        else:  # the output's temporary file exists once the workers are up
            while (not list(tmp_path.glob(".orbit.*.partial.mp4")) and time.monotonic() < deadline
                   and proc.poll() is None):
                time.sleep(0.2)
            time.sleep(2)
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=90)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()
    text = (tmp_path / "log.txt").read_text()
    assert proc.returncode == 130 and "interrupted" in text, text
    assert "Traceback" not in text and "Exception ignored" not in text, text
    assert _leftovers(ray_tmp) == ([], [])
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    if out.exists():
        import av

        with av.open(str(out)) as container:
            assert sum(1 for _ in container.decode(video=0)) < 400
    if when == "rendering":
        assert out.exists()


def test_without_ray_the_flag_says_how_to_install_it(tmp_path):
    code = ("import sys; sys.modules['ray'] = None; from neuralframe.cli import main; "
            f"sys.exit(main(['render', {SCENE!r}, '-o', {str(tmp_path / 'o.mp4')!r}, '--ray']))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"})
    one_clear_line(r, "--ray needs Ray", "pip install 'neuralframe[distributed]'")
    assert not (tmp_path / "o.mp4").exists()


def test_bad_ray_requests_are_one_clear_line(tmp_path, ray_tmp):
    env = _env(ray_tmp)
    one_clear_line(nf("render", str(tmp_path / "missing.ply"), "-o", str(tmp_path / "o.mp4"), "--ray", env=env),
                   "does not exist")
    one_clear_line(nf("generate", "--prompts", str(tmp_path / "none.txt"), "-o", str(tmp_path / "clips"), "--ray",
                      env=env), "prompts file", "does not exist")
    (tmp_path / "p.txt").write_text("# only a comment\n\n")
    one_clear_line(nf("generate", "--prompts", str(tmp_path / "p.txt"), "-o", str(tmp_path / "clips"), env=env),
                   "has no prompts")
    one_clear_line(nf("render", SCENE, "-o", str(tmp_path / "o.mp4"), "--ray", "--workers", "0", env=env),
                   "--workers must be from 1 to")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.txt"]
    assert _leftovers(ray_tmp) == ([], [])


def test_bench_ray_measures_both_jobs_in_one_run(ray_tmp):
    pytest.importorskip("ray")
    r = nf("bench", "ray", "--frames", "8", "--size", "160x96", "--restyle-frames", "6", "--rounds", "1", "--json",
           env=_env(ray_tmp))
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    for job in ("render", "restyle"):
        fields = result[job]
        assert fields["frames"] == (8 if job == "render" else 6)
        for key in ("fps_single", "fps_ray_1_worker", "fps_ray_2_workers", "scaling_2_workers"):
            assert fields[key] > 0, (job, key)
        assert fields["outputs_identical"] is True, job
        assert len(fields["fps_per_worker_2_workers"]) == 2
    assert set(result["checks"]) == {"render_scaling_2_workers_ge_1_6", "render_outputs_identical",
                                     "restyle_outputs_identical"}
    assert _leftovers(ray_tmp) == ([], [])
