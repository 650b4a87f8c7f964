"""Pictures the API draws: downscaled before/after previews (JPEG) and degradation heatmaps (PNG).

Pure functions from files to encoded bytes, so they are tested without Flask. JPEGs are decoded with Pillow's draft
mode (the decoder scales by 1/2..1/8 for free), other formats through :func:`core.imageio.load_image`, which knows
16-bit and CMYK; every picture is turned upright by its EXIF orientation.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

GAP = 8
"""Pixels between the before and after halves of a preview."""

BACKGROUND = (32, 32, 32)
PREVIEW_QUALITY = 85

HEATMAP_MAPS = ("damage", "noise", "blur", "blockiness")
"""``damage`` is what the blender acts on: the largest of the three maps, each ramped from clean (0) to damaged (1)."""


class TooLarge(ValueError):
    """The picture exceeds the configured pixel limit."""


def thumbnail(path: Path, max_side: int, max_pixels: int) -> Any:
    """An upright RGB ``PIL.Image`` fitting in ``max_side`` x ``max_side``."""
    from PIL import Image, ImageOps

    from core.imageio import READ_FORMATS, load_image

    try:
        opened = Image.open(path, formats=list(READ_FORMATS))
    except Image.DecompressionBombError as exc:  # Pillow's own limit, before ours could look
        raise TooLarge(str(exc)) from None
    with opened as image:
        if image.width * image.height > max_pixels:
            raise TooLarge(f"{image.width}x{image.height} is more than {max_pixels} pixels")
        if image.format in ("JPEG", "MPO") and image.mode in ("RGB", "L", "CMYK", "YCbCr"):
            image.draft("RGB", (max_side, max_side))
            upright = ImageOps.exif_transpose(image).convert("RGB")
            upright.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
            return upright
    data = load_image(path, max_pixels=max_pixels)
    pixels = np.repeat(data.pixels, 3, axis=2) if data.pixels.shape[2] == 1 else data.pixels
    picture = Image.fromarray(np.clip(pixels * 255.0 + 0.5, 0, 255).astype(np.uint8), "RGB")
    picture.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    return picture


def side_by_side(before: Any | None, after: Any) -> bytes:
    """``before | after`` at a common height as JPEG (only ``after`` when the original is gone)."""
    from PIL import Image

    sides = [side for side in (before, after) if side is not None]
    height = min(side.height for side in sides)
    scaled = [
        side if side.height == height else side.resize((max(1, round(side.width * height / side.height)), height))
        for side in sides
    ]
    width = sum(side.width for side in scaled) + GAP * (len(scaled) - 1)
    canvas = Image.new("RGB", (width, height), BACKGROUND)
    x = 0
    for side in scaled:
        canvas.paste(side, (x, 0))
        x += side.width + GAP
    buffer = io.BytesIO()
    canvas.save(buffer, "JPEG", quality=PREVIEW_QUALITY, optimize=True)
    return buffer.getvalue()


def heatmap(
    path: Path, analyse: Callable[..., Any], which: str, overlay: bool, max_side: int, max_pixels: int
) -> bytes:
    """The analyser's ``which`` map of the image at ``path`` as a PNG: over a grey copy of the photo (``overlay``),
    or alone, one block per analysis cell."""
    from PIL import Image

    from core.blend import BlendSettings, smoothstep, upsample_grid
    from core.imageio import load_image

    data = load_image(path, max_pixels=max_pixels)
    maps = analyse(data.pixels, data.jpeg_quantization).maps
    s = BlendSettings()
    ramps = {
        "noise": lambda: smoothstep(np.asarray(maps.noise, np.float32), s.noise_clean, s.noise_damaged),
        "blur": lambda: smoothstep(np.asarray(maps.blur, np.float32), s.blur_clean, s.blur_damaged),
        "blockiness": lambda: smoothstep(
            np.asarray(maps.blockiness, np.float32), s.blockiness_clean, s.blockiness_damaged
        ),
    }
    grid = (
        np.maximum(np.maximum(ramps["noise"](), ramps["blur"]()), ramps["blockiness"]())
        if which == "damage"
        else ramps[which]()
    )
    grid = np.nan_to_num(grid)
    scale = min(1.0, max_side / max(data.width, data.height))
    width, height = max(1, round(data.width * scale)), max(1, round(data.height * scale))
    if overlay:
        values = upsample_grid(grid, float(maps.cell) * scale, height, width)
        grey = data.pixels.mean(axis=2)
        base = np.asarray(
            Image.fromarray(np.clip(grey * 255.0 + 0.5, 0, 255).astype(np.uint8), "L").resize((width, height)),
            np.float32,
        )[..., None].repeat(3, axis=2)
        alpha = (0.65 * values)[..., None]
        picture = base * (1.0 - alpha) + _colours(values) * alpha
    else:
        rows = np.minimum((np.arange(height) / scale / float(maps.cell)).astype(int), grid.shape[0] - 1)
        cols = np.minimum((np.arange(width) / scale / float(maps.cell)).astype(int), grid.shape[1] - 1)
        picture = _colours(grid[np.ix_(rows, cols)])
    buffer = io.BytesIO()
    Image.fromarray(np.clip(picture + 0.5, 0, 255).astype(np.uint8), "RGB").save(buffer, "PNG", optimize=True)
    return buffer.getvalue()


_STOPS = ((0.0, 0, 0, 0), (0.35, 120, 28, 109), (0.7, 237, 105, 37), (1.0, 252, 255, 164))
"""A magma-like ramp: clean is black, damage goes through purple and orange to pale yellow."""


def _colours(values: np.ndarray) -> np.ndarray:
    stops = np.asarray(_STOPS, np.float32)
    v = np.clip(values, 0.0, 1.0)
    return np.stack([np.interp(v, stops[:, 0], stops[:, channel]) for channel in (1, 2, 3)], axis=-1)
