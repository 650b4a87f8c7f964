"""Image I/O: files in, float arrays for processing, files out, without losing what a photographer cares about.

Reading (:func:`load_image`)
    JPEG (and MPO, the multi-picture JPEG phones write), PNG, TIFF, WebP, BMP and GIF. Pixels come out as float32
    in [0, 1], (H, W, 3) colour or (H, W, 1) grey, turned upright by the EXIF orientation (all eight cases).
    16-bit PNG and TIFF (grey, grey+alpha, RGB, RGBA) keep all 16 bits; Pillow itself stops at 8 bits for colour,
    so colour is decoded twice with swapped byte order and recombined (see ``read.py``). Palette images become
    RGB or RGBA. Alpha is split off in its own integer dtype so it is written back bit for bit.
    CMYK is converted to sRGB through its embedded ICC profile (relative colorimetric, black-point compensation)
    and then tagged with an sRGB profile; without a profile a simple formula is used and the output is untagged.
    Other colour profiles (Adobe RGB, ProPhoto ...) are left alone: pixels stay in that space and the profile is
    carried to the output.

    Multi-page TIFF, animated GIF/WebP/PNG and MPO: the first page or frame is processed and a line in
    ``ImageData.notes`` says so. Refusing would lose whole folders of scanner output over a thumbnail page.

    The pixel limit (``max_pixels``, default :data:`DEFAULT_MAX_PIXELS`) is checked from the header before
    decoding, and it is the only limit: headers are parsed without ``Image.open``'s check against Pillow's
    process-wide ``Image.MAX_IMAGE_PIXELS``, which is never read or changed. Every failure is an
    :class:`ImageError` subclass whose message names the file: :class:`ImageNotFound`, :class:`UnreadableImage`
    (empty, truncated, damaged, text behind an image name), :class:`UnsupportedImage` (other formats such as PSD,
    float/HDR data, separate-plane 16-bit TIFF, 16-bit grey+alpha TIFF, which Pillow has no mode for) and
    :class:`ImageTooLarge`. Content decides the format; a misleading suffix only adds a note.

Writing (:func:`save_image`)
    JPEG, PNG, TIFF, WebP and BMP; GIF is read-only and kept as PNG (:func:`output_format`). 16-bit sources stay
    16-bit in PNG and TIFF (exact: a float written is ``round(value * 65535)``); 8-bit values written unchanged
    come back bit-exact. Grey stays grey, except in WebP (no grey mode: written as RGB). JPEG: quality 95, or
    the source's own quality when higher, 4:4:4 chroma at quality >= 90 (4:2:0 below), optimised Huffman
    tables. WebP: lossy at the same quality, lossless when the source was lossless WebP. TIFF: Deflate with a
    horizontal predictor, written here (``containers.py``) so EXIF sub-IFDs and 16-bit colour survive. Alpha
    goes where the format has it (PNG, TIFF, WebP) and is composited onto white elsewhere (JPEG, BMP). EXIF
    (Orientation 1), ICC, DPI and XMP go wherever the format can hold them (BMP: DPI only; WebP: no DPI); an
    ICC profile for another colour space than the output's (grey vs RGB) is dropped. Files are replaced
    atomically: a hidden ``.<name>.<random>.tmp`` in the same folder, fsync, rename, fsync of the folder.
"""

from .errors import ImageError, ImageNotFound, ImageTooLarge, ImageWriteError, UnreadableImage, UnsupportedImage
from .formats import READ_FORMATS, WRITE_FORMATS, format_extension, normalize_format, output_format, sniff_format
from .metadata import apply_orientation
from .model import DEFAULT_JPEG_QUALITY, DEFAULT_MAX_PIXELS, ImageData, ImageMetadata
from .read import load_image
from .write import default_jpeg_quality, estimate_jpeg_quality, save_image

__all__ = [
    "DEFAULT_JPEG_QUALITY",
    "DEFAULT_MAX_PIXELS",
    "READ_FORMATS",
    "WRITE_FORMATS",
    "ImageData",
    "ImageError",
    "ImageMetadata",
    "ImageNotFound",
    "ImageTooLarge",
    "ImageWriteError",
    "UnreadableImage",
    "UnsupportedImage",
    "apply_orientation",
    "default_jpeg_quality",
    "estimate_jpeg_quality",
    "format_extension",
    "load_image",
    "normalize_format",
    "output_format",
    "save_image",
    "sniff_format",
]
