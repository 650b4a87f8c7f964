"""The analyser's entry point: one call measures every degradation of an image and scores it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from .blur import estimate_blur
from .jpeg import estimate_jpeg
from .maps import DEFAULT_CELL, AnalysisMaps
from .noise import estimate_noise
from .ops import Array, luma
from .quality import penalties, quality_score
from .tone import estimate_tone

SEED = 20240601
"""Patch and block sampling on large images is random but seeded: the same pixels always give the same scores."""


@dataclass(frozen=True)
class Analysis:
    """Scores of one image. The first seven fields are the contract's ``analyze --json`` keys."""

    width: int
    height: int
    noise_sigma: float  # std of the noise added to each RGB channel, 0-255 (before compression for JPEGs)
    blur_sigma: float  # Gaussian-equivalent blur in px, 0 for sharp
    jpeg_quality: int | None  # 1-100 original JPEG quality, None without evidence of JPEG compression
    contrast: float  # 0-1, RMS luma contrast relative to an evenly spread histogram
    quality: float  # 0-100, higher is better (see core.analysis.quality)
    noise_residual: float  # per-channel noise std left in the pixels (differs from noise_sigma for JPEGs)
    noise_chroma: float | None  # per-channel std seen in the chroma components (None for grey images)
    noise_curve: tuple[tuple[float, float], ...]  # (luma 0-255, sigma) for brightness bins with enough flat patches
    blur_edges: int  # step edges the blur estimate rests on (0: no evidence, blur_sigma reads 0)
    jpeg_source: str | None  # "tables" (read from the file), "pixels" (recovered), or None
    jpeg_grid_offset: tuple[int, int]  # (y, x) of the 8x8 grid in these pixels
    blockiness: float  # 0-1
    mean_luminance: float  # 0-1, exposure
    dynamic_range: float  # 1st-99th luma percentile span, 0-1
    clipped_shadows: float  # fraction of pure-black pixels
    clipped_highlights: float  # fraction of pixels with a saturated channel
    penalties: Mapping[str, float] = field(repr=False)  # points each degradation costs (quality's breakdown)
    maps: AnalysisMaps = field(repr=False)

    @property
    def megapixels(self) -> float:
        return self.width * self.height / 1e6

    def scores(self) -> dict[str, float | int | None]:
        """Flat, JSON-ready scalars: the contract keys first, then the extras (no maps, no curve)."""
        return {
            "width": self.width,
            "height": self.height,
            "noise_sigma": _round(self.noise_sigma),
            "blur_sigma": _round(self.blur_sigma),
            "jpeg_quality": self.jpeg_quality,
            "contrast": _round(self.contrast),
            "quality": _round(self.quality),
            "megapixels": _round(self.megapixels),
            "noise_residual": _round(self.noise_residual),
            "noise_chroma": None if self.noise_chroma is None else _round(self.noise_chroma),
            "blur_edges": self.blur_edges,
            "blockiness": _round(self.blockiness),
            "exposure": _round(self.mean_luminance),  # mean luma 0-1: the daemon's filterable exposure column
            "dynamic_range": _round(self.dynamic_range),
            "clipped_shadows": _round(self.clipped_shadows),
            "clipped_highlights": _round(self.clipped_highlights),
        }


def _round(value: float) -> float:
    return round(float(value), 4)


def _as_pixels(pixels: Array) -> Array:
    array = np.asarray(pixels)
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or array.shape[2] not in (1, 3):
        raise ValueError(f"expected pixels of shape (H, W, 3) or (H, W, 1), got {array.shape}")
    if not np.issubdtype(array.dtype, np.floating):
        raise ValueError(f"expected float pixels in [0, 1], got dtype {array.dtype}")
    return array if array.dtype == np.float32 else array.astype(np.float32)


def analyze(
    pixels: Array, *, quantization: Mapping[int, Sequence[int]] | None = None, cell: int = DEFAULT_CELL
) -> Analysis:
    """Measure noise, blur, JPEG history and tone of an image, with per-cell maps and a quality score.

    ``pixels``: float (H, W, 3) RGB or (H, W, 1) grey in [0, 1], already EXIF-oriented.
    ``quantization``: Pillow's ``JpegImageFile.quantization`` when the file is a JPEG (the quality is then
    read exactly from the tables); otherwise JPEG history is recovered from the pixels where it survives.
    ``cell``: map cell size in pixels.
    """
    if cell < 8:
        raise ValueError("cell must be at least 8 pixels")
    image = _as_pixels(pixels)
    height, width, _ = image.shape
    rng = np.random.default_rng(SEED)
    y = luma(image)

    jpeg = estimate_jpeg(y, image, quantization, cell, rng)
    noise = estimate_noise(image, jpeg.quality, cell, rng)
    blur = estimate_blur(y, noise.luma_sigma, cell)  # the luma noise actually in the pixels
    tone = estimate_tone(image)

    points = penalties(
        noise.residual_sigma,  # the noise one sees: for JPEGs, what compression left
        blur.sigma,
        jpeg.quality,
        jpeg.blockiness,
        tone.contrast,
        tone.clipped_shadows + tone.clipped_highlights,
        tone.mean_luminance,
    )
    maps = AnalysisMaps(cell=cell, noise=noise.sigma_map, blur=blur.sigma_map, blockiness=jpeg.blockiness_map)
    return Analysis(
        width=width,
        height=height,
        noise_sigma=float(noise.sigma),
        blur_sigma=float(blur.sigma),
        jpeg_quality=jpeg.quality,
        contrast=tone.contrast,
        quality=quality_score(points),
        noise_residual=float(noise.residual_sigma),
        noise_chroma=noise.chroma_sigma,
        noise_curve=noise.curve,
        blur_edges=blur.edges,
        jpeg_source=jpeg.source,
        jpeg_grid_offset=jpeg.grid_offset,
        blockiness=jpeg.blockiness,
        mean_luminance=tone.mean_luminance,
        dynamic_range=tone.dynamic_range,
        clipped_shadows=tone.clipped_shadows,
        clipped_highlights=tone.clipped_highlights,
        penalties=points,
        maps=maps,
    )
