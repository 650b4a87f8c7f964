"""Encoding :class:`ImageData` back to a file, atomically, keeping depth, alpha and metadata where the format can."""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np
from PIL import Image, PngImagePlugin

from core.atomicfile import atomic_write

from . import metadata as meta
from .containers import write_png, write_tiff
from .errors import ImageError, ImageWriteError, UnsupportedImage
from .formats import WRITE_FORMATS, format_for_suffix, normalize_format
from .model import DEFAULT_JPEG_QUALITY, ImageData, ImageMetadata

log = logging.getLogger(__name__)

SIXTEEN_BIT_FORMATS = frozenset({"PNG", "TIFF"})
ALPHA_FORMATS = frozenset({"PNG", "TIFF", "WEBP"})
EXIF_FORMATS = frozenset({"JPEG", "PNG", "TIFF", "WEBP"})
XMP_FORMATS = frozenset({"JPEG", "PNG", "TIFF", "WEBP"})
ICC_FORMATS = frozenset({"JPEG", "PNG", "TIFF", "WEBP"})
DPI_FORMATS = frozenset({"JPEG", "PNG", "TIFF", "BMP"})
_JPEG_SEGMENT_LIMIT = 65533  # bytes of payload one JPEG APP segment can carry
_STRIP_BYTES = 4 << 20
"""float32 scratch per strip when converting pixels to integer samples: the peak stays near the output array."""
_IJG_LUMINANCE = (
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
)  # fmt: skip


def save_image(
    image: ImageData,
    path: str | os.PathLike[str],
    *,
    format: str | None = None,
    jpeg_quality: int | None = None,
) -> Path:
    """Write ``image`` to ``path`` atomically and return the path.

    ``format`` None takes it from the suffix. 16-bit sources stay 16-bit in PNG and TIFF, 8-bit elsewhere;
    grey stays grey except in WebP (which has no grey mode). Alpha is written untouched where the format has
    alpha (PNG, TIFF, WebP) and composited onto white otherwise (JPEG, BMP). ``jpeg_quality`` (1-100) applies
    to JPEG and lossy WebP; see :func:`default_jpeg_quality` for the default. Metadata the target format cannot
    hold is dropped (logged at debug level). The data goes to a temporary file in the same folder, is fsynced
    and renamed over ``path``, so readers never see half a file and a failure leaves any old file untouched.
    """
    image.validate()
    target = Path(path)
    name = normalize_format(format) if format else format_for_suffix(target)
    if name is None:
        raise UnsupportedImage(
            f"Cannot write {target}: unknown file extension {target.suffix!r}; use .jpg, .png, .tif, .webp or .bmp.",
            target,
        )
    if name not in WRITE_FORMATS:
        raise UnsupportedImage(f"Cannot write {target}: enhancerd does not write {name} files.", target)
    if jpeg_quality is not None and not 1 <= int(jpeg_quality) <= 100:
        raise ValueError(f"jpeg_quality must be in 1..100, got {jpeg_quality}")
    encode = _encoder(image, name, jpeg_quality)
    _atomic_write(target, encode)
    return target


def default_jpeg_quality(image: ImageData) -> int:
    """95, or the source JPEG's own quality when that is higher: never re-compress harder than the original was."""
    source = estimate_jpeg_quality(image.jpeg_quantization) if image.jpeg_quantization else None
    return max(DEFAULT_JPEG_QUALITY, source or 0)


def estimate_jpeg_quality(tables: dict[int, list[int]]) -> int | None:
    """The IJG quality (1-100) whose scaled standard luminance table is closest to table 0 (natural order); the
    highest such quality on ties."""
    luma = tables.get(0)
    if not luma or len(luma) != 64:
        return None
    errors = np.abs(_ijg_luminance_tables() - np.asarray(luma, dtype=np.int64)).sum(axis=1)
    return int(100 - np.argmin(errors[::-1]))


@functools.cache
def _ijg_luminance_tables() -> np.ndarray:
    """(100, 64): the standard luminance table scaled for qualities 1..100, as libjpeg scales it (computed once: this
    runs for every JPEG the daemon writes, and a Python loop over 6,400 entries held the GIL for milliseconds)."""
    qualities = np.arange(1, 101, dtype=np.int64)
    scales = np.where(qualities < 50, 5000 // qualities, 200 - 2 * qualities)
    scaled = (np.asarray(_IJG_LUMINANCE, dtype=np.int64)[None, :] * scales[:, None] + 50) // 100
    return np.clip(scaled, 1, 255)


def _samples(image: ImageData, bits: int, keep_alpha: bool, rgb: bool = False) -> np.ndarray:
    """(H, W, C) integer samples at ``bits``, alpha last when kept, else composited onto white; ``rgb`` repeats grey.

    Converted in strips of rows into one preallocated integer array: converting a 50 MP image at once would hold
    several full-size float32 temporaries (gigabytes) on top of the pixels. Each strip takes exactly the float32
    steps of the whole-array formula ``rint(clip(pixels, 0, 1) * maximum)`` (NaN as 0), so the values are the same.
    """
    height, width, channels = image.pixels.shape
    colour = 3 if rgb else channels
    dtype = np.uint16 if bits == 16 else np.uint8
    out = np.empty((height, width, colour + (1 if keep_alpha else 0)), dtype=dtype)
    rows = max(1, _STRIP_BYTES // max(1, width * channels * 4))
    strip = np.empty((min(rows, height), width, channels), dtype=np.float32)
    alpha = image.alpha
    behind = alpha if alpha is not None and not keep_alpha else None  # composited onto white
    coverage = np.empty((0 if behind is None else strip.shape[0], width, 1), dtype=np.float32)
    for top in range(0, height, rows):
        bottom = min(top + rows, height)
        pixels = strip[: bottom - top]
        np.copyto(pixels, image.pixels[top:bottom], casting="unsafe")
        np.fmax(pixels, 0.0, out=pixels)  # clip to [0, 1] without temporaries; fmax also turns NaN into 0
        np.minimum(pixels, 1.0, out=pixels)
        if behind is not None:
            cover = coverage[: bottom - top]
            np.copyto(cover, behind[top:bottom, :, None], casting="unsafe")
            np.divide(cover, 65535 if behind.dtype == np.uint16 else 255, out=cover)
            np.multiply(pixels, cover, out=pixels)  # pixels * coverage + (1 - coverage): the white behind
            np.subtract(1.0, cover, out=cover)
            np.add(pixels, cover, out=pixels)
        np.multiply(pixels, float(2**bits - 1), out=pixels)
        np.rint(pixels, out=pixels)
        np.copyto(out[top:bottom, :, :colour], pixels, casting="unsafe")
    if keep_alpha and alpha is not None:
        _alpha_samples(alpha, bits, out[..., colour])
    return out


def _alpha_samples(alpha: np.ndarray, bits: int, out: np.ndarray) -> None:
    """Alpha at ``bits`` into ``out``: exact when the depth matches, x257 up, rounded /257 down (in strips)."""
    if alpha.dtype == (np.uint16 if bits == 16 else np.uint8):
        np.copyto(out, alpha)
    elif bits == 16:
        np.multiply(alpha, 257, out=out, casting="unsafe", dtype=np.uint16)
    else:
        rows = max(1, _STRIP_BYTES // max(1, alpha.shape[1] * 4))
        scratch = np.empty((min(rows, alpha.shape[0]), alpha.shape[1]), dtype=np.float32)
        for top in range(0, alpha.shape[0], rows):
            part = scratch[: min(top + rows, alpha.shape[0]) - top]
            np.copyto(part, alpha[top : top + rows], casting="unsafe")
            np.divide(part, 257.0, out=part)
            np.rint(part, out=part)
            np.copyto(out[top : top + rows], part, casting="unsafe")


def _kept_metadata(image: ImageData, name: str, channels: int) -> ImageMetadata:
    """The metadata ``name`` can hold; an ICC profile made for another colour space (grey vs RGB) is dropped."""
    data = image.metadata
    kept = ImageMetadata()
    if data.exif and name in EXIF_FORMATS:
        exif = meta.reset_exif_orientation(data.exif)
        if exif is not None and not (name == "JPEG" and len(exif) > _JPEG_SEGMENT_LIMIT):
            kept.exif = exif
    if data.icc_profile and name in ICC_FORMATS:
        wanted = "GRAY" if channels in (1, 2) else "RGB"
        if meta.icc_colour_space(data.icc_profile) == wanted:
            kept.icc_profile = data.icc_profile
    if data.dpi and name in DPI_FORMATS:
        kept.dpi = data.dpi
    if data.xmp and name in XMP_FORMATS and not (name == "JPEG" and len(data.xmp) > _JPEG_SEGMENT_LIMIT - 29):
        kept.xmp = meta.reset_xmp_orientation(data.xmp)
    dropped = [key for key in ("exif", "icc_profile", "dpi", "xmp") if getattr(data, key) and not getattr(kept, key)]
    if dropped:
        log.debug("%s output cannot hold %s; dropped", name, ", ".join(dropped))
    return kept


def _encoder(image: ImageData, name: str, jpeg_quality: int | None) -> Callable[[IO[bytes]], None]:
    """Prepare the samples now (errors surface before any file is created) and return the writing step."""
    bits = 16 if image.bit_depth == 16 and name in SIXTEEN_BIT_FORMATS else 8
    keep_alpha = image.alpha is not None and name in ALPHA_FORMATS
    samples = _samples(image, bits, keep_alpha, rgb=name == "WEBP" and image.is_grayscale)  # WebP has no grey mode
    kept = _kept_metadata(image, name, samples.shape[2])

    if name == "TIFF":
        exif_tags = _tiff_exif_tags(kept.exif)

        def encode_tiff(fp: IO[bytes]) -> None:
            write_tiff(
                fp,
                samples,
                has_alpha=keep_alpha,
                icc_profile=kept.icc_profile,
                dpi=kept.dpi,
                exif_tags=exif_tags,
                xmp=kept.xmp,
            )

        return encode_tiff
    if name == "PNG" and bits == 16:

        def encode_png16(fp: IO[bytes]) -> None:
            write_png(fp, samples, icc_profile=kept.icc_profile, dpi=kept.dpi, exif=kept.exif, xmp=kept.xmp)

        return encode_png16

    pil_image = Image.fromarray(samples[..., 0] if samples.shape[2] == 1 else samples)
    options = _pillow_options(image, name, kept, jpeg_quality)

    def encode_with_pillow(fp: IO[bytes]) -> None:
        try:
            pil_image.save(fp, format=name, **options)
        except OSError:
            if not options.get("optimize"):
                raise
            # libjpeg's Huffman optimiser needs the whole stream in one buffer, which Pillow sizes at 1-2 bytes per
            # pixel; very noisy images exceed it ("broken data stream"). Standard tables always fit, a few % larger.
            fp.seek(0)
            fp.truncate()
            pil_image.save(fp, format=name, **{**options, "optimize": False})

    return encode_with_pillow


def _pillow_options(image: ImageData, name: str, kept: ImageMetadata, jpeg_quality: int | None) -> dict[str, Any]:
    options: dict[str, Any] = {"exif": kept.exif, "icc_profile": kept.icc_profile, "dpi": kept.dpi}
    if name == "PNG":
        if kept.xmp:
            text = PngImagePlugin.PngInfo()
            text.add_itxt("XML:com.adobe.xmp", kept.xmp.decode("utf-8", "replace"))
            options["pnginfo"] = text
        options["compress_level"] = 6
    else:
        options["xmp"] = kept.xmp
    quality = int(jpeg_quality) if jpeg_quality is not None else default_jpeg_quality(image)
    if name == "JPEG":
        options.update(quality=quality, subsampling="4:4:4" if quality >= 90 else "4:2:0", optimize=True)
    elif name == "WEBP":
        if image.webp_lossless:
            options.update(lossless=True, exact=True)  # exact: keep the colour under fully transparent pixels
        else:
            options.update(quality=quality)
    return {key: value for key, value in options.items() if value is not None}


def _tiff_exif_tags(exif: bytes | None) -> dict[int, Any] | None:
    if exif is None:
        return None
    try:
        return meta.exif_for_tiff(exif)
    except Exception:  # damaged EXIF must not stop the image from being written
        log.debug("EXIF could not be converted to TIFF tags; dropped", exc_info=True)
        return None


def _atomic_write(target: Path, encode: Callable[[IO[bytes]], None]) -> None:
    """:func:`core.atomicfile.atomic_write`, with every failure but a typed one reported as :class:`ImageWriteError`."""
    try:
        atomic_write(target, encode)
    except ImageError:
        raise
    except Exception as exc:
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        raise ImageWriteError(f"Cannot write {target}: {reason}.", target) from exc
