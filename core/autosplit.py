"""Out of memory is a value, not a failure: halve the batch, then the tile, then fall back (chaiNNer's idea).

``run_split`` is pure control flow over a caller-supplied ``infer`` that returns either outputs or
:class:`OutOfMemory`; the engine supplies the torch part, tests supply a fake, so the path runs on CPU.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from core.tiling import TilePlan, accumulate, extract

Array = np.ndarray


@dataclass(frozen=True)
class OutOfMemory:
    """An attempt did not fit in memory; ``message`` is the allocator's explanation."""

    message: str


@dataclass
class SplitCounts:
    """How often memory forced smaller work: batch halvings, tile splits, and CPU fallbacks."""

    batches: int = 0
    tiles: int = 0
    fallbacks: int = 0

    @property
    def total(self) -> int:
        return self.batches + self.tiles + self.fallbacks


Infer = Callable[[list[Array]], "list[Array] | OutOfMemory"]
SplitTile = Callable[[Array], "TilePlan | None"]


def is_out_of_memory(error: BaseException) -> bool:
    """CUDA's OutOfMemoryError, or the CPU allocator's RuntimeError for the same condition."""
    if isinstance(error, torch.cuda.OutOfMemoryError):
        return True
    message = str(error)
    return isinstance(error, RuntimeError) and (
        "can't allocate memory" in message or "out of memory" in message.lower()
    )


def run_split(
    items: list[Array],
    infer: Infer,
    split_tile: SplitTile,
    *,
    scale: int,
    channels_out: int,
    counts: SplitCounts,
    fallback: Infer | None = None,
) -> list[Array]:
    """Outputs of ``infer(items)``; on :class:`OutOfMemory` the work is split until it fits.

    Order of retreat: halve the batch; for a single item, re-tile it with ``split_tile`` (a plan of smaller
    tiles, or None when no smaller tile is possible) and stitch; then ``fallback`` (e.g. the CPU) if given.
    Raises MemoryError only when all of that fails.
    """
    result = infer(items)
    if not isinstance(result, OutOfMemory):
        return result
    if len(items) > 1:
        counts.batches += 1
        half = len(items) // 2
        kwargs = {"scale": scale, "channels_out": channels_out, "counts": counts, "fallback": fallback}
        return run_split(items[:half], infer, split_tile, **kwargs) + run_split(
            items[half:], infer, split_tile, **kwargs
        )
    item = items[0]
    plan = split_tile(item)
    if plan is not None and len(plan.tiles) > 1:
        counts.tiles += 1
        height, width = item.shape[:2]
        output = np.zeros((height * scale, width * scale, channels_out), dtype=np.float32)
        for tile in plan.tiles:
            (part,) = run_split(
                [extract(item, tile)],
                infer,
                split_tile,
                scale=scale,
                channels_out=channels_out,
                counts=counts,
                fallback=fallback,
            )
            accumulate(output, plan, tile, part, scale)
        return [output]
    if fallback is not None:
        counts.fallbacks += 1
        rescued = fallback(items)
        if not isinstance(rescued, OutOfMemory):
            return rescued
        raise MemoryError(f"a single smallest tile does not fit, even on the fallback device: {rescued.message}")
    raise MemoryError(f"a single smallest tile does not fit in memory: {result.message}")
