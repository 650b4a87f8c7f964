"""How much memory a batch of tiles may use: free VRAM on CUDA, available RAM on CPU, and a per-tile estimate.

The estimate only has to be the right order of magnitude: the engine answers an out-of-memory error by
splitting (see :mod:`core.autosplit`), so a too-large batch costs one retry, not an image.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

FALLBACK_FREE_BYTES: int = 4 * 1024**3
"""Assumed free memory where the platform does not say (MPS, non-Linux CPUs)."""

SAFETY_FACTOR: float = 2.0
"""Allocator fragmentation, convolution workspaces and autocast copies on top of the activation count."""


def free_memory_bytes(device: torch.device) -> int:
    """Memory the next batch can use now: free VRAM on CUDA, MemAvailable on Linux CPUs."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    if device.type == "cpu":
        meminfo = Path("/proc/meminfo")
        if meminfo.exists():
            for line in meminfo.read_text().splitlines():
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
        try:
            return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
        except (ValueError, OSError, AttributeError):
            return FALLBACK_FREE_BYTES
    return FALLBACK_FREE_BYTES


def bytes_per_item(
    height: int,
    width: int,
    *,
    features_per_pixel: float,
    channels_in: int,
    channels_out: int,
    scale: int,
    activation_bytes: int,
) -> int:
    """Estimated peak bytes one (height x width) input costs in a forward pass, inputs and outputs included."""
    pixels = height * width
    activations = pixels * features_per_pixel * activation_bytes * SAFETY_FACTOR
    io = pixels * 4 * (channels_in + channels_out * scale * scale) * 2  # float32 host + device copies
    return int(activations + io)


def batch_from_budget(per_item: int, budget: int, cap: int) -> int:
    """Items per batch that fit in ``budget`` bytes, between 1 and ``cap``."""
    if per_item <= 0:
        return cap
    return max(1, min(cap, budget // per_item))
