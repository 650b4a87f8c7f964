"""The enhancement pipeline of ``core.pipeline`` cut into its stages, so the worker can run them on a thread pool.

``core.pipeline.enhance_images`` decodes on the thread that drives the engine and reports failures as text; the
daemon needs decoding overlapped with the engine and the typed error (to tell a damaged file from a full disk). The
stage functions below reuse the pipeline's own pieces (its prepared-image record and its finisher: blend, tone,
encode, analysis of the output), so ``enhancerd enhance`` and the daemon produce the same files. They are the only
place that touches those pieces; see the report of issue 5 for the public API that would replace this module.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from core import pipeline as core_pipeline
from core.imageio import load_image
from core.pipeline import EnhanceRequest, EnhanceResult, Timings

Prepared = Any
"""``core.pipeline._Prepared``: a decoded, analysed image with its request, strength and timings."""


class AnalysisFailed(Exception):
    """The analyser raised on a decoded image (a bug, not a property of the file: retried, then failed)."""


def prepare(request: EnhanceRequest, *, strength: float, analyse: Any, max_pixels: int) -> Prepared:
    """Decode and analyse one image (runs on a pool thread). Raises the decoder's typed ``ImageError``."""
    started = time.perf_counter()
    image = load_image(request.source, max_pixels=max_pixels)
    decoded = time.perf_counter()
    try:
        analysis = analyse(image.pixels, image.jpeg_quantization)
    except Exception as error:
        raise AnalysisFailed(f"{request.source}: analysis failed: {error}") from error
    timings = Timings(decode=decoded - started, analysis=time.perf_counter() - decoded)
    return core_pipeline._Prepared(0, request, image, analysis, strength, timings)


def finish(
    prepared: Prepared,
    restored: np.ndarray | None,
    *,
    model_seconds: float = 0.0,
    tiles: int = 0,
    analyse: Any,
    jpeg_quality: int | None,
) -> EnhanceResult:
    """Blend, tone, encode atomically to ``prepared.request.output``, analyse the output (runs on a pool thread).

    ``restored`` None means strength 0: the input is written unchanged. Never raises: failures come back as a result
    with ``ok`` False.
    """
    finisher = core_pipeline._Finisher(analyse, True, None, jpeg_quality, None)
    if restored is None:
        return finisher.without_model(prepared)
    return finisher.with_model(prepared, restored, model_seconds, tiles)


def strength_of(prepared: Prepared) -> float:
    return float(prepared.strength)


def pixels_of(prepared: Prepared) -> np.ndarray:
    return prepared.image.pixels
