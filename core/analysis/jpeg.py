"""JPEG history: the original quality, read from the file's tables or recovered from the pixels, and blockiness.

Three sources of evidence, strongest first:

* **Quantisation tables** (the file is a JPEG): the quality is the IJG/libjpeg scaling ``q`` whose scaled
  standard luminance table equals the file's table (Pillow's ``quality=`` is passed straight to libjpeg, so
  this is exact for every file Pillow writes). Tables that no IJG quality produces (cameras, Photoshop) get the
  nearest quality in log-step distance and ``exact=False``.
* **The pixels** (a decoded JPEG saved again losslessly, possibly cropped): the 8x8 grid offset is found first
  (the offset at which most AC coefficients of textured blocks vanish), then the IJG quality whose luminance
  table best explains the re-computed DCT coefficients as multiples of the steps plus decoder rounding. The
  likelihood gives each coefficient a Laplacian prior over quantiser bins, so a coarser table than the true
  one is penalised by coefficients falling between its steps and a finer one by spreading probability over
  empty bins. Compression is reported only where the phase of the non-zero coefficients is coherent with
  the chosen steps (``evidence``): pixels never compressed, or compressed and then resized, give ``None``.
* **Blockiness**: how much the luma step across the grid's lines exceeds the steps beside them, as the
  median along each line within a cell (blocking runs the whole block height; a natural edge crossing the
  line does not), for vertical and horizontal lines separately, keeping the smaller (an edge lying on a grid
  line runs one way only); ``x / (x + 1)`` for an excess of ``x`` levels beyond the one level any 8-bit
  ramp shows, per map cell; the image's blockiness is the mean over cells. It measures visible blocking
  whatever produced it and does not decide ``quality``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .ops import ZIGZAG, Array, block_dct, cell_shape, gather_windows

STANDARD_LUMA = np.array(
    [16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51,
     87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92, 49, 64, 78, 87, 103, 121, 120, 101,
     72, 92, 95, 98, 112, 100, 103, 99],
    dtype=np.int64,
)  # fmt: skip
"""ITU-T T.81 Annex K luminance table, natural (row-major) order."""

STANDARD_CHROMA = np.array(
    [17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99, 24, 26, 56, 99, 99, 99, 99, 99, 47, 66, 99, 99, 99,
     99, 99, 99] + [99] * 32,
    dtype=np.int64,
)  # fmt: skip
"""ITU-T T.81 Annex K chrominance table, natural order."""

MIN_EVIDENCE = 0.5
"""Mean cosine phase of non-zero coefficients against the chosen steps above which pixels count as JPEG."""

MIN_EVIDENCE_COEFFICIENTS = 50
"""Non-zero coefficients (steps >= 3) needed before any pixel-based verdict."""

MIN_OFFSET_CONTRAST = 0.04
"""Excess share of vanishing AC coefficients at the best grid offset below which the table fit is skipped
(never-compressed photos: <= 0.025; JPEG q <= 95: >= 0.09)."""

DECODER_ROUNDING_SIGMA = 0.4
"""Std of the DCT-domain error of a decoded and re-measured coefficient (8-bit output rounding), 0-255 units."""

BLOCK_EXCESS_HALF = 1.0
"""Median excess step (0-255 levels, beyond QUANTIZATION_STEP) across grid lines at which blockiness reads 0.5."""

EDGE_STEP = 64.0
"""Steps across a grid line larger than this (0-255) are edges of the content, not blocking."""

QUANTIZATION_STEP = 1.0
"""Excess an 8-bit file shows without any blocking (a smooth ramp's one-level steps can fall on a grid line)."""

_FIT_BLOCKS = 1024
_OFFSET_BLOCKS = 384


def ijg_table(quality: int, base: Array = STANDARD_LUMA) -> Array:
    """libjpeg's ``jpeg_quality_scaling`` applied to ``base`` with baseline clamping to 1..255."""
    quality = min(max(int(quality), 1), 100)
    scale = 5000 // quality if quality < 50 else 200 - 2 * quality
    return np.clip((base * scale + 50) // 100, 1, 255)


_LUMA_TABLES = np.stack([ijg_table(q) for q in range(1, 101)])  # (100, 64), row q-1
_CHROMA_TABLES = np.stack([ijg_table(q, STANDARD_CHROMA) for q in range(1, 101)])


@dataclass(frozen=True)
class TableQuality:
    """What a JPEG file's quantisation tables say."""

    quality: int
    exact: bool  # the tables are exactly libjpeg's at ``quality``
    luma_table: Array  # (64,) natural order


@dataclass(frozen=True)
class JpegEstimate:
    """JPEG evidence for one image."""

    quality: int | None  # 1-100, None without evidence of JPEG compression
    source: str | None  # "tables", "pixels" or None
    exact: bool  # quality reproduces the tables exactly (tables), or the coefficient lattice fit (pixels)
    grid_offset: tuple[int, int]  # (y, x) of the first full 8x8 block
    luma_table: Array | None  # (64,) natural order: from the file, or libjpeg's table at the estimated quality
    evidence: float  # phase coherence of the coefficients with the table, 0-1 (1 where tables were read)
    blockiness: float  # 0-1
    blockiness_map: Array  # (rows, cols) float32 in [0, 1]


def _natural_order(table: Array) -> Array:
    natural = np.empty(64, dtype=np.int64)
    natural[ZIGZAG] = table
    return natural


def quality_from_tables(quantization: Mapping[int, Sequence[int]]) -> TableQuality | None:
    """Quality from Pillow's ``JpegImageFile.quantization`` (table id -> 64 steps).

    Pillow >= 8.3 (and 13) returns the tables in natural order; older versions used zigzag order. Both are
    tried: an exact libjpeg match in either order wins, otherwise the order closer to the standard layout.
    """
    if not quantization:
        return None
    ids = sorted(quantization)
    luma = np.asarray(list(quantization[ids[0]]), dtype=np.int64)
    if luma.shape != (64,) or np.any(luma < 1):
        return None
    chroma = np.asarray(list(quantization[ids[1]]), dtype=np.int64) if len(ids) > 1 else None
    if chroma is not None and chroma.shape != (64,):
        chroma = None
    candidates = [(luma, chroma), (_natural_order(luma), None if chroma is None else _natural_order(chroma))]
    for cand_luma, cand_chroma in candidates:
        matches = np.flatnonzero(np.all(cand_luma[None, :] == _LUMA_TABLES, axis=1))
        if chroma is not None and len(matches) > 1:
            matches = [m for m in matches if np.array_equal(_CHROMA_TABLES[m], cand_chroma)] or list(matches)
        if len(matches):
            return TableQuality(int(matches[-1]) + 1, True, cand_luma)
    # Not libjpeg's tables: nearest quality by mean absolute log-step difference, in the likelier order.
    best: tuple[float, int, Array] | None = None
    for cand_luma, _ in candidates:
        errors = np.abs(np.log(_LUMA_TABLES) - np.log(cand_luma)[None, :]).mean(axis=1)
        index = int(np.argmin(errors))
        if best is None or errors[index] < best[0]:
            best = (float(errors[index]), index, cand_luma)
    assert best is not None
    return TableQuality(best[1] + 1, False, best[2])


def _block_grid(height: int, width: int, offset_y: int, offset_x: int) -> tuple[Array, Array]:
    rows = np.arange(offset_y, height - 7, 8)
    cols = np.arange(offset_x, width - 7, 8)
    return rows, cols


def _gather_blocks(luma: Array, tops: Array, lefts: Array) -> Array:
    return gather_windows(luma, tops, lefts, 8)


def _unclipped(pixels: Array, tops: Array, lefts: Array) -> Array:
    """True for blocks with no channel at 0 or 1 (clipping breaks the coefficient lattice)."""
    flat = gather_windows(pixels, tops, lefts, 8).reshape(len(tops), -1)
    return ~(np.any(flat <= 0.5 / 255.0, axis=1) | np.any(flat >= 254.5 / 255.0, axis=1))


def _textured_anchors(luma: Array, pixels: Array, count: int, rng: np.random.Generator) -> tuple[Array, Array]:
    """Top-left corners (multiples of 8, leaving room for a shift of up to 7) of the most textured blocks."""
    height, width = luma.shape
    rows, cols = _block_grid(height - 8, width - 8, 0, 0)
    if len(rows) == 0 or len(cols) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    tops = np.repeat(rows, len(cols))
    lefts = np.tile(cols, len(rows))
    if len(tops) > 16 * count:  # keep the cost flat on large images
        keep = rng.choice(len(tops), 16 * count, replace=False)
        tops, lefts = tops[keep], lefts[keep]
    blocks = _gather_blocks(luma, tops, lefts)
    texture = np.abs(np.diff(blocks, axis=1)).sum(axis=(1, 2)) + np.abs(np.diff(blocks, axis=2)).sum(axis=(1, 2))
    order = np.argsort(-texture, kind="stable")[: 4 * count]
    tops, lefts = tops[order], lefts[order]
    keep = _unclipped(pixels, tops, lefts)
    return tops[keep][:count], lefts[keep][:count]


def find_grid_offset(luma: Array, pixels: Array, rng: np.random.Generator) -> tuple[int, int, float]:
    """(y, x) offset of the 8x8 grid, where the most AC coefficients of textured blocks are ~0.

    Also returns how much larger that share is than the median over the 64 offsets: a few per cent for
    pixels never compressed, 0.09 and more for JPEG q <= 95.
    """
    tops, lefts = _textured_anchors(luma, pixels, _OFFSET_BLOCKS, rng)
    if len(tops) < 8:
        return 0, 0, 0.0
    windows = gather_windows(luma, tops, lefts, 15)  # every 8x8 block at shifts 0-7 lies inside its 15x15 window
    shifted = np.stack([windows[:, dy : dy + 8, dx : dx + 8] for dy in range(8) for dx in range(8)])
    coeffs = block_dct(shifted)[..., 1:]  # (64 shifts, N, 63)
    scores = np.mean(np.abs(coeffs) < 0.75, axis=(1, 2)).reshape(8, 8)
    dy, dx = np.unravel_index(int(np.argmax(scores)), scores.shape)
    return int(dy), int(dx), float(scores[dy, dx] - np.median(scores))


def _table_log_likelihoods(coeffs: Array) -> Array:
    """Log-likelihood of the AC coefficients under each libjpeg quality 1-100: (100,)."""
    steps = _LUMA_TABLES[:, 1:].astype(np.float64)  # (100, 63)
    scale = np.maximum(np.abs(coeffs).mean(axis=0), 0.5)  # Laplacian scale per frequency
    total = np.zeros(100)
    for j in range(63):
        values, inverse = np.unique(steps[:, j], return_inverse=True)
        c = coeffs[:, j][:, None]  # (N, 1)
        t = values[None, :]  # (1, U)
        k = np.abs(np.round(c / t))
        residual = c - np.sign(c) * k * t
        b = scale[j]
        p_zero = 1.0 - np.exp(-t / (2 * b))
        p_k = 0.5 * np.exp(-(k - 0.5) * t / b) * (1.0 - np.exp(-t / b))
        prob = np.where(k == 0, p_zero, p_k)
        norm = np.array([math.erf(v / (2 * math.sqrt(2) * DECODER_ROUNDING_SIGMA)) for v in values])
        ll = np.log(np.maximum(prob, 1e-300)) - residual**2 / (2 * DECODER_ROUNDING_SIGMA**2) - np.log(norm)[None, :]
        total += ll.sum(axis=0)[inverse]
    return total


def quality_from_pixels(
    luma: Array, pixels: Array, offset: tuple[int, int], rng: np.random.Generator
) -> tuple[int | None, float]:
    """IJG quality whose luminance steps explain the aligned DCT coefficients, or None; plus the evidence."""
    height, width = luma.shape
    rows, cols = _block_grid(height, width, *offset)
    if len(rows) * len(cols) < 16:
        return None, 0.0
    tops = np.repeat(rows, len(cols))
    lefts = np.tile(cols, len(rows))
    if len(tops) > 6 * _FIT_BLOCKS:
        keep = rng.choice(len(tops), 6 * _FIT_BLOCKS, replace=False)
        tops, lefts = tops[keep], lefts[keep]
    keep = _unclipped(pixels, tops, lefts)
    tops, lefts = tops[keep], lefts[keep]
    if len(tops) < 16:
        return None, 0.0
    coeffs = block_dct(_gather_blocks(luma, tops, lefts) - 128.0)[:, 1:]
    energy = np.square(coeffs).sum(axis=1)
    coeffs = coeffs[np.argsort(-energy, kind="stable")[:_FIT_BLOCKS]]  # flat blocks say nothing about steps
    quality = int(np.argmax(_table_log_likelihoods(coeffs))) + 1
    steps = _LUMA_TABLES[quality - 1, 1:].astype(np.float64)
    k = np.round(coeffs / steps)
    informative = (k != 0) & (steps >= 3)[None, :]
    count = int(informative.sum())
    if count < MIN_EVIDENCE_COEFFICIENTS:
        return None, 0.0
    evidence = float(np.cos(2 * np.pi * coeffs / steps)[informative].mean())
    if quality >= 100 or evidence < MIN_EVIDENCE:
        return None, max(evidence, 0.0)
    return quality, evidence


def _grid_line_excess(luma: Array, phase: int | None, cell: int, step: int) -> tuple[Array, float, int]:
    """Blocking across the vertical grid lines: per (row band of ``cell``, cell column) and overall.

    For every row, the step across a grid line minus the larger of the two steps beside it; its median over
    the rows of each cell band (a blocking edge runs the whole block height, a natural edge crossing the
    line does not); then the mean of the positive medians over the grid lines of each cell.
    Returns (rows, cols) excess in 0-255 levels, the overall mean, and the phase used.
    """
    height, width = luma.shape
    rows, cols = cell_shape(height, width, cell)
    lines = luma[::step]
    steps = np.abs(np.diff(lines, axis=1))  # steps[:, x]: between columns x and x + 1
    if phase is None:
        by_column = steps.mean(axis=0)
        phase = int(np.argmax([by_column[(np.arange(width - 1) + 1) % 8 == p].mean() for p in range(8)]))
    xs = np.arange((phase - 1) % 8, width - 1, 8)  # grid line between x and x + 1 lies at x + 1 = phase (mod 8)
    xs = xs[(xs >= 1) & (xs + 1 < width - 1)]
    if len(xs) == 0:
        return np.zeros((rows, cols)), 0.0, phase
    across = steps[:, xs]
    excess = np.where(across <= EDGE_STEP, across - np.maximum(steps[:, xs - 1], steps[:, xs + 1]), 0.0)
    band = np.minimum(np.arange(0, height, step) // cell, rows - 1)
    medians = np.zeros((rows, len(xs)))
    for r in range(rows):
        in_band = excess[band == r]
        if len(in_band):
            medians[r] = np.median(in_band, axis=0)
    positive = np.maximum(medians - QUANTIZATION_STEP, 0.0)  # a smooth 8-bit ramp steps by one level anywhere
    col_of_line = np.minimum((xs + 1) // cell, cols - 1)
    counts = np.bincount(col_of_line, minlength=cols)
    sums = np.zeros((rows, cols))
    np.add.at(sums.T, col_of_line, positive.T)
    return sums / np.maximum(counts, 1)[None, :], float(positive.mean()), phase


def blockiness(luma: Array, offset: tuple[int, int] | None, cell: int) -> tuple[float, Array, tuple[int, int]]:
    """Global and per-cell blockiness on the given grid (or the grid of maximum boundary steps when None)."""
    height, width = luma.shape
    rows, cols = cell_shape(height, width, cell)
    if height < 16 or width < 16:
        return 0.0, np.zeros((rows, cols), np.float32), offset or (0, 0)
    step = 2 if height * width > 4_000_000 else 1  # every other line is plenty on large images
    across_x, _, ox = _grid_line_excess(luma, None if offset is None else offset[1], cell, step)
    across_y, _, oy = _grid_line_excess(luma.T, None if offset is None else offset[0], cell, step)
    # Blocking runs along both directions of the grid; an edge lying on a grid line runs along one only.
    excess = np.minimum(across_x, across_y.T)
    cell_map = (excess / (excess + BLOCK_EXCESS_HALF)).astype(np.float32)
    return float(cell_map.mean()), cell_map, (oy, ox)


def estimate_jpeg(
    luma: Array,
    pixels: Array,
    quantization: Mapping[int, Sequence[int]] | None,
    cell: int,
    rng: np.random.Generator,
) -> JpegEstimate:
    """JPEG quality (tables first, then pixels), grid offset and blockiness of one image."""
    tables = quality_from_tables(quantization) if quantization else None
    if tables is not None:
        block, block_map, offset = blockiness(luma, (0, 0), cell)
        return JpegEstimate(tables.quality, "tables", tables.exact, offset, tables.luma_table, 1.0, block, block_map)
    oy, ox, contrast = find_grid_offset(luma, pixels, rng)
    quality, evidence = (None, 0.0)
    if contrast >= MIN_OFFSET_CONTRAST:  # otherwise no lattice to fit: skip the costly table search
        quality, evidence = quality_from_pixels(luma, pixels, (oy, ox), rng)
    if quality is None:
        block, block_map, offset = blockiness(luma, None, cell)
        return JpegEstimate(None, None, False, offset, None, evidence, block, block_map)
    block, block_map, offset = blockiness(luma, (oy, ox), cell)
    return JpegEstimate(quality, "pixels", True, offset, _LUMA_TABLES[quality - 1].copy(), evidence, block, block_map)
