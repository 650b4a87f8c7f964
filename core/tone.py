"""A gentle global tone correction, used only when the analyser reports low contrast or clipped exposure.

A mild percentile stretch (the 0.5th and 99.5th luma percentiles move apart by at most :attr:`max_gain`, never
into clipping) plus, for under- or over-exposed images, a mild gamma. It is one monotone curve for the whole
image, so it cannot create halos or change local detail; strength scales it like the rest of the enhancement.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

Array = np.ndarray


@dataclass(frozen=True)
class ToneSettings:
    """When and how much to correct; defaults are deliberately mild."""

    low_contrast: float = 0.2
    """Analyser contrast (0-1) below which the stretch is applied."""
    clipped_fraction: float = 0.02
    """Share of pixels at the black or white end that counts as clipping."""
    max_gain: float = 1.25
    """Largest stretch of the percentile range."""
    target_range: tuple[float, float] = (0.03, 0.97)
    """The stretched percentiles never go beyond these levels (no new clipping)."""
    max_gamma_shift: float = 0.12
    """Gamma moves at most this far from 1 (lift shadows of dark images, tame bright ones)."""
    sample: int = 250_000


@dataclass(frozen=True)
class ToneCurve:
    """``v -> ((v - low) * gain + out_low) ** gamma`` on all channels, clipped to [0, 1]."""

    low: float
    gain: float
    out_low: float
    gamma: float

    def is_identity(self) -> bool:
        return abs(self.gain - 1.0) < 1e-3 and abs(self.low - self.out_low) < 1e-3 and abs(self.gamma - 1.0) < 1e-3


def _luma_sample(pixels: Array, count: int) -> Array:
    flat = pixels.reshape(-1, pixels.shape[2])
    step = max(1, flat.shape[0] // count)
    sample = flat[::step]
    if sample.shape[1] == 3:
        return sample @ np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)
    return sample[:, 0]


def _reported(analysis: Any, name: str) -> float | None:
    value = getattr(analysis, name, None)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def plan_tone(analysis: Any, pixels: Array, settings: ToneSettings | None = None) -> ToneCurve | None:
    """The curve for an image, or None when the analyser saw neither low contrast nor clipping."""
    if analysis is None:  # no analysis, no evidence: leave the tones alone
        return None
    s = settings or ToneSettings()
    contrast = _reported(analysis, "contrast")
    luma = _luma_sample(pixels, s.sample)
    dark = _reported(analysis, "clipped_shadows")
    bright = _reported(analysis, "clipped_highlights")
    if dark is None:
        dark = float(np.mean(luma <= 1.0 / 255.0))
    if bright is None:
        bright = float(np.mean(luma >= 254.0 / 255.0))
    low_contrast = contrast is not None and contrast < s.low_contrast
    clipped = max(dark, bright) > s.clipped_fraction
    if not (low_contrast or clipped):
        return None
    p_low, p_high = (float(v) for v in np.percentile(luma, [0.5, 99.5]))
    gain, out_low = 1.0, p_low
    spread = p_high - p_low
    if low_contrast and spread > 1e-3:
        width = s.target_range[1] - s.target_range[0]
        gain = max(1.0, min(s.max_gain, width / spread))
        stretched = spread * gain
        centre = 0.5 * (p_low + p_high)
        out_low = float(
            np.clip(centre - 0.5 * stretched, s.target_range[0], max(s.target_range[0], s.target_range[1] - stretched))
        )
    gamma = 1.0
    if clipped:
        median = float(np.median(luma))
        if dark > bright and median < 0.4:  # under-exposed: lift mid-tones
            gamma = 1.0 - s.max_gamma_shift * min(1.0, (0.4 - median) / 0.2)
        elif bright > dark and median > 0.6:  # over-exposed: bring mid-tones down
            gamma = 1.0 + s.max_gamma_shift * min(1.0, (median - 0.6) / 0.2)
    curve = ToneCurve(p_low, gain, out_low, gamma)
    return None if curve.is_identity() else curve


def apply_tone(pixels: Array, curve: ToneCurve, strength: float = 1.0, rows: int = 512) -> Array:
    """Apply ``curve`` in place (strips of ``rows``), mixed with the input by ``strength``; returns ``pixels``."""
    if strength <= 0:
        return pixels
    for top in range(0, pixels.shape[0], rows):
        block = pixels[top : top + rows]
        toned = (block - curve.low) * curve.gain + curve.out_low
        np.clip(toned, 0.0, 1.0, out=toned)
        if curve.gamma != 1.0:
            np.power(toned, curve.gamma, out=toned)
        if strength < 1.0:
            toned = block + strength * (toned - block)
        block[...] = toned
    return pixels
