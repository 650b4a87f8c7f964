"""Blur: a Gaussian-equivalent sigma in pixels, measured on step edges, robust to noise; and a local map.

Method (gradient ratio at two scales, after Zhuo & Sim 2011, made noise-aware):

* At an ideal step edge blurred by a Gaussian of std ``e``, the gradient magnitude of the image smoothed by a
  Gaussian derivative of scale ``s`` peaks at ``h / (sqrt(2 pi) sqrt(e^2 + s^2))``. The ratio ``R`` of the peaks
  at two scales ``s1 < s2`` gives ``e^2 = (s2^2 - R^2 s1^2) / (R^2 - 1)`` without knowing the edge height.
* Candidates: the strongest gradients in every map cell, found on the 2x2-averaged image (half the noise),
  at most ``CANDIDATE_BUDGET`` per image, so the cost is flat in the image size. Around each, the gradient
  direction is taken at the coarse scale, then both scales' gradients at five points along it, each a
  matrix product of the gathered windows with a small filter bank. The peak among the middle three is kept
  if it is a maximum along the direction (non-maximum suppression), clearly above the noise at the fine
  scale, and step-like: the intensity difference across the edge at +-2.5 edge widths must match what a
  step of that gradient and width predicts within -10 %/+15 % (lines, corners and texture fail this and
  would read too sharp).
* Peaks are refined by a parabola through the log-gradients (exact for a Gaussian profile), after removing
  the expected noise contribution ``E|g|^2 = g^2 + 2 var(noise gradient)``, computed from the luma noise
  sigma and the filters. With more noise both scales grow (``s1`` 0.8 -> 1.2 px, ``s2`` 2.0 -> 2.5 px) so
  edges stay measurable.
* The image's edge width is the ``EDGE_PERCENTILE`` of the per-edge ``e^2`` (natural edges are at least as
  wide as the blur; the percentile was set on scikit-image's bundled photos), minus ``SHARP_SIGMA^2``, the
  width of an ideally sharp camera image (pixel aperture plus a good lens and demosaicing): sharp photos
  read ~0, and ``sqrt(e^2 - SHARP_SIGMA^2)`` is the extra Gaussian blur.

The map holds the same statistic per cell where at least ``MIN_CELL_EDGES`` edges were measured; a cell with
fewer (but at least one) pools its 2x2, then 4x4 block of cells (large images examine only a few candidates
per cell); NaN where the cell has no measured edge (flat or textured areas: no evidence either way).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .ops import Array, cell_shape, gather_windows, gaussian_kernel, ndtr

EDGE_PERCENTILE = 55.0
"""Percentile of per-edge squared widths taken as the image's edge width: the one with the least bias on
scikit-image's bundled photos blurred by 1-3 px (``python -m bench.analysis --calibrate``), not the val set."""

SHARP_SIGMA = 0.5
"""Gaussian-equivalent edge width of an ideally sharp camera image, px: subtracted in quadrature."""

MIN_EDGES = 12
MIN_CELL_EDGES = 3
CANDIDATE_BUDGET = 24_000
"""Edge candidates examined per image at most (the cost is proportional)."""

NOISE_MARGIN = 5.0
"""Edges must exceed this many noise standard deviations of the fine-scale gradient."""

STEP_TOLERANCE = (0.9, 1.15)
STEP_DISTANCE = 2.5

_DIRECTIONS = np.array([[0, 1], [1, 1], [1, 0], [1, -1]])  # (dy, dx) for gradient angles 0, 45, 90, 135 degrees


@dataclass(frozen=True)
class BlurEstimate:
    sigma: float  # Gaussian-equivalent extra blur, px (0 for sharp or where no edges were found)
    edge_width: float  # measured Gaussian-equivalent edge width before subtracting SHARP_SIGMA, px
    edges: int  # edges measured
    sigma_map: Array  # (rows, cols) float32, NaN without edge evidence


def scales_for_noise(luma_noise: float) -> tuple[float, float]:
    """Fine and coarse derivative scales: wider with more noise so the fine gradient stays measurable."""
    t = min(max((luma_noise - 1.5) / 5.0, 0.0), 1.0)
    return 0.8 + 0.4 * t, 2.0 + 0.5 * t


@dataclass(frozen=True)
class _Filters:
    radius: int  # windows are (2 radius + 1)^2, centred on the candidate
    centre: Array  # (S^2, 2): gx2, gy2 at the centre
    along: tuple[Array, ...]  # per direction, (S^2, 20): gx1, gy1, gx2, gy2 at t = -2..2 along it
    smooth: Array  # (2 r2 + 1)^2 Gaussian of scale s2, for the step check
    var1: float  # kernel variances (the s^2 of the width formula)
    var2: float
    noise1: float  # variance of one gradient component per unit noise variance
    noise2: float


def _filters(s1: float, s2: float) -> _Filters:
    kernels = [gaussian_kernel(s, truncate=3.0) for s in (s1, s2)]
    r2 = len(kernels[1][0]) // 2
    radius = r2 + 2
    size = 2 * radius + 1

    def placed(scale: int, axis: int, dy: int, dx: int) -> Array:
        kernel, derivative, _ = kernels[scale]
        r = len(kernel) // 2
        two_d = np.outer(kernel, derivative) if axis == 0 else np.outer(derivative, kernel)
        out = np.zeros((size, size))
        out[radius + dy - r : radius + dy + r + 1, radius + dx - r : radius + dx + r + 1] = two_d[::-1, ::-1]
        return out.reshape(-1)

    centre = np.stack([placed(1, 0, 0, 0), placed(1, 1, 0, 0)], axis=1)
    along = []
    for dy, dx in _DIRECTIONS:
        columns = [placed(scale, axis, t * dy, t * dx) for t in range(-2, 3) for scale in (0, 1) for axis in (0, 1)]
        along.append(np.stack(columns, axis=1).astype(np.float32))
    noise = [float(np.sum(np.outer(k, d) ** 2)) for k, d, _ in kernels]
    return _Filters(
        radius, centre.astype(np.float32), tuple(along), np.outer(kernels[1][0], kernels[1][0]).astype(np.float32),
        kernels[0][2], kernels[1][2], noise[0], noise[1],
    )  # fmt: skip


def _candidates(luma: Array, cell: int, noise: float) -> tuple[Array, Array]:
    """Strongest gradients per cell, found on the 2x2-averaged image (half the noise, a quarter of the cost)."""
    height, width = luma.shape
    rows, cols = cell_shape(height, width, cell)
    h2, w2 = height // 2, width // 2
    if h2 < 3 or w2 < 3:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    small = luma[: 2 * h2, : 2 * w2].reshape(h2, 2, w2, 2).mean(axis=(1, 3))
    gx = small[1:-1, 2:] - small[1:-1, :-2]
    gy = small[2:, 1:-1] - small[:-2, 1:-1]
    magnitude = gx * gx + gy * gy  # lattice (i, j) -> pixel (2 i + 2, 2 j + 2)
    floor = max(3.0, 3.0 * noise)  # 3 noise std of the central difference of 2x2 means (std = noise / sqrt 2)
    half = max(cell // 2, 1)
    grid = np.full((rows * half, cols * half), -1.0, dtype=np.float32)
    grid[1 : 1 + magnitude.shape[0], 1 : 1 + magnitude.shape[1]] = magnitude  # grid index i -> pixel 2 i
    per_cell = grid.reshape(rows, half, cols, half).transpose(0, 2, 1, 3).reshape(rows, cols, half * half)
    k = int(np.clip(CANDIDATE_BUDGET // (rows * cols), 2, 64))
    k = min(k, per_cell.shape[2])
    top = np.argpartition(-per_cell, k - 1, axis=2)[..., :k]
    values = np.take_along_axis(per_cell, top, axis=2)
    lattice_y = np.arange(rows)[:, None, None] * half + top // half
    lattice_x = np.arange(cols)[None, :, None] * half + top % half
    keep = values > floor * floor
    return (2 * lattice_y[keep]).astype(np.int64), (2 * lattice_x[keep]).astype(np.int64)


def _log_peak(center: Array, plus: Array, minus: Array, noise_var: float) -> Array:
    """Noise-corrected peak height of a Gaussian-shaped profile from three samples (parabola in log)."""

    def clean(g: Array) -> Array:
        return np.log(np.sqrt(np.maximum(g * g - 2.0 * noise_var, 1e-6)))

    lc, lp, lm = clean(center), clean(plus), clean(minus)
    curvature = 2.0 * lc - lp - lm
    shift = np.where(curvature > 1e-6, (lp - lm) ** 2 / (8.0 * np.maximum(curvature, 1e-6)), 0.0)
    return np.exp(lc + np.minimum(shift, 1.0))


def estimate_blur(luma: Array, luma_noise: float, cell: int) -> BlurEstimate:
    """Blur of a (H, W) luma image in 0-255 whose noise std is ``luma_noise``."""
    height, width = luma.shape
    rows, cols = cell_shape(height, width, cell)
    empty = BlurEstimate(0.0, 0.0, 0, np.full((rows, cols), np.nan, np.float32))
    filters = _filters(*scales_for_noise(luma_noise))
    radius = filters.radius
    if min(height, width) < 2 * radius + 8:
        return empty
    cy, cx = _candidates(luma, cell, luma_noise)
    inner = (cy >= radius) & (cy < height - radius) & (cx >= radius) & (cx < width - radius)
    cy, cx = cy[inner], cx[inner]
    if len(cy) < MIN_EDGES:
        return empty
    v1, v2 = filters.var1, filters.var2
    noise1 = luma_noise**2 * filters.noise1
    noise2 = luma_noise**2 * filters.noise2

    size = 2 * radius + 1
    windows = gather_windows(luma, cy - radius, cx - radius, size).reshape(len(cy), size * size)
    centre = (windows @ filters.centre).astype(np.float64)  # (N, 2)
    angle = np.arctan2(centre[:, 1], centre[:, 0])
    which = (np.round(angle / (np.pi / 4)).astype(np.int64)) % 4
    direction = _DIRECTIONS[which]
    profiles = np.empty((len(cy), 5, 4))
    for d in range(4):
        chosen = which == d
        if chosen.any():
            profiles[chosen] = (windows[chosen] @ filters.along[d]).reshape(-1, 5, 4)
    prof1 = np.hypot(profiles[..., 0], profiles[..., 1])  # (N, 5) along t = -2..2
    prof2 = np.hypot(profiles[..., 2], profiles[..., 3])
    n = np.arange(len(cy))
    best = 1 + np.argmax(prof2[:, 1:4], axis=1)  # the peak among t = -1, 0, 1 (profile index 1..3)
    c2, p2, m2 = prof2[n, best], prof2[n, best + 1], prof2[n, best - 1]
    c1, p1, m1 = prof1[n, best], prof1[n, best + 1], prof1[n, best - 1]
    gx_peak, gy_peak = profiles[n, best, 2], profiles[n, best, 3]
    cy = cy + direction[:, 0] * (best - 2)
    cx = cx + direction[:, 1] * (best - 2)
    keep = (c2 > p2) & (c2 >= m2) & (c1 > NOISE_MARGIN * math.sqrt(2.0 * noise1) + 2.0)
    _, first = np.unique(cy * width + cx, return_index=True)  # several candidates may land on one edge pixel
    unique = np.zeros(len(cy), dtype=bool)
    unique[first] = True
    keep &= unique
    if keep.sum() < MIN_EDGES:
        return empty

    peak1 = _log_peak(c1[keep], p1[keep], m1[keep], noise1)
    peak2 = _log_peak(c2[keep], p2[keep], m2[keep], noise2)
    ratio2 = np.clip((peak1 / np.maximum(peak2, 1e-6)) ** 2, 1.0 + 1e-6, 1e6)
    width2 = np.clip((v2 - ratio2 * v1) / (ratio2 - 1.0), 0.0, 100.0)

    # Step check: intensity difference across the edge at +-2.5 edge widths, from the s2-smoothed image.
    ky, kx = cy[keep], cx[keep]
    gxc, gyc = gx_peak[keep], gy_peak[keep]
    norm = np.maximum(np.hypot(gxc, gyc), 1e-9)
    ny, nx = gyc / norm, gxc / norm
    total = np.sqrt(width2 + v2)
    distance = np.maximum(2.0, STEP_DISTANCE * total)
    oy, ox = np.round(distance * ny).astype(np.int64), np.round(distance * nx).astype(np.int64)
    effective = oy * ny + ox * nx
    r_s = filters.smooth.shape[0] // 2
    inside = np.ones(len(ky), dtype=bool)
    levels = []
    for sign in (1, -1):
        py, px = ky + sign * oy, kx + sign * ox
        inside &= (py >= r_s) & (py < height - r_s) & (px >= r_s) & (px < width - r_s)
        py, px = np.clip(py, r_s, height - r_s - 1), np.clip(px, r_s, width - r_s - 1)
        patch = gather_windows(luma, py - r_s, px - r_s, 2 * r_s + 1).reshape(len(py), -1)
        levels.append(patch @ filters.smooth.reshape(-1))
    step = np.abs(levels[0] - levels[1])
    reach = 2.0 * ndtr(np.maximum(effective, 0.0) / total) - 1.0  # erf(d / (sqrt(2) total))
    predicted = peak2 * math.sqrt(2 * math.pi) * total * reach
    ratio = step / np.maximum(predicted, 1e-6)
    step_like = (ratio > STEP_TOLERANCE[0]) & (ratio < STEP_TOLERANCE[1]) & inside
    widths = width2[step_like]
    if len(widths) < MIN_EDGES:
        return empty
    edge_width2 = float(np.percentile(widths, EDGE_PERCENTILE))
    sigma = math.sqrt(max(edge_width2 - SHARP_SIGMA**2, 0.0))

    sigma_map = _blur_map(ky[step_like] // cell, kx[step_like] // cell, widths, rows, cols)
    return BlurEstimate(sigma, math.sqrt(edge_width2), int(len(widths)), sigma_map)


def _blur_map(cell_y: Array, cell_x: Array, widths: Array, rows: int, cols: int) -> Array:
    """Per-cell blur; a cell with at least one edge but fewer than MIN_CELL_EDGES pools its 2x2, then 4x4 block."""
    cell_y, cell_x = np.minimum(cell_y, rows - 1), np.minimum(cell_x, cols - 1)
    counts = np.bincount(cell_y * cols + cell_x, minlength=rows * cols).reshape(rows, cols)
    out = np.full((rows, cols), np.nan)
    for level in (1, 2, 4):
        r, c = -(-rows // level), -(-cols // level)
        pooled = _cell_percentile((cell_y // level) * c + cell_x // level, widths, r * c).reshape(r, c)
        expanded = pooled[np.arange(rows)[:, None] // level, np.arange(cols)[None, :] // level]
        fill = np.isnan(out) & (counts > 0) & np.isfinite(expanded)
        out[fill] = expanded[fill]
    return np.sqrt(np.maximum(out - SHARP_SIGMA**2, 0.0)).astype(np.float32)


def _cell_percentile(cells: Array, values: Array, count: int) -> Array:
    """EDGE_PERCENTILE of ``values`` grouped by ``cells`` (NaN for groups under MIN_CELL_EDGES)."""
    out = np.full(count, np.nan)
    order = np.lexsort((values, cells))
    cells, values = cells[order], values[order]
    starts = np.flatnonzero(np.r_[True, cells[1:] != cells[:-1]])
    sizes = np.diff(np.r_[starts, len(cells)])
    ok = sizes >= MIN_CELL_EDGES
    position = (sizes - 1) * EDGE_PERCENTILE / 100.0
    low = np.floor(position).astype(np.int64)
    frac = position - low
    high = np.minimum(low + 1, sizes - 1)
    result = values[starts + low] * (1 - frac) + values[starts + high] * frac
    out[cells[starts[ok]]] = result[ok]
    return out
