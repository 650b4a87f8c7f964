"""Overall quality, 0-100 (higher is better), from the measured degradations.

Each degradation costs a penalty ``P`` in points out of 100 that saturates for severe damage; the penalties
combine multiplicatively, so one severe defect dominates and several mild ones add up sub-linearly::

    quality = 100 * prod(1 - P_i / 100)

    P_noise    = 45 * (1 - exp(-sigma / 15))                 sigma: noise left in the pixels, 0-255 units
                 (noise_residual: equal to noise_sigma except in JPEGs, where it is what compression left)
                 (sigma 5 -> 12.8, 10 -> 21.9, 25 -> 36.5, 50 -> 43.4)
    P_blur     = 40 * (1 - exp(-max(0, b - 0.3) / 1.5))      b: blur_sigma, px; 0.3 px is invisible
                 (b 0.5 -> 5.1, 1 -> 15.8, 2 -> 26.8, 3 -> 33.5)
    P_jpeg     = 35 * ((100 - q) / 90) ** 1.5                q: jpeg_quality clipped to 10..100
                 (q 95 -> 0.4, 90 -> 1.3, 75 -> 5.1, 50 -> 14.5, 30 -> 23.8, 10 -> 35)
                 without a quality, 35 * clip((blockiness - 0.15) / 0.5, 0, 1): visible blocking of unknown origin
    P_contrast = 15 * clip((0.35 - contrast) / 0.35, 0, 1)    flat, hazy images
    P_clipping = 20 * clip((shadows + highlights - 0.01) / 0.2, 0, 1)   fractions of clipped pixels
    P_exposure = 10 * clip((|mean luminance - 0.45| - 0.25) / 0.2, 0, 1)

The constants are judgement, chosen so that typical damage ranks as a photographer would rank it (strong
noise or blur costs about a third, q 75 a few points); they are not fitted to any data set.
"""

from __future__ import annotations

import math


def _clip01(value: float) -> float:
    return min(max(value, 0.0), 1.0)


def penalties(
    noise_sigma: float,
    blur_sigma: float,
    jpeg_quality: int | None,
    blockiness: float,
    contrast: float,
    clipped: float,
    mean_luminance: float,
) -> dict[str, float]:
    """Points lost to each degradation (see the module docstring)."""
    if jpeg_quality is not None:
        jpeg = 35.0 * ((100.0 - min(max(jpeg_quality, 10), 100)) / 90.0) ** 1.5
    else:
        jpeg = 35.0 * _clip01((blockiness - 0.15) / 0.5)
    return {
        "noise": 45.0 * (1.0 - math.exp(-max(noise_sigma, 0.0) / 15.0)),
        "blur": 40.0 * (1.0 - math.exp(-max(0.0, blur_sigma - 0.3) / 1.5)),
        "jpeg": jpeg,
        "contrast": 15.0 * _clip01((0.35 - contrast) / 0.35),
        "clipping": 20.0 * _clip01((clipped - 0.01) / 0.2),
        "exposure": 10.0 * _clip01((abs(mean_luminance - 0.45) - 0.25) / 0.2),
    }


def quality_score(points: dict[str, float]) -> float:
    """Combine penalties multiplicatively into 0-100."""
    score = 100.0
    for value in points.values():
        score *= 1.0 - min(max(value, 0.0), 100.0) / 100.0
    return float(min(max(score, 0.0), 100.0))
