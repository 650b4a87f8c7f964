"""Controlled blending: apply the network's correction where the analyser found damage, and nowhere else.

    output = input + strength * mask * (guarded - input)

``mask`` is the analyser's damage maps (noise, blockiness, blur on a cell grid), upsampled bilinearly, times a
plausibility factor from the model's own correction: a correction of the size the damage explains (about the
local noise sigma where noise was found) counts fully; one far larger than that is scaled down. ``guarded``
is the restored image after two over-processing guards:

- anti-halo: each channel is clamped to the min/max of the *input* in a 5x5 neighbourhood. Around edges this
  removes overshoot and ringing; in noisy areas the input's range is wide, so the clamp never pushes a
  denoised value back towards the noise (it cannot reintroduce noise, it only limits excursions);
- texture: where the input is flat, the restored image may not carry more high-frequency energy than the
  input did (no invented texture, no "worms" in skies).

Strength 0 returns the input array itself. Everything runs in float32 in horizontal strips with a halo, so
a 50 MP image needs no full-size temporaries beyond the input and output.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

import numpy as np

Array = np.ndarray


class DamageMaps(Protocol):
    """The analyser's maps (core.analysis.AnalysisMaps): per cell of ``cell`` x ``cell`` input pixels."""

    cell: int
    noise: Array  # (rows, cols) noise sigma, 0-255 units
    blur: Array  # (rows, cols) Gaussian-equivalent blur, pixels
    blockiness: Array  # (rows, cols) 0-1


@dataclass(frozen=True)
class BlendSettings:
    """Thresholds that turn the analyser's measurements into "damaged" (1) or "clean" (0), with ramps between."""

    noise_clean: float = 1.5
    """Noise sigma (0-255) at or below which a cell counts as clean: what clean photos of textured scenes read."""
    noise_damaged: float = 4.0
    blockiness_clean: float = 0.08
    blockiness_damaged: float = 0.3
    blur_clean: float = 0.8
    """Blur (px) below which a cell counts as sharp."""
    blur_damaged: float = 1.6
    plausible_ratio: float = 3.0
    """Corrections up to this many times what the damage explains are applied fully."""
    deblock_levels: float = 10.0
    """Correction (0-255) that full blockiness explains."""
    deblur_gain: float = 0.6
    """Correction per unit of local gradient (0-255 per px) that full blur explains."""
    jpeg_damaged_quality: float = 50.0
    """A file compressed at or below this JPEG quality is damaged everywhere, not only where blocks show."""
    jpeg_clean_quality: float = 90.0
    """At or above this quality JPEG compression counts as no damage."""
    clamp_radius: int = 2
    """Anti-halo neighbourhood: (2r+1) x (2r+1)."""
    flat_gradient: float = 2.0
    """Local gradient (0-255 per px, after a 3x3 mean) below which, plus noise allowance, an area is flat."""
    strip_pixels: int = 262_144
    """Pixels per strip (rows = this / width, at least MIN_STRIP_ROWS): small enough that a strip's ~20 float32
    temporaries stay in the CPU caches (a 1 MP strip blended 2.3x slower, from memory), large enough that the halo
    rows are a small share."""
    workers: int | None = None
    """Threads blending strips in parallel (numpy releases the GIL); None: one per CPU."""


HALO = 8
"""Rows of context each strip needs: the largest filter footprint below (5x5 box on a 3x3 box gradient)."""

MIN_STRIP_ROWS = 4 * HALO
"""Rows per strip on very wide images: the halo rows (2 * HALO) stay at most half of what a strip computes."""


def smoothstep(values: Array, low: float, high: float) -> Array:
    t = np.clip((values - low) / max(high - low, 1e-6), 0.0, 1.0)
    return (t * t * (3.0 - 2.0 * t)).astype(np.float32)


def upsample_grid(grid: Array, cell: float, height: int, width: int, row0: int = 0, row1: int | None = None) -> Array:
    """Bilinear interpolation of a per-cell grid to pixels ``row0:row1`` of a (height, width) image.

    Cell centres sit at ``(i + 0.5) * cell - 0.5``; beyond the outer centres the edge value holds. ``cell`` is in
    output pixels (the analyser's cell times the model's scale for upscaled outputs).
    """
    row1 = height if row1 is None else row1
    grid = np.nan_to_num(np.asarray(grid, dtype=np.float32))
    rows, cols = grid.shape

    def axis(count: int, start: int, stop: int) -> tuple[Array, Array, Array]:
        position = np.clip((np.arange(start, stop, dtype=np.float32) + 0.5) / cell - 0.5, 0, count - 1)
        low = np.floor(position).astype(np.intp)
        high = np.minimum(low + 1, count - 1)
        return low, high, (position - low).astype(np.float32)

    y0, y1, ty = axis(rows, row0, row1)
    x0, x1, tx = axis(cols, 0, width)
    by_rows = grid[y0] * (1 - ty)[:, None] + grid[y1] * ty[:, None]
    return (by_rows[:, x0] * (1 - tx)[None, :] + by_rows[:, x1] * tx[None, :]).astype(np.float32)


def jpeg_error_levels(quality: float) -> float:
    """Typical RMS error (0-255) that Pillow's JPEG at ``quality`` (4:2:0) leaves in a photo.

    Fitted on training photos (CBSD432) against the quantisation scale factor of the IJG tables: 12.7 at q10,
    7.5 at q40, 4.6 at q80, 3.3 at q90; within about 10 % between q10 and q90.
    """
    quality = min(max(quality, 1.0), 100.0)
    scale = 5000.0 / quality if quality < 50 else 200.0 - 2.0 * quality
    return 0.95 * max(scale, 1.0) ** 0.42


@dataclass(frozen=True)
class _StripMaps:
    damage: Array  # (h, w) 0-1
    noise: Array  # (h, w) sigma 0-255
    block: Array  # (h, w) 0-1 (after thresholds)
    blur: Array  # (h, w) 0-1 (after thresholds)
    compression_levels: float = 0.0
    """Correction (0-255 RMS) that the file's JPEG compression explains."""


def _compression(jpeg_quality: float | None, s: BlendSettings) -> float:
    if jpeg_quality is None:
        return 0.0
    clean = float(smoothstep(np.float32(jpeg_quality), s.jpeg_damaged_quality, s.jpeg_clean_quality))
    return 1.0 - clean


def _strip_maps(
    maps: DamageMaps | None,
    cell: float,
    shape: tuple[int, int],
    rows: tuple[int, int],
    s: BlendSettings,
    jpeg_quality: float | None = None,
) -> _StripMaps:
    height, width = shape
    size = (rows[1] - rows[0], width)
    if maps is None:  # no analysis: trust the model everywhere, guards still apply
        ones = np.ones(size, dtype=np.float32)
        return _StripMaps(ones, np.zeros(size, np.float32), ones, ones)
    noise = upsample_grid(maps.noise, cell, height, width, *rows)
    block = smoothstep(
        upsample_grid(maps.blockiness, cell, height, width, *rows), s.blockiness_clean, s.blockiness_damaged
    )
    blur = smoothstep(upsample_grid(maps.blur, cell, height, width, *rows), s.blur_clean, s.blur_damaged)
    damage = np.maximum(np.maximum(smoothstep(noise, s.noise_clean, s.noise_damaged), block), blur)
    compression = _compression(jpeg_quality, s)
    if compression > 0:
        # Quantisation damages every block, textured ones most, where blockiness reads low: the file's quality is
        # the evidence there, not the local map.
        np.maximum(damage, compression, out=damage)
    levels = compression * jpeg_error_levels(jpeg_quality) if jpeg_quality is not None else 0.0
    return _StripMaps(damage, noise, block, blur, levels)


def damage_mask(
    maps: DamageMaps,
    height: int,
    width: int,
    scale: int = 1,
    settings: BlendSettings | None = None,
    jpeg_quality: float | None = None,
) -> Array:
    """The analyser part of the mask for a whole image (0 clean, 1 damaged), for inspection and tests."""
    s = settings or BlendSettings()
    return _strip_maps(maps, maps.cell * scale, (height, width), (0, height), s, jpeg_quality).damage


def _along(a: Array, axis: int, start: int, stop: int | None) -> Array:
    index = [slice(None)] * a.ndim
    index[axis] = slice(start, stop)
    return a[tuple(index)]


def _neighbours(a: Array, radius: int, axis: int, reduce: np.ufunc) -> Array:
    """``reduce`` over the in-image neighbours within ``radius`` along ``axis`` (no padding copies).

    Ignoring out-of-image neighbours equals edge replication for min/max; for sums, :func:`_box` divides by
    the number of neighbours actually present.
    """
    result = a.copy()
    length = a.shape[axis]
    for offset in range(1, min(radius, length - 1) + 1):
        head, tail = _along(result, axis, offset, None), _along(result, axis, 0, length - offset)
        reduce(head, _along(a, axis, 0, length - offset), out=head)
        reduce(tail, _along(a, axis, offset, None), out=tail)
    return result


def _box(a: Array, radius: int) -> Array:
    """Mean over the (2r+1) x (2r+1) window, clipped at the image border."""
    total = _neighbours(_neighbours(a, radius, 0, np.add), radius, 1, np.add)
    size = 2 * radius + 1
    total *= 1.0 / (size * size)
    for axis in (0, 1):  # border rows/columns had fewer neighbours: rescale them
        length = a.shape[axis]
        for index in range(min(radius, length)):
            for position in {index, length - 1 - index}:
                present = min(position + radius, length - 1) - max(position - radius, 0) + 1
                row = _along(total, axis, position, position + 1)
                row *= size / present
    return total


def _local_range(a: Array, radius: int) -> tuple[Array, Array]:
    low = _neighbours(_neighbours(a, radius, 0, np.minimum), radius, 1, np.minimum)
    high = _neighbours(_neighbours(a, radius, 0, np.maximum), radius, 1, np.maximum)
    return low, high


def _channel_mean(a: Array) -> Array:
    """Mean over the last axis; numpy's reduction over a 3-wide axis is several times slower than this."""
    total = a[..., 0].copy()
    for c in range(1, a.shape[2]):
        total += a[..., c]
    if a.shape[2] > 1:
        total *= 1.0 / a.shape[2]
    return total


def _blend_strip(original: Array, restored: Array, strip: _StripMaps, strength: float, s: BlendSettings) -> Array:
    """Blend one strip (halo rows included); returns float32 (h, w, C)."""
    x = np.asarray(original, dtype=np.float32)
    y = np.asarray(restored, dtype=np.float32)
    noise = strip.noise
    # Anti-halo: no value outside the input's local range.
    low, high = _local_range(x, s.clamp_radius)
    guarded = np.clip(y, low, high)
    # Structure of the input, 0-255 per pixel, measured after a 3x3 mean to keep noise out of it.
    smooth = _box(_channel_mean(x), 1) * 255.0
    gradient = np.zeros_like(smooth)
    gy = np.diff(smooth, axis=0)
    gx = np.diff(smooth, axis=1)
    gradient[:-1] += gy * gy
    gradient[:, :-1] += gx * gx
    gradient = _box(np.sqrt(gradient), 2)
    # Texture guard where the input is flat: restored high frequencies capped at the input's energy.
    flat_level = s.flat_gradient + 0.35 * noise
    flat = 1.0 - np.clip((gradient - flat_level) / flat_level, 0.0, 1.0)
    detail_y = guarded - _box(guarded, 1)
    detail_x = x - _box(x, 1)
    energy_y = _box(_channel_mean(detail_y * detail_y), 2)
    energy_x = _box(_channel_mean(detail_x * detail_x), 2)
    keep = np.minimum(np.sqrt((energy_x + 1e-8) / (energy_y + 1e-8)), 1.0)
    guarded -= (flat * (1.0 - keep))[..., None] * detail_y
    # Plausibility: the local RMS correction against what the damage explains.
    change = guarded - x
    correction = np.sqrt(_box(_channel_mean(change * change), 2)) * 255.0
    explained = np.sqrt(
        noise * noise
        + (s.deblock_levels * strip.block) ** 2
        + (s.deblur_gain * strip.blur * gradient) ** 2
        + strip.compression_levels**2
    )
    plausible = np.minimum((s.plausible_ratio * explained + 1.0) / (correction + 1e-6), 1.0)
    mask = (strength * strip.damage * plausible)[..., None]
    out = x + mask * change
    np.clip(out, low, high, out=out)
    return np.clip(out, 0.0, 1.0, out=out)


def blend(
    original: Array,
    restored: Array,
    maps: DamageMaps | None,
    strength: float = 1.0,
    *,
    scale: int = 1,
    settings: BlendSettings | None = None,
    out: Array | None = None,
    jpeg_quality: float | None = None,
) -> Array:
    """The enhanced image (float32, restored's shape); ``original`` must already be at the restored size.

    ``jpeg_quality`` is the analyser's estimate of the original file's JPEG quality (None: no sign of JPEG): at or
    below ``jpeg_damaged_quality`` (50) the correction is applied everywhere, as far as it stays plausible for that
    quality, fading out towards ``jpeg_clean_quality`` (90).

    ``out`` may be ``restored`` itself (blended in place, strip by strip, to save memory). Strength 0 returns
    ``original`` unchanged (the same object: no float round trip).
    """
    if strength == 0:
        return original
    if original.shape != restored.shape:
        raise ValueError(f"original {original.shape} and restored {restored.shape} differ; upscale the input first")
    s = settings or BlendSettings()
    height, width = restored.shape[:2]
    strip_rows = max(MIN_STRIP_ROWS, s.strip_pixels // max(1, width))
    cell = (maps.cell if maps is not None else 1) * scale
    target = out if out is not None else np.empty(restored.shape, dtype=np.float32)
    in_place = target is restored
    workers = max(1, min(s.workers or os.cpu_count() or 1, -(-height // strip_rows)))
    per_worker = -(-height // (workers * strip_rows)) * strip_rows
    chunks = [(lo, min(lo + per_worker, height)) for lo in range(0, height, per_worker)]
    # In place, each chunk must see the *restored* rows just outside it even after a neighbour overwrote them.
    edges = {
        lo: (restored[max(0, lo - HALO) : lo].copy(), restored[hi : hi + HALO].copy()) if in_place else (None, None)
        for lo, hi in chunks
    }
    job = _Rows(original, restored, target, maps, cell, float(strength), s, in_place, strip_rows, jpeg_quality)
    if len(chunks) == 1:
        job.run(*chunks[0], *edges[chunks[0][0]])
        return target
    with ThreadPoolExecutor(max_workers=len(chunks), thread_name_prefix="blend") as pool:
        futures = [pool.submit(job.run, lo, hi, *edges[lo]) for lo, hi in chunks]
        for future in futures:
            future.result()
    return target


@dataclass(frozen=True)
class _Rows:
    """Blends a contiguous range of rows strip by strip (one worker's share)."""

    original: Array
    restored: Array
    target: Array
    maps: DamageMaps | None
    cell: float
    strength: float
    settings: BlendSettings
    in_place: bool
    strip_rows: int
    jpeg_quality: float | None = None

    def run(self, lo: int, hi: int, above: Array | None, below: Array | None) -> None:
        s = self.settings
        height, width = self.restored.shape[:2]
        tail = above  # restored rows just above the current strip, as they were before any overwrite
        for top in range(lo, hi, self.strip_rows):
            bottom = min(top + self.strip_rows, hi)
            a, b = max(0, top - HALO), min(height, bottom + HALO)
            if self.in_place:
                assert tail is not None and below is not None
                parts = [tail[len(tail) - (top - a) :], self.restored[top : min(b, hi)]]
                if b > hi:
                    parts.append(below[: b - hi])
                window = np.concatenate(parts)
                if bottom < hi:  # strips before the chunk's last are full, so these rows are this strip's own
                    tail = self.restored[bottom - HALO : bottom].copy()
            else:
                window = self.restored[a:b]
            strip = _strip_maps(self.maps, self.cell, (height, width), (a, b), s, self.jpeg_quality)
            result = _blend_strip(self.original[a:b], window, strip, self.strength, s)
            self.target[top:bottom] = result[top - a : top - a + (bottom - top)]
