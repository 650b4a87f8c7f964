"""Noise level: std of the noise in each RGB channel (0-255 units), its brightness dependence and a local map.

Method (weak-texture patch PCA, after Liu, Tanaka & Okutomi 2013, with the eigenvalue statistics of
Chen, Zhu & Heng, ICCV 2015):

1. 7x7 patches at up to ``MAX_PATCHES`` positions, each projected on an orthonormal opponent colour basis
   (intensity, red-green, yellow-blue). The basis is orthonormal, so the per-channel noise variance is the
   mean of the three components' noise variances for any inter-channel correlation; texture concentrates in
   the intensity component while colour noise shows up cleanly in the two chroma components.
2. Per component, iteratively keep the *weak-texture* patches, whose gradient energy is below the 99 %
   quantile of a noise-only patch at the current sigma (a Gamma law), and take the smallest eigenvalue of
   their covariance, corrected for the Marchenko-Pastur spread of sample eigenvalues. Texture lives in a few
   directions of patch space; the least-variance direction is noise. (Chen et al.'s mean-equals-median rule
   over all patches reads texture as noise on detailed photos; the benchmark shows it as a baseline.)
3. Clipping: an 8-bit file cannot go below 0 or above 255, so noise near black and white is censored and
   reads low. Each patch's latent per-channel means are recovered from the observed ones under a censored
   Gaussian model at the current sigma, patches are rescaled by the predicted variance loss, and patches
   losing more than half their variance are dropped; up to three passes, until sigma moves by < 1 %.
4. JPEG: compression removes most of the noise's high frequencies, and on a detailed photo what survives
   sits in the same frequencies as the texture. With JPEG evidence the luma noise left in the pixels is
   mapped back through the response of this same estimator to noise of known sigma compressed at the same
   quality (``JPEG_RESPONSE``, simulated on training photos by ``python -m bench.analysis --calibrate``),
   assuming independent per-channel noise (luma std = 0.668 sigma). The inverse is steep for q 60-85, so
   texture left by compression also reads as a few units of noise there (the benchmark's cross-talk table
   shows how much); below q 60 nothing is inferred. ``residual_sigma`` keeps the noise left in the pixels,
   which is what the quality score and the map use.

The noise curve bins weak-texture patches by luma and scales their minor-subspace energy to the global
estimate; the map uses the same per-patch energy on four patches per cell (two on grids of more than
``MAP_CELLS_FOUR_PATCHES`` cells), median, so both share the global calibration. Cells without usable
patches (saturated) take the global residual value.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

from .ops import (
    LUMA_NOISE_GAIN,
    LUMA_WEIGHTS,
    OPPONENT,
    Array,
    cell_shape,
    gather_windows,
    marchenko_pastur_low_mean,
    ndtr,
)

PATCH = 7
MAX_PATCHES = 8_000
"""Patch positions sampled per image; beyond this the estimate's spread no longer shrinks noticeably."""

TEXTURE_QUANTILE_Z = 2.3263
"""Standard normal 99 % point: weak-texture patches lie below the 99 % quantile of noise-only gradient energy."""

CURVE_BINS = 8
"""Luma bins (0-255) of the noise curve."""

MIN_CURVE_PATCHES = 40

MAP_CELLS_FOUR_PATCHES = 4096
"""Grids with more cells than this (above ~4 MP at 32 px) use two patches per cell instead of four."""

JPEG_SIGMA_GRID = np.array([0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 12.0, 15.0, 20.0, 25.0, 30.0, 40.0])
"""Luma noise std before compression at which JPEG_RESPONSE was measured."""

# fmt: off
JPEG_RESPONSE: Mapping[int, tuple[float, ...]] = MappingProxyType({
    60: (0.42, 0.42, 0.43, 0.43, 0.50, 0.52, 0.61, 0.67, 0.83, 1.08, 1.72, 2.26, 3.89, 6.25, 18.92, 29.10, 38.49),
    65: (0.46, 0.46, 0.48, 0.48, 0.49, 0.55, 0.61, 0.75, 0.90, 1.17, 1.95, 3.07, 4.24, 10.76, 24.28, 30.29, 38.37),
    70: (0.45, 0.48, 0.48, 0.48, 0.49, 0.59, 0.66, 0.88, 0.97, 1.70, 2.58, 3.88, 5.51, 18.61, 25.97, 30.50, 37.97),
    75: (0.43, 0.43, 0.43, 0.46, 0.46, 0.64, 0.82, 1.01, 1.35, 2.29, 3.17, 5.18, 11.79, 21.21, 25.96, 30.16, 37.22),
    80: (0.44, 0.44, 0.44, 0.44, 0.49, 0.59, 0.98, 1.22, 1.30, 2.89, 4.86, 10.27, 16.09, 21.12, 25.71, 29.59, 36.82),
    85: (0.49, 0.50, 0.52, 0.54, 0.57, 0.81, 1.22, 1.73, 2.82, 5.50, 10.33, 13.29, 16.15, 20.77, 24.90, 29.06, 36.16),
    90: (0.54, 0.58, 0.64, 0.68, 0.84, 1.35, 1.98, 3.26, 5.67, 9.05, 11.05, 12.90, 15.62, 20.02, 24.29, 28.32, 35.52),
    95: (0.62, 0.80, 0.97, 1.13, 1.66, 3.33, 4.77, 5.76, 6.72, 8.57, 10.46, 12.34, 15.06, 19.67, 23.90, 27.85, 35.43),
})
# fmt: on
"""Luma readings of :func:`luma_noise` after compressing photos carrying luma noise of JPEG_SIGMA_GRID
(independent per-channel RGB noise, Pillow 4:2:0) at each libjpeg quality: median over 24 training photos
(CBSD432, 2x area-downscaled, 224x160 crops), made non-decreasing. Photos rather than flat grey, because the
texture that compression leaves behind also reads as a little noise; flat-grey calibration over-read noise
after JPEG by about 20 %. Generated by ``python -m bench.analysis --calibrate`` from ``train/`` only, never
from the validation photos."""

JPEG_INVERTIBLE = (60, 95)
"""Qualities between which the pre-compression noise is inferred. Below 60 compression leaves too little of
the noise to tell how much there was, and ``sigma`` reports what is left; above 95 almost all of it survives."""


@dataclass(frozen=True)
class NoiseEstimate:
    sigma: float  # per-channel std of the noise, 0-255 (before compression where JPEG evidence exists)
    residual_sigma: float  # per-channel std of the noise left in the pixels
    luma_sigma: float  # std of the luma noise left in the pixels
    chroma_sigma: float | None  # per-channel std seen in the two chroma components (None for grey images)
    curve: tuple[tuple[float, float], ...]  # (luma bin centre 0-255, per-channel sigma) where measurable
    sigma_map: Array  # (rows, cols) float32


@dataclass(frozen=True)
class _Component:
    variance: float
    minor: Array  # (d, m) eigenvectors of the smallest eigenvalues of the weak-texture covariance
    mean: Array  # (d,)
    selected: Array  # bool mask over the patches used


def _chi2_quantile(dof: float, z: float) -> float:
    """Wilson-Hilferty approximation of the chi-square quantile at standard normal point ``z``."""
    h = 2.0 / (9.0 * dof)
    return dof * (1.0 - h + z * math.sqrt(h)) ** 3


def _covariance(patches: Array) -> tuple[Array, Array]:
    mean = patches.mean(axis=0, dtype=np.float64).astype(np.float32)
    centred = patches - mean
    return centred.T @ centred / np.float32(len(patches)), mean


def _lowest_variance(cov: Array, samples: int) -> float:
    lowest = float(np.linalg.eigvalsh(cov.astype(np.float64))[0])
    return max(lowest, 0.0) / marchenko_pastur_low_mean(1, cov.shape[0], samples)


def _texture(patches: Array) -> Array:
    """Liu et al.'s texture strength: squared horizontal plus vertical differences inside each patch."""
    grid = patches.reshape(-1, PATCH, PATCH)
    return np.square(np.diff(grid, axis=2)).sum(axis=(1, 2)) + np.square(np.diff(grid, axis=1)).sum(axis=(1, 2))


_TEXTURE_QUANTILE = 4.0 * PATCH * (PATCH - 1) / PATCH**2 * _chi2_quantile(PATCH**2, TEXTURE_QUANTILE_Z)
"""99 % point of a noise-only patch's texture strength per unit noise variance (a Gamma law)."""


def _weak_texture_variance(patches: Array, texture: Array, iterations: int = 3) -> tuple[float, Array, Array, Array]:
    """Liu et al.'s iteration: keep weak-texture patches at the current sigma, re-estimate from them.

    Returns the noise variance, the selection mask, and the covariance and mean of the selected patches.
    """
    d = patches.shape[1]
    selected = np.ones(len(patches), dtype=bool)
    cov, mean = _covariance(patches)
    variance = _lowest_variance(cov, len(patches))
    for _ in range(iterations):
        mask = texture < variance * _TEXTURE_QUANTILE
        if mask.sum() < 4 * d or np.array_equal(mask, selected):
            break
        selected = mask
        cov, mean = _covariance(patches[mask])
        variance = _lowest_variance(cov, int(mask.sum()))
    return variance, selected, cov, mean


def _fit(patches: Array, texture: Array) -> _Component:
    variance, selected, cov, mean = _weak_texture_variance(patches, texture)
    _, vectors = np.linalg.eigh(cov)
    return _Component(variance, vectors[:, : patches.shape[1] // 4], mean, selected)


def censored_moments(mean: Array, sigma: float, high: float = 255.0) -> tuple[Array, Array]:
    """Mean and variance of clip(mean + sigma * N(0, 1), 0, high)."""
    mu = np.asarray(mean, dtype=np.float64)
    s = max(float(sigma), 1e-6)
    a = -mu / s
    b = (high - mu) / s
    cdf_a, cdf_b = ndtr(a), ndtr(b)
    pdf_a = np.exp(-0.5 * a * a) / math.sqrt(2 * math.pi)
    pdf_b = np.exp(-0.5 * b * b) / math.sqrt(2 * math.pi)
    inside = cdf_b - cdf_a
    m1 = high * (1 - cdf_b) + mu * inside + s * (pdf_a - pdf_b)
    m2 = (
        high * high * (1 - cdf_b)
        + mu * mu * inside
        + 2 * mu * s * (pdf_a - pdf_b)
        + s * s * (inside + a * pdf_a - b * pdf_b)
    )
    return m1, np.maximum(m2 - m1 * m1, 0.0)


def clip_variance_factor(channel_means: Array, sigma: float) -> Array:
    """Fraction of the noise variance left after clipping, per patch and channel (same shape as the means)."""
    if sigma < 0.3:
        return np.ones_like(channel_means, dtype=np.float64)
    grid = np.linspace(-4 * sigma, 255 + 4 * sigma, 1024)
    observed_mean, _ = censored_moments(grid, sigma)
    latent = np.interp(channel_means, observed_mean, grid)
    _, variance = censored_moments(latent, sigma)
    return variance / sigma**2


def _sample_positions(height: int, width: int, count: int, rng: np.random.Generator) -> tuple[Array, Array]:
    """Top-left corners of patches: every second position on small images, a random subset on large ones."""
    ys = np.arange(0, height - PATCH + 1, 2)
    xs = np.arange(0, width - PATCH + 1, 2)
    if len(ys) * len(xs) <= count:
        return np.repeat(ys, len(xs)), np.tile(xs, len(ys))
    flat = rng.choice((height - PATCH + 1) * (width - PATCH + 1), count, replace=False)
    return flat // (width - PATCH + 1), flat % (width - PATCH + 1)


def _gather(pixels: Array, tops: Array, lefts: Array) -> Array:
    """(N, 7, 7, C) patches in 0-255 units."""
    return gather_windows(pixels, tops, lefts, PATCH) * np.float32(255.0)


def _components(patches: Array) -> Array:
    """(C', N, 49) opponent components (or the single grey channel)."""
    if patches.shape[-1] == 1:
        return patches[..., 0].reshape(1, len(patches), -1)
    opp = np.einsum("nyxc,kc->knyx", patches, OPPONENT)
    return opp.reshape(3, len(patches), -1)


def _component_weights(channels: int) -> Array:
    """(C', C) squared weights that map per-channel variance factors to component variance factors."""
    return np.ones((1, 1)) if channels == 1 else OPPONENT.astype(np.float64) ** 2


def _estimate_components(components: Array, channel_means: Array) -> tuple[list[_Component], Array, float]:
    """Clip-aware weak-texture estimate per component: (components, per-patch factors (C', N), sigma)."""
    weights = _component_weights(channel_means.shape[0])
    textures = [_texture(component) for component in components]
    usable = np.all((channel_means > 2.0) & (channel_means < 253.0), axis=0)
    factors = np.ones((components.shape[0], components.shape[1]))
    sigma = 0.0
    for _ in range(3):
        if usable.sum() < 200:
            usable = np.ones_like(usable)
        used, used_factors = usable, factors
        variances = []
        for c in range(components.shape[0]):
            f = factors[c][usable]
            scaled = components[c][usable] / np.sqrt(f).astype(np.float32)[:, None]
            variances.append(_weak_texture_variance(scaled, textures[c][usable] / f)[0])
        previous, sigma = sigma, math.sqrt(float(np.mean(variances)))
        if sigma < 0.3:
            break
        factors = np.maximum(weights @ clip_variance_factor(channel_means, sigma), 1e-3)
        usable = np.all(factors > 0.5, axis=0)
        if abs(sigma - previous) < 0.01 * sigma or np.all(factors[:, used] > 0.98):
            break  # clipping cannot move the estimate any more
    fitted = []
    for c in range(components.shape[0]):
        f = used_factors[c][used]
        comp = _fit(components[c][used] / np.sqrt(f).astype(np.float32)[:, None], textures[c][used] / f)
        fitted.append(_Component(comp.variance, comp.minor, comp.mean, _expand(comp.selected, used)))
    return fitted, factors, sigma


def _expand(mask: Array, usable: Array) -> Array:
    out = np.zeros(len(usable), dtype=bool)
    out[np.flatnonzero(usable)[mask]] = True
    return out


def _patch_energy(components: Array, fitted: list[_Component], factors: Array) -> Array:
    """Mean squared projection on each component's minor subspace, clip-corrected: (N,)."""
    energy = np.zeros(components.shape[1])
    for c, comp in enumerate(fitted):
        projected = (components[c] - comp.mean) @ comp.minor
        energy += np.square(projected).mean(axis=1) / factors[c]
    return energy / len(fitted)


def luma_noise(pixels: Array, rng: np.random.Generator) -> float:
    """Std of the luma noise in the pixels (0-255), by the same weak-texture PCA on luma patches."""
    height, width, channels = pixels.shape
    if min(height, width) < PATCH * 3:
        return 0.0
    tops, lefts = _sample_positions(height, width, MAX_PATCHES, rng)
    patches = _gather(pixels, tops, lefts)
    weights = np.ones(1, np.float32) if channels == 1 else LUMA_WEIGHTS
    luma_patches = (patches @ weights).reshape(len(patches), -1)
    means = luma_patches.mean(axis=1)
    ok = (means > 2.0) & (means < 253.0)
    if ok.sum() >= 200:
        luma_patches = luma_patches[ok]
    return math.sqrt(_weak_texture_variance(luma_patches, _texture(luma_patches))[0])


def _invert_response(reading: float, quality: int) -> float:
    """Smallest luma noise std whose compressed reading at ``quality`` reaches ``reading``."""
    response = np.asarray(JPEG_RESPONSE[quality])
    if reading >= response[-1]:
        return reading * JPEG_SIGMA_GRID[-1] / max(response[-1], 1e-6)
    above = int(np.argmax(response >= reading))
    if above == 0:
        return 0.0
    low, high = response[above - 1], response[above]
    t = 1.0 if high <= low else (reading - low) / (high - low)
    return float(JPEG_SIGMA_GRID[above - 1] + t * (JPEG_SIGMA_GRID[above] - JPEG_SIGMA_GRID[above - 1]))


def jpeg_pre_compression_sigma(luma_sigma: float, quality: int) -> float:
    """Luma noise std before compression whose compressed reading is ``luma_sigma``.

    Inverts the simulated response (interpolated between the calibrated qualities either side); outside
    JPEG_INVERTIBLE returns ``luma_sigma`` unchanged.
    """
    if not JPEG_INVERTIBLE[0] <= quality <= JPEG_INVERTIBLE[1]:
        return luma_sigma
    qualities = sorted(JPEG_RESPONSE)
    upper = next(q for q in qualities if q >= quality)
    lower = max(q for q in qualities if q <= quality)
    if upper == lower:
        return max(luma_sigma, _invert_response(luma_sigma, upper))
    t = (quality - lower) / (upper - lower)
    inferred = (1 - t) * _invert_response(luma_sigma, lower) + t * _invert_response(luma_sigma, upper)
    return max(luma_sigma, inferred)


def estimate_noise(pixels: Array, jpeg_quality: int | None, cell: int, rng: np.random.Generator) -> NoiseEstimate:
    """Noise of a float (H, W, C) image in [0, 1]; ``jpeg_quality`` is the IJG-equivalent quality if compressed."""
    height, width, channels = pixels.shape
    rows, cols = cell_shape(height, width, cell)
    if min(height, width) < PATCH * 3:
        return NoiseEstimate(0.0, 0.0, 0.0, None, (), np.zeros((rows, cols), np.float32))
    tops, lefts = _sample_positions(height, width, MAX_PATCHES, rng)
    patches = _gather(pixels, tops, lefts)
    channel_means = patches.mean(axis=(1, 2)).T  # (C, N)
    components = _components(patches)
    fitted, factors, residual = _estimate_components(components, channel_means)
    chroma = math.sqrt((fitted[1].variance + fitted[2].variance) / 2) if channels == 3 else None

    # Shared calibration of per-patch energies (curve and map) to the global estimate.
    energy = _patch_energy(components, fitted, factors)
    weak = fitted[0].selected & np.all(factors > 0.5, axis=0)
    if weak.sum() < 20:
        weak = np.all(factors > 0.5, axis=0)
    scale_mean = residual**2 / max(float(energy[weak].mean()), 1e-9) if weak.any() else 1.0
    scale_median = residual**2 / max(float(np.median(energy[weak])), 1e-9) if weak.any() else 1.0

    luma_values = patches.reshape(len(patches), -1, channels).mean(axis=1) @ (
        np.ones(1) if channels == 1 else LUMA_WEIGHTS.astype(np.float64)
    )
    curve = []
    edges = np.linspace(0, 256, CURVE_BINS + 1)
    for low, high in itertools.pairwise(edges):
        in_bin = weak & (luma_values >= low) & (luma_values < high)
        if in_bin.sum() >= MIN_CURVE_PATCHES:
            curve.append((float((low + high) / 2), math.sqrt(float(energy[in_bin].mean()) * scale_mean)))

    luma_sigma = residual * (LUMA_NOISE_GAIN if channels == 3 else 1.0)
    sigma = residual
    if jpeg_quality is not None:
        luma_sigma = luma_noise(pixels, rng)
        pre = jpeg_pre_compression_sigma(luma_sigma, jpeg_quality)
        sigma = pre / LUMA_NOISE_GAIN if channels == 3 else pre

    sigma_map = _noise_map(pixels, fitted, residual, scale_median, cell, rows, cols)
    return NoiseEstimate(sigma, residual, luma_sigma, chroma, tuple(curve), sigma_map)


def _noise_map(
    pixels: Array, fitted: list[_Component], sigma: float, scale: float, cell: int, rows: int, cols: int
) -> Array:
    """Per-cell sigma from the median minor-subspace energy of four patches per cell (two on large grids)."""
    height, width, channels = pixels.shape
    quarter = np.array([cell // 4, (3 * cell) // 4]) - PATCH // 2
    if rows * cols > MAP_CELLS_FOUR_PATCHES:
        offsets = [(quarter[0], quarter[0]), (quarter[1], quarter[1])]
    else:
        offsets = [(dy, dx) for dy in quarter for dx in quarter]
    grid_y = np.arange(rows)[:, None, None] * cell
    grid_x = np.arange(cols)[None, :, None] * cell
    tops = np.clip(grid_y + np.array([o[0] for o in offsets])[None, None, :], 0, height - PATCH)
    lefts = np.clip(grid_x + np.array([o[1] for o in offsets])[None, None, :], 0, width - PATCH)
    per = len(offsets)
    tops, lefts = np.broadcast_to(tops, (rows, cols, per)), np.broadcast_to(lefts, (rows, cols, per))
    patches = _gather(pixels, tops.reshape(-1), lefts.reshape(-1))
    channel_means = patches.mean(axis=(1, 2)).T
    weights = _component_weights(channels)
    factors = np.maximum(weights @ clip_variance_factor(channel_means, sigma), 1e-3)
    energy = _patch_energy(_components(patches), fitted, factors) * scale
    energy[np.any(factors < 0.5, axis=0)] = np.nan
    per_cell = np.sort(np.where(np.isfinite(energy), energy, np.inf).reshape(rows, cols, per), axis=2)
    count = np.isfinite(per_cell).sum(axis=2)
    low = np.take_along_axis(per_cell, np.maximum((count - 1) // 2, 0)[..., None], axis=2)[..., 0]
    high = np.take_along_axis(per_cell, np.minimum(count // 2, per - 1)[..., None], axis=2)[..., 0]
    values = np.where(count > 0, np.sqrt(np.where(count > 0, (low + high) / 2, 0.0)), sigma)
    return values.astype(np.float32)
