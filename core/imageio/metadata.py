"""EXIF orientation, and metadata made ready to travel: orientation reset, TIFF tags turned into EXIF, DPI cleaned."""

from __future__ import annotations

import math
import re
import struct
from typing import Any

import numpy as np
from PIL import Image

EXIF_HEADER = b"Exif\x00\x00"
ORIENTATION_TAG = 0x0112
EXIF_IFD_TAG = 0x8769
GPS_IFD_TAG = 0x8825
INTEROP_IFD_TAG = 0xA005

TIFF_DESCRIPTIVE_TAGS: frozenset[int] = frozenset(
    {
        0x010E,  # ImageDescription
        0x010F,  # Make
        0x0110,  # Model
        0x0112,  # Orientation
        0x0131,  # Software
        0x0132,  # DateTime
        0x013B,  # Artist
        0x013C,  # HostComputer
        0x4746,  # Rating
        0x4749,  # RatingPercent
        0x8298,  # Copyright
        0x9C9B,  # XPTitle
        0x9C9C,  # XPComment
        0x9C9D,  # XPAuthor
        0x9C9E,  # XPKeywords
        0x9C9F,  # XPSubject
    }
)
"""IFD0 tags that describe the photo rather than the pixel layout: the ones that move between TIFF and EXIF."""

_TRANSPOSING = frozenset({5, 6, 7, 8})


def apply_orientation(array: np.ndarray, orientation: int) -> np.ndarray:
    """Turn a stored (H, W[, C]) array upright for EXIF ``orientation`` 1-8 (as ``ImageOps.exif_transpose`` does)."""
    if orientation == 2:
        array = array[:, ::-1]
    elif orientation == 3:
        array = array[::-1, ::-1]
    elif orientation == 4:
        array = array[::-1]
    elif orientation == 5:
        array = array.swapaxes(0, 1)
    elif orientation == 6:
        array = np.rot90(array, -1)
    elif orientation == 7:
        array = array[::-1, ::-1].swapaxes(0, 1)
    elif orientation == 8:
        array = np.rot90(array, 1)
    return np.ascontiguousarray(array)


def swaps_axes(orientation: int) -> bool:
    """Orientations 5-8 exchange width and height (and the x/y resolution)."""
    return orientation in _TRANSPOSING


def read_orientation(image: Image.Image) -> int:
    """EXIF orientation of an open image, 1 when absent or invalid (a bad tag must not block processing)."""
    try:
        value = image.getexif().get(ORIENTATION_TAG, 1)
    except Exception:  # damaged EXIF is common in the wild; the pixels are still good
        return 1
    try:
        orientation = int(value)
    except (TypeError, ValueError):
        return 1
    return orientation if 1 <= orientation <= 8 else 1


def with_exif_header(exif: bytes) -> bytes:
    """EXIF as JPEG stores it (``Exif\\0\\0`` + TIFF structure); PNG and WebP keep it without the header."""
    return exif if exif.startswith(EXIF_HEADER) else EXIF_HEADER + exif


def set_exif_orientation(exif: bytes, orientation: int = 1) -> bytes:
    """Rewrite IFD0's Orientation value in place, leaving every other byte (maker notes included) untouched.

    Re-serialising EXIF would move data that maker notes address by absolute offset, so the value is patched
    where it lies. Raises ValueError when the structure cannot be followed; EXIF without the tag is returned as is.
    """
    start = len(EXIF_HEADER) if exif.startswith(EXIF_HEADER) else 0
    data = bytearray(exif)
    order = {b"II": "<", b"MM": ">"}.get(bytes(data[start : start + 2]))
    if order is None:
        raise ValueError("EXIF does not start with a TIFF byte-order mark")
    try:
        (magic,) = struct.unpack_from(order + "H", data, start + 2)
        (ifd,) = struct.unpack_from(order + "I", data, start + 4)
        if magic != 42:
            raise ValueError("EXIF TIFF header has a wrong magic number")
        (count,) = struct.unpack_from(order + "H", data, start + ifd)
        for index in range(count):
            entry = start + ifd + 2 + 12 * index
            tag, kind, number = struct.unpack_from(order + "HHI", data, entry)
            if tag != ORIENTATION_TAG:
                continue
            if number != 1 or kind not in (3, 4):  # SHORT, or LONG from sloppy writers
                raise ValueError("EXIF Orientation has an unexpected type")
            struct.pack_into(order + ("H" if kind == 3 else "I"), data, entry + 8, orientation)
            return bytes(data)
    except struct.error as exc:
        raise ValueError(f"EXIF structure is cut short: {exc}") from exc
    return exif


def reset_exif_orientation(exif: bytes) -> bytes | None:
    """EXIF with Orientation 1, patched in place when possible, else re-encoded by Pillow; None if beyond repair."""
    exif = with_exif_header(exif)
    try:
        return set_exif_orientation(exif, 1)
    except ValueError:
        pass
    try:
        parsed = Image.Exif()
        parsed.load(exif)
        if not len(parsed):
            return None
        if ORIENTATION_TAG in parsed:
            parsed[ORIENTATION_TAG] = 1
        return parsed.tobytes()
    except Exception:  # unparseable EXIF is dropped rather than carried into a file it could break
        return None


_XMP_ORIENTATION = (
    re.compile(rb'(tiff:Orientation\s*=\s*["\'])\d(["\'])'),
    re.compile(rb"(<tiff:Orientation>\s*)\d(\s*</tiff:Orientation>)"),
)


def reset_xmp_orientation(xmp: bytes) -> bytes:
    """XMP can repeat the orientation (tiff:Orientation); viewers that read it must also see the image as upright."""
    for pattern in _XMP_ORIENTATION:
        xmp = pattern.sub(rb"\g<1>1\g<2>", xmp)
    return xmp


def tiff_tags_as_exif(image: Image.Image) -> bytes | None:
    """EXIF bytes for a TIFF source: its descriptive IFD0 tags plus the Exif and GPS sub-IFDs, no layout tags."""
    tags = image.getexif()
    exif = Image.Exif()
    for tag in TIFF_DESCRIPTIVE_TAGS:
        if tag in tags:
            exif[tag] = tags[tag]
    for tag in (EXIF_IFD_TAG, GPS_IFD_TAG):
        if tag in tags:
            sub_ifd: dict[int, Any] = dict(tags.get_ifd(tag))
            if sub_ifd:
                sub_ifd.pop(INTEROP_IFD_TAG, None)  # an offset into the source file, meaningless elsewhere
                exif[tag] = sub_ifd
    if not len(exif):
        return None
    return exif.tobytes()


def exif_for_tiff(exif: bytes) -> dict[int, Any]:
    """The tags of EXIF bytes that belong in a TIFF's IFD0 (descriptive tags, Exif and GPS sub-IFDs as dicts)."""
    parsed = Image.Exif()
    parsed.load(exif)
    tags: dict[int, Any] = {}
    for tag in parsed:
        if tag in TIFF_DESCRIPTIVE_TAGS:
            tags[tag] = parsed[tag]
    for tag in (EXIF_IFD_TAG, GPS_IFD_TAG):
        sub_ifd = dict(parsed.get_ifd(tag))
        sub_ifd.pop(INTEROP_IFD_TAG, None)
        if sub_ifd:
            tags[tag] = sub_ifd
    return tags


def clean_dpi(value: object) -> tuple[float, float] | None:
    """Positive finite (x, y) DPI, with the rounding noise of pixels-per-metre storage removed (299.9994 -> 300)."""
    if not isinstance(value, tuple | list) or len(value) != 2:
        return None
    cleaned: list[float] = []
    for item in value:
        try:
            number = float(item)
        except (TypeError, ValueError, ZeroDivisionError):
            return None
        if not math.isfinite(number) or number <= 0:
            return None
        nearest = round(number)
        cleaned.append(float(nearest) if abs(number - nearest) < 0.05 else number)
    return cleaned[0], cleaned[1]


def icc_colour_space(icc: bytes) -> str | None:
    """The data colour space an ICC profile is made for ("RGB", "GRAY", "CMYK", ...), from its header."""
    if len(icc) < 20:
        return None
    return icc[16:20].decode("ascii", "replace").strip()
