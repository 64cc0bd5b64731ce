"""`neuralframe convert` and `neuralframe info SCENE`: what a user converting a scene would check."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from neuralframe.assets import asset
from neuralframe.render.splat import load, save
from neuralframe.render.splat.procedural import surface_scene

from cli_helpers import nf, one_clear_line
from splat_compare import psnr

MOTORCYCLE = asset("scenes", "motorcycle.ply")
# measured: the bundled scene merged from 92,500 to 40,000 Gaussians renders at 30.2 dB against all of them
MERGED_PSNR_FLOOR = 28.0


def test_convert_then_info_describes_the_new_file(tmp_path):
    out = tmp_path / "moto.spz"
    result = nf("convert", str(MOTORCYCLE), str(out), "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["gaussians"] == summary["input_gaussians"] == 92_500
    assert summary["format"] == "spz" and summary["input_format"] == "ply"
    assert summary["bytes"] == out.stat().st_size
    assert summary["bytes_per_gaussian"] < 248 / 4  # a quarter of the .ply's 62 floats a Gaussian
    described = json.loads(nf("info", str(out), "--json").stdout)
    assert described["gaussians"] == 92_500 and described["sh_degree"] == 0
    assert described["bounds_min"] == summary["bounds_min"]
    assert psnr(load(MOTORCYCLE), load(out)) > 45  # spz's quantisation is invisible at this size
    text = nf("info", str(out))
    assert text.returncode == 0 and "92,500" in text.stdout and "spz" in text.stdout


def test_max_gaussians_merges_to_the_budget_and_keeps_the_picture(tmp_path):
    out = tmp_path / "small.ply"
    result = nf("convert", str(MOTORCYCLE), str(out), "--max-gaussians", "40000", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["dropped_faintest"] == 0  # merging alone reached the budget
    small = load(out)
    assert small.n == 40_000
    assert psnr(load(MOTORCYCLE), small) >= MERGED_PSNR_FLOOR


def test_sh_degree_drops_bands(tmp_path):
    src, out = tmp_path / "sh3.ply", tmp_path / "sh1.ply"
    g = surface_scene(500, seed=1, sh_degree=3)
    save(g, src)
    assert nf("convert", str(src), str(out), "--sh-degree", "1").returncode == 0
    h = load(out)
    assert h.sh_degree == 1 and torch.equal(h.sh, g.sh[:, :4])


def test_filter_nan_drops_only_the_broken_gaussians(tmp_path):
    g = surface_scene(300, seed=2, sh_degree=0)
    g.means[[5, 17]] = float("nan")
    g.scales[40, 1] = math.inf
    src, out = tmp_path / "broken.ply", tmp_path / "clean.ply"
    from neuralframe.render.splat.formats import ply
    src.write_bytes(ply.encode(g, str(src)))  # save() refuses NaN: write the broken file directly
    one_clear_line(nf("convert", str(src), str(out)), "NaN or infinite")
    assert not out.exists()
    result = nf("convert", str(src), str(out), "--filter-nan", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["removed_non_finite"] == 3
    clean = load(out)
    keep = np.ones(300, bool)
    keep[[5, 17, 40]] = False
    assert clean.n == 297 and torch.equal(clean.means, g.means[torch.from_numpy(keep)])


@pytest.mark.parametrize("target, fragment", [
    ("SAME", "is the input"),
    ("out.docx", "unknown scene format"),
    ("missing-folder/out.ply", "does not exist"),
])
def test_bad_outputs_are_refused_before_any_work_and_touch_nothing(tmp_path, target, fragment):
    src = tmp_path / "in.ply"
    src.write_bytes(MOTORCYCLE.read_bytes())
    before = src.read_bytes()
    out = src if target == "SAME" else tmp_path / target
    one_clear_line(nf("convert", str(src), str(out)), fragment)
    assert src.read_bytes() == before
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["in.ply"]


def test_spz_version_goes_with_spz_outputs_only(tmp_path):
    one_clear_line(nf("convert", str(MOTORCYCLE), str(tmp_path / "x.ply"), "--spz-version", "3"), "--spz-version")
