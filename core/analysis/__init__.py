"""Degradation analysis: noise, blur, JPEG, contrast and exposure estimators and their spatial maps.

``analyze(pixels, quantization=..., cell=32)`` is the entry point; it returns an :class:`Analysis` whose
``scores()`` are the flat numbers the CLI, the daemon and the API report, and whose ``maps`` tell the
enhancer where each degradation is. One module per estimator: ``noise``, ``blur``, ``jpeg``, ``tone``;
``quality`` documents the overall score, ``maps`` the grid, ``ops`` the shared array helpers. The analyser
uses only numpy and the standard library: no weights, no GPU, the same scores on every machine.
"""

from .analyzer import Analysis, analyze
from .blur import BlurEstimate, estimate_blur
from .jpeg import JpegEstimate, TableQuality, estimate_jpeg, ijg_table, quality_from_tables
from .maps import DEFAULT_CELL, AnalysisMaps
from .noise import NoiseEstimate, estimate_noise
from .quality import penalties, quality_score
from .tone import ToneStats, estimate_tone

__all__ = [
    "DEFAULT_CELL",
    "Analysis",
    "AnalysisMaps",
    "BlurEstimate",
    "JpegEstimate",
    "NoiseEstimate",
    "TableQuality",
    "ToneStats",
    "analyze",
    "estimate_blur",
    "estimate_jpeg",
    "estimate_noise",
    "estimate_tone",
    "ijg_table",
    "penalties",
    "quality_from_tables",
    "quality_score",
]
