"""Tone: contrast, exposure and clipping, from a subsample of the pixels (statistics converge long before 1 MP)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .ops import LUMA_WEIGHTS, Array

MAX_SAMPLES = 250_000
UNIFORM_STD = 1.0 / math.sqrt(12.0)
"""Std of a luma histogram spread evenly over [0, 1]: the RMS contrast that reads 1."""


@dataclass(frozen=True)
class ToneStats:
    contrast: float  # RMS contrast of luma relative to an evenly spread histogram, clipped to [0, 1]
    dynamic_range: float  # 1st to 99th luma percentile, [0, 1]
    mean_luminance: float  # mean luma, [0, 1] (exposure)
    clipped_shadows: float  # fraction of pixels whose channels are all <= 1/255
    clipped_highlights: float  # fraction of pixels with any channel >= 254/255


def estimate_tone(pixels: Array) -> ToneStats:
    """Tone statistics of a float (H, W, C) image in [0, 1]."""
    height, width, channels = pixels.shape
    step = max(1, math.ceil(math.sqrt(height * width / MAX_SAMPLES)))
    sample = pixels[::step, ::step].reshape(-1, channels)
    luma = sample[:, 0] if channels == 1 else sample @ LUMA_WEIGHTS
    low, high = np.percentile(luma, [1.0, 99.0])
    return ToneStats(
        contrast=float(min(1.0, float(luma.std()) / UNIFORM_STD)),
        dynamic_range=float(high - low),
        mean_luminance=float(luma.mean()),
        clipped_shadows=float(np.mean(np.all(sample <= 1.0 / 255.0, axis=1))),
        clipped_highlights=float(np.mean(np.any(sample >= 254.0 / 255.0, axis=1))),
    )
