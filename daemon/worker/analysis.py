"""Which analyser scores the images: ``core.analysis.analyze`` when the package provides it, else a basic one.

The basic analyser reports only what decoding already knows (size), so the daemon keeps enhancing and recording
outputs on an installation whose analysis module is missing or broken; the status says which one is in use.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

Analyse = Callable[[np.ndarray, Any], Any]
"""``analyse(pixels, quantization) -> Analysis`` with ``scores()`` (and optionally ``maps`` for the blend)."""


@dataclass(frozen=True)
class BasicAnalysis:
    """Size only; no damage maps (the blend then applies the strength uniformly)."""

    width: int
    height: int
    maps: None = None

    def scores(self) -> dict[str, Any]:
        return {"width": self.width, "height": self.height, "megapixels": round(self.width * self.height / 1e6, 4)}


def basic_analyse(pixels: np.ndarray, quantization: Any = None) -> BasicAnalysis:
    return BasicAnalysis(width=int(pixels.shape[1]), height=int(pixels.shape[0]))


def resolve_analyse() -> tuple[Analyse, str]:
    """The analyser and its name (``core.analysis`` or ``basic``), chosen once at start-up."""
    try:
        from core.analysis import analyze  # noqa: F401  only probing that it exists
    except ImportError as error:
        log.warning("core.analysis.analyze is not available (%s): recording basic scores (size) only", error)
        return basic_analyse, "basic"
    from core.pipeline import default_analyse

    return default_analyse, "core.analysis"
