"""Turning the PATH arguments of the one-off commands (``analyze``, ``enhance``) into a list of image files."""

from __future__ import annotations

from pathlib import Path

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".tif", ".tiff", ".webp", ".bmp", ".gif"})


def expand_inputs(paths: list[Path]) -> list[Path]:
    """Files as given (a missing one fails on its own, like an unreadable one); folders as their image files."""
    sources: list[Path] = []
    for path in paths:
        if path.is_dir():
            sources.extend(sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES))
        else:
            sources.append(path)
    return sources
