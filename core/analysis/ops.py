"""Small array helpers shared by the estimators: colour transforms, kernels, the 8x8 DCT, cell grids.

Everything here is a pure function over numpy arrays. Pixel values inside the analyser are in 0-255 units
(the units noise is quoted in); the public entry point takes [0, 1] floats and converts once.
"""

from __future__ import annotations

import functools
import math

import numpy as np

Array = np.ndarray

LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114], dtype=np.float32)
"""ITU-R BT.601 luma, the transform JPEG applies before quantising (so JPEG's Y plane is recovered exactly)."""

LUMA_NOISE_GAIN = float(np.sqrt(np.sum(LUMA_WEIGHTS.astype(np.float64) ** 2)))
"""Std of luma noise per unit of independent per-channel RGB noise (0.668)."""

OPPONENT = np.array(
    [
        [1 / math.sqrt(3), 1 / math.sqrt(3), 1 / math.sqrt(3)],
        [1 / math.sqrt(2), -1 / math.sqrt(2), 0.0],
        [1 / math.sqrt(6), 1 / math.sqrt(6), -2 / math.sqrt(6)],
    ],
    dtype=np.float32,
)
"""Orthonormal opponent colour basis (intensity, red-green, yellow-blue).

Orthonormal, so the sum of the three components' noise variances equals the sum of the RGB channels' noise
variances whatever the correlation between channels: the per-channel sigma is sqrt(mean of the three).
"""

ZIGZAG = np.array(
    [0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6, 7, 14, 21,
     28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61,
     54, 47, 55, 62, 63],
    dtype=np.int64,
)  # fmt: skip
"""``ZIGZAG[i]`` is the natural (row-major) index of the i-th coefficient in JPEG zigzag order."""


def dct_matrix(n: int = 8) -> Array:
    """Orthonormal DCT-II matrix; JPEG's 8x8 transform is exactly this, so quantiser steps apply to its output."""
    rows = np.arange(n)[:, None]
    cols = np.arange(n)[None, :]
    matrix = np.cos((2 * cols + 1) * rows * math.pi / (2 * n)) * math.sqrt(2.0 / n)
    matrix[0] /= math.sqrt(2.0)
    return matrix


DCT8 = dct_matrix(8)


def block_dct(blocks: Array) -> Array:
    """DCT of (..., 8, 8) level-shifted blocks -> (..., 64) coefficients in natural order."""
    coeffs = DCT8 @ blocks.astype(np.float64) @ DCT8.T  # batched matmul: no per-call einsum path search
    return coeffs.reshape(*blocks.shape[:-2], 64)


def luma(pixels: Array) -> Array:
    """(H, W) float32 luma in 0-255 from (H, W, C) pixels in [0, 1]."""
    if pixels.shape[2] == 1:
        return pixels[..., 0] * np.float32(255.0)
    return pixels @ (LUMA_WEIGHTS * np.float32(255.0))


def ndtr(x: Array) -> Array:
    """Standard normal CDF, numpy only (Abramowitz & Stegun 7.1.26 erf, absolute error < 1.5e-7)."""
    z = np.asarray(x, dtype=np.float64) / math.sqrt(2.0)
    a = np.abs(z)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t
    erf = 1.0 - poly * np.exp(-a * a)
    return 0.5 * (1.0 + np.sign(z) * erf)


def gaussian_kernel(sigma: float, truncate: float = 3.5) -> tuple[Array, Array, float]:
    """Sampled 1-D Gaussian, its derivative (unit response to a unit ramp), and the kernel's variance."""
    radius = max(1, math.ceil(truncate * sigma) + 1)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    kernel = np.exp(-0.5 * (x / sigma) ** 2)
    kernel /= kernel.sum()
    derivative = -x / sigma**2 * kernel
    derivative /= -(derivative * x).sum()
    return kernel, derivative, float((kernel * x**2).sum())


def cell_shape(height: int, width: int, cell: int) -> tuple[int, int]:
    """Rows and columns of the map grid: every pixel belongs to a cell; the last row/column may be partial."""
    return max(1, math.ceil(height / cell)), max(1, math.ceil(width / cell))


def gather_windows(image: Array, tops: Array, lefts: Array, size: int) -> Array:
    """Copies of the ``size`` x ``size`` windows at the given top-left corners (they must fit): (N, size, size, ...)."""
    view = np.lib.stride_tricks.sliding_window_view(image, (size, size), axis=(0, 1))
    windows = view[tops, lefts]  # (N, ..., size, size): window axes last
    return np.moveaxis(windows, (-2, -1), (1, 2)) if image.ndim == 3 else windows


@functools.lru_cache(maxsize=256)
def marchenko_pastur_low_mean(count: int, dims: int, samples: int) -> float:
    """Expected mean of the ``count`` smallest eigenvalues of a white unit-variance sample covariance.

    Sample covariances of ``samples`` vectors in ``dims`` dimensions spread their eigenvalues over the
    Marchenko-Pastur law, so the smallest one underestimates the noise variance; dividing by this removes that.
    """
    ratio = min(dims / max(samples, 1), 0.95)
    low, high = (1 - math.sqrt(ratio)) ** 2, (1 + math.sqrt(ratio)) ** 2
    x = np.linspace(low, high, 2001)
    density = np.sqrt(np.maximum((high - x) * (x - low), 0.0)) / (2 * math.pi * ratio * x)
    cdf = np.concatenate([[0.0], np.cumsum((density[1:] + density[:-1]) * 0.5 * np.diff(x))])
    cdf /= cdf[-1]
    quantiles = (np.arange(count) + 0.5) / dims
    return float(np.interp(quantiles, cdf, x).mean())
