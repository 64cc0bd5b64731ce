"""`neuralframe data` as a user meets it."""

import os

from cli_helpers import nf, one_clear_line

from neuralframe.backend.memory import LIMIT_ENV


def test_data_shapes_preview(tmp_path):
    import cv2

    out = tmp_path / "sheet.png"
    result = nf("data", "shapes", "--preview", str(out), "--n", "10", "--size", "32")
    assert result.returncode == 0, result.stderr
    sheet = cv2.imread(str(out))
    assert sheet.shape == (2 * 32, 8 * 32, 3) and sheet.std() > 10  # 10 samples on rows of 8, not blank
    assert " a " in result.stdout or "an " in result.stdout  # the captions are listed
    bad = nf("data", "shapes", "--preview", str(tmp_path / "x.png"), "--split", "nope")
    one_clear_line(bad, "nope")
    assert not (tmp_path / "x.png").exists()


def test_data_capture_scene(tmp_path):
    from neuralframe.render.scene import load_scene_cameras
    from neuralframe.render.splat import load

    out = tmp_path / "capture.ply"
    result = nf("data", "capture-scene", "--out", str(out), "--gaussians", "20000", "--sh-degree", "2", "--seed", "3")
    assert result.returncode == 0, result.stderr
    g = load(out)
    assert (g.n, g.sh_degree) == (20_000, 2)
    assert len(load_scene_cameras(out)) == 8 and out.with_suffix(".json").is_file()
    assert "20,000 Gaussians, SH degree 2" in result.stdout and "orders of magnitude" in result.stdout


def test_data_capture_scene_refuses_bad_input_in_one_line(tmp_path):
    out = str(tmp_path / "c.ply")
    one_clear_line(nf("data", "capture-scene", "--out", out, "--gaussians", "0"), "--gaussians", "from 1 to")
    one_clear_line(nf("data", "capture-scene", "--out", out, "--sh-degree", "4"), "--sh-degree", "from 0 to 3")
    one_clear_line(nf("data", "capture-scene", "--out", out, "--seed", "-1"), "--seed")
    one_clear_line(nf("data", "capture-scene", "--out", str(tmp_path / "c.png")), "c.png", ".ply")
    one_clear_line(nf("data", "capture-scene", "--out", str(tmp_path / "c.compressed.ply")), "compressed")
    one_clear_line(nf("data", "capture-scene", "--out", out, "--gaussians", "1000000",
                      env={**os.environ, LIMIT_ENV: "64M"}), "1,000,000 Gaussians", "memory")
    assert list(tmp_path.iterdir()) == []
