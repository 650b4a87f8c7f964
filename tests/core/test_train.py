"""Training pieces: a few steps lower the loss; the command trains, checkpoints and resumes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

from core.degrade import DegradationMix
from core.model import Restorer, RestorerConfig
from core.train import (
    TrainingPatches,
    build_optimiser,
    crop_label,
    keep_fused,
    learning_rate,
    parse_args,
    parse_crop,
    run_recipe,
    train,
    training_step,
    update_ema,
)

TINY = RestorerConfig(widths=(8, 16, 32), encoder_blocks=(1, 1), middle_blocks=1, decoder_blocks=(1, 1))


def _photos() -> list[np.ndarray]:
    return [data.astronaut(), data.chelsea(), data.coffee()]


def test_patches_are_paired_crops_in_range() -> None:
    patches = TrainingPatches(_photos(), crop=48, seed=0)
    rng = np.random.default_rng(0)
    for _ in range(10):
        degraded, clean = patches.sample(rng)
        assert degraded.shape == clean.shape == (3, 48, 48)
        assert float(degraded.min()) >= 0.0 and float(degraded.max()) <= 1.0


def test_patches_skip_photos_too_small_to_crop_without_upscaling() -> None:
    photos = _photos()  # 512 x 512, 300 x 451, 400 x 600
    patches = TrainingPatches(photos, crop=300, seed=0)  # needs 332 px with the margins
    assert patches.skipped == 1
    assert [image.shape for image in patches.images] == [photos[0].shape, photos[2].shape]
    degraded, clean = patches.sample(np.random.default_rng(0))
    assert degraded.shape == clean.shape == (3, 300, 300)


def test_patches_refuse_a_crop_no_photo_holds() -> None:
    with pytest.raises(ValueError, match="--crop 368 or less"):
        TrainingPatches(_photos()[1:], crop=400, seed=0)


def test_rectangular_crops_keep_their_shape_and_use_portrait_photos_turned() -> None:
    portrait = data.astronaut()[:, :300]  # 512 high, 300 wide: holds 200 x 400 (+ margins) only when turned
    patches = TrainingPatches([portrait], crop=(200, 400), seed=0)
    assert patches.skipped == 0
    rng = np.random.default_rng(3)
    for _ in range(12):
        degraded, clean = patches.sample(rng)
        assert degraded.shape == clean.shape == (3, 200, 400)


def test_rectangular_crops_are_cut_from_the_photo_itself() -> None:
    photo = data.astronaut()[:232, :432]  # exactly the padded window of a 200 x 400 crop: no scaling possible
    only_clean = DegradationMix(p_clean=1.0, p_gaussian_only=0.0, p_jpeg_only=0.0, p_camera_chain=0.0)
    patches = TrainingPatches([photo], crop=(200, 400), seed=0, mix=only_clean)
    inner = photo[16:-16, 16:-16].astype(np.float32) / 255
    orientations = [inner, inner[::-1, ::-1], inner[:, ::-1], inner[::-1]]
    seen = set()
    rng = np.random.default_rng(4)
    for _ in range(80):  # a quarter get a tone shift and some an offset cut: those match no orientation
        _, clean = patches.sample(rng)
        crop = clean.numpy().transpose(1, 2, 0)
        errors = [float(np.abs(crop - candidate).max()) for candidate in orientations]
        if min(errors) < 1e-6:
            seen.add(int(np.argmin(errors)))
    assert seen == {0, 1, 2, 3}


def test_rectangular_crops_skip_photos_too_small_in_either_orientation() -> None:
    photos = _photos()  # 512 x 512, 300 x 451, 400 x 600
    patches = TrainingPatches(photos, crop=(300, 520), seed=0)  # needs 332 x 552
    assert patches.skipped == 2
    with pytest.raises(ValueError, match="300 x 600 px crop"):
        TrainingPatches(photos, crop=(300, 600), seed=0)


def test_crop_arguments_read_side_or_height_by_width() -> None:
    assert parse_crop("288") == (288, 288)
    assert parse_crop("288x448") == (288, 448)
    assert parse_args(["--crop", "288X448"]).crop == (288, 448)
    assert crop_label((288, 288)) == 288 and crop_label((288, 448)) == "288x448"
    for bad in ("0", "288x", "axb", "1x2x3"):
        with pytest.raises(SystemExit):
            parse_args(["--crop", bad])


def test_learning_rate_warms_up_then_decays() -> None:
    assert learning_rate(0, 0.0, 1e-3, 100) == pytest.approx(1e-5)
    assert learning_rate(99, 0.0, 1e-3, 100) == pytest.approx(1e-3)
    assert learning_rate(500, 0.5, 1e-3, 100) == pytest.approx(0.5e-3, rel=0.01)
    assert learning_rate(900, 1.0, 1e-3, 100) == pytest.approx(1e-6)


@pytest.mark.parametrize("loss_name", ["l1", "mse"])
def test_a_few_steps_lower_the_loss(loss_name: str) -> None:
    torch.manual_seed(0)
    rng = np.random.default_rng(1)
    crops = [photo[i * 32 : i * 32 + 32, 64:96] for photo in _photos() for i in range(3)]
    clean = torch.from_numpy(np.stack(crops).astype(np.float32).transpose(0, 3, 1, 2) / 255)
    degraded = (clean + torch.from_numpy(rng.normal(0, 30 / 255, clean.shape).astype(np.float32))).clamp(0, 1)
    model = Restorer(TINY)
    ema = Restorer(TINY)
    optimiser = build_optimiser(model, 3e-3, torch.device("cpu"))
    assert optimiser.param_groups[0]["fused"], "the CPU uses torch's fused AdamW"
    losses = [training_step(model, optimiser, degraded, clean, None, 0.5, loss_name) for _ in range(40)]
    update_ema(ema, model, 0.0)
    assert np.mean(losses[-5:]) < 0.85 * losses[0]
    assert all(torch.equal(a, b) for a, b in zip(ema.state_dict().values(), model.state_dict().values(), strict=True))


def test_a_resumed_optimiser_state_keeps_the_fused_kernel() -> None:
    model = Restorer(TINY)
    unfused = torch.optim.AdamW(model.parameters(), lr=1e-3, foreach=False)  # as checkpoints before fusing saved it
    model(torch.rand(1, 3, 32, 32)).mean().backward()
    unfused.step()
    optimiser = build_optimiser(model, 1e-3, torch.device("cpu"))
    optimiser.load_state_dict(unfused.state_dict())
    assert not optimiser.param_groups[0]["fused"]
    keep_fused(optimiser, torch.device("cpu"))
    assert optimiser.param_groups[0]["fused"] and optimiser.param_groups[0]["foreach"] is None
    optimiser.step()
    assert all(float(state["step"]) == 2.0 for state in optimiser.state.values())


def _dataset(root: Path) -> Path:
    for split, names in (("train", ("CBSD432",)), ("val", ("CBSD68", "LIVE1"))):
        for name in names:
            folder = root / split / name
            folder.mkdir(parents=True)
            for index, photo in enumerate(_photos()):
                Image.fromarray(photo[:256, :256]).save(folder / f"{index}.png")
    return root


@pytest.mark.slow
def test_training_command_checkpoints_and_resumes(tmp_path) -> None:
    data_root = _dataset(tmp_path / "data")
    run = tmp_path / "run"
    command = [
        sys.executable,
        "-m",
        "core.train",
        "--run",
        str(run),
        "--data",
        str(data_root),
        "--batch",
        "4",
        "--crop",
        "32",
        "--workers",
        "0",
        "--val-count",
        "2",
        "--total-steps",
        "100",
    ]
    subprocess.run([*command, "--max-steps", "3"], check=True, capture_output=True, timeout=300)
    subprocess.run([*command, "--max-steps", "5", "--resume"], check=True, capture_output=True, timeout=300)
    entries = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [e["step"] for e in entries] == [3, 5]
    assert {"sigma25", "jpeg10", "clean", "mixed"} <= entries[-1].keys()
    assert (run / "best.pt").exists() and (run / "last.pt").exists()

    out = tmp_path / "weights"
    out.mkdir()
    subprocess.run(
        [sys.executable, "-m", "core.export", "--run", str(run), "--out", str(out), "--version", "9.9.9"],
        check=True,
        capture_output=True,
        timeout=300,
    )
    card = json.loads((out / "restorer.json").read_text())
    assert card["version"] == "9.9.9" and card["steps"] in (3, 5)
    assert card["history"][-1]["config"] == card["config"]
    assert card["training_phases"] and all(isinstance(phase, str) for phase in card["training_phases"])
    assert RestorerConfig.from_dict(card["config"]) == RestorerConfig()
    assert card["history"][-1]["recipe"] == {
        "crop": 32,
        "batch": 4,
        "peak_lr": 7e-4,
        "total_steps": 100,
        "precision": "auto",
        "loss": "l1",
    }


def test_degradation_mix_overrides_reach_the_recipe_and_bad_ones_stop_the_command() -> None:
    args = parse_args(["--mix", "p_jpeg_only=0.3", "--mix", "p_clean=0.04"])
    assert run_recipe(args)["mix"] == "p_jpeg_only=0.3 p_clean=0.04"
    assert "mix" not in run_recipe(parse_args([]))
    with pytest.raises(SystemExit):
        parse_args(["--mix", "p_jpeg_only=2"])


def test_an_explicit_bf16_on_a_cpu_without_it_is_warned_about(tmp_path, capsys, monkeypatch) -> None:
    import core.device

    monkeypatch.setattr(core.device, "cpu_supports_bf16", lambda: False)
    args = parse_args(
        ["--run", str(tmp_path / "run"), "--data", str(_dataset(tmp_path / "data")), "--batch", "1", "--crop", "32"]
        + ["--workers", "0", "--val-count", "1", "--max-steps", "1", "--precision", "fp32"]
    )
    train(args)
    assert "no native bf16" not in capsys.readouterr().err
    args.precision, args.run = "bf16", tmp_path / "run-bf16"
    train(args)
    assert "warning: bf16 was asked for" in capsys.readouterr().err
