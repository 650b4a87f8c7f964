"""The in-memory image: float pixels for the network plus everything needed to write the file back faithfully."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

DEFAULT_MAX_PIXELS: int = 200_000_000
"""Largest image :func:`load_image` decodes (200 MP: a 16-bit RGB image that size needs 2.4 GB as float32)."""

DEFAULT_JPEG_QUALITY: int = 95
"""JPEG/WebP quality for outputs when the caller gives none (raised to the source's own quality when higher)."""


@dataclass
class ImageMetadata:
    """What a photographer expects to survive processing; each field is None when the source had none."""

    exif: bytes | None = None
    """Raw EXIF starting with ``b"Exif\\0\\0"`` (as in a JPEG APP1 segment), Orientation already reset to 1."""
    icc_profile: bytes | None = None
    dpi: tuple[float, float] | None = None
    """(x, y) dots per inch, in the orientation of :attr:`ImageData.pixels`."""
    xmp: bytes | None = None
    """The XMP packet (UTF-8 XML); any ``tiff:Orientation`` in it reset to 1."""


@dataclass
class ImageData:
    """A decoded image, upright (EXIF orientation applied), ready for processing and for :func:`save_image`.

    ``pixels`` is float32 (H, W, 3) for colour or (H, W, 1) for grayscale, in [0, 1]. ``alpha`` stays (H, W) in its
    original integer dtype so it can be written back bit-exactly. ``jpeg_quantization`` holds Pillow's tables in
    natural (row-major 8x8) order, not zigzag, keyed by table slot (0 = luma, 1 = chroma usually).
    """

    pixels: np.ndarray
    alpha: np.ndarray | None = None
    bit_depth: int = 8
    format: str = "PNG"
    metadata: ImageMetadata = field(default_factory=ImageMetadata)
    jpeg_quantization: dict[int, list[int]] | None = None
    notes: list[str] = field(default_factory=list)
    orientation: int = 1
    """The EXIF orientation (1-8) that was applied on load; 1 means the file was stored upright."""
    webp_lossless: bool = False
    """True for a lossless WebP source, so writing WebP back stays lossless."""

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ValueError unless the arrays have the documented shapes, dtypes and depth (checked again on save)."""
        if not isinstance(self.pixels, np.ndarray) or self.pixels.ndim != 3 or self.pixels.shape[2] not in (1, 3):
            raise ValueError(
                f"pixels must be an (H, W, 3) or (H, W, 1) array, got {getattr(self.pixels, 'shape', None)}"
            )
        if self.bit_depth not in (8, 16):
            raise ValueError(f"bit_depth must be 8 or 16, got {self.bit_depth}")
        if self.alpha is not None:
            if self.alpha.shape != self.pixels.shape[:2]:
                raise ValueError(f"alpha must be (H, W) = {self.pixels.shape[:2]}, got {self.alpha.shape}")
            if self.alpha.dtype not in (np.uint8, np.uint16):
                raise ValueError(f"alpha must be uint8 or uint16, got {self.alpha.dtype}")

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def is_grayscale(self) -> bool:
        return self.pixels.shape[2] == 1

    def with_pixels(self, pixels: np.ndarray) -> ImageData:
        """A copy carrying new pixels (same size) and everything else, e.g. the enhanced result of this image."""
        return replace(self, pixels=pixels, notes=list(self.notes))
