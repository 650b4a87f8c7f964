"""``enhancerd analyze [--json] PATH...``: measure how damaged each image is, without changing anything.

Prints a table (or, with ``--json``, one object per input per line: ``path``, ``ok: true`` and the analyser's
scores, or ``path``, ``ok: false`` and ``error`` for a file that cannot be analysed). Folders are expanded to their
image files. Exit status 0 when every input was analysed, 1 when any failed (one line per failure on stderr;
the others are still analysed), 2 for unusable options.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from daemon.commands.inputs import expand_inputs

COLUMNS = (
    ("size", 11),
    ("noise σ", 8),
    ("blur σ", 7),
    ("JPEG q", 7),
    ("contrast", 9),
    ("quality", 8),
)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "analyze",
        help="measure noise, blur, JPEG damage, contrast and overall quality of images",
        description="Score images for noise, blur, JPEG compression, contrast and overall quality (0-100).",
    )
    parser.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="image files, or folders of images")
    parser.add_argument("--json", action="store_true", help="one JSON object per input per line on stdout")
    parser.add_argument(
        "--max-megapixels",
        type=float,
        default=None,
        metavar="MP",
        help="refuse images larger than this (default: the decoder's limit)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from core.analysis import analyze
    from core.imageio import DEFAULT_MAX_PIXELS, ImageError, load_image

    if args.max_megapixels is not None and not args.max_megapixels > 0:
        print("enhancerd analyze: --max-megapixels must be more than 0", file=sys.stderr)
        return 2
    max_pixels = int(args.max_megapixels * 1e6) if args.max_megapixels else DEFAULT_MAX_PIXELS
    sources = expand_inputs(args.paths)
    if not sources:
        print("enhancerd analyze: no image files found", file=sys.stderr)
        return 1
    width = _name_width(sources)
    if not args.json:
        print(_header(width))
    failures = 0
    for source in sources:
        try:
            image = load_image(source, max_pixels=max_pixels)
            scores = analyze(image.pixels, quantization=image.jpeg_quantization).scores()
        except (ImageError, ValueError, MemoryError) as error:
            failures += 1
            message = str(error) or type(error).__name__
            print(f"enhancerd analyze: {source}: {message}" if str(source) not in message else message, file=sys.stderr)
            if args.json:
                print(json.dumps({"path": str(source), "ok": False, "error": message}), flush=True)
            continue
        if args.json:
            print(json.dumps({"path": str(source), "ok": True, **scores}), flush=True)
        else:
            print(_row(source, scores, width), flush=True)
    return 0 if failures == 0 else 1


def _name_width(sources: list[Path]) -> int:
    return max(4, *(len(str(s)) for s in sources))


def _header(width: int) -> str:
    return f"{'path':<{width}}  " + "  ".join(f"{name:>{w}}" for name, w in COLUMNS)


def _row(source: Path, scores: dict[str, Any], width: int) -> str:
    name = str(source)
    jpeg = scores["jpeg_quality"]
    cells = (
        f"{scores['width']}×{scores['height']}",
        f"{scores['noise_sigma']:.1f}",
        f"{scores['blur_sigma']:.2f}",
        "-" if jpeg is None else str(jpeg),
        f"{scores['contrast']:.2f}",
        f"{scores['quality']:.0f}",
    )
    return f"{name:<{width}}  " + "  ".join(f"{cell:>{w}}" for cell, (_, w) in zip(cells, COLUMNS))
