"""The pipeline glue: request order with failures and strength-0 items, engine failures, output naming."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from core.descriptor import ModelDescriptor
from core.engine import Engine, EngineSettings
from core.imageio import ImageData, load_image, save_image
from core.pipeline import EnhanceRequest, enhance_images, output_path


@dataclass(frozen=True)
class Maps:
    cell: int
    noise: np.ndarray
    blur: np.ndarray
    blockiness: np.ndarray


@dataclass(frozen=True)
class FakeAnalysis:
    """Says "noisy everywhere" so the blend applies the model fully."""

    width: int
    height: int
    maps: Maps
    contrast: float = 0.5

    def scores(self) -> dict[str, object]:
        return {"width": self.width, "height": self.height}


def fake_analyse(pixels: np.ndarray, quantization: object = None) -> FakeAnalysis:
    height, width = pixels.shape[:2]
    grid = (-(-height // 32), -(-width // 32))
    return FakeAnalysis(width, height, Maps(32, np.full(grid, 30.0), np.zeros(grid), np.zeros(grid)))


class Smooth(nn.Module):
    """A 3x3 mean (a crude denoiser) that fails on very bright inputs, to test failures inside the engine."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if float(x.mean()) > 0.9:
            raise ValueError("cannot handle white")
        return nn.functional.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)


def engine() -> Engine:
    descriptor = ModelDescriptor(Smooth(), "smooth", "0", "smooth", context=1)
    return Engine(descriptor, EngineSettings(device="cpu", precision="fp32", batch=4))


def write(path: Path, value: float, size: tuple[int, int] = (40, 50)) -> Path:
    """A noisy grey image around ``value`` (plain ``value`` when that is 1: white)."""
    noise = np.random.default_rng(0).normal(0.0, 0.1 if value < 1 else 0.0, (*size, 3))
    pixels = np.clip(value + noise, 0, 1).astype(np.float32)
    save_image(ImageData(pixels, format="PNG"), path, format="PNG")
    return path


def request(path: Path, out: Path, **fields: object) -> EnhanceRequest:
    return EnhanceRequest(path, out / path.name, **fields)  # type: ignore[arg-type]


def test_results_keep_request_order_with_failures_and_strength_zero(tmp_path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"nope")
    requests = [
        request(write(tmp_path / "a.png", 0.5), out),
        request(bad, out),
        request(write(tmp_path / "b.png", 0.6), out, strength=0.0),
        request(write(tmp_path / "c.png", 0.4, (70, 20)), out),
    ]
    results = list(enhance_images(requests, engine(), analyse=fake_analyse))
    assert [r.request for r in results] == requests
    assert [r.ok for r in results] == [True, False, True, True]
    assert "bad.png" in (results[1].error or "")
    assert results[2].tiles == 0 and (out / "b.png").read_bytes() == (tmp_path / "b.png").read_bytes()
    before, after = load_image(tmp_path / "a.png").pixels, load_image(out / "a.png").pixels
    assert after.std() < 0.7 * before.std()  # smoothed: the model ran and the blend applied it
    assert results[0].timings.model > 0 and results[0].after is not None


def test_an_engine_failure_fails_only_the_images_it_held(tmp_path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    requests = [request(write(tmp_path / f"{i}.png", v), out) for i, v in enumerate([0.3, 1.0, 0.3, 0.3])]
    results = list(
        enhance_images(
            requests, Engine(engine().descriptor, EngineSettings(device="cpu", batch=1)), analyse=fake_analyse
        )
    )
    assert [r.request for r in results] == requests
    assert [r.ok for r in results] == [True, False, True, True]
    assert "cannot handle white" in (results[1].error or "")


def test_output_names_avoid_inputs_and_each_other(tmp_path) -> None:
    a = write(tmp_path / "a.png", 0.2)
    b = write(tmp_path / "a.jpg", 0.2)
    inputs = {a.resolve(), b.resolve()}
    taken: set[Path] = set()
    assert output_path(a, tmp_path, None, taken, inputs).name == "a-enhanced.png"
    assert output_path(b, tmp_path, "PNG", taken, inputs).name == "a-enhanced-2.png"
    assert output_path(b, tmp_path / "o", None, taken, inputs).name == "a.png"


class Double(nn.Module):
    """A 2x "super-resolution" model: bicubic enlargement."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.interpolate(x, scale_factor=2, mode="bicubic", align_corners=False)


def test_upscaling_model_doubles_pixels_alpha_and_dpi(tmp_path) -> None:
    from core.imageio import ImageMetadata

    pixels = np.random.default_rng(1).random((30, 40, 3)).astype(np.float32)
    alpha = np.full((30, 40), 200, dtype=np.uint8)
    source = tmp_path / "small.png"
    save_image(ImageData(pixels, alpha=alpha, format="PNG", metadata=ImageMetadata(dpi=(72.0, 72.0))), source)
    descriptor = ModelDescriptor(Double(), "double", "0", "double", scale=2, context=2)
    up = Engine(descriptor, EngineSettings(device="cpu", precision="fp32"))
    (result,) = enhance_images([EnhanceRequest(source, tmp_path / "big.png")], up, analyse=fake_analyse)
    assert result.ok, result.error
    big = load_image(tmp_path / "big.png")
    assert big.pixels.shape == (60, 80, 3)
    assert big.alpha is not None and big.alpha.shape == (60, 80) and int(big.alpha.min()) == 200
    assert big.metadata.dpi is not None and round(big.metadata.dpi[0]) == 144


def test_a_failing_analyser_does_not_cost_the_image(tmp_path) -> None:
    def broken(pixels: np.ndarray, quantization: object = None) -> FakeAnalysis:
        raise RuntimeError("estimator bug")

    source = write(tmp_path / "a.png", 0.5)
    (result,) = enhance_images([EnhanceRequest(source, tmp_path / "out.png")], engine(), analyse=broken)
    assert result.ok and (tmp_path / "out.png").is_file()
    assert result.before is None and any("estimator bug" in note for note in result.notes)
