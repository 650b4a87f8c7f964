"""Image I/O: round trips per format and mode, orientation, metadata, alpha, 16 bits, bad inputs, atomic saves.

Every input is generated here. Where our own writer could hide a bug from our own reader, an independent codec
(Pillow, OpenCV, tifffile, or the tiny PNG writer below) writes the input or reads the output.
"""

from __future__ import annotations

import io
import os
import struct
import time
import tracemalloc
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageCms, ImageOps, JpegImagePlugin

from core.imageio import (
    DEFAULT_MAX_PIXELS,
    ImageData,
    ImageError,
    ImageMetadata,
    ImageNotFound,
    ImageTooLarge,
    ImageWriteError,
    UnreadableImage,
    UnsupportedImage,
    apply_orientation,
    estimate_jpeg_quality,
    format_extension,
    load_image,
    output_format,
    save_image,
    sniff_format,
)
from core.imageio import metadata as meta
from core.imageio import write as write_module

cv2 = pytest.importorskip("cv2")
tifffile = pytest.importorskip("tifffile")

# --------------------------------------------------------------------------------------------------- helpers


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _u8(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return _rng(seed).integers(0, 256, shape, dtype=np.uint8)


def _u16(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return _rng(seed).integers(0, 65536, shape, dtype=np.uint16)


def _as8(image: ImageData) -> np.ndarray:
    return np.round(image.pixels * 255).astype(np.uint8)


def _as16(image: ImageData) -> np.ndarray:
    return np.round(image.pixels * 65535).astype(np.uint16)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png_bytes(width: int, height: int, depth: int, colour_type: int, rows: bytes | None = None) -> bytes:
    """A minimal PNG written by hand (filter 0 on every row), independent of the code under test."""
    if rows is None:
        rows = b""
    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", zlib.compress(rows))
        + _png_chunk(b"IEND", b"")
    )


_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))


def _png_from_samples(samples: np.ndarray, colour_type: int, interlaced: bool = False) -> bytes:
    height, width = samples.shape[:2]
    big = samples.astype(">u2") if samples.dtype == np.uint16 else samples
    passes = _ADAM7 if interlaced else ((0, 0, 1, 1),)
    rows = b""
    for x0, y0, dx, dy in passes:
        sub = big[y0::dy, x0::dx]
        if sub.size:
            rows += b"".join(b"\x00" + row.tobytes() for row in sub)
    data = _png_bytes(width, height, samples.dtype.itemsize * 8, colour_type, rows)
    if interlaced:  # the interlace method is the last byte of IHDR; its CRC must follow suit
        ihdr = bytearray(data[16:29])
        ihdr[12] = 1
        data = data[:8] + _png_chunk(b"IHDR", bytes(ihdr)) + data[33:]
    return data


def _exif_bytes(orientation: int | None = None, with_sub_ifds: bool = True) -> bytes:
    exif = Image.Exif()
    exif[0x010F] = "Acme"  # Make
    exif[0x0110] = "Model 7"  # Model
    exif[0x8298] = "(c) Jane Doe"  # Copyright
    if orientation is not None:
        exif[0x0112] = orientation
    if with_sub_ifds:
        exif[0x8769] = {0x9003: "2024:05:01 10:11:12", 0x8827: 400}  # DateTimeOriginal, ISO
        exif[0x8825] = {0x0001: "N", 0x0002: (48.0, 51.0, 24.0)}  # GPS latitude
    return exif.tobytes()


def _parse_exif(raw: bytes | None) -> Image.Exif:
    assert raw is not None
    exif = Image.Exif()
    exif.load(raw)
    return exif


def _assert_descriptive_exif(raw: bytes | None) -> None:
    exif = _parse_exif(raw)
    assert exif[0x010F] == "Acme"
    assert exif[0x0110] == "Model 7"
    assert exif[0x8298] == "(c) Jane Doe"
    assert exif.get(0x0112, 1) == 1
    sub = exif.get_ifd(0x8769)
    assert sub[0x9003] == "2024:05:01 10:11:12"
    assert sub[0x8827] == 400
    gps = exif.get_ifd(0x8825)
    assert gps[0x0001] == "N"


def _srgb_icc() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def _s15(value: float) -> bytes:
    return struct.pack(">i", round(value * 65536))


def _cmyk_icc_cyan_is_red() -> bytes:
    """A CMYK printer profile (lut8 A2B0 to Lab, 2-point grid) in which cyan ink looks red.

    A naive CMYK->RGB formula turns cyan into (0, 255, 255); only a real ICC transform gives red, so the test
    can tell the two paths apart.
    """

    def lab(c: int, m: int, y: int, k: int) -> tuple[float, float, float]:
        if k:
            return 0.0, 0.0, 0.0
        if c and not m and not y:
            return 54.0, 80.0, 67.0
        if not (c or m or y):
            return 100.0, 0.0, 0.0
        return 30.0, 0.0, 0.0

    clut = bytearray()
    for c in (0, 1):
        for m in (0, 1):
            for y in (0, 1):
                for k in (0, 1):
                    lightness, a, b = lab(c, m, y, k)
                    clut += bytes([round(lightness / 100 * 255), round(a + 128), round(b + 128)])
    ramp = bytes(range(256))
    identity = b"".join(_s15(v) for v in (1, 0, 0, 0, 1, 0, 0, 0, 1))
    lut = b"mft1" + b"\0" * 4 + bytes([4, 3, 2, 0]) + identity + ramp * 4 + bytes(clut) + ramp * 3
    text = b"cyan-is-red test CMYK\0"
    desc = b"desc" + b"\0" * 4 + struct.pack(">I", len(text)) + text + b"\0" * 8 + b"\0" * 3 + b"\0" * 67
    white = b"XYZ " + b"\0" * 4 + _s15(0.9642) + _s15(1.0) + _s15(0.8249)
    tags = [(b"desc", desc), (b"wtpt", white), (b"cprt", b"text" + b"\0" * 4 + b"none\0"), (b"A2B0", lut)]
    start = 128 + 4 + 12 * len(tags)
    table, data = struct.pack(">I", len(tags)), b""
    for signature, body in tags:
        data += b"\0" * (-(start + len(data)) % 4)
        table += signature + struct.pack(">II", start + len(data), len(body))
        data += body
    header = (
        struct.pack(">I", start + len(data))
        + b"lcms"
        + bytes([2, 0x10, 0, 0])
        + b"prtrCMYKLab "
        + b"\0" * 12
        + b"acspAPPL"
        + b"\0" * 24
        + _s15(0.9642)
        + _s15(1.0)
        + _s15(0.8249)
        + b"lcms"
        + b"\0" * 44
    )
    assert len(header) == 128
    return header + table + data


def _quadrant_colours(pixels: np.ndarray) -> np.ndarray:
    """Median colour of the middle of each quadrant, away from the edges JPEG smears."""
    height, width = pixels.shape[:2]
    out = []
    for row in (height // 4, 3 * height // 4):
        for col in (width // 4, 3 * width // 4):
            patch = pixels[row - height // 8 : row + height // 8, col - width // 8 : col + width // 8]
            out.append(np.median(patch.reshape(-1, pixels.shape[2]), axis=0))
    return np.array(out)


def _assert_same_quadrants(actual: np.ndarray, expected: np.ndarray) -> None:
    assert actual.shape == expected.shape
    np.testing.assert_allclose(
        _quadrant_colours(actual.astype(float)), _quadrant_colours(expected.astype(float)), atol=8
    )


def _quadrants(height: int = 32, width: int = 48) -> np.ndarray:
    """Four flat colours, one per quadrant: survives JPEG and shows any rotation or mirror."""
    colours = {(0, 0): (220, 30, 30), (0, 1): (30, 220, 30), (1, 0): (30, 30, 220), (1, 1): (230, 230, 40)}
    out = np.zeros((height, width, 3), dtype=np.uint8)
    for (row, col), colour in colours.items():
        out[row * height // 2 : (row + 1) * height // 2, col * width // 2 : (col + 1) * width // 2] = colour
    return out


def _dir_entries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# --------------------------------------------------------------------------------------------------- round trips


@pytest.mark.parametrize(
    ("mode", "shape"),
    [("RGB", (9, 11, 3)), ("L", (9, 11)), ("RGBA", (9, 11, 4)), ("LA", (9, 11, 2))],
)
def test_8bit_png_round_trip_is_bit_exact(tmp_path: Path, mode: str, shape: tuple[int, ...]) -> None:
    source = _u8(shape)
    Image.fromarray(source).save(tmp_path / "in.png")
    image = load_image(tmp_path / "in.png")
    assert (image.format, image.bit_depth, image.width, image.height) == ("PNG", 8, 11, 9)
    assert image.pixels.dtype == np.float32
    colour = source[..., None] if source.ndim == 2 else source
    channels = 1 if mode in ("L", "LA") else 3
    assert image.pixels.shape == (9, 11, channels)
    np.testing.assert_array_equal(_as8(image), colour[..., :channels])
    if mode in ("RGBA", "LA"):
        assert image.alpha is not None and image.alpha.dtype == np.uint8
        np.testing.assert_array_equal(image.alpha, source[..., -1])
    else:
        assert image.alpha is None
    out = save_image(image, tmp_path / "out.png")
    with Image.open(out) as written:
        assert written.mode == mode
        np.testing.assert_array_equal(np.asarray(written), source)


@pytest.mark.parametrize("channels", [3, 4])
def test_16bit_colour_png_written_by_opencv_is_read_exactly(tmp_path: Path, channels: int) -> None:
    source = _u16((7, 10, channels), seed=channels)
    bgr = source[..., [2, 1, 0, 3][:channels]]
    assert cv2.imwrite(str(tmp_path / "in.png"), bgr)
    image = load_image(tmp_path / "in.png")
    assert image.bit_depth == 16
    np.testing.assert_array_equal(_as16(image), source[..., :3])
    if channels == 4:
        assert image.alpha is not None and image.alpha.dtype == np.uint16
        np.testing.assert_array_equal(image.alpha, source[..., 3])
    for suffix in (".png", ".tif"):
        out = save_image(image, tmp_path / f"out{suffix}")
        again = load_image(out)
        assert again.bit_depth == 16
        np.testing.assert_array_equal(_as16(again), source[..., :3])
        if channels == 4:
            np.testing.assert_array_equal(again.alpha, source[..., 3])
    # independent readers agree on what was written
    read_back = cv2.imread(str(tmp_path / "out.png"), cv2.IMREAD_UNCHANGED)
    assert read_back.dtype == np.uint16
    np.testing.assert_array_equal(read_back, bgr)
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "out.tif"), source)


def test_16bit_grey_png_i16_round_trip(tmp_path: Path) -> None:
    source = _u16((6, 9))
    Image.fromarray(source).save(tmp_path / "in.png")  # Pillow mode I;16
    image = load_image(tmp_path / "in.png")
    assert (image.bit_depth, image.pixels.shape) == (16, (6, 9, 1))
    np.testing.assert_array_equal(_as16(image)[..., 0], source)
    out = save_image(image, tmp_path / "out.png")
    with Image.open(out) as written:
        assert written.mode in ("I;16", "I;16B", "I")
        np.testing.assert_array_equal(np.asarray(written).astype(np.uint16), source)


def test_16bit_grey_with_alpha_png_keeps_both_channels(tmp_path: Path) -> None:
    source = _u16((5, 8, 2), seed=3)
    (tmp_path / "la16.png").write_bytes(_png_from_samples(source, colour_type=4))
    image = load_image(tmp_path / "la16.png")
    assert (image.bit_depth, image.pixels.shape) == (16, (5, 8, 1))
    np.testing.assert_array_equal(_as16(image)[..., 0], source[..., 0])
    np.testing.assert_array_equal(image.alpha, source[..., 1])
    again = load_image(save_image(image, tmp_path / "out.png"))
    np.testing.assert_array_equal(_as16(again)[..., 0], source[..., 0])
    np.testing.assert_array_equal(again.alpha, source[..., 1])


@pytest.mark.parametrize(("channels", "colour_type"), [(4, 6), (3, 2), (2, 4)])
def test_interlaced_16bit_png_is_read_exactly(tmp_path: Path, channels: int, colour_type: int) -> None:
    source = _u16((13, 11, channels), seed=channels)
    (tmp_path / "i.png").write_bytes(_png_from_samples(source, colour_type, interlaced=True))
    with Image.open(tmp_path / "i.png") as check:
        assert check.info.get("interlace") == 1
    image = load_image(tmp_path / "i.png")
    colour = 1 if channels == 2 else 3
    np.testing.assert_array_equal(_as16(image), source[..., :colour])
    if channels in (2, 4):
        np.testing.assert_array_equal(image.alpha, source[..., -1])


@pytest.mark.parametrize("byteorder", ["<", ">"])
@pytest.mark.parametrize("compression", [None, "zlib"])
def test_16bit_tiff_from_tifffile(tmp_path: Path, byteorder: str, compression: str | None) -> None:
    source = _u16((6, 7, 3), seed=5)
    tifffile.imwrite(tmp_path / "in.tif", source, photometric="rgb", byteorder=byteorder, compression=compression)
    image = load_image(tmp_path / "in.tif")
    assert (image.format, image.bit_depth) == ("TIFF", 16)
    np.testing.assert_array_equal(_as16(image), source)


def test_8bit_and_16bit_grey_tiff_round_trip(tmp_path: Path) -> None:
    grey8 = _u8((5, 6))
    Image.fromarray(grey8).save(tmp_path / "g8.tif")
    image = load_image(tmp_path / "g8.tif")
    assert (image.bit_depth, image.pixels.shape[2]) == (8, 1)
    np.testing.assert_array_equal(_as8(load_image(save_image(image, tmp_path / "o8.tif")))[..., 0], grey8)
    assert tifffile.imread(tmp_path / "o8.tif").dtype == np.uint8

    grey16 = _u16((5, 6))
    Image.fromarray(grey16).save(tmp_path / "g16.tif")
    image = load_image(tmp_path / "g16.tif")
    assert (image.bit_depth, image.pixels.shape[2]) == (16, 1)
    save_image(image, tmp_path / "o16.tif")
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "o16.tif"), grey16)


def test_16bit_grey_alpha_tiff_is_written_for_other_readers(tmp_path: Path) -> None:
    """Pillow has no mode for 16-bit grey+alpha TIFF: we write a standard one, and refuse to read it clearly."""
    source = _u16((4, 5, 2), seed=8)
    image = ImageData(source[..., :1].astype(np.float32) / 65535, alpha=source[..., 1], bit_depth=16)
    out = save_image(image, tmp_path / "la16.tif")
    np.testing.assert_array_equal(tifffile.imread(out), source)
    with pytest.raises(UnsupportedImage) as error:
        load_image(out)
    _assert_error(error, out, "not supported")


def test_every_16bit_value_survives_float32_exactly(tmp_path: Path) -> None:
    every = np.arange(65536, dtype=np.uint16).reshape(256, 256)
    source = np.stack([every, every[::-1], every.T], axis=-1)
    cv2.imwrite(str(tmp_path / "all.png"), source[..., ::-1])
    image = load_image(tmp_path / "all.png")
    np.testing.assert_array_equal(_as16(image), source)
    for suffix in (".png", ".tif"):
        np.testing.assert_array_equal(_as16(load_image(save_image(image, tmp_path / f"o{suffix}"))), source)


def test_float_pixels_are_written_as_round_value_times_65535(tmp_path: Path) -> None:
    pixels = np.array([[[0.123456, 0.5, 0.99999], [0.0, 1.0, 0.333333]]], dtype=np.float32)
    save_image(ImageData(pixels, bit_depth=16), tmp_path / "f.tif")
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "f.tif"), np.round(pixels * 65535).astype(np.uint16))


def test_every_8bit_value_round_trips_in_lossless_formats(tmp_path: Path) -> None:
    every = np.arange(256, dtype=np.uint8).reshape(16, 16)
    source = np.stack([every, every.T, every[::-1]], axis=-1)
    image = ImageData(source.astype(np.float32) / 255)
    for suffix in (".png", ".tif", ".bmp", ".webp"):
        if suffix == ".webp":
            image.webp_lossless = True
        np.testing.assert_array_equal(_as8(load_image(save_image(image, tmp_path / f"o{suffix}"))), source)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    height=st.integers(1, 12),
    width=st.integers(1, 12),
    channels=st.sampled_from([1, 3]),
    alpha=st.booleans(),
    sixteen=st.booleans(),
    suffix=st.sampled_from([".png", ".tif"]),
    seed=st.integers(0, 2**16),
)
def test_arrays_round_trip_through_save_and_load(
    tmp_path: Path, height: int, width: int, channels: int, alpha: bool, sixteen: bool, suffix: str, seed: int
) -> None:
    assume(not (suffix == ".tif" and sixteen and alpha and channels == 1))  # see test_16bit_grey_alpha_tiff
    bits = 16 if sixteen else 8
    maximum = 2**bits - 1
    values = _rng(seed).integers(0, maximum + 1, (height, width, channels))
    alpha_values = _rng(seed + 1).integers(0, maximum + 1, (height, width)).astype(np.uint16 if sixteen else np.uint8)
    image = ImageData(values.astype(np.float32) / maximum, alpha=alpha_values if alpha else None, bit_depth=bits)
    again = load_image(save_image(image, tmp_path / f"h{suffix}"))
    assert again.bit_depth == bits
    np.testing.assert_array_equal(np.round(again.pixels * maximum), values)
    if alpha:
        np.testing.assert_array_equal(again.alpha, alpha_values)
    else:
        assert again.alpha is None


def test_palette_png_becomes_rgb_and_transparent_palette_rgba(tmp_path: Path) -> None:
    source = Image.fromarray(_u8((8, 8, 3))).quantize(16)
    source.save(tmp_path / "p.png")
    image = load_image(tmp_path / "p.png")
    assert image.pixels.shape == (8, 8, 3) and image.alpha is None
    np.testing.assert_array_equal(_as8(image), np.asarray(source.convert("RGB")))

    source.save(tmp_path / "pt.png", transparency=3)
    image = load_image(tmp_path / "pt.png")
    with Image.open(tmp_path / "pt.png") as written:
        expected = np.asarray(written.convert("RGBA"))
    assert (expected[..., 3] == 0).any() and (expected[..., 3] == 255).any()
    assert image.alpha is not None
    np.testing.assert_array_equal(image.alpha, expected[..., 3])
    np.testing.assert_array_equal(_as8(image), expected[..., :3])


@pytest.mark.parametrize(("shape", "key"), [((6, 6, 3), (10, 20, 30)), ((6, 6), 77)])
def test_png_colour_key_transparency_becomes_alpha(tmp_path: Path, shape: tuple[int, ...], key: object) -> None:
    source = _u8(shape)
    source[2, 3] = key
    Image.fromarray(source).save(tmp_path / "k.png", transparency=key)
    image = load_image(tmp_path / "k.png")
    keyed = np.all(source == key, axis=-1) if source.ndim == 3 else source == key
    np.testing.assert_array_equal(image.alpha, np.where(keyed, 0, 255))
    np.testing.assert_array_equal(_as8(image), source.reshape(6, 6, -1))


def test_bilevel_png_is_read_as_grey(tmp_path: Path) -> None:
    source = _u8((6, 6)) > 127
    Image.fromarray(source).save(tmp_path / "bw.png")
    image = load_image(tmp_path / "bw.png")
    assert (image.bit_depth, image.pixels.shape) == (8, (6, 6, 1))
    np.testing.assert_array_equal(_as8(image)[..., 0], source.astype(np.uint8) * 255)


def test_bmp_rgb_and_grey_round_trip(tmp_path: Path) -> None:
    rgb = _u8((5, 7, 3))
    Image.fromarray(rgb).save(tmp_path / "c.bmp")
    image = load_image(tmp_path / "c.bmp")
    assert image.format == "BMP"
    np.testing.assert_array_equal(_as8(load_image(save_image(image, tmp_path / "o.bmp"))), rgb)

    grey = _u8((5, 7))
    Image.fromarray(grey).save(tmp_path / "g.bmp")
    image = load_image(tmp_path / "g.bmp")
    assert image.is_grayscale
    again = load_image(save_image(image, tmp_path / "og.bmp"))
    assert again.is_grayscale
    np.testing.assert_array_equal(_as8(again)[..., 0], grey)


def test_webp_lossless_stays_lossless_and_lossy_stays_close(tmp_path: Path) -> None:
    source = _u8((12, 10, 4))
    Image.fromarray(source).save(tmp_path / "l.webp", lossless=True, exact=True)
    image = load_image(tmp_path / "l.webp")
    assert (image.format, image.webp_lossless) == ("WEBP", True)
    again = load_image(save_image(image, tmp_path / "o.webp"))
    assert again.webp_lossless
    np.testing.assert_array_equal(_as8(again), source[..., :3])
    np.testing.assert_array_equal(again.alpha, source[..., 3])

    smooth = np.repeat(np.linspace(40, 200, 32, dtype=np.uint8)[None, :, None], 32, axis=0).repeat(3, axis=2)
    Image.fromarray(smooth).save(tmp_path / "lossy.webp", quality=90)
    image = load_image(tmp_path / "lossy.webp")
    assert not image.webp_lossless
    assert np.abs(_as8(image).astype(int) - smooth).mean() < 3


def test_grey_to_webp_is_written_as_rgb(tmp_path: Path) -> None:
    grey = ImageData(np.full((4, 4, 1), 0.5, dtype=np.float32), webp_lossless=True)
    again = load_image(save_image(grey, tmp_path / "g.webp"))
    assert again.pixels.shape == (4, 4, 3)
    assert np.all(_as8(again) == 128)


def test_jpeg_load_exposes_quantization_in_natural_order(tmp_path: Path) -> None:
    Image.fromarray(_quadrants()).save(tmp_path / "q.jpg", quality=50)
    image = load_image(tmp_path / "q.jpg")
    assert image.format == "JPEG" and image.bit_depth == 8
    assert image.jpeg_quantization is not None
    # IJG quality 50 is the standard Annex K table, whose natural order starts 16 11 10 16 24 40 51 61 / 12 12 14
    assert image.jpeg_quantization[0][:11] == [16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14]
    assert set(image.jpeg_quantization) == {0, 1}
    assert estimate_jpeg_quality(image.jpeg_quantization) == 50
    _assert_same_quadrants(_as8(image), _quadrants())


def test_quantization_is_none_for_other_formats(tmp_path: Path) -> None:
    Image.fromarray(_u8((4, 4, 3))).save(tmp_path / "x.png")
    assert load_image(tmp_path / "x.png").jpeg_quantization is None


@pytest.mark.parametrize(("source_quality", "requested", "expected"), [(50, None, 95), (98, None, 98), (50, 80, 80)])
def test_jpeg_output_quality_and_subsampling(
    tmp_path: Path, source_quality: int, requested: int | None, expected: int
) -> None:
    Image.fromarray(_quadrants()).save(tmp_path / "s.jpg", quality=source_quality)
    image = load_image(tmp_path / "s.jpg")
    out = save_image(image, tmp_path / "o.jpg", jpeg_quality=requested)
    with Image.open(out) as written:
        assert isinstance(written, JpegImagePlugin.JpegImageFile)
        assert estimate_jpeg_quality({k: list(v) for k, v in written.quantization.items()}) == expected
        assert JpegImagePlugin.get_sampling(written) == (0 if expected >= 90 else 2)  # 4:4:4 vs 4:2:0


def test_grey_jpeg_stays_grey(tmp_path: Path) -> None:
    Image.fromarray(np.full((16, 16), 90, dtype=np.uint8)).save(tmp_path / "g.jpg")
    image = load_image(tmp_path / "g.jpg")
    assert image.is_grayscale
    out = save_image(image, tmp_path / "o.jpg")
    with Image.open(out) as written:
        assert written.mode == "L"


def test_cmyk_jpeg_without_profile_uses_the_simple_formula(tmp_path: Path) -> None:
    cmyk = Image.fromarray(_u8((8, 8, 4)), mode="CMYK")
    cmyk.save(tmp_path / "c.jpg", quality=100)
    image = load_image(tmp_path / "c.jpg")
    with Image.open(tmp_path / "c.jpg") as decoded:
        expected = np.asarray(decoded.convert("RGB"))
    np.testing.assert_array_equal(_as8(image), expected)
    assert image.metadata.icc_profile is None
    assert any("CMYK" in note for note in image.notes)


def test_cmyk_jpeg_with_profile_goes_through_the_profile_to_srgb(tmp_path: Path) -> None:
    cyan = Image.new("CMYK", (8, 8), (255, 0, 0, 0))
    cyan.save(tmp_path / "c.jpg", quality=100, icc_profile=_cmyk_icc_cyan_is_red())
    image = load_image(tmp_path / "c.jpg")
    red, green, blue = _as8(image)[4, 4].astype(int)
    assert red > 200 and green < 60 and blue < 60, "the profile says cyan ink prints red"
    assert image.metadata.icc_profile is not None
    assert meta.icc_colour_space(image.metadata.icc_profile) == "RGB"
    assert any("ICC" in note for note in image.notes)
    with Image.open(save_image(image, tmp_path / "o.png")) as written:
        assert written.info.get("icc_profile") == image.metadata.icc_profile


def test_cmyk_with_a_broken_profile_falls_back_with_a_note(tmp_path: Path) -> None:
    Image.new("CMYK", (4, 4), (0, 255, 0, 0)).save(tmp_path / "c.jpg", icc_profile=b"not really a profile" * 10)
    image = load_image(tmp_path / "c.jpg")
    assert image.pixels.shape == (4, 4, 3)
    assert any("could not be used" in note for note in image.notes)


def test_static_gif_is_read_and_kept_as_png(tmp_path: Path) -> None:
    source = Image.fromarray(_u8((6, 6, 3))).quantize(8)
    source.save(tmp_path / "s.gif")
    image = load_image(tmp_path / "s.gif")
    assert image.format == "GIF" and image.notes == []
    np.testing.assert_array_equal(_as8(image), np.asarray(source.convert("RGB")))
    assert output_format(image.format) == "PNG" and format_extension(image.format) == ".png"


@pytest.mark.parametrize("suffix", [".gif", ".webp", ".png"])
def test_animations_keep_the_first_frame_with_a_note(tmp_path: Path, suffix: str) -> None:
    frames = [Image.new("RGB", (8, 8), colour) for colour in ((250, 0, 0), (0, 250, 0), (0, 0, 250))]
    frames[0].save(tmp_path / f"a{suffix}", save_all=True, append_images=frames[1:], duration=100, loop=0)
    image = load_image(tmp_path / f"a{suffix}")
    assert image.notes == [f"animated {image.format}: processed frame 1 of 3; the animation is not kept"]
    red, green, blue = _as8(image)[4, 4].astype(int)
    assert red > 200 and green < 40 and blue < 40


def test_multipage_tiff_processes_page_one_with_a_note(tmp_path: Path) -> None:
    pages = [Image.new("RGB", (5, 4), (10 * i, 20, 30)) for i in range(1, 4)]
    pages[0].save(tmp_path / "m.tif", save_all=True, append_images=pages[1:])
    image = load_image(tmp_path / "m.tif")
    assert image.notes == ["multi-page TIFF: processed page 1 of 3"]
    np.testing.assert_array_equal(_as8(image)[0, 0], [10, 20, 30])


def test_mpo_is_read_as_its_primary_jpeg(tmp_path: Path) -> None:
    frames = [Image.fromarray(_quadrants()), Image.new("RGB", (48, 32), (0, 0, 0))]
    frames[0].save(tmp_path / "m.jpg", format="MPO", save_all=True, append_images=frames[1:])
    with Image.open(tmp_path / "m.jpg") as check:
        assert check.format == "MPO"
    image = load_image(tmp_path / "m.jpg")
    assert image.format == "JPEG" and image.jpeg_quantization is not None
    assert image.notes and "MPO" in image.notes[0]
    _assert_same_quadrants(_as8(image), _quadrants())


def test_content_wins_over_a_wrong_suffix(tmp_path: Path) -> None:
    Image.fromarray(_u8((4, 4, 3))).save(tmp_path / "really_png.jpg", format="PNG")
    image = load_image(tmp_path / "really_png.jpg")
    assert image.format == "PNG"
    assert image.notes == ["the file is named .jpg but contains a PNG image"]


# --------------------------------------------------------------------------------------------------- orientation


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_matches_pillow_exif_transpose(tmp_path: Path, orientation: int) -> None:
    stored = _u8((3, 5, 3), seed=orientation)
    alpha = _u8((3, 5), seed=99)
    pil = Image.fromarray(np.dstack([stored, alpha]))
    pil.save(tmp_path / "o.png", exif=_exif_bytes(orientation), dpi=(300, 150))
    upright = np.asarray(ImageOps.exif_transpose(Image.open(tmp_path / "o.png")))
    image = load_image(tmp_path / "o.png")
    assert image.orientation == orientation
    np.testing.assert_array_equal(_as8(image), upright[..., :3])
    np.testing.assert_array_equal(image.alpha, upright[..., 3])
    assert image.metadata.dpi == ((150.0, 300.0) if orientation >= 5 else (300.0, 150.0))
    _assert_descriptive_exif(image.metadata.exif)

    for suffix in (".jpg", ".png", ".tif", ".webp"):
        out = save_image(image, tmp_path / f"out{suffix}")
        with Image.open(out) as written:
            assert written.size == (image.width, image.height)
            assert written.getexif().get(0x0112, 1) == 1
        again = load_image(out)
        assert again.orientation == 1
        assert again.pixels.shape == image.pixels.shape
        _assert_descriptive_exif(again.metadata.exif)


def test_orientation_six_turns_the_picture_clockwise(tmp_path: Path) -> None:
    stored = np.array([[1, 2, 3], [4, 5, 6]], dtype=np.uint8)
    Image.fromarray(stored).save(tmp_path / "six.png", exif=_exif_bytes(6))
    image = load_image(tmp_path / "six.png")
    np.testing.assert_array_equal(_as8(image)[..., 0], [[4, 1], [5, 2], [6, 3]])


def test_orientation_in_jpeg_is_applied_and_reset(tmp_path: Path) -> None:
    stored = _quadrants()
    Image.fromarray(stored).save(tmp_path / "r.jpg", exif=_exif_bytes(8), quality=95)
    image = load_image(tmp_path / "r.jpg")
    assert (image.width, image.height) == (32, 48)
    _assert_same_quadrants(_as8(image), np.rot90(stored, 1))
    with Image.open(save_image(image, tmp_path / "o.jpg")) as written:
        assert written.getexif()[0x0112] == 1
        assert written.size == (32, 48)


def test_orientation_tag_of_a_tiff_is_applied(tmp_path: Path) -> None:
    stored = _u8((2, 3, 3))
    exif = Image.Exif()
    exif[0x0112] = 3
    exif[0x010F] = "Acme"
    Image.fromarray(stored).save(tmp_path / "t.tif", exif=exif)
    image = load_image(tmp_path / "t.tif")
    assert image.orientation == 3
    np.testing.assert_array_equal(_as8(image), stored[::-1, ::-1])
    carried = _parse_exif(image.metadata.exif)
    assert carried[0x010F] == "Acme" and carried.get(0x0112, 1) == 1


def test_set_exif_orientation_changes_only_the_value_bytes() -> None:
    raw = _exif_bytes(6)
    patched = meta.set_exif_orientation(raw, 1)
    assert len(patched) == len(raw)
    differing = [i for i, (a, b) in enumerate(zip(raw, patched)) if a != b]
    assert len(differing) == 1
    assert _parse_exif(patched)[0x0112] == 1
    assert meta.set_exif_orientation(_exif_bytes(None), 1) == _exif_bytes(None)
    with pytest.raises(ValueError):
        meta.set_exif_orientation(b"Exif\x00\x00garbage", 1)


def test_damaged_exif_is_dropped_with_a_note(tmp_path: Path) -> None:
    Image.fromarray(_u8((4, 4, 3))).save(tmp_path / "d.png", exif=b"Exif\x00\x00XX\x00\x00garbage")
    image = load_image(tmp_path / "d.png")
    assert image.metadata.exif is None
    assert "the EXIF data is damaged and was dropped" in image.notes


def test_xmp_orientation_is_reset_too() -> None:
    xmp = b'<rdf:Description tiff:Orientation="6" x="1"/><tiff:Orientation>8</tiff:Orientation>'
    assert meta.reset_xmp_orientation(xmp) == b'<rdf:Description tiff:Orientation="1" x="1"/>' + (
        b"<tiff:Orientation>1</tiff:Orientation>"
    )


def test_apply_orientation_inverts_to_identity() -> None:
    array = np.arange(12).reshape(3, 4)
    for orientation in range(1, 9):
        expected = np.asarray(ImageOps.exif_transpose(_with_orientation(array, orientation)))
        np.testing.assert_array_equal(apply_orientation(array, orientation), expected)


def _with_orientation(array: np.ndarray, orientation: int) -> Image.Image:
    image = Image.fromarray(array.astype(np.uint8))
    image.getexif()[0x0112] = orientation
    return image


# --------------------------------------------------------------------------------------------------- metadata


XMP = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF><rdf:Description dc:creator="Jane"/></rdf:RDF></x:xmpmeta>'


@pytest.mark.parametrize("suffix", [".jpg", ".png", ".tif", ".webp"])
@pytest.mark.parametrize("bit_depth", [8, 16])
def test_icc_dpi_xmp_exif_travel_to_the_output(tmp_path: Path, suffix: str, bit_depth: int) -> None:
    icc = _srgb_icc()
    image = ImageData(
        _u8((6, 5, 3)).astype(np.float32) / 255,
        bit_depth=bit_depth,
        metadata=ImageMetadata(exif=_exif_bytes(), icc_profile=icc, dpi=(240.0, 240.0), xmp=XMP),
    )
    out = save_image(image, tmp_path / f"m{suffix}")
    with Image.open(out) as written:  # Pillow reads what we wrote: the metadata is where readers look for it
        written.load()
        assert written.info.get("icc_profile") == icc
        if suffix != ".webp":
            assert written.info.get("dpi") == pytest.approx((240.0, 240.0), abs=0.01)
        xmp = written.info.get("xmp")
        assert (xmp.encode() if isinstance(xmp, str) else xmp) == XMP
    again = load_image(out)
    assert again.metadata.icc_profile == icc
    assert again.metadata.xmp == XMP
    assert again.metadata.dpi == (None if suffix == ".webp" else (240.0, 240.0))
    _assert_descriptive_exif(again.metadata.exif)


def test_tiff_exif_keeps_description_not_layout(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif.load(_exif_bytes())
    Image.fromarray(_u8((4, 4, 3))).save(tmp_path / "t.tif", exif=exif, dpi=(300, 300))
    image = load_image(tmp_path / "t.tif")
    assert image.metadata.dpi == (300.0, 300.0)
    parsed = _parse_exif(image.metadata.exif)
    assert parsed[0x010F] == "Acme"
    assert not {256, 257, 258, 273, 279} & set(parsed)
    out = save_image(image, tmp_path / "o.jpg")
    _assert_descriptive_exif(load_image(out).metadata.exif)


def test_metadata_a_format_cannot_hold_is_dropped_quietly(tmp_path: Path) -> None:
    image = ImageData(
        np.zeros((3, 3, 3), dtype=np.float32),
        metadata=ImageMetadata(exif=_exif_bytes(), icc_profile=_srgb_icc(), dpi=(72.0, 72.0), xmp=XMP),
    )
    again = load_image(save_image(image, tmp_path / "m.bmp"))
    assert again.metadata == ImageMetadata(dpi=(72.0, 72.0))


def test_an_rgb_profile_is_not_put_on_a_grey_output(tmp_path: Path) -> None:
    image = ImageData(np.zeros((3, 3, 1), dtype=np.float32), metadata=ImageMetadata(icc_profile=_srgb_icc()))
    assert load_image(save_image(image, tmp_path / "g.png")).metadata.icc_profile is None


def test_png_dpi_rounding_noise_is_removed(tmp_path: Path) -> None:
    Image.fromarray(_u8((3, 3, 3))).save(tmp_path / "d.png", dpi=(300, 72))
    with Image.open(tmp_path / "d.png") as raw:
        assert raw.info["dpi"] != (300, 72)  # stored as pixels per metre: 299.9994
    assert load_image(tmp_path / "d.png").metadata.dpi == (300.0, 72.0)


# --------------------------------------------------------------------------------------------------- alpha


@pytest.mark.parametrize("suffix", [".png", ".tif", ".webp"])
def test_alpha_is_carried_bit_exact(tmp_path: Path, suffix: str) -> None:
    source = _u8((10, 9, 4), seed=11)
    Image.fromarray(source).save(tmp_path / "a.png")
    image = load_image(tmp_path / "a.png")
    image.pixels = np.clip(image.pixels * 0.9 + 0.05, 0, 1)  # processing changes colour, never alpha
    again = load_image(save_image(image, tmp_path / f"o{suffix}"))
    np.testing.assert_array_equal(again.alpha, source[..., 3])


def test_8bit_alpha_in_a_16bit_output_is_scaled_exactly(tmp_path: Path) -> None:
    alpha = np.array([[0, 1, 128, 255]], dtype=np.uint8)
    image = ImageData(np.zeros((1, 4, 3), dtype=np.float32), alpha=alpha, bit_depth=16)
    written = tifffile.imread(save_image(image, tmp_path / "a.tif"))
    np.testing.assert_array_equal(written[..., 3], alpha.astype(np.uint16) * 257)


@pytest.mark.parametrize("suffix", [".jpg", ".bmp"])
def test_formats_without_alpha_get_the_image_composited_onto_white(tmp_path: Path, suffix: str) -> None:
    pixels = np.zeros((8, 8, 3), dtype=np.float32)
    alpha = np.zeros((8, 8), dtype=np.uint8)
    alpha[:, 4:] = 255
    again = load_image(save_image(ImageData(pixels, alpha=alpha), tmp_path / f"c{suffix}"))
    assert again.alpha is None
    assert _as8(again)[4, 1].min() > 240  # transparent -> white
    assert _as8(again)[4, 6].max() < 15  # opaque black stays black


# --------------------------------------------------------------------------------------------------- bad inputs


def _assert_error(error: pytest.ExceptionInfo[ImageError], path: Path, *words: str) -> None:
    message = str(error.value)
    assert path.name in message, message
    assert error.value.path == str(path)
    for word in words:
        assert word in message.lower(), message


def test_zero_byte_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    with pytest.raises(UnreadableImage) as error:
        load_image(path)
    _assert_error(error, path, "empty")


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "gone.png"
    with pytest.raises(ImageNotFound) as error:
        load_image(path)
    assert isinstance(error.value, UnreadableImage)
    _assert_error(error, path, "does not exist")


def test_a_folder_is_not_an_image(tmp_path: Path) -> None:
    folder = tmp_path / "album.jpg"
    folder.mkdir()
    with pytest.raises(UnreadableImage) as error:
        load_image(folder)
    _assert_error(error, folder, "folder")


@pytest.mark.parametrize(("suffix", "keep"), [(".jpg", 0.5), (".jpg", 0.9), (".png", 0.6), (".png", 0.95)])
def test_truncated_files(tmp_path: Path, suffix: str, keep: float) -> None:
    buffer = io.BytesIO()
    Image.fromarray(_u8((64, 64, 3))).save(buffer, format="JPEG" if suffix == ".jpg" else "PNG")
    data = buffer.getvalue()
    path = tmp_path / f"cut{suffix}"
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(UnreadableImage) as error:
        load_image(path)
    _assert_error(error, path, "truncated")


def test_text_file_named_jpg(tmp_path: Path) -> None:
    path = tmp_path / "notes.jpg"
    path.write_text("Shopping list: film, batteries, lens cloth\n")
    with pytest.raises(UnreadableImage) as error:
        load_image(path)
    _assert_error(error, path, "named .jpg", "text")


def test_binary_junk_named_png(tmp_path: Path) -> None:
    path = tmp_path / "junk.png"
    path.write_bytes(bytes(_u8((300,))) + b"\x00")
    with pytest.raises(UnreadableImage) as error:
        load_image(path)
    _assert_error(error, path, "damaged or not a picture")


def test_unknown_format_with_unknown_suffix(tmp_path: Path) -> None:
    path = tmp_path / "data.xyz"
    path.write_bytes(b"\x00\x01\x02" * 50)
    with pytest.raises(UnsupportedImage) as error:
        load_image(path)
    _assert_error(error, path, "not a recognised image format")


@pytest.mark.parametrize(("pillow_format", "suffix"), [("PPM", ".ppm"), ("ICO", ".png"), ("TGA", ".tga")])
def test_formats_pillow_knows_but_we_do_not_accept(tmp_path: Path, pillow_format: str, suffix: str) -> None:
    path = tmp_path / f"other{suffix}"
    Image.fromarray(_u8((16, 16, 3))).save(path, format=pillow_format)
    with pytest.raises(UnsupportedImage) as error:
        load_image(path)
    _assert_error(error, path, "not supported")
    assert pillow_format in str(error.value)


def test_png_with_a_damaged_idat(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    Image.fromarray(_u8((32, 32, 3))).save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    start = data.index(b"IDAT") + 4
    data[start + 10 : start + 60] = bytes(50)
    path = tmp_path / "bad.png"
    path.write_bytes(bytes(data))
    with pytest.raises(UnreadableImage) as error:
        load_image(path)
    _assert_error(error, path)


def test_huge_png_header_is_refused_before_decoding(tmp_path: Path) -> None:
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_bytes(30000, 30000, 8, 2, rows=b"\x00" * 100))
    limit_before = Image.MAX_IMAGE_PIXELS
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(ImageTooLarge) as error:
            load_image(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - started < 1.0
    assert peak < 5_000_000  # a decoded 30000x30000 RGB image would need 2.7 GB
    _assert_error(error, path, "30000x30000", "900 megapixels", "200 megapixels")
    assert limit_before == Image.MAX_IMAGE_PIXELS


def test_pixel_limit_is_per_call_and_independent_of_pillows_global(tmp_path: Path) -> None:
    path = tmp_path / "small.png"
    Image.fromarray(_u8((20, 30, 3))).save(path)
    with pytest.raises(ImageTooLarge):
        load_image(path, max_pixels=599)
    assert load_image(path, max_pixels=600).width == 30
    # a header above Pillow's own bomb threshold (~179 MP) is judged by max_pixels alone: Pillow's check would
    # have failed first, with no size in its message
    huge = tmp_path / "huge.png"
    huge.write_bytes(_png_bytes(20000, 10000, 8, 0, rows=b"\x00"))
    with pytest.raises(ImageTooLarge) as error:
        load_image(huge, max_pixels=100_000_000)
    assert "200 megapixels" in str(error.value) and "100 megapixels" in str(error.value)
    assert 2 * (Image.MAX_IMAGE_PIXELS or 0) < 20000 * 10000 and DEFAULT_MAX_PIXELS == 200_000_000


def test_floating_point_tiff_is_unsupported(tmp_path: Path) -> None:
    path = tmp_path / "hdr.tif"
    tifffile.imwrite(path, np.ones((4, 4), dtype=np.float32))
    with pytest.raises(UnsupportedImage) as error:
        load_image(path)
    _assert_error(error, path, "floating-point")


def test_planar_16bit_tiff_is_refused_rather_than_misread(tmp_path: Path) -> None:
    path = tmp_path / "planar.tif"
    tifffile.imwrite(path, _u16((3, 4, 5)), photometric="rgb", planarconfig="separate")
    with pytest.raises(UnsupportedImage) as error:
        load_image(path)
    _assert_error(error, path, "separate colour planes")


def _valid_files() -> dict[str, bytes]:
    files = {}
    rgb = Image.fromarray(_u8((12, 10, 3)))
    for pillow_format in ("JPEG", "PNG", "TIFF", "WEBP", "BMP", "GIF"):
        buffer = io.BytesIO()
        rgb.save(buffer, format=pillow_format)
        files[pillow_format] = buffer.getvalue()
    buffer = io.BytesIO()
    cv2_ok, encoded = cv2.imencode(".png", _u16((6, 5, 3)))
    assert cv2_ok
    files["PNG16"] = encoded.tobytes()
    tifffile.imwrite(buffer, _u16((6, 5, 3)), photometric="rgb", compression="zlib")
    files["TIFF16"] = buffer.getvalue()
    return files


_VALID_FILES = _valid_files()


@pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow warns about the damage it survives
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    kind=st.sampled_from(sorted(_VALID_FILES)),
    cut=st.floats(0.0, 1.0),
    flips=st.lists(st.tuples(st.floats(0.0, 1.0), st.integers(0, 255)), max_size=6),
)
def test_mangled_files_only_ever_raise_image_errors(
    tmp_path: Path, kind: str, cut: float, flips: list[tuple[float, int]]
) -> None:
    data = bytearray(_VALID_FILES[kind])
    for where, value in flips:
        data[min(len(data) - 1, int(where * len(data)))] = value
    data = data[: max(1, int(len(data) * (0.2 + 0.8 * cut)))]
    path = tmp_path / "fuzz.img"
    path.write_bytes(bytes(data))
    try:
        image = load_image(path)
    except ImageError as error:
        assert "fuzz.img" in str(error)
    else:
        assert image.pixels.dtype == np.float32
        assert np.all((image.pixels >= 0) & (image.pixels <= 1))


# --------------------------------------------------------------------------------------------------- sniffing, names


def test_sniff_format_reads_content_not_names(tmp_path: Path) -> None:
    for name, data in _VALID_FILES.items():
        path = tmp_path / f"{name}.bin"
        path.write_bytes(data)
        assert sniff_format(path) == name.removesuffix("16")
    (tmp_path / "text.jpg").write_text("hello")
    (tmp_path / "empty.png").write_bytes(b"")
    Image.fromarray(_u8((4, 4, 3))).save(tmp_path / "x.ppm")
    (tmp_path / "folder.png").mkdir()
    for not_ours in ("text.jpg", "empty.png", "x.ppm", "missing.png", "folder.png"):
        assert sniff_format(tmp_path / not_ours) is None
    (tmp_path / "bomb.png").write_bytes(_png_bytes(30000, 30000, 8, 2))
    assert sniff_format(tmp_path / "bomb.png") == "PNG"


def test_sniff_format_says_jpeg_for_mpo(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (8, 8)), Image.new("RGB", (8, 8))]
    frames[0].save(tmp_path / "m.jpg", format="MPO", save_all=True, append_images=frames[1:])
    assert sniff_format(tmp_path / "m.jpg") == "JPEG"


@pytest.mark.parametrize(
    ("name", "extension"),
    [("JPEG", ".jpg"), ("jpg", ".jpg"), ("MPO", ".jpg"), ("PNG", ".png"), ("TIFF", ".tif"), ("tif", ".tif")]
    + [("WEBP", ".webp"), ("BMP", ".bmp"), ("GIF", ".png")],
)
def test_format_extension(name: str, extension: str) -> None:
    assert format_extension(name) == extension


def test_unknown_output_formats_are_refused(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedImage):
        format_extension("PSD")
    image = ImageData(np.zeros((2, 2, 3), dtype=np.float32))
    for name in ("x.gif", "x.psd", "x"):
        with pytest.raises(UnsupportedImage):
            save_image(image, tmp_path / name)
    save_image(image, tmp_path / "explicit.out", format="png")
    assert sniff_format(tmp_path / "explicit.out") == "PNG"


# --------------------------------------------------------------------------------------------------- atomic saves


def test_save_leaves_only_the_target_and_replaces_an_old_file(tmp_path: Path) -> None:
    target = tmp_path / "out.png"
    target.write_bytes(b"old")
    result = save_image(ImageData(np.full((3, 3, 3), 0.5, dtype=np.float32)), target)
    assert result == target
    assert _dir_entries(tmp_path) == ["out.png"]
    assert sniff_format(target) == "PNG"


def test_new_files_get_ordinary_permissions(tmp_path: Path) -> None:
    reference = tmp_path / "reference"
    reference.write_bytes(b"")
    save_image(ImageData(np.zeros((2, 2, 3), dtype=np.float32)), tmp_path / "new.png")
    assert (tmp_path / "new.png").stat().st_mode == reference.stat().st_mode


@pytest.mark.parametrize("suffix", [".png", ".tif", ".jpg"])
def test_a_failing_write_does_not_clobber_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, suffix: str
) -> None:
    target = tmp_path / f"keep{suffix}"
    target.write_bytes(b"the previous result")

    def disk_full(*args: object, **kwargs: object) -> None:
        next(a for a in args if isinstance(a, io.BufferedWriter)).write(b"partial data")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(write_module, "write_png", disk_full)
    monkeypatch.setattr(write_module, "write_tiff", disk_full)
    monkeypatch.setattr(Image.Image, "save", disk_full)
    image = ImageData(np.zeros((2, 2, 3), dtype=np.float32), bit_depth=16)
    with pytest.raises(ImageWriteError) as error:
        save_image(image, target)
    assert "No space left on device" in str(error.value) and target.name in str(error.value)
    assert target.read_bytes() == b"the previous result"
    assert _dir_entries(tmp_path) == [target.name]


def test_writing_into_a_missing_folder_is_an_image_write_error(tmp_path: Path) -> None:
    with pytest.raises(ImageWriteError) as error:
        save_image(ImageData(np.zeros((2, 2, 3), dtype=np.float32)), tmp_path / "nope" / "x.png")
    assert "x.png" in str(error.value)


def test_replacing_a_folder_fails_cleanly(tmp_path: Path) -> None:
    (tmp_path / "taken.png").mkdir()
    with pytest.raises(ImageWriteError):
        save_image(ImageData(np.zeros((2, 2, 3), dtype=np.float32)), tmp_path / "taken.png")
    assert _dir_entries(tmp_path) == ["taken.png"]


def test_save_rejects_out_of_range_quality(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="jpeg_quality"):
        save_image(ImageData(np.zeros((2, 2, 3), dtype=np.float32)), tmp_path / "q.jpg", jpeg_quality=101)
    assert _dir_entries(tmp_path) == []


def test_out_of_range_and_nan_pixels_are_clipped(tmp_path: Path) -> None:
    pixels = np.array([[[-0.5, 1.5, np.nan]]], dtype=np.float32)
    again = load_image(save_image(ImageData(pixels), tmp_path / "c.png"))
    np.testing.assert_array_equal(_as8(again)[0, 0], [0, 255, 0])


@pytest.mark.parametrize(("suffix", "bits"), [(".tif", 16), (".png", 16), (".bmp", 8)])
def test_strip_conversion_gives_the_whole_array_values(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, suffix: str, bits: int
) -> None:
    """Samples are converted a few rows at a time; every strip (the last one ragged) must round like the whole."""
    monkeypatch.setattr(write_module, "_STRIP_BYTES", 7 * 13 * 3 * 4)  # 7 rows per strip of a 13-wide image
    rng = _rng(5)
    pixels = rng.uniform(-0.2, 1.2, (30, 13, 3)).astype(np.float32)
    pixels[0, :4, 0] = [np.nan, np.inf, -np.inf, 0.5]
    pixels[1:, 0, :] = ((rng.integers(0, 255, (29, 3)) + 0.5) / 255).astype(np.float32)  # exact halves
    alpha = rng.integers(0, 256, (30, 13), dtype=np.uint8)
    maximum = 2**bits - 1
    clean = np.clip(np.nan_to_num(pixels, nan=0.0, posinf=1.0, neginf=0.0), 0.0, 1.0)
    if suffix == ".bmp":  # no alpha in BMP: composited onto white
        coverage = (alpha.astype(np.float32) / 255)[..., None]
        expected = np.round((clean * coverage + (1.0 - coverage)) * maximum).astype(np.uint8)
    else:
        expected = np.round(clean * maximum).astype(np.uint16)
        expected = np.concatenate([expected, alpha[..., None].astype(np.uint16) * 257], axis=2)
    out = save_image(ImageData(pixels, alpha=alpha, bit_depth=bits), tmp_path / f"s{suffix}")
    written = tifffile.imread(out) if suffix == ".tif" else cv2.imread(str(out), cv2.IMREAD_UNCHANGED)
    if suffix != ".tif":
        written = written[..., [2, 1, 0, 3]] if written.shape[2] == 4 else written[..., ::-1]
    np.testing.assert_array_equal(written, expected)


@pytest.mark.parametrize("alpha", [False, True])
def test_converting_a_large_image_peaks_near_one_integer_copy(alpha: bool) -> None:
    """A 50 MP save used to hold ~1.8 GB of float temporaries; now the integer output plus a strip or two."""
    pixels = np.full((1500, 2000, 3), 0.25, dtype=np.float32)
    image = ImageData(pixels, alpha=np.full((1500, 2000), 128, np.uint8) if alpha else None, bit_depth=16)
    tracemalloc.start()
    try:
        samples = write_module._samples(image, 16, keep_alpha=False)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert samples.nbytes == 1500 * 2000 * 3 * 2
    assert peak < samples.nbytes + 3 * write_module._STRIP_BYTES, peak  # whole-array: over 3x pixels.nbytes


# --------------------------------------------------------------------------------------------------- the data class


def test_image_data_validates_shapes() -> None:
    with pytest.raises(ValueError):
        ImageData(np.zeros((4, 4), dtype=np.float32))
    with pytest.raises(ValueError):
        ImageData(np.zeros((4, 4, 2), dtype=np.float32))
    with pytest.raises(ValueError):
        ImageData(np.zeros((4, 4, 3), dtype=np.float32), alpha=np.zeros((4, 5), dtype=np.uint8))
    with pytest.raises(ValueError):
        ImageData(np.zeros((4, 4, 3), dtype=np.float32), alpha=np.zeros((4, 4), dtype=np.float32))
    with pytest.raises(ValueError):
        ImageData(np.zeros((4, 4, 3), dtype=np.float32), bit_depth=12)
    image = ImageData(np.zeros((4, 6, 3), dtype=np.float32), notes=["a"])
    assert (image.width, image.height, image.is_grayscale) == (6, 4, False)
    copy = image.with_pixels(np.ones((4, 6, 3), dtype=np.float32))
    copy.notes.append("b")
    assert image.notes == ["a"] and copy.metadata is image.metadata


def test_loading_does_not_keep_files_open(tmp_path: Path) -> None:
    cv2.imwrite(str(tmp_path / "x.png"), _u16((4, 4, 3)))
    before = len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else 0
    for _ in range(5):
        load_image(tmp_path / "x.png")
    after = len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else 0
    assert after <= before


def test_pure_noise_saves_as_high_quality_jpeg(tmp_path) -> None:
    """Noise compresses to more than Pillow's optimiser buffer (about 2 bytes per pixel): the save must still work."""
    from core.imageio import ImageData, load_image, save_image

    noise = np.random.default_rng(0).random((300, 300, 3), dtype=np.float32)
    path = save_image(ImageData(pixels=noise, format="JPEG"), tmp_path / "noise.jpg", jpeg_quality=95)
    assert load_image(path).pixels.shape == (300, 300, 3)


def test_every_pillow_quality_is_read_back_exactly_from_the_tables() -> None:
    for quality in range(1, 101):
        buffer = io.BytesIO()
        Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(buffer, "JPEG", quality=quality)
        with Image.open(io.BytesIO(buffer.getvalue())) as image:
            tables = {k: list(v) for k, v in image.quantization.items()}
        assert estimate_jpeg_quality(tables) == quality
