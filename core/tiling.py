"""Overlapping tiles: plan them, cut them out, and stitch the model's outputs back with smooth weights.

Pure functions over arrays, so the engine, the tests and the benchmark share one definition of "tiled".

Geometry. The image is conceptually reflect-padded at the bottom and right to a *canvas* whose sides are
multiples of the model's ``multiple`` (the same padding a whole-image run uses), and tiles are windows of
that canvas whose sides and origins are multiples of ``multiple`` too: strided models (pixel-unshuffle,
stride-2 convolutions) are only translation-equivariant for such shifts. Along each axis neighbouring windows
overlap by at least ``2 * context + blend`` pixels. In an overlap, the first and last ``context`` pixels of
each window get weight 0 (they lack the context a whole-image run would have had), and the middle part
cross-fades with a raised cosine. The per-axis weights are normalised to sum to exactly 1, so the 2-D
weights (outer products) are a partition of unity and stitching needs no weight accumulator.
Invariant: if ``context`` is at least the model's receptive-field radius, the stitched output equals the
whole-image output up to float rounding.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

Array = np.ndarray


def round_up(value: int, multiple: int) -> int:
    return int(math.ceil(value / multiple) * multiple)


def round_down(value: int, multiple: int) -> int:
    return (value // multiple) * multiple


@dataclass(frozen=True)
class Span:
    """One tile's extent along one axis, in canvas coordinates: ``[start, stop)``."""

    start: int
    stop: int

    @property
    def size(self) -> int:
        return self.stop - self.start


@dataclass(frozen=True)
class Tile:
    """A window of the canvas: rows ``ys``, columns ``xs``; ``index`` is (row, column) in the grid."""

    ys: Span
    xs: Span
    index: tuple[int, int]

    @property
    def shape(self) -> tuple[int, int]:
        return (self.ys.size, self.xs.size)


@dataclass(frozen=True)
class TilePlan:
    """Tiles covering an image of ``height`` x ``width`` and how to weight them when stitching."""

    height: int
    width: int
    canvas: tuple[int, int]
    rows: tuple[Span, ...]
    cols: tuple[Span, ...]
    context: int
    blend: int

    @property
    def tiles(self) -> list[Tile]:
        return [Tile(ys, xs, (r, c)) for r, ys in enumerate(self.rows) for c, xs in enumerate(self.cols)]

    @property
    def tile_shapes(self) -> set[tuple[int, int]]:
        return {(ys.size, xs.size) for ys in self.rows for xs in self.cols}

    def axis_weights(self, axis: int, scale: int = 1) -> list[Array]:
        """Normalised 1-D weights for each span along ``axis`` (0 rows, 1 columns), at output ``scale``."""
        spans = self.rows if axis == 0 else self.cols
        return axis_weights(spans, self.context, scale)

    def weights(self, tile: Tile, scale: int = 1) -> Array:
        """2-D stitching weights (float32, tile shape x ``scale``) of one tile; see :func:`axis_weights`."""
        wy = self.axis_weights(0, scale)[tile.index[0]]
        wx = self.axis_weights(1, scale)[tile.index[1]]
        return np.outer(wy, wx).astype(np.float32)


def plan_axis(
    length: int,
    tile: int,
    context: int,
    blend: int,
    multiple: int,
    minimum: int = 0,
    bucket: int = 0,
    fit: bool = True,
) -> list[Span]:
    """Equal spans of at most ``tile`` pixels covering ``round_up(length, multiple)``, overlapping by enough.

    The number of spans is the fewest that ``tile`` allows; with ``fit`` the spans then shrink to the smallest
    size that still covers the side with that many (a 2304 px side takes two 1264 px tiles, not two of 2048).
    All spans of an axis share one size (the last is shifted back, never shrunk), so an image's tiles batch
    together; positions are spread evenly. A side that fits in one tile is padded up to a multiple of
    ``bucket`` (if given), so small images of similar sizes share a shape and can be batched together.
    """
    if length <= 0:
        raise ValueError("image sides must be positive")
    tile = round_down(tile, multiple)
    canvas = max(round_up(length, multiple), round_up(minimum, multiple))
    if bucket > 0:
        bucketed = max(round_up(length, round_up(bucket, multiple)), canvas)
        canvas = bucketed if bucketed <= tile else canvas
    if canvas <= tile:
        return [Span(0, canvas)]
    overlap = 2 * context + blend
    stride = round_down(tile - overlap, multiple)
    if stride < multiple:
        raise ValueError(
            f"tile {tile} is too small for context {context} and blend {blend} "
            f"(needs at least {round_up(overlap + multiple, multiple)})"
        )
    count = math.ceil((canvas - tile) / stride) + 1
    if fit:  # the smallest tile that still needs only `count` spans: less overlap computed twice
        size = round_up(math.ceil((canvas + (count - 1) * overlap) / count), multiple)
        while size < tile and not _overlaps_enough(_starts(canvas, size, count, multiple), size, overlap):
            size += multiple
        tile = min(size, tile)
    return [Span(start, start + tile) for start in _starts(canvas, tile, count, multiple)]


def _starts(canvas: int, tile: int, count: int, multiple: int) -> list[int]:
    """``count`` span origins, multiples of ``multiple``, spread evenly from 0 to ``canvas - tile``."""
    spread = (canvas - tile) / (count - 1)
    return [round_down(int(i * spread), multiple) for i in range(count - 1)] + [canvas - tile]


def _overlaps_enough(starts: list[int], tile: int, overlap: int) -> bool:
    return all(tile - (after - before) >= overlap for before, after in itertools.pairwise(starts))


def plan_tiles(
    height: int,
    width: int,
    *,
    tile: int,
    context: int,
    blend: int = 16,
    multiple: int = 1,
    minimum: int = 0,
    square: bool = False,
    bucket: int = 0,
    fit: bool = True,
) -> TilePlan:
    """Plan tiles for an image; ``tile`` is the window side (input pixels, context included).

    ``context`` is the number of pixels at each interior tile edge whose output is discarded (set it to the
    model's receptive-field radius for exact results), ``blend`` the width of the cross-fade beyond it.
    ``minimum`` and ``square`` mirror spandrel's size requirements (small images are reflect-padded up);
    ``bucket`` rounds single-tile sides up so similar small images share a shape; ``fit`` shrinks tiles to
    what their count needs (see :func:`plan_axis`).
    """
    if min(tile, multiple) < 1 or min(context, blend) < 0:
        raise ValueError("tile and multiple must be positive, context and blend non-negative")
    if square:  # pad the short side up to the long one, or to a full tile where the long side needs tiling
        longest = max(round_up(height, multiple), round_up(width, multiple))
        minimum = max(minimum, min(longest, round_down(tile, multiple)))
    rows = plan_axis(height, tile, context, blend, multiple, minimum, bucket, fit and not square)
    cols = plan_axis(width, tile, context, blend, multiple, minimum, bucket, fit and not square)
    if square and rows[0].size != cols[0].size:
        raise ValueError("a square-only model needs square tiles; use a tile size that fits both sides")
    canvas = (rows[-1].stop, cols[-1].stop)
    return TilePlan(height, width, canvas, tuple(rows), tuple(cols), context, blend)


def _ramp(length: int) -> Array:
    """Raised cosine rising from (almost) 0 to (almost) 1 over ``length`` samples, in float64."""
    if length <= 0:
        return np.zeros(0)
    positions = (np.arange(length) + 0.5) / length
    return 0.5 - 0.5 * np.cos(np.pi * positions)


def axis_weights(spans: tuple[Span, ...] | list[Span], context: int, scale: int = 1) -> list[Array]:
    """Per-span 1-D weights: 0 on the ``context`` pixels at interior edges, cosine cross-fades, summing to 1."""
    raw = []
    for index, span in enumerate(spans):
        weight = np.ones(span.size * scale)
        if index > 0:  # overlap with the previous span: [span.start, previous.stop)
            overlap = (spans[index - 1].stop - span.start) * scale
            margin = context * scale
            weight[:margin] = 0.0
            fade = max(overlap - 2 * margin, 0)
            weight[margin : margin + fade] = _ramp(fade)
        if index < len(spans) - 1:  # overlap with the next span: [next.start, span.stop)
            overlap = (span.stop - spans[index + 1].start) * scale
            margin = context * scale
            fade = max(overlap - 2 * margin, 0)
            end = span.size * scale
            if margin:
                weight[end - margin :] = 0.0
            weight[end - margin - fade : end - margin] = np.minimum(
                weight[end - margin - fade : end - margin], _ramp(fade)[::-1]
            )
        raw.append(weight)
    # Normalise so the weights of all spans sum to exactly 1 at every position.
    total = np.zeros(spans[-1].stop * scale)
    for span, weight in zip(spans, raw):
        total[span.start * scale : span.stop * scale] += weight
    if np.any(total <= 0):
        raise ValueError("tile spans leave positions without weight; overlap is smaller than 2 * context")
    return [
        (weight / total[span.start * scale : span.stop * scale]).astype(np.float32) for span, weight in zip(spans, raw)
    ]


def reflect_indices(start: int, stop: int, length: int) -> Array:
    """Indices ``start..stop-1`` folded back into ``[0, length)`` by mirror reflection (edge not repeated)."""
    indices = np.arange(start, stop)
    if length == 1:
        return np.zeros_like(indices)
    period = 2 * (length - 1)
    folded = np.mod(indices, period)
    return np.where(folded < length, folded, period - folded)


def extract(image: Array, tile: Tile) -> Array:
    """The tile's window of the canvas as a new (h, w, C) array; parts beyond the image are reflections."""
    height, width = image.shape[:2]
    ys, xs = tile.ys, tile.xs
    if ys.stop <= height and xs.stop <= width:
        return np.ascontiguousarray(image[ys.start : ys.stop, xs.start : xs.stop])
    rows = reflect_indices(ys.start, ys.stop, height)
    cols = reflect_indices(xs.start, xs.stop, width)
    return np.ascontiguousarray(image[rows[:, None], cols[None, :]])


def pad_to_canvas(image: Array, canvas: tuple[int, int]) -> Array:
    """The whole canvas (reflect-padded image): the input a whole-image run gives the model."""
    tile = Tile(Span(0, canvas[0]), Span(0, canvas[1]), (0, 0))
    return extract(image, tile)


def accumulate(target: Array, plan: TilePlan, tile: Tile, output: Array, scale: int = 1) -> None:
    """Add ``output`` (the model's result for ``tile``) times its weights into ``target`` in place.

    ``target`` is the float32 output image (height*scale, width*scale, C), zero-initialised; rows and columns
    of the tile beyond the image (canvas padding) are dropped.
    """
    out_h, out_w = target.shape[:2]
    y0, x0 = tile.ys.start * scale, tile.xs.start * scale
    y1, x1 = min(tile.ys.stop * scale, out_h), min(tile.xs.stop * scale, out_w)
    if y1 <= y0 or x1 <= x0:
        return
    wy = plan.axis_weights(0, scale)[tile.index[0]][: y1 - y0]
    wx = plan.axis_weights(1, scale)[tile.index[1]][: x1 - x0]
    part = output[: y1 - y0, : x1 - x0]
    region = target[y0:y1, x0:x1]
    region += part * wy[:, None, None] * wx[None, :, None]
