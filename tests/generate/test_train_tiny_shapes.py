"""`neuralframe train tiny-shapes` end to end on a tiny budget: every stage runs, checkpoints resume,
stages out of order get one clear line, and `assemble` writes a folder diffusers loads."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from cli_helpers import nf, one_clear_line

STAGE_ARGS = {"vae": ["--eval-images", "16"], "classifier": ["--eval-images", "16"], "t2i": ["--train-images", "64"],
              "lcm": ["--train-images", "64"]}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    work = tmp_path_factory.mktemp("tiny-shapes")
    for stage, extra in STAGE_ARGS.items():
        result = nf("train", "tiny-shapes", "--stage", stage, "--steps", "2", "--work", str(work), "--json", *extra)
        assert result.returncode == 0, result.stderr
    out = work / "model"
    result = nf("train", "tiny-shapes", "--stage", "assemble", "--work", str(work), "-o", str(out),
                "--eval-prompts", "2", "--eval-images", "16", "--json")
    assert result.returncode == 0, result.stderr
    return work, out, json.loads(result.stdout)["assemble"]


@pytest.mark.timeout(900)  # the first test also trains every stage (the module fixture)
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
    result = nf("train", "tiny-shapes", "--stage", "vae", "--steps", "3", "--resume", "--work", str(work), "--json",
                "--eval-images", "8")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["vae"]["steps"] == 3  # 2 before + 1 now


def test_generate_image_with_a_model_folder(trained, tmp_path):
    import cv2

    _, folder, _ = trained
    out = tmp_path / "img.png"
    result = nf("generate-image", "a large red star", "-o", str(out), "--model", str(folder), "--steps", "2")
    assert result.returncode == 0, result.stderr
    assert cv2.imread(str(out)).shape == (64, 64, 3)
    assert not list(tmp_path.glob("*.partial*"))
    # the same seed gives the same image; another seed another one
    again = tmp_path / "again.png"
    other = tmp_path / "other.png"
    nf("generate-image", "a large red star", "-o", str(again), "--model", str(folder), "--steps", "2")
    nf("generate-image", "a large red star", "-o", str(other), "--model", str(folder), "--steps", "2", "--seed", "5")
    assert np.array_equal(cv2.imread(str(out)), cv2.imread(str(again)))
    assert not np.array_equal(cv2.imread(str(out)), cv2.imread(str(other)))


def test_generate_image_on_exported_engines(trained, tmp_path):
    """--backend onnxruntime exports the folder once (cached by its weights), then draws the image torch draws."""
    import os

    import cv2

    _, folder, _ = trained
    env_cache = tmp_path / "cache"
    images = {}
    for backend in ("torch", "onnxruntime", "onnxruntime"):
        out = tmp_path / f"{backend}-{len(images)}.png"
        result = nf("generate-image", "a large red star", "-o", str(out), "--model", str(folder), "--steps", "2",
                    "--backend", backend, env={**os.environ, "XDG_CACHE_HOME": str(env_cache)})
        assert result.returncode == 0, result.stderr
        assert backend in result.stdout
        images[len(images)] = cv2.imread(str(out)).astype(int)
        if backend == "onnxruntime":
            assert ("exporting" in result.stderr) == (len(images) == 2)  # exported the first time only
    assert np.abs(images[0] - images[1]).max() <= 2
    assert np.array_equal(images[1], images[2])
    cached = list((env_cache / "neuralframe" / "onnx").iterdir())
    assert len(cached) == 1 and (cached[0] / "unet.onnx").is_file()
    one_clear_line(nf("generate-image", "a red star", "-o", str(tmp_path / "t.png"), "--model", str(folder),
                      "--backend", "tensorrt"), "--backend tensorrt needs")
    one_clear_line(nf("generate-image", "a red star", "-o", str(tmp_path / "t.png"), "--model", str(folder),
                      "--backend", "tflite"), "unknown backend 'tflite'")


def test_generate_image_on_broken_folders(trained, tmp_path):
    _, folder, _ = trained
    out = tmp_path / "x.png"
    one_clear_line(nf("generate-image", "a red star", "-o", str(out), "--model", str(tmp_path / "nope")),
                    "no such model folder")
    (tmp_path / "empty").mkdir()
    one_clear_line(nf("generate-image", "a red star", "-o", str(out), "--model", str(tmp_path / "empty")),
                    "model_index.json")
    shutil.copytree(folder, tmp_path / "no-unet", ignore=shutil.ignore_patterns("unet"))
    one_clear_line(nf("generate-image", "a red star", "-o", str(out), "--model", str(tmp_path / "no-unet")),
                    "'unet'", "missing")
    shutil.copytree(folder, tmp_path / "no-weights", ignore=shutil.ignore_patterns("*.safetensors"))
    one_clear_line(nf("generate-image", "a red star", "-o", str(out), "--model", str(tmp_path / "no-weights")),
                    "weights")
    one_clear_line(nf("generate-image", "a red star", "-o", str(tmp_path / "x.jpg"), "--model", str(folder)), ".png")
    assert not out.exists()


def test_eval_json_reports_every_metric(trained):
    work, folder, _ = trained
    result = nf("eval", "tiny-shapes", "--model", str(folder), "--classifier", str(work / "classifier"),
                "--prompts", "3", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    for key in ("prompt_adherence", "adherence_1step", "vae_psnr_db", "nfe_per_image", "seconds_per_image"):
        assert key in data
    assert data["nfe_per_image"] == 4 and data["prompts"] == 3 and 0.0 <= data["prompt_adherence"] <= 1.0


def test_guidance_embedding_matches_diffusers():
    from diffusers import LatentConsistencyModelPipeline

    from neuralframe.generate.models.architectures import guidance_embedding

    w = torch.tensor([0.0, 1.5, 7.0])
    ours = guidance_embedding(w, 64)
    theirs = LatentConsistencyModelPipeline.get_guidance_scale_embedding(None, w, embedding_dim=64)
    assert torch.allclose(ours, theirs, atol=1e-5)


def test_boundary_scalings_match_lcm_scheduler():
    from neuralframe.generate.models.schedulers import lcm_scheduler
    from neuralframe.generate.train.lcm import boundary_scalings

    scheduler = lcm_scheduler()
    for t in (0, 19, 259, 999):
        c_skip, c_out = scheduler.get_scalings_for_boundary_condition_discrete(t)
        ours = boundary_scalings(torch.tensor([t]))
        assert np.isclose(float(ours[0]), float(c_skip)) and np.isclose(float(ours[1]), float(c_out))


def test_student_starts_as_the_teacher():
    from neuralframe.generate.models.architectures import build_unet, guidance_embedding, student_from_teacher

    torch.manual_seed(0)
    teacher = build_unet().eval()
    student = student_from_teacher(teacher).eval()
    x, text = torch.randn(2, 4, 8, 8), torch.randn(2, 77, 64)
    t = torch.tensor([10, 900])
    with torch.no_grad():
        a = teacher(x, t, text).sample
        b = student(x, t, text, timestep_cond=guidance_embedding(torch.tensor([1.0, 6.0]))).sample
    assert torch.allclose(a, b, atol=1e-5)


def test_stage_errors_are_one_line(tmp_path):
    result = nf("train", "tiny-shapes", "--stage", "lcm", "--work", str(tmp_path))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "run the earlier stages first" in result.stderr
    result = nf("train", "tiny-shapes", "--stage", "vae", "--seconds", "0", "--work", str(tmp_path))
    assert result.returncode == 2 and "--seconds must be a number of seconds above 0" in result.stderr
    result = nf("train", "tiny-shapes", "--stage", "nope", "--work", str(tmp_path))
    assert result.returncode == 2 and "unknown stage" in result.stderr


def test_tiny_vae_stage_lands_beside_the_model(trained, tmp_path):
    """`--stage tiny-vae` distils a tiny autoencoder from the trained one; `assemble` puts it in
    FOLDER/vae_tiny (not in model_index.json) with its metrics and size in the card."""
    work, _, _ = trained
    result = nf("train", "tiny-shapes", "--stage", "tiny-vae", "--steps", "2", "--work", str(work),
                "--eval-images", "8", "--json")
    assert result.returncode == 0, result.stderr
    metrics = json.loads(result.stdout)["tiny-vae"]
    assert metrics["steps"] == 2 and metrics["full_vae_psnr_db"] > metrics["tiny_decoder_psnr_db"]
    out = tmp_path / "model"
    result = nf("train", "tiny-shapes", "--stage", "assemble", "--work", str(work), "-o", str(out),
                "--eval-prompts", "2", "--eval-images", "16", "--json")
    assert result.returncode == 0, result.stderr
    assert (out / "vae_tiny" / "config.json").is_file()
    assert "vae_tiny" not in json.loads((out / "model_index.json").read_text())
    card = json.loads((out / "card.json").read_text())
    assert card["parameters"]["vae_tiny"] > 0 and card["metrics"]["vae_tiny"]["steps"] == 2
