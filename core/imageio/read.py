"""Decoding files into :class:`ImageData`: header checks first, then pixels, metadata and orientation."""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import IO, Any

import numpy as np
from PIL import Image, ImageFile

from . import metadata as meta
from .errors import ImageError, ImageNotFound, ImageTooLarge, UnreadableImage, UnsupportedImage
from .formats import READ_FORMATS, format_for_suffix, magic_format, normalize_format, open_header
from .model import DEFAULT_MAX_PIXELS, ImageData, ImageMetadata


def _low_byte_rawmodes() -> Mapping[str, str]:
    """Rawmode of a second decode that yields the low bytes of 16-bit colour, keyed by Pillow's own rawmode.

    Pillow decodes 16-bit colour to 8 bits by keeping the high byte. Decoding again with the byte order swapped
    keeps the low byte instead; row filters and compression are undone identically both times.
    """
    native_swapped = ";16B" if sys.byteorder == "little" else ";16L"
    pairs = ((";16B", ";16L"), (";16L", ";16B"), (";16N", native_swapped))
    table = {mode + order: mode + swapped for mode in ("RGB", "RGBA", "RGBX") for order, swapped in pairs}
    table["LA;16B"] = "RGBA"  # PNG grey+alpha 16: a plain 32-bit copy gives all four bytes at once
    return MappingProxyType(table)


_LOW_BYTE_RAWMODES = _low_byte_rawmodes()


@dataclass
class _Decoded:
    values: np.ndarray  # (H, W, C) uint8 or uint16, C in 1, 3
    alpha: np.ndarray | None
    bit_depth: int
    icc_override: bytes | None = None
    icc_dropped: bool = False


def load_image(path: str | os.PathLike[str], *, max_pixels: int = DEFAULT_MAX_PIXELS) -> ImageData:
    """Decode an image file into float pixels, upright, with its metadata; only :class:`ImageError` escapes.

    The pixel count is checked from the header before decoding, against ``max_pixels`` only (Pillow's
    process-wide ``Image.MAX_IMAGE_PIXELS`` is neither consulted nor changed).
    Any other exception from a decoder is turned into :class:`UnreadableImage`: malformed files reach every odd
    corner of Pillow, and a daemon must record the failure, not die of it.
    """
    source = Path(path)
    _check_file(source)
    try:
        with source.open("rb") as fp:
            return _load(fp, source, max_pixels)
    except ImageError:
        raise
    except FileNotFoundError as exc:
        raise _not_found(source) from exc
    except PermissionError as exc:
        raise UnreadableImage(f"Cannot open {source}: permission denied.", source) from exc
    except MemoryError as exc:
        raise ImageTooLarge(f"Cannot open {source}: not enough memory to decode it.", source) from exc
    except Exception as exc:
        raise _damaged(source, None, exc) from exc


def _not_found(source: Path) -> ImageNotFound:
    return ImageNotFound(f"Cannot open {source}: the file does not exist (was it moved or deleted?).", source)


def _check_file(source: Path) -> None:
    try:
        info = source.stat()
    except FileNotFoundError as exc:
        raise _not_found(source) from exc
    except OSError as exc:
        raise UnreadableImage(f"Cannot open {source}: {exc.strerror or exc}.", source) from exc
    if source.is_dir():
        raise UnreadableImage(f"Cannot open {source}: it is a folder, not an image file.", source)
    if info.st_size == 0:
        raise UnreadableImage(
            f"Cannot read {source}: the file is empty (0 bytes); it may still be copying, or the copy failed.", source
        )


def _damaged(source: Path, format: str | None, exc: BaseException) -> UnreadableImage:
    reason = str(exc) or type(exc).__name__
    if "truncated" in reason.lower() or isinstance(exc, EOFError):
        return UnreadableImage(
            f"Cannot read {source}: the file is truncated (it ends before the image does); "
            "the copy or download may be incomplete.",
            source,
        )
    kind = f"{format} data" if format else "image data"
    return UnreadableImage(f"Cannot read {source}: the {kind} is damaged ({reason}).", source)


def _open(fp: IO[bytes], source: Path) -> ImageFile.ImageFile:
    try:
        image = open_header(fp)
    except Image.DecompressionBombError as exc:
        raise ImageTooLarge(
            f"Cannot process {source}: its frames grow past the size that can be decoded safely; "
            "it may be a decompression bomb.",
            source,
        ) from exc
    except Image.UnidentifiedImageError as exc:
        if exc.__cause__ is not None:  # the signature matched, the header did not parse
            fp.seek(0)
            raise _bad_header(source, magic_format(fp.read(16)) or "image", exc.__cause__) from exc
        raise _unidentified(fp, source) from exc
    return image


def _bad_header(source: Path, format: str, cause: BaseException) -> ImageError:
    reason = str(cause)
    if "unknown pixel mode" in reason or "unsupported" in reason.lower():
        return UnsupportedImage(
            f"Cannot read {source}: this kind of {format} (its combination of channels, bit depth or compression) "
            f"is not supported ({reason}).",
            source,
        )
    return _damaged(source, format, cause)


def _unidentified(fp: IO[bytes], source: Path) -> ImageError:
    """Name what the file is instead: another image format, text, or damaged data behind an image name."""
    fp.seek(0)
    head = fp.read(512)
    fp.seek(0)
    other: str | None = None
    try:
        with Image.open(fp) as anything:  # every plugin, only to name the format in the message
            other = anything.format
    except Exception:  # not an image in any format Pillow knows, or one too large to even name
        other = None
    supported = "enhancerd reads JPEG, PNG, TIFF, WebP, BMP and GIF"
    if other:
        return UnsupportedImage(f"Cannot read {source}: {other} images are not supported ({supported}).", source)
    claimed = format_for_suffix(source)
    if claimed is None:
        return UnsupportedImage(f"Cannot read {source}: not a recognised image format ({supported}).", source)
    if _looks_like_text(head):
        what = "it contains text, not image data"
    else:
        what = "its content is not a valid image; it is damaged or not a picture"
    return UnreadableImage(f"Cannot read {source}: the file is named {source.suffix} but {what}.", source)


def _looks_like_text(head: bytes) -> bool:
    if b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _load(fp: IO[bytes], source: Path, max_pixels: int) -> ImageData:
    with _open(fp, source) as image:
        format = normalize_format(image.format or "")
        if format not in READ_FORMATS:  # restricted plugin list makes this unreachable; kept as a guard
            raise UnsupportedImage(f"Cannot read {source}: {image.format} images are not supported.", source)
        width, height = image.size
        if width <= 0 or height <= 0:
            raise UnreadableImage(f"Cannot read {source}: its header says it is {width}x{height} pixels.", source)
        if width * height > max_pixels:
            raise ImageTooLarge(
                f"Cannot process {source}: {width}x{height} pixels ({width * height / 1e6:.0f} megapixels) is over "
                f"the limit of {max_pixels / 1e6:g} megapixels.",
                source,
            )
        notes = _frame_notes(image, format, source)
        try:
            # Pillow >= 11 turns TIFFs upright itself while loading and then drops the tag: read it first
            tiff_orientation = _tiff_orientation(image) if format == "TIFF" else 1
            decoded = _decode(image, source, format, notes)
            info_metadata = _read_metadata(image, format, notes)
            if format == "TIFF":
                orientation = tiff_orientation
                already_upright = meta.ORIENTATION_TAG not in image.tag_v2  # type: ignore[attr-defined]
            else:
                orientation, already_upright = meta.read_orientation(image), False
            quantization = _quantization(image) if format == "JPEG" else None
            lossless = format == "WEBP" and _webp_is_lossless(fp)
        except ImageError:
            raise
        except MemoryError:
            raise
        except Exception as exc:
            raise _damaged(source, format, exc) from exc

    if decoded.icc_override is not None or decoded.icc_dropped:
        info_metadata.icc_profile = decoded.icc_override
    pixels = decoded.values.astype(np.float32) / np.float32(2**decoded.bit_depth - 1)
    alpha = decoded.alpha
    if orientation != 1 and not already_upright:
        pixels = meta.apply_orientation(pixels, orientation)
        alpha = None if alpha is None else meta.apply_orientation(alpha, orientation)
    if meta.swaps_axes(orientation) and info_metadata.dpi is not None:
        info_metadata.dpi = (info_metadata.dpi[1], info_metadata.dpi[0])
    return ImageData(
        pixels=pixels,
        alpha=alpha,
        bit_depth=decoded.bit_depth,
        format=format,
        metadata=info_metadata,
        jpeg_quantization=quantization,
        notes=notes,
        orientation=orientation,
        webp_lossless=lossless,
    )


def _tiff_orientation(image: Image.Image) -> int:
    value = getattr(image, "tag_v2", {}).get(meta.ORIENTATION_TAG, 1)
    try:
        orientation = int(value)
    except (TypeError, ValueError):
        return 1
    return orientation if 1 <= orientation <= 8 else 1


def _frame_notes(image: Image.Image, format: str, source: Path) -> list[str]:
    notes: list[str] = []
    claimed = format_for_suffix(source)
    if claimed is not None and claimed != format:
        notes.append(f"the file is named {source.suffix} but contains a {format} image")
    frames = int(getattr(image, "n_frames", 1) or 1)
    if frames > 1:
        if image.format == "MPO":
            notes.append(f"multi-picture JPEG (MPO): processed the primary image, 1 of {frames}")
        elif format == "TIFF":
            notes.append(f"multi-page TIFF: processed page 1 of {frames}")
        else:
            notes.append(f"animated {format}: processed frame 1 of {frames}; the animation is not kept")
    return notes


def _tile_rawmode(tile: Any) -> str | None:
    """The rawmode of a Pillow tile (codec, extents, offset, args): args is the rawmode or starts with it."""
    args = tile[3]
    if isinstance(args, str):
        return args
    if isinstance(args, tuple) and args and isinstance(args[0], str):
        return args[0]
    return None


def _with_rawmode(tile: Any, rawmode: str) -> Any:
    """The same tile decoding to another rawmode (a named tuple since Pillow 11, a plain tuple before)."""
    args = tile[3]
    fields = [*tile[:3], rawmode if isinstance(args, str) else (rawmode, *tuple(args)[1:]), *tile[4:]]
    return type(tile)(*fields) if hasattr(tile, "_fields") else tuple(fields)


def _decode(image: ImageFile.ImageFile, source: Path, format: str, notes: list[str]) -> _Decoded:
    """Pixels as integers at the source's depth, with alpha split off; the file stays open for a second pass."""
    rawmodes = [_tile_rawmode(tile) for tile in image.tile]
    _reject_unreadable_tiff_layout(image, source, format, rawmodes)
    if rawmodes and all(r is not None and r in _LOW_BYTE_RAWMODES for r in rawmodes):
        return _decode_16bit_colour(image, source, format, rawmodes)
    if any(r is not None and ";16" in r for r in rawmodes) and image.mode not in ("I;16", "I;16B", "I;16L", "I"):
        notes.append("16-bit colour in this layout is read at 8 bits per channel")
    image.load()
    return _from_pillow_mode(image, source, notes)


def _reject_unreadable_tiff_layout(image: Image.Image, source: Path, format: str, rawmodes: list[str | None]) -> None:
    """Pillow unpacks 16-bit TIFFs with separate colour planes as 8-bit data: garbage, so refuse them."""
    if format != "TIFF":
        return
    bits = image.tag_v2.get(258, (8,)) if hasattr(image, "tag_v2") else (8,)
    bits = bits if isinstance(bits, tuple) else (bits,)
    if max(bits, default=8) > 16:
        kind = "floating-point" if image.tag_v2.get(339, (1,))[0] == 3 else "integer"
        raise UnsupportedImage(
            f"Cannot read {source}: {max(bits)}-bit {kind} TIFF images (HDR or scientific data) are not supported.",
            source,
        )
    if max(bits, default=8) > 8 and not all(r is not None and (";16" in r or r.startswith("I")) for r in rawmodes):
        raise UnsupportedImage(
            f"Cannot read {source}: this 16-bit TIFF layout (separate colour planes) is not supported; "
            "re-save it as an ordinary 16-bit TIFF or PNG.",
            source,
        )


def _decode_16bit_colour(image: ImageFile.ImageFile, source: Path, format: str, rawmodes: list[str | None]) -> _Decoded:
    mode = image.mode
    with source.open("rb") as second_fp, open_header(second_fp) as second:
        second.tile = [_with_rawmode(tile, _LOW_BYTE_RAWMODES[raw or ""]) for tile, raw in zip(second.tile, rawmodes)]
        second.load()
        low = np.asarray(second)
    if rawmodes[0] == "LA;16B":
        # the raw copy holds [L hi, L lo, A hi, A lo]; the first decode is not needed
        grey = low[..., 0].astype(np.uint16) << 8 | low[..., 1]
        alpha = low[..., 2].astype(np.uint16) << 8 | low[..., 3]
        image.load()  # reads the chunks after the image data (EXIF, XMP) for the metadata
        return _Decoded(grey[..., None], alpha, 16)
    image.load()
    high = np.asarray(image)
    values = high.astype(np.uint16) << 8 | low
    if mode == "RGBA":
        return _Decoded(values[..., :3], np.ascontiguousarray(values[..., 3]), 16)
    return _Decoded(np.ascontiguousarray(values[..., :3]), None, 16)


def _from_pillow_mode(image: Image.Image, source: Path, notes: list[str]) -> _Decoded:
    mode = image.mode
    if mode == "1":
        return _Decoded(np.asarray(image.convert("L"))[..., None], None, 8)
    if mode == "L" and "transparency" not in image.info:
        return _Decoded(np.asarray(image)[..., None], None, 8)
    if mode in ("LA", "La"):
        array = np.asarray(image.convert("LA") if mode == "La" else image)
        return _Decoded(array[..., :1], np.ascontiguousarray(array[..., 1]), 8)
    if mode in ("I;16", "I;16L", "I;16B", "I;16N"):
        return _Decoded(np.asarray(image).astype(np.uint16)[..., None], None, 16)
    if mode == "I":
        array = np.asarray(image)
        if array.size and (array.min() < 0 or array.max() > 65535):
            raise UnsupportedImage(f"Cannot read {source}: 32-bit integer images are not supported.", source)
        return _Decoded(array.astype(np.uint16)[..., None], None, 16)
    if mode in ("P", "PA"):
        rgb = image.convert("RGBA" if mode == "PA" or image.has_transparency_data else "RGB")
        return _from_pillow_mode(rgb, source, notes)
    if mode in ("L", "RGB") and "transparency" in image.info:  # a tRNS colour key: that colour is transparent
        return _from_pillow_mode(image.convert("LA" if mode == "L" else "RGBA"), source, notes)
    if mode in ("RGB", "RGBX", "YCbCr"):
        array = np.asarray(image if mode == "RGB" else image.convert("RGB"))
        return _Decoded(array, None, 8)
    if mode in ("RGBA", "RGBa"):
        array = np.asarray(image if mode == "RGBA" else image.convert("RGBA"))
        return _Decoded(np.ascontiguousarray(array[..., :3]), np.ascontiguousarray(array[..., 3]), 8)
    if mode == "CMYK":
        return _from_cmyk(image, notes)
    if mode == "F":
        raise UnsupportedImage(
            f"Cannot read {source}: 32-bit floating-point images (HDR or scientific data) are not supported.", source
        )
    raise UnsupportedImage(f"Cannot read {source}: images in {mode} colour mode are not supported.", source)


def _from_cmyk(image: Image.Image, notes: list[str]) -> _Decoded:
    """CMYK to sRGB through the embedded profile (relative colorimetric with black-point compensation).

    The result is tagged with an sRGB profile so colour-managed viewers show what the CMYK profile meant.
    Without a usable profile the simple formula of Pillow is used and the output carries no profile.
    """
    icc = image.info.get("icc_profile")
    if icc:
        try:
            from PIL import ImageCms

            srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
            converted = ImageCms.profileToProfile(
                image,
                ImageCms.ImageCmsProfile(io.BytesIO(icc)),
                srgb,
                renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC,
                outputMode="RGB",
                flags=ImageCms.Flags.BLACKPOINTCOMPENSATION,
            )
        except Exception:  # ImportError (no littleCMS), PyCMSError, OSError: a broken profile
            notes.append("CMYK: the embedded ICC profile could not be used; converted to RGB with a simple formula")
        else:
            if converted is not None:
                notes.append("CMYK converted to sRGB through the embedded ICC profile")
                return _Decoded(np.asarray(converted), None, 8, icc_override=srgb.tobytes())
    else:
        notes.append("CMYK without an ICC profile: converted to RGB with a simple formula; colours may shift")
    return _Decoded(np.asarray(image.convert("RGB")), None, 8, icc_dropped=True)


def _read_metadata(image: Image.Image, format: str, notes: list[str]) -> ImageMetadata:
    info = image.info
    raw_exif: bytes | None
    if format == "TIFF":
        raw_exif = meta.tiff_tags_as_exif(image)
    else:
        value = info.get("exif")
        raw_exif = value if isinstance(value, bytes) and value else None
        if raw_exif is None and len(image.getexif()):  # e.g. PNG "Raw profile type exif" text chunks
            raw_exif = image.getexif().tobytes()
    exif = None
    if raw_exif:
        exif = meta.reset_exif_orientation(raw_exif)
        if exif is None:
            notes.append("the EXIF data is damaged and was dropped")
    icc = info.get("icc_profile")
    xmp = info.get("xmp") or info.get("XML:com.adobe.xmp")  # the second is where Pillow < 11 puts PNG XMP
    if xmp is None and format == "TIFF":
        xmp = getattr(image, "tag_v2", {}).get(700)
    if isinstance(xmp, str):
        xmp = xmp.encode("utf-8")
    if isinstance(xmp, tuple | list) and len(xmp) == 1:  # TIFF tag 700 read as a tuple by some Pillow versions
        xmp = xmp[0]
    return ImageMetadata(
        exif=exif,
        icc_profile=icc if isinstance(icc, bytes) and icc else None,
        dpi=meta.clean_dpi(info.get("dpi")),
        xmp=meta.reset_xmp_orientation(xmp) if isinstance(xmp, bytes) and xmp else None,
    )


def _quantization(image: Image.Image) -> dict[int, list[int]] | None:
    tables = getattr(image, "quantization", None)
    if not tables:
        return None
    return {int(slot): [int(v) for v in table] for slot, table in tables.items()}


def _webp_is_lossless(fp: IO[bytes]) -> bool:
    """A lossless WebP has a VP8L bitstream chunk (possibly after VP8X/ICCP/ALPH chunks)."""
    fp.seek(12)
    while True:
        header = fp.read(8)
        if len(header) < 8:
            return False
        kind, size = header[:4], int.from_bytes(header[4:], "little")
        if kind == b"VP8L":
            return True
        if kind in (b"VP8 ", b"ANMF"):
            return False
        fp.seek(size + (size & 1), os.SEEK_CUR)
