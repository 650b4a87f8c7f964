"""PSNR and SSIM as the literature reports them (SSIM checked against scikit-image's Gaussian-window variant)."""

from __future__ import annotations

import numpy as np
import pytest

from core.metrics import psnr, ssim


def images(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:64, 0:80]
    clean = np.stack([xx * 3.0, yy * 3.5, 128 + 60 * np.sin(xx / 5.0)], axis=-1)
    noisy = np.clip(np.round(clean + rng.normal(0, 12, clean.shape)), 0, 255)
    return clean, noisy


def test_psnr_of_a_known_error() -> None:
    reference = np.zeros((8, 8, 3))
    assert psnr(reference, reference + 1.0) == pytest.approx(20 * np.log10(255.0))
    assert psnr(reference, reference) == float("inf")


def test_ssim_matches_scikit_image_gaussian_window() -> None:
    metrics = pytest.importorskip("skimage.metrics")
    clean, noisy = images()
    expected = np.mean(
        [
            metrics.structural_similarity(
                clean[..., c],
                noisy[..., c],
                data_range=255,
                gaussian_weights=True,
                sigma=1.5,
                use_sample_covariance=False,
                truncate=5 / 1.5,
            )
            for c in range(3)
        ]
    )
    assert ssim(clean, noisy) == pytest.approx(expected, abs=2e-3)
    assert ssim(clean, clean) == pytest.approx(1.0)
    assert ssim(clean, noisy) < ssim(clean, (clean + noisy) / 2) < 1.0
