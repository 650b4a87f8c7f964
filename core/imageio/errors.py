"""Typed image errors: every bad input ends as one of these, with a message a photographer can act on."""

from __future__ import annotations

import os


class ImageError(Exception):
    """Base of every image I/O failure; ``str(error)`` is one readable sentence naming the file."""

    def __init__(self, message: str, path: str | os.PathLike[str] | None = None) -> None:
        super().__init__(message)
        self.path = None if path is None else os.fspath(path)


class UnreadableImage(ImageError):
    """The file cannot be decoded: empty, truncated, damaged, or not an image despite its name."""


class ImageNotFound(UnreadableImage):
    """The file does not exist (anymore): a watcher may treat this as "moved away" rather than as damage."""


class UnsupportedImage(ImageError):
    """A well-formed file in a format, mode or layout enhancerd does not handle."""


class ImageTooLarge(ImageError):
    """Over the pixel limit, judged from the header before any pixel is decoded (decompression bombs)."""


class ImageWriteError(ImageError):
    """The output could not be written (disk full, folder missing, encoder failure); nothing was replaced."""
