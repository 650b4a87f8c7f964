"""The degradation analyser on generated images: each estimator moves with its degradation and lands near the truth.

Scenes are synthetic (gradients, anti-aliased shapes, text, a grating) or scikit-image's bundled photos; nothing
here reads the shared datasets.
"""

from __future__ import annotations

import io
import json
import math

import numpy as np
import pytest
from PIL import Image, ImageDraw

from core.analysis import Analysis, analyze, ijg_table, quality_from_tables
from core.analysis.ops import ZIGZAG
from core.degrade import gaussian_blur, gaussian_noise, poisson_gaussian_noise, quantize, to_uint8

CONTRACT_KEYS = {"width", "height", "noise_sigma", "blur_sigma", "jpeg_quality", "contrast", "quality"}


def scene(height: int = 256, width: int = 256, seed: int = 0) -> np.ndarray:
    """A clean synthetic photo: colour gradients, anti-aliased shapes and text, a grating; within [0.08, 0.92]."""
    rng = np.random.default_rng(seed)
    factor = 4
    canvas = Image.new("RGB", (width * factor, height * factor))
    yy, xx = np.mgrid[0 : height * factor, 0 : width * factor].astype(np.float32) / factor
    base = np.stack(
        [0.3 + 0.3 * xx / width, 0.55 - 0.25 * yy / height, 0.45 + 0.08 * np.sin(xx / 23.0 + yy / 31.0)], axis=-1
    )
    canvas = Image.fromarray(to_uint8(base))
    draw = ImageDraw.Draw(canvas)
    for _ in range(14):
        x0, y0 = (int(v) for v in rng.integers(0, width * factor, 2))
        w, h = (int(v) for v in rng.integers(12 * factor, 70 * factor, 2))
        colour = tuple(int(v) for v in rng.integers(30, 225, 3))
        if rng.random() < 0.5:
            draw.ellipse([x0, y0, x0 + w, y0 + h], fill=colour)
        else:
            draw.rectangle([x0, y0, x0 + w, y0 + h], fill=colour)
    for row in range(3):
        draw.text((8 * factor, (20 + 70 * row) * factor), "Enhance 1234", fill=(20, 20, 20), font_size=14 * factor)
    pixels = np.asarray(canvas, dtype=np.float32) / 255.0
    small = pixels.reshape(height, factor, width, factor, 3).mean(axis=(1, 3))
    grating = 0.06 * np.sin(np.arange(width, dtype=np.float32) * 1.3)[None, :, None]
    small[height // 2 + 3 : height // 2 + 43, width // 2 :] += grating[:, width // 2 :]
    return quantize(0.08 + 0.84 * small)


def astronaut() -> np.ndarray:
    data = pytest.importorskip("skimage.data")
    photo = data.astronaut().astype(np.float32) / 255.0
    return quantize(photo.reshape(256, 2, 256, 2, 3).mean(axis=(1, 3)))


def noisy(image: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    return quantize(gaussian_noise(image, sigma, np.random.default_rng(seed)))


def jpeg_file(image: np.ndarray, quality: int) -> tuple[np.ndarray, dict[int, list[int]]]:
    buffer = io.BytesIO()
    Image.fromarray(to_uint8(image)).save(buffer, format="JPEG", quality=quality)
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return np.asarray(decoded.convert("RGB"), np.float32) / 255.0, dict(decoded.quantization)


# ------------------------------------------------------------------------------------------------- JPEG tables


def test_quality_is_read_exactly_from_every_pillow_table() -> None:
    image = (np.random.default_rng(0).random((16, 16, 3)) * 255).astype(np.uint8)
    for quality in range(1, 101):
        for subsampling in (0, 2):
            buffer = io.BytesIO()
            Image.fromarray(image).save(buffer, format="JPEG", quality=quality, subsampling=subsampling)
            buffer.seek(0)
            with Image.open(buffer) as decoded:
                found = quality_from_tables(decoded.quantization)
            assert found is not None and (found.quality, found.exact) == (quality, True), quality


def test_tables_in_zigzag_order_are_understood_too() -> None:
    natural = {0: ijg_table(37).tolist()}
    zigzag = {0: np.asarray(natural[0])[ZIGZAG].tolist()}
    assert quality_from_tables(natural).quality == 37
    found = quality_from_tables(zigzag)
    assert (found.quality, found.exact) == (37, True)
    np.testing.assert_array_equal(found.luma_table, natural[0])


def test_non_libjpeg_tables_get_the_nearest_quality_and_are_flagged() -> None:
    camera = np.maximum(1, np.round(ijg_table(88) * 1.07)).astype(int).tolist()  # scaled a little differently
    found = quality_from_tables({0: camera, 1: ijg_table(88).tolist()})
    assert not found.exact
    assert 84 <= found.quality <= 89


def test_a_jpeg_file_reports_its_tables_quality() -> None:
    pixels, tables = jpeg_file(scene(), 63)
    analysis = analyze(pixels, quantization=tables)
    assert (analysis.jpeg_quality, analysis.jpeg_source) == (63, "tables")


# ------------------------------------------------------------------------------------------------ JPEG pixels


@pytest.mark.parametrize("quality", [15, 50, 85])
def test_quality_is_recovered_from_a_shifted_png_resave(quality: int) -> None:
    pixels, _ = jpeg_file(astronaut(), quality)
    shifted = pixels[3:, 5:]  # the 8x8 grid now starts at (5, 3)
    analysis = analyze(shifted)
    assert (analysis.jpeg_quality, analysis.jpeg_source) == (quality, "pixels")
    assert analysis.jpeg_grid_offset == (5, 3)


def test_never_compressed_images_report_no_jpeg() -> None:
    for image in (scene(), noisy(scene(seed=1), 8, 1), quantize(gaussian_blur(scene(seed=2), 1.5)), astronaut()):
        analysis = analyze(image)
        assert analysis.jpeg_quality is None and analysis.jpeg_source is None


def test_blockiness_grows_with_compression() -> None:
    clean = scene()
    values = [analyze(clean).blockiness] + [analyze(jpeg_file(clean, q)[0]).blockiness for q in (90, 40, 10)]
    assert values == sorted(values)
    assert values[0] < 0.01 < 0.05 < values[-1]


# ------------------------------------------------------------------------------------------------------ noise


def test_noise_reading_follows_the_added_noise() -> None:
    clean = scene()
    readings = [analyze(noisy(clean, sigma, int(sigma))).noise_sigma for sigma in (0, 3, 10, 25, 45)]
    assert readings == sorted(readings)
    for sigma, reading in zip((0, 3, 10, 25, 45), readings, strict=True):
        assert abs(reading - sigma) <= max(0.8, 0.08 * sigma), (sigma, reading)


def test_noise_on_a_textured_photo_is_near_the_truth() -> None:
    photo = astronaut()
    assert analyze(photo).noise_sigma < 2.5
    for sigma in (10, 30):
        assert analyze(noisy(photo, sigma, sigma)).noise_sigma == pytest.approx(sigma, rel=0.1)


def test_clipped_noise_in_a_bright_image_is_not_underestimated() -> None:
    bright = quantize(0.75 + 0.2 * scene())  # most pixels in 190-255: sigma 30 clips heavily
    assert analyze(noisy(bright, 30, 3)).noise_sigma == pytest.approx(30, rel=0.1)


def test_grey_images_are_measured_on_their_single_channel() -> None:
    grey = scene()[..., 1:2]
    analysis = analyze(noisy(grey, 12, 4))
    assert analysis.noise_sigma == pytest.approx(12, rel=0.1)
    assert analysis.noise_chroma is None


def test_noise_curve_rises_with_brightness_for_shot_noise() -> None:
    ramp = np.repeat(np.linspace(0.05, 0.95, 384, dtype=np.float32)[None, :, None], 256, axis=0).repeat(3, axis=2)
    image = quantize(poisson_gaussian_noise(ramp, 300.0, 1.0, np.random.default_rng(5)))
    curve = analyze(image).noise_curve
    assert len(curve) >= 5
    sigmas = [sigma for _, sigma in curve]
    assert sigmas[-1] > 2.0 * sigmas[0]
    assert np.all(np.diff(sigmas) > -0.5)


def test_noise_map_shows_where_the_noise_is() -> None:
    clean = scene()
    image = clean.copy()
    image[:, :128] = noisy(clean, 20, 6)[:, :128]
    image[:, 128:] = noisy(clean, 2, 7)[:, 128:]
    noise_map = analyze(image).maps.noise
    assert noise_map.shape == (8, 8)
    assert np.median(noise_map[:, :4]) == pytest.approx(20, rel=0.2)
    assert np.median(noise_map[:, 4:]) < 5


@pytest.mark.slow
def test_noise_before_jpeg_compression_is_estimated_from_a_jpeg_file() -> None:
    pixels, tables = jpeg_file(noisy(astronaut(), 10, 8), 90)
    analysis = analyze(pixels, quantization=tables)
    assert analysis.noise_sigma == pytest.approx(10, rel=0.25)
    assert analysis.noise_residual <= analysis.noise_sigma


# ------------------------------------------------------------------------------------------------------- blur


def test_blur_reading_follows_the_blur() -> None:
    clean = scene()
    readings = [analyze(quantize(gaussian_blur(clean, sigma))).blur_sigma for sigma in (0.0, 1.0, 2.0, 3.0)]
    assert readings == sorted(readings)
    assert readings[0] < 0.5
    for sigma, reading in zip((1.0, 2.0, 3.0), readings[1:], strict=True):
        assert abs(reading - sigma) < 0.35, (sigma, reading)


def test_blur_is_not_fooled_by_noise() -> None:
    blurred = quantize(gaussian_blur(scene(), 2.0))
    assert analyze(noisy(blurred, 10, 9)).blur_sigma == pytest.approx(2.0, abs=0.5)
    assert analyze(noisy(scene(), 20, 10)).blur_sigma < 0.6  # noise does not read as sharpness or blur


def test_blur_map_is_nan_without_edges_and_high_where_blurred() -> None:
    image = scene()
    image[:, :128] = quantize(gaussian_blur(image, 3.0))[:, :128]
    image[:64] = 0.5  # a flat band: no edge evidence away from its lower boundary
    blur_map = analyze(image).maps.blur
    assert np.all(np.isnan(blur_map[0]))
    assert np.nanmedian(blur_map[2:, :4]) > np.nanmedian(blur_map[2:, 4:]) + 1.5


# -------------------------------------------------------------------------------------------- tone and quality


def test_tone_statistics() -> None:
    image = scene()
    flat = quantize(0.45 + 0.15 * (image - 0.5))
    assert analyze(flat).contrast < 0.35 * analyze(image).contrast
    blown = image.copy()
    blown[:64] = 1.0
    analysis = analyze(blown)
    assert analysis.clipped_highlights == pytest.approx(0.25, abs=0.01)
    assert analysis.clipped_shadows == 0.0
    assert 0.0 < analysis.mean_luminance < 1.0


def test_quality_falls_with_every_kind_of_damage() -> None:
    clean = scene()
    reference = analyze(clean).quality
    assert reference > 80
    assert analyze(noisy(clean, 10, 11)).quality < reference - 10
    assert analyze(noisy(clean, 30, 12)).quality < analyze(noisy(clean, 10, 11)).quality
    assert analyze(quantize(gaussian_blur(clean, 2.0))).quality < reference - 10
    pixels, tables = jpeg_file(clean, 15)
    assert analyze(pixels, quantization=tables).quality < reference - 10


# -------------------------------------------------------------------------------------------- interface


def test_scores_are_flat_json_with_the_contract_keys() -> None:
    analysis = analyze(noisy(scene(200, 300), 5, 13))
    assert isinstance(analysis, Analysis)
    scores = analysis.scores()
    assert set(scores) >= CONTRACT_KEYS
    json.dumps(scores)
    assert (scores["width"], scores["height"]) == (300, 200)
    assert isinstance(scores["width"], int) and isinstance(scores["height"], int)
    for key in ("noise_sigma", "blur_sigma", "contrast", "quality"):
        assert isinstance(scores[key], float) and math.isfinite(scores[key])
    assert scores["jpeg_quality"] is None
    assert 0.0 <= scores["contrast"] <= 1.0 and 0.0 <= scores["quality"] <= 100.0
    assert all(value is None or isinstance(value, int | float) for value in scores.values())


def test_maps_cover_the_image_on_the_cell_grid() -> None:
    image = scene(200, 300)
    for cell, shape in ((32, (7, 10)), (16, (13, 19))):
        maps = analyze(image, cell=cell).maps
        assert maps.cell == cell
        for grid in (maps.noise, maps.blur, maps.blockiness):
            assert grid.shape == shape and grid.dtype == np.float32
        assert np.all(np.isfinite(maps.noise)) and np.all((maps.blockiness >= 0) & (maps.blockiness <= 1))
        assert maps.upsample("noise", 200, 300).shape == (200, 300)


def test_inputs_of_every_shape_and_size_are_handled() -> None:
    for image in (
        np.full((1, 1, 3), 0.5, np.float32),
        np.full((5, 300, 3), 0.2, np.float32),
        np.zeros((64, 64, 3), np.float32),
        np.full((40, 40, 1), 0.7, np.float32),
        scene(64, 96)[..., 0],  # 2-D grey
        scene(64, 96).astype(np.float64),
    ):
        scores = analyze(image).scores()
        assert scores["width"] == image.shape[1] and scores["height"] == image.shape[0]
        assert all(value is None or math.isfinite(value) for value in scores.values())
    with pytest.raises(ValueError):
        analyze(np.zeros((8, 8, 4), np.float32))
    with pytest.raises(ValueError):
        analyze(np.zeros((8, 8, 3), np.uint8))


def test_the_same_pixels_always_give_the_same_scores() -> None:
    image = noisy(scene(), 7, 14)
    assert analyze(image).scores() == analyze(image.copy()).scores()
