"""Which analyser scores the images: ``core.analysis.analyze`` (through the pipeline's adapter)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

Analyse = Callable[[np.ndarray, Any], Any]
"""``analyse(pixels, quantization) -> Analysis`` with ``scores()`` (and optionally ``maps`` for the blend)."""


def resolve_analyse() -> tuple[Analyse, str]:
    """The analyser and the name the status reports for it."""
    from core.pipeline import default_analyse

    return default_analyse, "core.analysis"
