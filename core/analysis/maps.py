"""Coarse spatial maps of the degradations: one value per ``cell`` x ``cell`` pixel cell.

The grid is ``ceil(height / cell)`` rows by ``ceil(width / cell)`` columns; cell (r, c) covers pixels
``[r * cell, (r + 1) * cell) x [c * cell, (c + 1) * cell)``, the last row and column possibly partial.
Use :func:`upsample` to get a per-pixel map (nearest cell) for blending.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .ops import Array

DEFAULT_CELL = 32


@dataclass(frozen=True)
class AnalysisMaps:
    """Per-cell estimates; every array is (rows, cols) float32.

    * ``noise``: local noise sigma in 0-255 units, per RGB channel. Where the image shows JPEG compression
      this is the noise left in the pixels (the global ``noise_sigma`` estimates it before compression).
      Cells with no usable patches (saturated) take the global residual value.
    * ``blur``: local Gaussian-equivalent blur sigma in px; NaN where the cell has no measurable step edge
      (flat or textured areas): no evidence either way.
    * ``blockiness``: JPEG blocking strength in [0, 1] on the image's 8x8 grid (0 where there is none).
    """

    cell: int
    noise: Array
    blur: Array
    blockiness: Array

    @property
    def shape(self) -> tuple[int, int]:
        return self.noise.shape

    def upsample(self, name: str, height: int, width: int) -> Array:
        """(height, width) nearest-cell view of one map, for per-pixel blending."""
        grid = getattr(self, name)
        rows = np.minimum(np.arange(height) // self.cell, grid.shape[0] - 1)
        cols = np.minimum(np.arange(width) // self.cell, grid.shape[1] - 1)
        return grid[rows[:, None], cols[None, :]]
