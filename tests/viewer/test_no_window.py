"""What the window commands say where no window can open (no display) or the scene is bad: one line, exit 2.
They run anywhere: each removes the display from its own environment (window tests: test_window.py)."""

import os
import subprocess
import sys


def _headless() -> dict:
    return {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}


def test_missing_scene_is_one_line_and_no_window(tmp_path):
    bad = tmp_path / "broken.ply"
    bad.write_bytes(b"ply\nformat binary_little_endian 1.0\nelement vertex 10\n")
    for target in (str(tmp_path / "none.ply"), str(bad)):
        result = subprocess.run([sys.executable, "-m", "neuralframe.cli", "view", target], capture_output=True,
                                text=True, timeout=60, env=_headless())
        assert result.returncode == 2 and "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1


def test_no_display_points_at_render(tmp_path):
    env = _headless()
    result = subprocess.run([sys.executable, "-m", "neuralframe.cli", "view"], capture_output=True, text=True,
                            timeout=60, env=env)
    assert result.returncode == 2 and "neuralframe render" in result.stderr


def test_stream_window_without_display_says_what_to_do():
    env = _headless()
    result = subprocess.run([sys.executable, "-m", "neuralframe.cli", "stream", "--out", "window"],
                            capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 2 and "--out OUT.mp4" in result.stderr
