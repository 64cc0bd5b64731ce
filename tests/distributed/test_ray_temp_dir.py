"""A local Ray's temporary folder needs no setting: when the preferred folder is too deep for Ray's Unix socket
paths, a short private one is picked, measured against the sockets a real Ray creates, and removed after."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from neuralframe.distributed import RaySettings, ray_session
from neuralframe.distributed.cluster import (TMPDIR_ENV, local_temp_dir, longest_socket_path, ray_processes,
                                             socket_path_limit)

ROOT = Path(__file__).resolve().parents[2]
SCENE = str(ROOT / "assets" / "scenes" / "motorcycle.ply")


def _too_deep(tmp_path: Path) -> Path:
    """A folder under `tmp_path` whose Ray socket paths would not fit, like a long macOS TMPDIR or clone path."""
    folder = tmp_path / ("deep-" + "d" * max(1, socket_path_limit() - len(str(tmp_path)) - 40))
    folder.mkdir()
    assert longest_socket_path(str(folder / "nf-XXXXXXXX")) > socket_path_limit()
    return folder


def _sockets(folder: str) -> list[str]:
    found = []
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            path = os.path.join(root, name)
            if stat.S_ISSOCK(os.lstat(path).st_mode):
                found.append(path)
    return found


def test_a_short_preferred_folder_is_used_and_a_deep_one_is_replaced(tmp_path, monkeypatch):
    short = Path(os.path.realpath("/tmp")) / f"nfs-{os.getpid()}"
    short.mkdir()
    try:
        monkeypatch.setenv(TMPDIR_ENV, str(short))
        folder = local_temp_dir()
        assert Path(folder).parent == short
        os.rmdir(folder)
    finally:
        os.rmdir(short)
    deep = _too_deep(tmp_path)
    monkeypatch.setenv(TMPDIR_ENV, str(deep))
    folder = local_temp_dir()
    try:
        assert Path(folder).parent in (Path("/tmp"), Path("/var/tmp")), folder
        assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700  # private: other users cannot reach the sockets
        assert longest_socket_path(folder) <= socket_path_limit()
        assert list(deep.iterdir()) == []  # the folder it tried first is not left behind
    finally:
        os.rmdir(folder)


def test_no_usable_folder_is_one_clear_error(tmp_path, monkeypatch):
    from neuralframe.distributed import cluster
    from neuralframe.errors import InputError

    monkeypatch.setenv(TMPDIR_ENV, str(_too_deep(tmp_path)))
    monkeypatch.setattr(cluster, "SHORT_BASES", ("/proc/no-such-folder",))
    with pytest.raises(InputError, match=f"set {TMPDIR_ENV} to a short writable folder"):
        local_temp_dir()


def test_the_computed_socket_paths_are_the_ones_ray_creates_and_the_folder_goes_after(tmp_path, monkeypatch):
    """A real local Ray from a too-deep preferred folder: it starts, its longest socket path is exactly the
    computed one, and its folder and processes are gone when the session ends."""
    ray = pytest.importorskip("ray")
    if ray.is_initialized():  # pragma: no cover - another module's Ray is still up
        ray.shutdown()
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    monkeypatch.setenv(TMPDIR_ENV, str(_too_deep(tmp_path)))
    with ray_session(RaySettings(num_cpus=1)) as session:
        temp_dir = session.temp_dir
        assert ray.get(ray.remote(lambda x: x + 1).remote(1)) == 2
        sockets = _sockets(temp_dir)
        assert {Path(p).name for p in sockets} == {"plasma_store", "raylet"}
        assert max(len(os.fsencode(p)) for p in sockets) == longest_socket_path(temp_dir)
    assert not os.path.exists(temp_dir)
    assert ray_processes(temp_dir) == []


def test_ray_needs_no_variable_when_the_system_temporary_folder_is_deep(tmp_path):
    """macOS's per-user TMPDIR is about 50 characters; a clone's may be longer still: `--ray` just works."""
    pytest.importorskip("ray")
    deep = _too_deep(tmp_path)
    env = {k: v for k, v in os.environ.items() if k != TMPDIR_ENV}
    env.update(TMPDIR=str(deep), RAY_AUTH_MODE="disabled", COLUMNS="200")
    r = subprocess.run([sys.executable, "-m", "neuralframe.cli", "render", SCENE, "-o", str(tmp_path / "frames"),
                        "--frames", "2", "--size", "96x64", "--ray", "--workers", "1"], capture_output=True, text=True,
                       env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    assert len(list((tmp_path / "frames").glob("*.png"))) == 2
    assert [p.name for p in deep.iterdir() if p.name.startswith(("nf-", "session"))] == []
