"""Blending: identity at strength 0, nothing on clean areas, noise removed where found, no halos, no texture."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import pytest

from core.blend import BlendSettings, blend, damage_mask, upsample_grid
from core.degrade import gaussian_blur, gaussian_noise, quantize
from core.tone import ToneSettings, apply_tone, plan_tone


@dataclass(frozen=True)
class Maps:
    cell: int
    noise: np.ndarray
    blur: np.ndarray
    blockiness: np.ndarray


def uniform_maps(height: int, width: int, noise: float = 0.0, blur: float = 0.0, block: float = 0.0) -> Maps:
    shape = (-(-height // 32), -(-width // 32))
    return Maps(32, np.full(shape, noise), np.full(shape, blur), np.full(shape, block))


def scene(height: int = 128, width: int = 160) -> np.ndarray:
    """A clean synthetic photo: smooth gradients, a disc and a few sharp-edged bars (float32 RGB)."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    image = np.stack([0.25 + 0.5 * xx / width, 0.6 - 0.3 * yy / height, 0.4 + 0.1 * np.sin(xx / 9.0)], axis=-1)
    disc = (yy - height / 2) ** 2 + (xx - width / 3) ** 2 < (height / 5) ** 2
    image[disc] = [0.85, 0.8, 0.3]
    image[:, (xx[0] // 12) % 4 == 0] *= 0.6
    return quantize(image)


def test_strength_zero_returns_the_input_itself() -> None:
    image = scene()
    restored = np.zeros_like(image)
    out = blend(image, restored, uniform_maps(*image.shape[:2], noise=30), strength=0)
    assert out is image
    np.testing.assert_array_equal(out, scene())


def test_clean_image_is_left_within_one_level() -> None:
    """Clean maps: even a model that invents noise and shifts colours changes nothing visible."""
    image = scene()
    rng = np.random.default_rng(0)
    restored = image + rng.normal(0.0, 0.05, image.shape).astype(np.float32) + 0.02
    maps = uniform_maps(*image.shape[:2], noise=0.5, blur=0.3, block=0.01)
    assert damage_mask(maps, *image.shape[:2]).max() < 0.01
    out = blend(image, restored, maps)
    assert np.abs(out - image).max() <= 1 / 255


def test_noise_is_reduced_where_the_analyser_found_it() -> None:
    clean = scene()
    noisy = quantize(gaussian_noise(clean, 20.0, np.random.default_rng(1)))
    restored = gaussian_blur(noisy, 1.2)  # a crude denoiser
    out = blend(noisy, restored, uniform_maps(*clean.shape[:2], noise=20.0))
    before = np.sqrt(np.mean((noisy - clean) ** 2))
    after = np.sqrt(np.mean((out - clean) ** 2))
    assert after < 0.7 * before


def test_partial_damage_only_changes_the_damaged_half() -> None:
    clean = scene(128, 256)
    noisy = clean.copy()
    rng = np.random.default_rng(2)
    noisy[:, 128:] = quantize(gaussian_noise(clean[:, 128:], 20.0, rng))
    maps = uniform_maps(128, 256)
    noise = maps.noise.copy()
    noise[:, 4:] = 20.0
    maps = Maps(32, noise, maps.blur, maps.blockiness)
    out = blend(noisy, gaussian_blur(noisy, 1.2), maps)
    assert np.abs(out[:, :96] - noisy[:, :96]).max() <= 1 / 255
    assert np.sqrt(np.mean((out[:, 160:] - clean[:, 160:]) ** 2)) < np.sqrt(
        np.mean((noisy[:, 160:] - clean[:, 160:]) ** 2)
    )


def test_no_overshoot_beyond_the_local_range_at_a_step_edge() -> None:
    step = np.full((64, 64, 3), 0.2, dtype=np.float32)
    step[:, 32:] = 0.8
    blurred = gaussian_blur(step, 1.5)
    ringing = blurred.copy()  # a sharpening model with halos on both sides of the edge
    ringing[:, 27:31] -= 0.15
    ringing[:, 33:37] += 0.15
    out = blend(blurred, ringing, uniform_maps(64, 64, blur=2.0), strength=1.0)
    assert out.min() >= blurred.min() - 1e-6 and out.max() <= blurred.max() + 1e-6
    radius = 2
    for column in range(64):
        window = blurred[:, max(0, column - radius) : column + radius + 1]
        assert out[:, column].min() >= window.min() - 1e-6
        assert out[:, column].max() <= window.max() + 1e-6
    assert out.max() <= 0.8 + 1e-6 and out.min() >= 0.2 - 1e-6


def test_no_invented_texture_in_flat_areas() -> None:
    flat = np.full((96, 96, 3), 0.5, dtype=np.float32)
    noisy = quantize(gaussian_noise(flat, 3.0, np.random.default_rng(3)))
    pattern = 0.04 * np.sin(np.arange(96, dtype=np.float32) * 2.5)[None, :, None]
    restored = flat + pattern  # "denoised" into an invented stripe texture
    out = blend(noisy, np.ascontiguousarray(np.broadcast_to(restored, flat.shape)), uniform_maps(96, 96, noise=6.0))

    def detail(image: np.ndarray) -> float:
        return float(np.mean((image[:, 1:] - image[:, :-1]) ** 2))

    assert detail(out) <= detail(noisy) * 1.05


def test_in_place_and_strips_match_whole_image_blending() -> None:
    clean = scene(150, 90)
    noisy = quantize(gaussian_noise(clean, 12.0, np.random.default_rng(4)))
    restored = gaussian_blur(noisy, 1.0)
    maps = uniform_maps(150, 90, noise=12.0)
    whole = blend(noisy, restored, maps, settings=BlendSettings(strip_pixels=10**6))
    stripped = blend(noisy, restored, maps, settings=BlendSettings(strip_pixels=16 * 90, workers=2))
    in_place = restored.copy()
    result = blend(noisy, in_place, maps, settings=BlendSettings(strip_pixels=16 * 90, workers=2), out=in_place)
    assert result is in_place
    np.testing.assert_allclose(stripped, whole, atol=1e-6)
    np.testing.assert_allclose(in_place, whole, atol=1e-6)


def test_grayscale_blends_in_one_channel() -> None:
    gray = scene()[..., :1]
    noisy = quantize(gaussian_noise(gray, 15.0, np.random.default_rng(5)))
    out = blend(noisy, gaussian_blur(noisy, 1.0), uniform_maps(*gray.shape[:2], noise=15.0))
    assert out.shape == gray.shape and out.dtype == np.float32


def test_upsample_grid_is_bilinear_between_cell_centres() -> None:
    grid = np.array([[0.0, 1.0]])
    row = upsample_grid(grid, 4, 1, 8)[0]
    np.testing.assert_allclose(row, [0, 0, 0.125, 0.375, 0.625, 0.875, 1, 1], atol=1e-6)  # centres at 1.5, 5.5
    assert upsample_grid(np.array([[np.nan]]), 4, 2, 2).max() == 0.0


def test_mismatched_shapes_are_rejected() -> None:
    with pytest.raises(ValueError, match="upscale the input first"):
        blend(np.zeros((8, 8, 3), np.float32), np.zeros((16, 16, 3), np.float32), None)


@dataclass(frozen=True)
class Tones:
    contrast: float


def test_tone_correction_is_off_for_a_normal_image() -> None:
    assert plan_tone(Tones(contrast=0.5), scene()) is None


def test_tone_correction_gently_stretches_a_flat_image() -> None:
    image = 0.4 + 0.2 * scene()  # squeezed into [0.4, 0.6]
    curve = plan_tone(Tones(contrast=0.05), image)
    assert curve is not None and 1.0 < curve.gain <= ToneSettings().max_gain
    out = apply_tone(image.copy(), curve)
    spread_in = np.percentile(image, 99) - np.percentile(image, 1)
    spread_out = np.percentile(out, 99) - np.percentile(out, 1)
    assert spread_in < spread_out <= spread_in * ToneSettings().max_gain + 1e-3
    assert out.min() > 0.0 and out.max() < 1.0  # no new clipping
    order = np.argsort(image.ravel())
    assert np.all(np.diff(out.ravel()[order]) >= -1e-6)  # monotone: no local contrast changes


def test_tone_correction_lifts_an_underexposed_image() -> None:
    dark = scene() * 0.3  # dark mid-tones ...
    dark[:, :20] = 0.0  # ... and crushed shadows
    curve = plan_tone(Tones(contrast=0.5), dark)
    assert curve is not None and curve.gamma < 1.0
    assert float(np.median(apply_tone(dark.copy(), curve))) > float(np.median(dark))


def real_analyse():
    analysis = pytest.importorskip("core.analysis")
    if not hasattr(analysis, "analyze"):
        pytest.skip("core.analysis.analyze is not available yet")
    return analysis.analyze


def test_real_analyser_maps_leave_a_clean_synthetic_image_alone() -> None:
    analyze = real_analyse()
    image = scene(256, 320)
    restored = image + np.random.default_rng(6).normal(0.0, 0.03, image.shape).astype(np.float32)
    maps = analyze(image).maps
    assert float(damage_mask(maps, 256, 320).mean()) < 0.1
    assert np.abs(blend(image, restored, maps) - image).max() <= 1 / 255


def test_real_analyser_maps_let_the_noise_reduction_through() -> None:
    analyze = real_analyse()
    clean = scene(256, 320)
    noisy = quantize(gaussian_noise(clean, 20.0, np.random.default_rng(7)))
    out = blend(noisy, gaussian_blur(noisy, 1.2), analyze(noisy).maps)
    assert np.sqrt(np.mean((out - clean) ** 2)) < 0.7 * np.sqrt(np.mean((noisy - clean) ** 2))


@pytest.mark.parametrize(("quality", "expected"), [(None, 0.0), (20, 1.0), (50, 1.0), (70, 0.5), (90, 0.0), (95, 0.0)])
def test_a_low_jpeg_quality_opens_the_mask_everywhere(quality: int | None, expected: float) -> None:
    """Quantisation damages textured blocks that show little blockiness: the file's quality is the evidence."""
    maps = uniform_maps(128, 160, noise=0.5, block=0.0)
    mask = damage_mask(maps, 128, 160, jpeg_quality=quality)
    np.testing.assert_allclose(mask, expected, atol=1e-6)


def test_jpeg_error_levels_fall_with_quality_like_pillows_files() -> None:
    from core.blend import jpeg_error_levels

    levels = [jpeg_error_levels(q) for q in (5, 10, 20, 40, 60, 80, 90, 100)]
    assert all(a > b for a, b in itertools.pairwise(levels))
    assert 11.0 < jpeg_error_levels(10) < 14.5 and 2.9 < jpeg_error_levels(90) < 3.7


def test_a_jpeg_file_gets_its_deblocking_where_the_local_maps_see_none() -> None:
    from core.degrade import jpeg_compress

    clean = scene()
    compressed = jpeg_compress(clean, 20)
    restored = clean.copy()  # an ideal restorer
    maps = uniform_maps(*clean.shape[:2], noise=0.5, block=0.0)
    error = lambda image: float(np.sqrt(np.mean((image - clean) ** 2)))  # noqa: E731
    assert error(blend(compressed, restored.copy(), maps)) > 0.9 * error(compressed)  # the maps alone: no change
    assert error(blend(compressed, restored.copy(), maps, jpeg_quality=20)) < 0.5 * error(compressed)
