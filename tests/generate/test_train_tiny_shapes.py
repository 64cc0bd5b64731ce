"""`neuralframe train tiny-shapes` end to end on a tiny budget: every stage runs, checkpoints resume,
stages out of order get one clear line, and `assemble` writes a folder diffusers loads."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

STAGE_ARGS = {"vae": [], "classifier": [], "t2i": ["--train-images", "64"], "lcm": ["--train-images", "64"]}


def nf(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "neuralframe.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "COLUMNS": "200"})


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    work = tmp_path_factory.mktemp("tiny-shapes")
    for stage, extra in STAGE_ARGS.items():
        result = nf("train", "tiny-shapes", "--stage", stage, "--steps", "2", "--work", str(work), "--json", *extra)
        assert result.returncode == 0, result.stderr
    out = work / "model"
    result = nf("train", "tiny-shapes", "--stage", "assemble", "--work", str(work), "-o", str(out),
                "--eval-prompts", "2", "--json")
    assert result.returncode == 0, result.stderr
    return work, out, json.loads(result.stdout)["assemble"]


def test_stages_write_their_parts(trained):
    work, out, metrics = trained
    for part in ("vae", "classifier", "text_encoder", "teacher", "unet", "latents.pt"):
        assert (work / part).exists(), part
    runs = json.loads((work / "runs.json").read_text())
    assert [r["stage"] for r in runs] == ["vae", "classifier", "t2i", "lcm", "assemble"]
    assert runs[0]["command"].startswith("neuralframe train tiny-shapes --stage vae")
    assert metrics["nfe_per_image"] == 4 and metrics["teacher_nfe_per_image"] == 50
    assert metrics["nfe_saving"] == 12.5


def test_assembled_folder_loads_in_diffusers(trained):
    from diffusers import LatentConsistencyModelPipeline

    _, out, _ = trained
    card = json.loads((out / "card.json").read_text())
    assert set(card["stages"]) == {"vae", "classifier", "t2i", "lcm"}
    assert (out.parent / "shape-classifier" / "model.safetensors").is_file()
    assert not (out.parent / "model.tmp").exists()
    pipe = LatentConsistencyModelPipeline.from_pretrained(out, local_files_only=True)
    image = pipe("a red star", num_inference_steps=2, output_type="np",
                 generator=torch.Generator().manual_seed(0)).images
    assert image.shape == (1, 64, 64, 3)


def test_resume_continues_the_step_count(trained):
    work, _, _ = trained
    result = nf("train", "tiny-shapes", "--stage", "vae", "--steps", "3", "--resume", "--work", str(work), "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["vae"]["steps"] == 3  # 2 before + 1 now


def test_stage_errors_are_one_line(tmp_path):
    result = nf("train", "tiny-shapes", "--stage", "lcm", "--work", str(tmp_path))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "run the earlier stages first" in result.stderr
    result = nf("train", "tiny-shapes", "--stage", "vae", "--seconds", "0", "--work", str(tmp_path))
    assert result.returncode == 2 and "budget" in result.stderr
    result = nf("train", "tiny-shapes", "--stage", "nope", "--work", str(tmp_path))
    assert result.returncode == 2 and "unknown stage" in result.stderr
