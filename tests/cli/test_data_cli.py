"""`neuralframe data` as a user meets it."""

from cli_helpers import nf, one_clear_line


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
