"""Encoding :class:`ImageData` back to a file, atomically, keeping depth, alpha and metadata where the format can."""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np
from PIL import Image, PngImagePlugin

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
    """The IJG quality (1-100) whose scaled standard luminance table is closest to table 0 (natural order)."""
    luma = tables.get(0)
    if not luma or len(luma) != 64:
        return None
    best_quality, best_error = None, None
    for quality in range(1, 101):
        scale = 5000 / quality if quality < 50 else 200 - 2 * quality
        error = 0
        for standard, actual in zip(_IJG_LUMINANCE, luma):
            error += abs(min(255, max(1, int((standard * scale + 50) // 100))) - actual)
        if best_error is None or error <= best_error:
            best_quality, best_error = quality, error
    return best_quality


def _samples(image: ImageData, bits: int, keep_alpha: bool) -> np.ndarray:
    """(H, W, C) integer samples at ``bits``, alpha last when kept, else composited onto white."""
    maximum = float(2**bits - 1)
    pixels = np.nan_to_num(np.asarray(image.pixels, dtype=np.float32), nan=0.0, posinf=1.0, neginf=0.0)
    pixels = np.clip(pixels, 0.0, 1.0)
    dtype = np.uint16 if bits == 16 else np.uint8
    if image.alpha is None:
        return np.round(pixels * maximum).astype(dtype)
    alpha_max = 65535 if image.alpha.dtype == np.uint16 else 255
    if not keep_alpha:
        coverage = (image.alpha.astype(np.float32) / alpha_max)[..., None]
        return np.round((pixels * coverage + (1.0 - coverage)) * maximum).astype(dtype)
    if alpha_max == 2**bits - 1:
        alpha = image.alpha
    elif bits == 16:
        alpha = image.alpha.astype(np.uint16) * 257
    else:
        alpha = np.round(image.alpha.astype(np.float32) / 257.0).astype(np.uint8)
    return np.concatenate([np.round(pixels * maximum).astype(dtype), alpha[..., None].astype(dtype)], axis=2)


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
    samples = _samples(image, bits, keep_alpha)
    if name == "WEBP" and image.is_grayscale:
        samples = np.concatenate([np.repeat(samples[..., :1], 3, axis=2), samples[..., 1:]], axis=2)
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
        pil_image.save(fp, format=name, **options)

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
    """Temp file beside the target, fsync, rename over it, fsync the folder: all of the new file or none of it."""
    folder = target.parent
    temporary = folder / f".{target.name}.{secrets.token_hex(6)}.tmp"
    try:
        # 0o666 and the process umask give the permissions an ordinary new file gets (mkstemp would force 0600)
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    except OSError as exc:
        raise ImageWriteError(f"Cannot write {target}: {exc.strerror or exc}.", target) from exc
    try:
        with os.fdopen(descriptor, "wb") as fp:
            encode(fp)
            fp.flush()
            os.fsync(fp.fileno())
        os.replace(temporary, target)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            temporary.unlink()
        if isinstance(exc, ImageError) or not isinstance(exc, Exception):
            raise  # already typed, or KeyboardInterrupt / SystemExit
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        raise ImageWriteError(f"Cannot write {target}: {reason}.", target) from exc
    _fsync_folder(folder)


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable; not possible on Windows, where opening a folder fails."""
    with contextlib.suppress(OSError):
        descriptor = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
