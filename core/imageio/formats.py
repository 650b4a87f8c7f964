"""Which formats enhancerd reads and writes, how they are named, and content sniffing."""

from __future__ import annotations

import os
import struct
from pathlib import Path
from types import MappingProxyType
from typing import IO

from PIL import (  # noqa: F401  imported to register exactly these decoders with Image.open
    BmpImagePlugin,
    GifImagePlugin,
    Image,
    ImageFile,
    JpegImagePlugin,
    MpoImagePlugin,
    PngImagePlugin,
    TiffImagePlugin,
    WebPImagePlugin,
)

from .errors import UnsupportedImage

READ_FORMATS: tuple[str, ...] = ("JPEG", "PNG", "TIFF", "WEBP", "BMP", "GIF")
"""Formats :func:`load_image` accepts (Pillow names; MPO, the multi-picture JPEG of phones, is read as JPEG)."""

WRITE_FORMATS: tuple[str, ...] = ("JPEG", "PNG", "TIFF", "WEBP", "BMP")
"""Formats :func:`save_image` writes. GIF is read-only: its output format is PNG (see :func:`output_format`)."""

PILLOW_READ_FORMATS: tuple[str, ...] = ("JPEG", "PNG", "TIFF", "WEBP", "BMP", "GIF")
"""The Pillow plugins tried when opening (JPEG also yields MPO): fewer parsers exposed to untrusted files."""

_ALIASES = MappingProxyType({"JPG": "JPEG", "JPE": "JPEG", "MPO": "JPEG", "TIF": "TIFF", "DIB": "BMP"})

_EXTENSIONS = MappingProxyType({"JPEG": ".jpg", "PNG": ".png", "TIFF": ".tif", "WEBP": ".webp", "BMP": ".bmp"})

_SUFFIXES = MappingProxyType(
    {
        ".jpg": "JPEG",
        ".jpeg": "JPEG",
        ".jpe": "JPEG",
        ".jfif": "JPEG",
        ".png": "PNG",
        ".tif": "TIFF",
        ".tiff": "TIFF",
        ".webp": "WEBP",
        ".bmp": "BMP",
        ".dib": "BMP",
        ".gif": "GIF",
    }
)

_SUPPORTED_LIST = "JPEG, PNG, TIFF, WebP, BMP and GIF"


def normalize_format(name: str) -> str:
    """Canonical upper-case name for a Pillow format name or a user's spelling ("jpg", "tif", "MPO" ...)."""
    upper = name.strip().lstrip(".").upper()
    return _ALIASES.get(upper, upper)


def format_for_suffix(path: str | os.PathLike[str]) -> str | None:
    """The format a file name's suffix promises (".jpg" -> "JPEG"), or None for an unknown suffix."""
    return _SUFFIXES.get(Path(path).suffix.lower())


def output_format(format: str) -> str:
    """The format :func:`save_image` writes to keep a source of ``format`` ("same"): GIF becomes PNG.

    GIF holds only 256 colours, so writing an enhanced photo back to GIF would undo the enhancement.
    """
    name = normalize_format(format)
    if name == "GIF":
        return "PNG"
    if name not in WRITE_FORMATS:
        raise UnsupportedImage(f"Cannot write {format!r} images: enhancerd writes JPEG, PNG, TIFF, WebP and BMP.")
    return name


def format_extension(format: str) -> str:
    """Extension (with its dot) of outputs kept in ``format``: "JPEG" -> ".jpg", "TIFF" -> ".tif", "GIF" -> ".png"."""
    return _EXTENSIONS[output_format(format)]


def magic_format(head: bytes) -> str | None:
    """The accepted format whose signature starts ``head`` (the first 16 bytes), or None."""
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "TIFF"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    if head[:2] == b"BM":
        return "BMP"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    return None


def open_header(fp: IO[bytes]) -> ImageFile.ImageFile:
    """Parse the header with the plugins of :data:`PILLOW_READ_FORMATS`, decoding no pixel.

    This is ``Image.open`` without its decompression-bomb check, which judges by the process-wide
    ``Image.MAX_IMAGE_PIXELS`` (~179 MP to fail); callers apply their own ``max_pixels`` to ``image.size``.
    Raises ``UnidentifiedImageError`` when no plugin accepts the file, chained to the error of a plugin whose
    signature matched but whose header parser gave up; a damaged header may also raise anything else.
    """
    fp.seek(0)
    prefix = fp.read(16)
    failure: Exception | None = None
    for name in PILLOW_READ_FORMATS:
        factory, accept = Image.OPEN[name]
        accepted = True if accept is None else accept(prefix)
        if isinstance(accepted, str) or not accepted:  # a string is Pillow's "codec not installed" message
            continue
        fp.seek(0)
        try:
            return factory(fp, getattr(fp, "name", ""))
        except (SyntaxError, IndexError, TypeError, struct.error) as exc:
            failure = exc  # what Image.open treats as "not this format"; kept to explain the refusal
    raise Image.UnidentifiedImageError("no accepted image format recognises this file") from failure


def sniff_format(path: str | os.PathLike[str]) -> str | None:
    """The format the file's content says it is ("JPEG", "PNG", ...), or None if it is not an image we accept.

    Reads the magic bytes, then lets Pillow parse the header (no pixel is decoded). A file that starts well but is
    cut short still sniffs as its format: :func:`load_image` reports the damage. Never raises.
    """
    try:
        with open(path, "rb") as fp:
            candidate = magic_format(fp.read(16))
            if candidate is None:
                return None
            with open_header(fp) as image:
                found = normalize_format(image.format or "")
    except Image.DecompressionBombError:
        return candidate  # a GIF frame outgrew its canvas past Pillow's global limit: load_image says too large
    except Exception:  # sniffing must never take the caller down, whatever the bytes are
        return None
    return found if found in READ_FORMATS else None
