"""Model soups: the average of fine-tuned runs is validated and saved in the layout core.export reads."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image
from skimage import data

from core.model import Restorer, RestorerConfig
from core.soup import average_states, main, soup_checkpoint

TINY = RestorerConfig(widths=(8, 16, 32), encoder_blocks=(1, 1), middle_blocks=1, decoder_blocks=(1, 1))


def _checkpoint(seed: int, step: int, seconds: float) -> dict:
    torch.manual_seed(seed)
    model = Restorer(TINY)
    for parameter in model.parameters():
        torch.nn.init.normal_(parameter)
    recipe = {"crop": 192, "batch": 4, "peak_lr": 1e-3, "total_steps": 9, "precision": "auto", "loss": "mse"}
    return {
        "ema": model.state_dict(),
        "step": step,
        "trained_seconds": seconds,
        "val": {"sigma25": 20.0},
        "config": TINY.to_dict(),
        "recipe": recipe,
    }


def test_average_states_is_the_elementwise_mean() -> None:
    a, b = {"w": torch.tensor([1.0, 3.0])}, {"w": torch.tensor([3.0, 7.0])}
    assert torch.equal(average_states([a, b])["w"], torch.tensor([2.0, 5.0]))
    with pytest.raises(ValueError, match="different tensors"):
        average_states([a, {"v": torch.zeros(2)}])


def test_the_soup_adds_up_the_runs_work_from_their_common_start() -> None:
    first, second = _checkpoint(0, 1_300, 660.0), _checkpoint(1, 1_500, 700.0)
    soup = soup_checkpoint([first, second], start_step=1_000, start_seconds=600.0)
    assert soup["step"] == 1_000 + 300 + 500
    assert soup["trained_seconds"] == pytest.approx(600.0 + 60.0 + 100.0)
    assert soup["recipe"]["soup_of"] == [300, 500] and soup["recipe"]["loss"] == "mse"
    name = "head.weight"
    assert torch.allclose(soup["ema"][name], (first["ema"][name] + second["ema"][name]) / 2)
    with pytest.raises(ValueError, match="started from step"):
        soup_checkpoint([first, second], start_step=1_400, start_seconds=600.0)
    other = dict(second, config=RestorerConfig().to_dict())
    with pytest.raises(ValueError, match="different architectures"):
        soup_checkpoint([first, other], start_step=1_000, start_seconds=600.0)


def test_the_command_validates_and_saves_the_soup(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("CBSD68", "LIVE1"):
        folder = tmp_path / "data" / "val" / name
        folder.mkdir(parents=True)
        for index, photo in enumerate((data.astronaut(), data.coffee())):
            Image.fromarray(photo[:256, :256]).save(folder / f"{index}.png")
    runs = []
    for seed in (0, 1):
        run = tmp_path / f"run{seed}"
        run.mkdir()
        torch.save(_checkpoint(seed, 1_100 + seed, 30.0), run / "best.pt")
        runs.append(str(run))
    out = tmp_path / "soup"
    argv = ["--runs", *runs, "--start-step", "1000", "--start-minutes", "0.25", "--out", str(out)]
    assert main([*argv, "--data", str(tmp_path / "data"), "--val-count", "2"]) == 0
    saved = torch.load(out / "best.pt", map_location="cpu", weights_only=True)
    assert saved["step"] == 1_201 and {"sigma25", "jpeg10", "clean", "mixed"} <= saved["val"].keys()
    assert "soup: step 1201" in capsys.readouterr().out
