"""PNG and TIFF writers for what Pillow cannot write: 16-bit colour, and TIFF with a full EXIF sub-IFD.

Pillow holds at most 8 bits per colour channel, so 16-bit RGB(A) and grey+alpha are written here from numpy
arrays. The encoders are plain and standard: adaptive PNG row filters with zlib; TIFF strips with Adobe Deflate
and horizontal differencing (predictor 2), readable by libtiff, Photoshop, Lightroom and Pillow.
"""

from __future__ import annotations

import struct
import zlib
from types import MappingProxyType
from typing import IO, Any

import numpy as np
from PIL import TiffImagePlugin, TiffTags

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_COLOUR_TYPES = MappingProxyType({1: 0, 2: 4, 3: 2, 4: 6})  # channels -> grey, grey+alpha, RGB, RGBA
_IDAT_CHUNK = 1 << 20
_BLOCK_BYTES = 1 << 22
_ZLIB_LEVEL = 6


def _chunk(fp: IO[bytes], kind: bytes, data: bytes) -> None:
    fp.write(struct.pack(">I", len(data)) + kind + data)
    fp.write(struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))


def _big_endian_bytes(values: np.ndarray) -> np.ndarray:
    """(H, W, C) uint8/uint16 as (H, W*C*bytes) uint8 rows in PNG's big-endian sample order."""
    height = values.shape[0]
    return values.astype(values.dtype.newbyteorder(">"), copy=False).view(np.uint8).reshape(height, -1)


def _filter_rows(block: np.ndarray, previous: np.ndarray, bpp: int) -> np.ndarray:
    """PNG filter each row with the type (None, Sub, Up, Average, Paeth) of least absolute sum, the usual heuristic."""
    raw = block.astype(np.int16)
    up = np.vstack([previous[None].astype(np.int16), raw[:-1]])
    left = np.zeros_like(raw)
    left[:, bpp:] = raw[:, :-bpp]
    up_left = np.zeros_like(raw)
    up_left[:, bpp:] = up[:, :-bpp]
    estimate = left + up - up_left
    pa, pb, pc = np.abs(estimate - left), np.abs(estimate - up), np.abs(estimate - up_left)
    paeth = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, up, up_left))
    candidates = np.stack([raw, raw - left, raw - up, raw - ((left + up) >> 1), raw - paeth]) & 0xFF
    cost = np.abs(candidates.astype(np.uint8).view(np.int8).astype(np.int32)).sum(axis=2)
    choice = cost.argmin(axis=0)
    rows = np.take_along_axis(candidates, choice[None, :, None], axis=0)[0].astype(np.uint8)
    return np.hstack([choice.astype(np.uint8)[:, None], rows])


def write_png(
    fp: IO[bytes],
    values: np.ndarray,
    *,
    icc_profile: bytes | None = None,
    dpi: tuple[float, float] | None = None,
    exif: bytes | None = None,
    xmp: bytes | None = None,
) -> None:
    """Write (H, W, C) uint8 or uint16 samples (C = 1 grey, 2 grey+alpha, 3 RGB, 4 RGBA) as a PNG."""
    height, width, channels = values.shape
    depth = values.dtype.itemsize * 8
    fp.write(_PNG_SIGNATURE)
    _chunk(fp, b"IHDR", struct.pack(">IIBBBBB", width, height, depth, _PNG_COLOUR_TYPES[channels], 0, 0, 0))
    if icc_profile:
        _chunk(fp, b"iCCP", b"ICC Profile\x00\x00" + zlib.compress(icc_profile))
    if dpi:
        ppm = [max(1, round(d / 0.0254)) for d in dpi]
        _chunk(fp, b"pHYs", struct.pack(">IIB", ppm[0], ppm[1], 1))
    if exif:
        _chunk(fp, b"eXIf", exif.removeprefix(b"Exif\x00\x00"))
    if xmp:
        _chunk(fp, b"iTXt", b"XML:com.adobe.xmp\x00\x00\x00\x00\x00" + xmp)
    rows = _big_endian_bytes(values)
    bpp = channels * values.dtype.itemsize
    block_rows = max(1, _BLOCK_BYTES // max(1, rows.shape[1]))
    compressor = zlib.compressobj(_ZLIB_LEVEL)
    pending = bytearray()
    previous = np.zeros(rows.shape[1], dtype=np.uint8)
    for start in range(0, height, block_rows):
        block = rows[start : start + block_rows]
        pending += compressor.compress(_filter_rows(block, previous, bpp).tobytes())
        previous = block[-1]
        while len(pending) >= _IDAT_CHUNK:
            _chunk(fp, b"IDAT", bytes(pending[:_IDAT_CHUNK]))
            del pending[:_IDAT_CHUNK]
    pending += compressor.flush()
    _chunk(fp, b"IDAT", bytes(pending))
    _chunk(fp, b"IEND", b"")


_TIFF_STRIP_BYTES = 1 << 18
_ADOBE_DEFLATE = 8
_HORIZONTAL_DIFFERENCING = 2
_UNASSOCIATED_ALPHA = 2


def write_tiff(
    fp: IO[bytes],
    values: np.ndarray,
    *,
    has_alpha: bool,
    icc_profile: bytes | None = None,
    dpi: tuple[float, float] | None = None,
    exif_tags: dict[int, Any] | None = None,
    xmp: bytes | None = None,
) -> None:
    """Write (H, W, C) uint8/uint16 samples as a little-endian, deflate-compressed, single-page TIFF.

    ``exif_tags`` are IFD0 tags from EXIF (descriptive ones, plus the Exif and GPS sub-IFDs as dicts); Pillow's
    IFD serialiser writes the sub-IFDs, which its TIFF encoder drops when libtiff compression is used.
    """
    height, width, channels = values.shape
    little = values.astype(values.dtype.newbyteorder("<"), copy=False)
    row_bytes = width * channels * values.dtype.itemsize
    rows_per_strip = max(1, min(height, _TIFF_STRIP_BYTES // max(1, row_bytes)))
    strips: list[bytes] = []
    for start in range(0, height, rows_per_strip):
        block = little[start : start + rows_per_strip]
        differenced = block.copy()
        differenced[:, 1:] -= block[:, :-1]  # wraps modulo 2**bits, as the predictor defines
        strips.append(zlib.compress(differenced.tobytes(), _ZLIB_LEVEL))

    ifd = TiffImagePlugin.ImageFileDirectory_v2(prefix=b"II")
    for tag, value in (exif_tags or {}).items():
        ifd[tag] = value
    ifd[256] = width
    ifd[257] = height
    ifd[258] = (values.dtype.itemsize * 8,) * channels
    ifd[259] = _ADOBE_DEFLATE
    ifd[262] = 1 if channels <= 2 else 2  # BlackIsZero grey, or RGB
    ifd[277] = channels
    ifd[278] = rows_per_strip
    ifd[284] = 1
    ifd[317] = _HORIZONTAL_DIFFERENCING
    if has_alpha:
        ifd[338] = (_UNASSOCIATED_ALPHA,)
    if dpi:
        ifd[296] = 2  # inches
        ifd[282] = float(dpi[0])
        ifd[283] = float(dpi[1])
    if icc_profile:
        ifd[34675] = icc_profile
    if xmp:
        ifd[700] = xmp
    ifd[279] = tuple(len(strip) for strip in strips)
    ifd.tagtype[279] = TiffTags.LONG
    offsets, position = [], 0
    for strip in strips:
        offsets.append(position)
        position += len(strip)
    ifd[273] = tuple(offsets)  # relative: the serialiser adds the end of the IFD
    ifd.tagtype[273] = TiffTags.LONG
    fp.write(b"II*\x00" + struct.pack("<I", 8))
    fp.write(ifd.tobytes(8))
    for strip in strips:
        fp.write(strip)
