"""Measure a model's *effective* receptive field: the tile context that makes tiling invisible in 8-bit output.

    python -m core.receptive [--model FILE] [--images DIR] [--limit N]

The theoretical receptive field of the built-in U-Net is 576 px wide, but a trained network's output hardly
depends on pixels that far away. For a context ``d`` we tile with *hard* seams (blend 0: the worst case) and
compare with the whole-image output; the effective context is the smallest ``d`` whose largest difference is
below 1/255 on damaged photos (noise, JPEG). :data:`core.descriptor.BUILTIN_CONTEXT` records the result.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch

from core.descriptor import ModelDescriptor
from core.engine import Engine, EngineSettings
from core.tiling import pad_to_canvas, round_up


def whole_image(descriptor: ModelDescriptor, image: np.ndarray) -> np.ndarray:
    """The reference: the whole image, reflect-padded to the tile multiple, in one forward pass (fp32)."""
    multiple = descriptor.tile_multiple
    height, width = image.shape[:2]
    canvas = pad_to_canvas(image, (round_up(height, multiple), round_up(width, multiple)))
    with torch.inference_mode():
        tensor = torch.from_numpy(np.ascontiguousarray(canvas)).permute(2, 0, 1)[None]
        output = descriptor.model(tensor)[0].permute(1, 2, 0).numpy()
    return output[: height * descriptor.scale, : width * descriptor.scale]


def tiling_error(descriptor: ModelDescriptor, image: np.ndarray, context: int, reference: np.ndarray) -> float:
    """Largest |tiled - whole| with hard seams and ``context`` pixels per side (fp32, CPU)."""
    multiple = descriptor.tile_multiple
    tile = round_up(2 * context + 4 * multiple, multiple)
    engine = Engine(descriptor, EngineSettings(device="cpu", precision="fp32", tile=tile, context=context, blend=0))
    return float(np.abs(engine.restore(image) - reference).max())


def measure_context(
    descriptor: ModelDescriptor, images: Iterable[np.ndarray], threshold: float = 1 / 255, step: int = 8
) -> dict[int, float]:
    """Worst tiled-vs-whole difference for contexts 0, step, 2*step, ... until all images are below threshold."""
    images = list(images)
    references = [whole_image(descriptor, image) for image in images]
    errors: dict[int, float] = {}
    context = 0
    while True:
        errors[context] = max(tiling_error(descriptor, im, context, ref) for im, ref in zip(images, references))
        if errors[context] < threshold or context > 512:
            return errors
        context += step


def _damaged_photos(folder: Path, limit: int) -> list[np.ndarray]:
    from PIL import Image

    from core.degrade import gaussian_noise, jpeg_compress, quantize

    rng = np.random.default_rng(0)
    paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in {".png", ".jpg", ".jpeg", ".bmp"})[:limit]
    photos = []
    for index, path in enumerate(paths):
        with Image.open(path) as opened:
            clean = np.asarray(opened.convert("RGB"), dtype=np.float32) / 255.0
        if index % 3 == 0:
            photos.append(jpeg_compress(clean, 10))
        else:
            photos.append(quantize(gaussian_noise(clean, 25.0 if index % 3 == 1 else 50.0, rng)))
    return photos


def main(argv: list[str] | None = None) -> int:
    from core.model_loader import load_model

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--images", type=Path, default=Path("../shared/datasets/val/CBSD68"))
    parser.add_argument("--limit", type=int, default=6)
    args = parser.parse_args(argv)
    descriptor = load_model(args.model)
    errors = measure_context(descriptor, _damaged_photos(args.images, args.limit))
    print("| context (px per side) | max abs difference (x255) |")
    print("|---:|---:|")
    for context, error in errors.items():
        print(f"| {context} | {error * 255:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
