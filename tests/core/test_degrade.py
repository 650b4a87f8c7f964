"""The synthetic degradations produce what they claim."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from skimage import data

from core import degrade


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(7)


def _grey(value: float = 0.5, size: int = 256) -> np.ndarray:
    return np.full((size, size, 3), value, dtype=np.float32)


@pytest.mark.parametrize("sigma", [5.0, 15.0, 50.0])
def test_gaussian_noise_has_the_requested_std(rng, sigma) -> None:
    noisy = degrade.gaussian_noise(_grey(), sigma, rng)
    measured = (noisy - 0.5).std(axis=(0, 1)) * 255
    assert np.allclose(measured, sigma, rtol=0.03)


def test_correlated_noise_keeps_std_and_sets_the_channel_correlation(rng) -> None:
    noise = degrade.gaussian_noise(_grey(), 20.0, rng, correlation=0.6) - 0.5
    assert np.allclose(noise.std(axis=(0, 1)) * 255, 20.0, rtol=0.03)
    flat = noise.reshape(-1, 3).T
    assert np.corrcoef(flat)[0, 1] == pytest.approx(0.6, abs=0.03)


def test_poisson_gaussian_noise_grows_with_brightness(rng) -> None:
    dark = degrade.poisson_gaussian_noise(_grey(0.1), 300.0, 2.0, rng) - 0.1
    bright = degrade.poisson_gaussian_noise(_grey(0.9), 300.0, 2.0, rng) - 0.9
    expected_bright = np.sqrt(0.9 / 300.0 + (2.0 / 255) ** 2)
    assert bright.std() == pytest.approx(expected_bright, rel=0.05)
    assert bright.std() > 2.5 * dark.std()


def test_quantize_clips_and_rounds() -> None:
    out = degrade.quantize(np.array([[[-0.2, 0.5, 1.4]]], dtype=np.float32))
    assert np.allclose(out * 255, [[[0, 128, 255]]], atol=1e-4)


@pytest.mark.parametrize("quality", [10, 50, 90])
def test_jpeg_compress_matches_a_pillow_file_of_that_quality(quality) -> None:
    image = data.astronaut()[:128, :128].astype(np.float32) / 255
    buffer = io.BytesIO()
    Image.fromarray(degrade.to_uint8(image)).save(buffer, format="JPEG", quality=quality)
    expected = np.asarray(Image.open(buffer).convert("RGB"), dtype=np.float32) / 255
    assert np.array_equal(degrade.jpeg_compress(image, quality), expected)


def test_jpeg_error_falls_as_quality_rises() -> None:
    image = data.astronaut()[:128, :128].astype(np.float32) / 255
    errors = [np.abs(degrade.jpeg_compress(image, q) - image).mean() for q in (10, 30, 60, 90)]
    assert errors == sorted(errors, reverse=True)


@pytest.mark.parametrize("sigma", [0.8, 1.5, 2.5])
def test_gaussian_blur_spreads_an_impulse_by_sigma(sigma) -> None:
    impulse = np.zeros((65, 65, 3), dtype=np.float32)
    impulse[32, 32] = 1.0
    blurred = degrade.gaussian_blur(impulse, sigma)[..., 0]
    assert blurred.sum() == pytest.approx(1.0, abs=1e-4)
    coords = np.arange(65) - 32
    variance = (blurred.sum(axis=0) * coords**2).sum()
    assert np.sqrt(variance) == pytest.approx(sigma, rel=0.05)


def test_defocus_and_motion_kernels_are_normalised_and_sized() -> None:
    disk = degrade.disk_kernel(2.0)
    assert disk.sum() == pytest.approx(1.0, abs=1e-5)
    assert disk.shape == (5, 5) and disk[2, 2] > disk[0, 0]
    motion = degrade.motion_kernel(5.0, 0.0)
    assert motion.sum() == pytest.approx(1.0, abs=1e-5)
    assert np.count_nonzero(motion.sum(axis=1) > 0.05) == 1  # horizontal: one row carries the line


def test_resampling_removes_fine_detail(rng) -> None:
    image = rng.random((64, 64, 3), dtype=np.float32)
    resampled = degrade.resample_down_up(image, 2.0, rng)
    assert resampled.shape == image.shape
    assert np.abs(np.diff(resampled, axis=1)).mean() < 0.6 * np.abs(np.diff(image, axis=1)).mean()


def test_tone_shift_is_monotonic_and_bounded() -> None:
    ramp = np.linspace(0, 1, 256, dtype=np.float32)[None, :, None].repeat(3, axis=2)
    shifted = degrade.tone_shift(ramp, 0.9, 1.2)
    assert np.all(np.diff(shifted[0, :, 0]) >= 0)
    assert shifted.min() >= 0 and shifted.max() <= 1


def test_random_degradation_is_an_8bit_file_and_reproducible() -> None:
    image = data.astronaut()[:96, :96].astype(np.float32) / 255
    outputs = []
    for _ in range(2):
        local = np.random.default_rng(3)
        outputs.append([degrade.random_degradation(image, local) for _ in range(20)])
    for first, second in zip(*outputs, strict=True):
        assert np.array_equal(first.image, second.image) and first.steps == second.steps
        assert first.image.shape == image.shape
        assert np.array_equal(first.image, np.round(first.image * 255) / 255)
    steps = [s for d in outputs[0] for s in d.steps]
    assert any(s.startswith("jpeg") for s in steps) and any(s.startswith("gaussian") for s in steps)


def test_random_degradation_mix_covers_clean_and_combined_samples() -> None:
    image = data.astronaut()[:64, :64].astype(np.float32) / 255
    local = np.random.default_rng(11)
    samples = [degrade.random_degradation(image, local) for _ in range(400)]
    clean = sum(d.steps == ["clean"] for d in samples) / len(samples)
    combined = sum(len(d.steps) >= 2 for d in samples) / len(samples)
    assert 0.04 < clean < 0.14
    assert combined > 0.2
    for sample in samples:
        if sample.steps == ["clean"]:
            assert np.array_equal(sample.image, degrade.quantize(image))


def test_camera_chain_runs_optics_then_sensor_then_codec() -> None:
    image = data.astronaut()[:96, :96].astype(np.float32) / 255
    only_chain = degrade.DegradationMix(p_clean=0.0, p_gaussian_only=0.0, p_jpeg_only=0.0, p_camera_chain=1.0)
    local = np.random.default_rng(5)
    rank = {"blur": 0, "defocus": 0, "gaussian": 1, "jpeg": 2}
    samples = [degrade.random_degradation(image, local, only_chain) for _ in range(60)]
    for sample in samples:
        kinds = [step.split("(")[0] for step in sample.steps]
        assert kinds[0] in ("blur", "defocus")
        assert [rank[k] for k in kinds] == sorted(rank[k] for k in kinds) and len(set(kinds)) == len(kinds)
    assert any(len(s.steps) == 3 for s in samples) and any(len(s.steps) == 1 for s in samples)
    detail = lambda a: float(np.abs(np.diff(a, axis=1)).mean())  # noqa: E731
    blur_only = [s for s in samples if len(s.steps) == 1]
    assert all(detail(s.image) < detail(image) for s in blur_only)


def test_blur_noise_jpeg_is_the_benchmark_chain() -> None:
    image = data.astronaut()[:64, :64].astype(np.float32) / 255
    chained = degrade.blur_noise_jpeg(image, 1.0, 8.0, 60, np.random.default_rng(1))
    rng = np.random.default_rng(1)
    by_hand = degrade.jpeg_compress(
        degrade.quantize(degrade.gaussian_noise(degrade.quantize(degrade.gaussian_blur(image, 1.0)), 8.0, rng)), 60
    )
    assert np.array_equal(chained, by_hand)


def test_mix_overrides_change_the_branch_shares_and_ranges() -> None:
    only_jpeg = ["p_jpeg_only=1", "p_clean=0", "p_gaussian_only=0", "p_camera_chain=0"]
    mix = degrade.DegradationMix().with_overrides(only_jpeg)
    assert (mix.p_jpeg_only, mix.p_clean) == (1.0, 0.0)
    assert mix.with_overrides(["jpeg_quality=20,30"]).jpeg_quality == (20, 30)
    image = data.astronaut()[:64, :64].astype(np.float32) / 255
    local = np.random.default_rng(3)
    for _ in range(10):
        steps = degrade.random_degradation(image, local, mix).steps
        assert steps and all(step.startswith("jpeg(") for step in steps)


@pytest.mark.parametrize(
    "setting",
    ["p_jpeg_only", "no_such_setting=1", "p_jpeg_only=0.9", "p_clean=-0.1", "jpeg_quality=20", "max_sigma=high"],
)
def test_bad_mix_overrides_are_refused(setting: str) -> None:
    with pytest.raises(ValueError):
        degrade.DegradationMix().with_overrides([setting])
