"""Synthetic degradations: the damage the model learns to undo, shared by training, benchmarks and tests.

Every function takes and returns float32 RGB arrays of shape (H, W, 3) in [0, 1] (values may leave that
range until :func:`quantize` clips them). Noise levels are in 0-255 units, as photographers and the
analyser quote them. :func:`random_degradation` chains them in random order and combinations, the
"second-order" idea of BSRGAN / Real-ESRGAN, and sometimes returns the image untouched so the model also
learns to leave good images alone.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field, fields, replace

import numpy as np
import torch
from PIL import Image
from torch.nn import functional as F

Array = np.ndarray


def quantize(image: Array, bits: int = 8) -> Array:
    """Clip to [0, 1] and round to the levels of a ``bits``-bit file."""
    levels = float(2**bits - 1)
    return (np.round(np.clip(image, 0.0, 1.0) * levels) / levels).astype(np.float32)


def to_uint8(image: Array) -> Array:
    return np.round(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)


def gaussian_noise(image: Array, sigma: float, rng: np.random.Generator, correlation: float = 0.0) -> Array:
    """Add zero-mean Gaussian noise of std ``sigma`` (0-255 units) to each channel.

    ``correlation`` in [0, 1) mixes in a component shared by the three channels, as demosaiced sensor noise
    has; the per-channel std stays ``sigma``.
    """
    noise = rng.standard_normal(image.shape, dtype=np.float32)
    if correlation > 0:
        shared = rng.standard_normal(image.shape[:2] + (1,), dtype=np.float32)
        noise = math.sqrt(1.0 - correlation) * noise + math.sqrt(correlation) * shared
    return (image + noise * (sigma / 255.0)).astype(np.float32)


def poisson_gaussian_noise(
    image: Array, photons_at_white: float, read_sigma: float, rng: np.random.Generator, correlation: float = 0.0
) -> Array:
    """Signal-dependent shot noise (variance proportional to intensity) plus Gaussian read noise.

    ``photons_at_white`` sets how many photo-electrons a white pixel collects: fewer means noisier.
    """
    variance = np.clip(image, 0.0, 1.0) / photons_at_white + (read_sigma / 255.0) ** 2
    noise = rng.standard_normal(image.shape, dtype=np.float32)
    if correlation > 0:
        shared = rng.standard_normal(image.shape[:2] + (1,), dtype=np.float32)
        noise = math.sqrt(1.0 - correlation) * noise + math.sqrt(correlation) * shared
    return (image + noise * np.sqrt(variance)).astype(np.float32)


def jpeg_compress(image: Array, quality: int, subsampling: str = "4:2:0") -> Array:
    """Round-trip through Pillow's JPEG encoder at ``quality`` (1-95 as Pillow counts it)."""
    buffer = io.BytesIO()
    Image.fromarray(to_uint8(image)).save(buffer, format="JPEG", quality=int(quality), subsampling=subsampling)
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return np.asarray(decoded.convert("RGB"), dtype=np.float32) / 255.0


def gaussian_kernel(sigma: float) -> Array:
    """Normalised 2-D Gaussian kernel covering +-3 sigma."""
    radius = max(1, int(math.ceil(3.0 * sigma)))
    axis = np.arange(-radius, radius + 1, dtype=np.float32)
    line = np.exp(-0.5 * (axis / max(sigma, 1e-6)) ** 2)
    kernel = np.outer(line, line)
    return (kernel / kernel.sum()).astype(np.float32)


def disk_kernel(radius: float) -> Array:
    """Defocus (pill-box) kernel, anti-aliased at its rim by supersampling."""
    size = int(math.ceil(radius)) * 2 + 1
    fine = 8
    grid = (np.arange(size * fine, dtype=np.float32) + 0.5) / fine - size / 2.0
    yy, xx = np.meshgrid(grid, grid, indexing="ij")
    inside = (xx**2 + yy**2 <= radius**2).astype(np.float32)
    kernel = inside.reshape(size, fine, size, fine).mean(axis=(1, 3))
    return (kernel / kernel.sum()).astype(np.float32)


def motion_kernel(length: float, angle_degrees: float) -> Array:
    """Straight-line motion blur of ``length`` pixels at ``angle_degrees``."""
    size = (math.ceil(length) + 1) | 1  # odd, and wider than the line so its ends stay inside
    kernel = np.zeros((size * 8, size * 8), dtype=np.float32)
    centre = (size * 8 - 1) / 2.0
    angle = math.radians(angle_degrees)
    for t in np.linspace(-length / 2.0, length / 2.0, num=max(2, int(length * 16))):
        x = int(round(centre + t * 8 * math.cos(angle)))
        y = int(round(centre + t * 8 * math.sin(angle)))
        kernel[y, x] += 1.0
    kernel = kernel.reshape(size, 8, size, 8).sum(axis=(1, 3))
    return (kernel / kernel.sum()).astype(np.float32)


def convolve(image: Array, kernel: Array) -> Array:
    """Filter each channel with ``kernel`` (reflect-padded, same size)."""
    ky, kx = kernel.shape
    tensor = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))[:, None]
    pad = (kx // 2, kx - 1 - kx // 2, ky // 2, ky - 1 - ky // 2)
    mode = "reflect" if min(image.shape[:2]) > max(ky, kx) else "replicate"
    padded = F.pad(tensor, pad, mode=mode)
    weight = torch.from_numpy(np.ascontiguousarray(kernel[::-1, ::-1]))[None, None]
    with torch.no_grad():
        out = F.conv2d(padded, weight)
    return out[:, 0].numpy().transpose(1, 2, 0).astype(np.float32)


def gaussian_blur(image: Array, sigma: float) -> Array:
    return image if sigma <= 0 else convolve(image, gaussian_kernel(sigma))


_RESAMPLE_FILTERS = (
    Image.Resampling.BILINEAR,
    Image.Resampling.BICUBIC,
    Image.Resampling.LANCZOS,
    Image.Resampling.BOX,
)


def resample_down_up(image: Array, factor: float, rng: np.random.Generator) -> Array:
    """Shrink by ``factor`` and enlarge back with randomly chosen filters: lost detail, resampling blur."""
    height, width = image.shape[:2]
    small = (max(1, round(width / factor)), max(1, round(height / factor)))
    channels = [Image.fromarray(image[..., c].astype(np.float32), mode="F") for c in range(image.shape[2])]
    down = _RESAMPLE_FILTERS[int(rng.integers(len(_RESAMPLE_FILTERS)))]
    up = _RESAMPLE_FILTERS[int(rng.integers(3))]
    restored = [ch.resize(small, down).resize((width, height), up) for ch in channels]
    return np.stack([np.asarray(ch, dtype=np.float32) for ch in restored], axis=-1)


def tone_shift(image: Array, contrast: float, gamma: float) -> Array:
    """Scale contrast about mid-grey, then apply a gamma curve."""
    shifted = np.clip((image - 0.5) * contrast + 0.5, 0.0, 1.0)
    return np.power(shifted, gamma, dtype=np.float32)


@dataclass(frozen=True)
class DegradationMix:
    """Probabilities and ranges of :func:`random_degradation`; training and benchmarks share them."""

    p_clean: float = 0.08
    p_gaussian_only: float = 0.26
    p_jpeg_only: float = 0.22
    p_camera_chain: float = 0.14
    """Optics, then sensor, then codec (:func:`camera_chain`): the physical order of a real photo's damage."""
    max_sigma: float = 55.0
    jpeg_quality: tuple[int, int] = (10, 95)
    jpeg_low_bias: float = 1.8
    """Quality = low + (high - low) * u ** bias: above 1 favours the heavily damaged low qualities (median q ~ 37)."""
    max_blur_sigma: float = 2.0
    camera_blur_sigma: tuple[float, float] = (0.4, 1.6)
    camera_max_sigma: float = 20.0
    camera_jpeg_quality: tuple[int, int] = (30, 95)
    max_resample: float = 2.5
    p_second_round: float = 0.3

    def __post_init__(self) -> None:
        shares = (self.p_clean, self.p_gaussian_only, self.p_jpeg_only, self.p_camera_chain)
        if min(shares) < 0 or sum(shares) > 1 + 1e-9:
            raise ValueError(
                f"branch probabilities must be >= 0 and sum to at most 1 (the rest: mixed chains): {shares}"
            )

    def with_overrides(self, settings: list[str]) -> DegradationMix:
        """A copy with ``name=value`` settings applied (``--mix p_jpeg_only=0.3``); a range takes ``low,high``."""
        kinds = {f.name: f.type for f in fields(self)}
        changes: dict[str, object] = {}
        for setting in settings:
            name, sep, text = setting.partition("=")
            name = name.strip()
            if not sep or name not in kinds:
                raise ValueError(f"unknown mix setting {setting!r}; known: {', '.join(sorted(kinds))}")
            current = getattr(self, name)
            if isinstance(current, tuple):
                parts = [type(current[0])(v) for v in text.split(",")]
                if len(parts) != len(current):
                    raise ValueError(f"{name} takes {len(current)} comma-separated values, got {text!r}")
                changes[name] = tuple(parts)
            else:
                changes[name] = type(current)(text)
        return replace(self, **changes)


@dataclass
class Degradation:
    """An image after degradation and a readable list of what was done to it."""

    image: Array
    steps: list[str] = field(default_factory=list)


def _noise_step(image: Array, rng: np.random.Generator, mix: DegradationMix, steps: list[str]) -> Array:
    correlation = float(rng.uniform(0.0, 0.7)) if rng.random() < 0.3 else 0.0
    if rng.random() < 0.6:
        sigma = float(rng.uniform(1.0, mix.max_sigma))
        steps.append(f"gaussian(sigma={sigma:.1f},rho={correlation:.2f})")
        return gaussian_noise(image, sigma, rng, correlation)
    photons = float(10 ** rng.uniform(1.5, 3.5))
    read = float(rng.uniform(0.0, 10.0))
    steps.append(f"poisson(photons={photons:.0f},read={read:.1f},rho={correlation:.2f})")
    return poisson_gaussian_noise(image, photons, read, rng, correlation)


def _blur_step(image: Array, rng: np.random.Generator, mix: DegradationMix, steps: list[str]) -> Array:
    kind = rng.random()
    if kind < 0.6:
        sigma = float(rng.uniform(0.3, mix.max_blur_sigma))
        steps.append(f"blur(sigma={sigma:.2f})")
        return gaussian_blur(image, sigma)
    if kind < 0.85:
        radius = float(rng.uniform(0.7, 2.5))
        steps.append(f"defocus(radius={radius:.2f})")
        return convolve(image, disk_kernel(radius))
    length = float(rng.uniform(1.5, 5.0))
    angle = float(rng.uniform(0.0, 180.0))
    steps.append(f"motion(length={length:.1f},angle={angle:.0f})")
    return convolve(image, motion_kernel(length, angle))


def _jpeg_step(image: Array, rng: np.random.Generator, mix: DegradationMix, steps: list[str]) -> Array:
    low, high = mix.jpeg_quality
    quality = int(round(low + (high - low) * float(rng.random()) ** mix.jpeg_low_bias))
    subsampling = "4:2:0" if rng.random() < 0.75 else "4:4:4"
    steps.append(f"jpeg(q={quality},{subsampling})")
    return jpeg_compress(image, quality, subsampling)


def _resample_step(image: Array, rng: np.random.Generator, mix: DegradationMix, steps: list[str]) -> Array:
    factor = float(rng.uniform(1.2, mix.max_resample))
    steps.append(f"resample(x{factor:.2f})")
    return resample_down_up(image, factor, rng)


def blur_noise_jpeg(image: Array, blur_sigma: float, sigma: float, quality: int, rng: np.random.Generator) -> Array:
    """Gaussian blur, then Gaussian noise, then JPEG, stored as 8 bits between steps (the benchmark's mixed case)."""
    blurred = quantize(gaussian_blur(image, blur_sigma))
    return jpeg_compress(quantize(gaussian_noise(blurred, sigma, rng)), quality)


def camera_chain(image: Array, rng: np.random.Generator, mix: DegradationMix, steps: list[str]) -> Array:
    """Mild lens blur, usually sensor noise, usually JPEG: a soft, slightly noisy camera or scanner file.

    The general mix rarely draws exactly this chain, and a model trained without it learned to leave softness
    alone (0.1.2 gained ~0.1 dB on a blur of sigma 1.0 alone), so it gets its own share of the samples.
    """
    low, high = mix.camera_blur_sigma
    if rng.random() < 0.7:
        blur_sigma = float(rng.uniform(low, high))
        steps.append(f"blur(sigma={blur_sigma:.2f})")
        out = quantize(gaussian_blur(image, blur_sigma))
    else:
        radius = float(rng.uniform(2 * low, 1.5 * high))
        steps.append(f"defocus(radius={radius:.2f})")
        out = quantize(convolve(image, disk_kernel(radius)))
    if rng.random() < 0.8:
        sigma = float(rng.uniform(1.0, mix.camera_max_sigma))
        steps.append(f"gaussian(sigma={sigma:.1f},rho=0.00)")
        out = quantize(gaussian_noise(out, sigma, rng))
    if rng.random() < 0.8:
        quality = int(rng.integers(mix.camera_jpeg_quality[0], mix.camera_jpeg_quality[1] + 1))
        steps.append(f"jpeg(q={quality},4:2:0)")
        out = jpeg_compress(out, quality)
    return out


def random_degradation(image: Array, rng: np.random.Generator, mix: DegradationMix | None = None) -> Degradation:
    """Degrade a clean image at random; the result is clipped and quantised to 8 bits, like a real file."""
    mix = mix or DegradationMix()
    steps: list[str] = []
    choice = rng.random()
    if choice < mix.p_clean:
        steps.append("clean")
        out = image
    elif choice < mix.p_clean + mix.p_gaussian_only:
        sigma = float(rng.uniform(0.0, mix.max_sigma))
        correlation = float(rng.uniform(0.0, 0.5)) if rng.random() < 0.15 else 0.0
        steps.append(f"gaussian(sigma={sigma:.1f},rho={correlation:.2f})")
        out = gaussian_noise(image, sigma, rng, correlation)
    elif choice < mix.p_clean + mix.p_gaussian_only + mix.p_jpeg_only:
        out = _jpeg_step(image, rng, mix, steps)
        if rng.random() < 0.25:
            out = _jpeg_step(out, rng, mix, steps)
    elif choice < mix.p_clean + mix.p_gaussian_only + mix.p_jpeg_only + mix.p_camera_chain:
        out = camera_chain(image, rng, mix, steps)
    else:
        out = image
        for _round in range(2 if rng.random() < mix.p_second_round else 1):
            ops = [_blur_step, _resample_step, _noise_step]
            wanted = [rng.random() < 0.5, rng.random() < 0.25, rng.random() < 0.75]
            order = rng.permutation(len(ops))
            for index in order:
                if wanted[index]:
                    out = ops[index](out, rng, mix, steps)
            if rng.random() < 0.65:
                out = _jpeg_step(quantize(out), rng, mix, steps)
        if not steps:
            out = _noise_step(out, rng, mix, steps)
    return Degradation(quantize(out), steps)
