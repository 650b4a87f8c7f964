"""Accuracy and speed of the degradation analyser (core.analysis) against known synthetic damage, with baselines.

    python -m bench.analysis [--data ../shared/datasets] [--limit N] [--no-baselines] [--runs 5]
    python -m bench.analysis --calibrate        # prints the calibration constants used in core (train/ and synthetic)

Protocol (issue 2, section 4). The CBSD68 and LIVE1 photos are downscaled 2x by area averaging (removing their
own noise, blur and JPEG grid) and used as clean references. Every degraded image is an 8-bit file (clipped and
rounded); randomness is seeded per image.

* Noise: Gaussian sigma 0, 5, 10, 15, 20, 30, 40, 50 per RGB channel.
* Noise then JPEG: sigma 10, then Pillow JPEG q 70/80/90 (4:2:0), read back as JPEG files (tables available)
  and as PNG re-saves cropped by a random 0-7 px (pixels only). Truth: 10.
* Blur: Gaussian sigma 0, 1, 1.5, 2, 2.5, 3 px, alone and followed by sigma 10 noise.
* JPEG: q 10, 20, ..., 90, 95 as JPEG files and as PNG re-saves cropped by a random 0-7 px (grid shifted).
  "No JPEG" is checked on every never-compressed image of the noise and blur sweeps.
* Cross-talk: each estimator's reading under the other degradations.
* Speed: a 4000x3000 mosaic of the LIVE1 photos at full resolution, saved as JPEG q90 and as PNG; decode
  (Pillow) and analysis timed separately, median of ``--runs``.

Baselines (computed in the same run): noise - skimage.restoration.estimate_sigma (wavelet MAD), an edge-masked
Immerkaer (1996) Laplacian-difference estimator (Sobel edges above the 90th percentile masked, as Tai & Yang
2008), and Chen, Zhu & Heng (ICCV 2015) eigenvalue statistics on all 8x8 patches (our implementation); blur -
the gradient ratio at Canny edges after re-blurring by 1 px (Zhuo & Sim 2011, median over edges) and the
variance of the Laplacian (no unit: Spearman only); JPEG - the Wang, Sheikh & Bovik (2002) no-reference score
on the 8x8 grid at offset 0 (Spearman with q only).
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import math
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from core.analysis import analyze, ijg_table
from core.analysis.noise import JPEG_SIGMA_GRID, luma_noise
from core.analysis.ops import LUMA_NOISE_GAIN
from core.degrade import gaussian_blur, gaussian_noise, quantize, to_uint8

Array = np.ndarray

NOISE_LEVELS = (0, 5, 10, 15, 20, 30, 40, 50)
BLUR_LEVELS = (0.0, 1.0, 1.5, 2.0, 2.5, 3.0)
JPEG_QUALITIES = (10, 20, 30, 40, 50, 60, 70, 80, 90, 95)
NOISE_JPEG_QUALITIES = (70, 80, 90)
CALIBRATION_QUALITIES = tuple(range(60, 100, 5))
HAVE_PYWT = importlib.util.find_spec("pywt") is not None


# --------------------------------------------------------------------------------------------- data and files


def load_val(data: Path, limit: int) -> list[tuple[str, Array]]:
    """Validation photos, downscaled 2x by area averaging: float32 (H, W, 3) in [0, 1]."""
    images = []
    for name in ("CBSD68", "LIVE1"):
        paths = sorted(p for p in (data / "val" / name).iterdir() if p.suffix.lower() in {".png", ".bmp", ".jpg"})
        for path in paths[: limit or None]:
            with Image.open(path) as image:
                pixels = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
            h, w = pixels.shape[0] // 2 * 2, pixels.shape[1] // 2 * 2
            small = pixels[:h, :w].reshape(h // 2, 2, w // 2, 2, 3).mean(axis=(1, 3))
            images.append((f"{name}/{path.stem}", small.astype(np.float32)))
    return images


def as_jpeg_file(image: Array, quality: int) -> tuple[Array, dict[int, list[int]]]:
    """Encode with Pillow (4:2:0) and decode again: pixels and the file's quantisation tables."""
    buffer = io.BytesIO()
    Image.fromarray(to_uint8(image)).save(buffer, format="JPEG", quality=quality)
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        tables = {k: list(v) for k, v in decoded.quantization.items()}
        return np.asarray(decoded.convert("RGB"), dtype=np.float32) / 255.0, tables


def as_png_resave(image: Array, rng: np.random.Generator) -> Array:
    """Crop 0-7 px from the top and left (shifting any 8x8 grid), save as PNG, read back."""
    dy, dx = (int(v) for v in rng.integers(0, 8, size=2))
    buffer = io.BytesIO()
    Image.fromarray(to_uint8(image[dy:, dx:])).save(buffer, format="PNG")
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return np.asarray(decoded.convert("RGB"), dtype=np.float32) / 255.0


def noisy(image: Array, sigma: float, seed: int) -> Array:
    return quantize(gaussian_noise(image, sigma, np.random.default_rng(seed)))


# ------------------------------------------------------------------------------------------------- baselines


def _gray255(image: Array) -> Array:
    return (image @ np.array([0.299, 0.587, 0.114], dtype=np.float32)) * 255.0


def noise_skimage(image: Array) -> float:
    from skimage.restoration import estimate_sigma

    return float(estimate_sigma(image, channel_axis=-1, average_sigmas=True)) * 255.0


def noise_immerkaer_masked(image: Array) -> float:
    """Immerkaer's Laplacian-difference estimator on non-edge pixels (Sobel magnitude below its 90th percentile)."""
    from scipy.ndimage import convolve, sobel

    kernel = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], dtype=np.float64)
    sigmas = []
    for c in range(image.shape[2]):
        channel = image[..., c].astype(np.float64) * 255.0
        response = np.abs(convolve(channel, kernel))[1:-1, 1:-1]
        edges = np.hypot(sobel(channel, 0), sobel(channel, 1))[1:-1, 1:-1]
        mask = edges < np.percentile(edges, 90)
        sigmas.append(math.sqrt(math.pi / 2) * response[mask].sum() / (6.0 * mask.sum()))
    return float(np.mean(sigmas))


def noise_chen(image: Array, patch: int = 8, stride: int = 2) -> float:
    """Chen, Zhu & Heng 2015: drop the largest patch-covariance eigenvalues until their mean equals their median."""
    sigmas = []
    for c in range(image.shape[2]):
        view = np.lib.stride_tricks.sliding_window_view(image[..., c] * 255.0, (patch, patch))[::stride, ::stride]
        patches = view.reshape(-1, patch * patch).astype(np.float64)
        centred = patches - patches.mean(axis=0)
        values = np.sort(np.linalg.eigvalsh(centred.T @ centred / len(patches)))
        variance = float(values[0])
        for count in range(len(values), 0, -1):
            low = values[:count]
            if low.mean() <= np.median(low):
                variance = float(low.mean())
                break
        sigmas.append(math.sqrt(max(variance, 0.0)))
    return float(np.mean(sigmas))


def blur_gradient_ratio(image: Array, reblur: float = 1.0) -> float:
    """Zhuo & Sim 2011: at Canny edges, sigma = reblur / sqrt(R^2 - 1), R the gradient ratio; median over edges."""
    import cv2

    gray = _gray255(image).astype(np.float64)
    median = float(np.median(gray))
    edges = cv2.Canny(np.clip(gray, 0, 255).astype(np.uint8), 0.66 * median, 1.33 * median) > 0
    blurred = cv2.GaussianBlur(gray, (0, 0), reblur)
    g = np.hypot(cv2.Sobel(gray, cv2.CV_64F, 1, 0), cv2.Sobel(gray, cv2.CV_64F, 0, 1))
    gb = np.hypot(cv2.Sobel(blurred, cv2.CV_64F, 1, 0), cv2.Sobel(blurred, cv2.CV_64F, 0, 1))
    ratio = g[edges] / np.maximum(gb[edges], 1e-9)
    ratio = ratio[ratio > 1.0 + 1e-6]
    if len(ratio) == 0:
        return float("nan")
    return float(np.median(reblur / np.sqrt(ratio**2 - 1.0)))


def blur_laplacian_variance(image: Array) -> float:
    import cv2

    return float(cv2.Laplacian(_gray255(image).astype(np.float64), cv2.CV_64F).var())


def jpeg_wang_sheikh_bovik(image: Array) -> float:
    """No-reference JPEG quality score (Wang, Sheikh & Bovik, ICIP 2002) on the grid at offset 0."""
    x = _gray255(image).astype(np.float64)
    features = []
    for data in (x, x.T):
        d = np.diff(data, axis=1)
        boundary = np.abs(d[:, 7::8]).mean()
        activity = (8.0 * np.abs(d).mean() - boundary) / 7.0
        zero_crossings = (d[:, :-1] * d[:, 1:] < 0).mean()
        features.append((boundary, activity, zero_crossings))
    b, a, z = (float(np.mean(values)) for values in zip(*features, strict=True))
    return -245.9 + 261.9 * (max(b, 1e-6) ** -0.0240) * (max(a, 1e-6) ** 0.0160) * (max(z, 1e-6) ** 0.0064)


# --------------------------------------------------------------------------------------------------- metrics


def spearman(truth: list[float], values: list[float]) -> float:
    from scipy.stats import spearmanr

    pairs = [(t, v) for t, v in zip(truth, values, strict=True) if v is not None and math.isfinite(v)]
    if len(pairs) < 3:
        return float("nan")
    return float(spearmanr([p[0] for p in pairs], [p[1] for p in pairs])[0])


def mae(truth: list[float], values: list[float]) -> float:
    errors = [abs(v - t) for t, v in zip(truth, values, strict=True) if v is not None and math.isfinite(v)]
    return float(np.mean(errors)) if errors else float("nan")


def fmt(value: float | None, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{value:.{digits}f}"


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


@dataclass
class Results:
    """Everything measured, kept for the target summary."""

    noise: dict[float, list[float]] = field(default_factory=dict)
    noise_baselines: dict[str, dict[float, list[float]]] = field(default_factory=dict)
    noise_jpeg: dict[tuple[str, int], list[float]] = field(default_factory=dict)
    blur: dict[tuple[float, float], list[float]] = field(default_factory=dict)
    jpeg_files: dict[int, list[int | None]] = field(default_factory=dict)
    jpeg_pngs: dict[int, list[int | None]] = field(default_factory=dict)
    never_compressed: list[int | None] = field(default_factory=list)
    timing: dict[str, float] = field(default_factory=dict)


# ------------------------------------------------------------------------------------------------- sections


def bench_noise(images: list[tuple[str, Array]], results: Results, baselines: bool, log: Callable) -> str:
    names = {"skimage": noise_skimage, "Immerkær masked": noise_immerkaer_masked, "Chen 2015": noise_chen}
    if not HAVE_PYWT:  # skimage's estimate_sigma needs PyWavelets
        log("PyWavelets is not installed: skipping the skimage.estimate_sigma baseline")
        del names["skimage"]
    for sigma in NOISE_LEVELS:
        readings = []
        for index, (_, clean) in enumerate(images):
            image = noisy(clean, sigma, 1000 * index + sigma)
            analysis = analyze(image)
            readings.append(analysis.noise_sigma)
            results.never_compressed.append(analysis.jpeg_quality)
            if baselines:
                for label, function in names.items():
                    results.noise_baselines.setdefault(label, {}).setdefault(sigma, []).append(function(image))
        results.noise[sigma] = readings
        log(f"noise sigma {sigma}: mean {np.mean(readings):.2f}")
    header = ["σ", "ours: mean", "ours: bias", "ours: MAE", "ours: p90 |err|"]
    if baselines:
        header += [f"{label}: MAE" for label in names]
    rows = []
    for sigma in NOISE_LEVELS:
        values = np.array(results.noise[sigma])
        errors = np.abs(values - sigma)
        row = [
            str(sigma),
            fmt(values.mean()),
            fmt(values.mean() - sigma),
            fmt(errors.mean()),
            fmt(np.percentile(errors, 90)),
        ]
        if baselines:
            row += [fmt(mae([sigma] * len(values), results.noise_baselines[label][sigma])) for label in names]
        rows.append(row)
    all_truth = [s for s in NOISE_LEVELS for _ in results.noise[s]]
    all_ours = [v for s in NOISE_LEVELS for v in results.noise[s]]
    row = [
        "**all**",
        "",
        fmt(float(np.mean(np.array(all_ours) - np.array(all_truth)))),
        f"**{fmt(mae(all_truth, all_ours))}**",
        "",
    ]
    if baselines:
        row += [
            fmt(mae(all_truth, [v for s in NOISE_LEVELS for v in results.noise_baselines[label][s]])) for label in names
        ]
    rows.append(row)
    return "### Noise: σ of Gaussian noise per RGB channel (8-bit, clipped)\n\n" + table(header, rows)


def bench_noise_jpeg(images: list[tuple[str, Array]], results: Results, baselines: bool, log: Callable) -> str:
    rows = []
    for quality in NOISE_JPEG_QUALITIES:
        readings: dict[str, list[float]] = {"file": [], "png": [], "residual": [], "skimage": [], "immerkaer": []}
        rng = np.random.default_rng(quality)
        for index, (_, clean) in enumerate(images):
            pixels, tables = as_jpeg_file(noisy(clean, 10, 7000 + index), quality)
            file_analysis = analyze(pixels, quantization=tables)
            readings["file"].append(file_analysis.noise_sigma)
            readings["residual"].append(file_analysis.noise_residual)
            readings["png"].append(analyze(as_png_resave(pixels, rng)).noise_sigma)
            if baselines:
                readings["skimage"].append(noise_skimage(pixels) if HAVE_PYWT else float("nan"))
                readings["immerkaer"].append(noise_immerkaer_masked(pixels))
        results.noise_jpeg[("file", quality)] = readings["file"]
        results.noise_jpeg[("png", quality)] = readings["png"]
        log(f"noise 10 + JPEG q{quality}: file {np.mean(readings['file']):.2f} png {np.mean(readings['png']):.2f}")

        def within(values: list[float]) -> str:
            return f"{100 * np.mean(np.abs(np.array(values) - 10) <= 2):.0f} %"

        row = [
            f"q{quality}",
            fmt(np.mean(readings["file"])),
            within(readings["file"]),
            fmt(np.mean(readings["png"])),
            within(readings["png"]),
            fmt(np.mean(readings["residual"])),
        ]
        if baselines:
            row += [fmt(np.mean(readings["skimage"])), fmt(np.mean(readings["immerkaer"]))]
        rows.append(row)
    header = [
        "JPEG",
        "ours, JPEG file: mean",
        "within ±20 %",
        "ours, PNG re-save: mean",
        "within ±20 %",
        "noise left in pixels",
    ]
    if baselines:
        header += ["skimage: mean", "Immerkær masked: mean"]
    return "### Noise σ = 10 before JPEG compression (truth 10)\n\n" + table(header, rows)


def bench_blur(images: list[tuple[str, Array]], results: Results, baselines: bool, log: Callable) -> str:
    ratio: dict[tuple[float, float], list[float]] = {}
    laplacian: dict[tuple[float, float], list[float]] = {}
    for noise_sigma in (0.0, 10.0):
        for sigma in BLUR_LEVELS:
            readings = []
            for index, (_, clean) in enumerate(images):
                image = noisy(gaussian_blur(clean, sigma), noise_sigma, 3000 + 100 * index + int(10 * sigma))
                analysis = analyze(image)
                readings.append(analysis.blur_sigma)
                results.never_compressed.append(analysis.jpeg_quality)
                if baselines:
                    ratio.setdefault((noise_sigma, sigma), []).append(blur_gradient_ratio(image))
                    laplacian.setdefault((noise_sigma, sigma), []).append(-blur_laplacian_variance(image))
            results.blur[(noise_sigma, sigma)] = readings
            log(f"blur {sigma} noise {noise_sigma}: mean {np.mean(readings):.2f}")
    header = ["blur σ", "ours: mean", "ours: MAE", "ours + σ10 noise: mean", "ours + noise: MAE"]
    if baselines:
        header += ["gradient ratio: mean", "+ noise: mean"]
    rows = []
    for sigma in BLUR_LEVELS:
        clean_values, noisy_values = results.blur[(0.0, sigma)], results.blur[(10.0, sigma)]
        row = [
            fmt(sigma, 1),
            fmt(np.mean(clean_values)),
            fmt(mae([sigma] * len(clean_values), clean_values)),
            fmt(np.mean(noisy_values)),
            fmt(mae([sigma] * len(noisy_values), noisy_values)),
        ]
        if baselines:
            row += [fmt(np.nanmean(ratio[(0.0, sigma)])), fmt(np.nanmean(ratio[(10.0, sigma)]))]
        rows.append(row)
    summary = []
    for noise_sigma, label in ((0.0, "no noise"), (10.0, "σ10 noise")):
        truth = [s for s in BLUR_LEVELS for _ in results.blur[(noise_sigma, s)]]
        ours = [v for s in BLUR_LEVELS for v in results.blur[(noise_sigma, s)]]
        in_range = [(t, v) for t, v in zip(truth, ours, strict=True) if t >= 1.0]
        line = [
            label,
            fmt(mae([t for t, _ in in_range], [v for _, v in in_range])),
            fmt(spearman(truth, ours), 3),
        ]
        if baselines:
            theirs = [v for s in BLUR_LEVELS for v in ratio[(noise_sigma, s)]]
            their_range = [(t, v) for t, v in zip(truth, theirs, strict=True) if t >= 1.0]
            line += [
                fmt(mae([t for t, _ in their_range], [v for _, v in their_range])),
                fmt(spearman(truth, theirs), 3),
                fmt(spearman(truth, [v for s in BLUR_LEVELS for v in laplacian[(noise_sigma, s)]]), 3),
            ]
        summary.append(line)
    summary_header = ["", "ours: MAE σ 1–3", "ours: Spearman"]
    if baselines:
        summary_header += ["gradient ratio: MAE σ 1–3", "gradient ratio: Spearman", "var. of Laplacian: Spearman"]
    return (
        "### Blur: Gaussian blur σ (px), alone and followed by σ = 10 noise\n\n"
        + table(header, rows)
        + "\n\n"
        + table(summary_header, summary)
    )


def bench_jpeg(images: list[tuple[str, Array]], results: Results, baselines: bool, log: Callable) -> str:
    wsb_aligned: list[float] = []
    wsb_shifted: list[float] = []
    rows = []
    rng = np.random.default_rng(42)
    for quality in JPEG_QUALITIES:
        files, pngs = [], []
        for _, clean in images:
            pixels, tables = as_jpeg_file(clean, quality)
            files.append(analyze(pixels, quantization=tables).jpeg_quality)
            resaved = as_png_resave(pixels, rng)
            pngs.append(analyze(resaved).jpeg_quality)
            if baselines:
                wsb_aligned.append(jpeg_wang_sheikh_bovik(pixels))
                wsb_shifted.append(jpeg_wang_sheikh_bovik(resaved))
        results.jpeg_files[quality], results.jpeg_pngs[quality] = files, pngs
        found = [p for p in pngs if p is not None]
        log(f"JPEG q{quality}: files exact {np.mean([f == quality for f in files]):.2f}, png found {len(found)}")
        rows.append(
            [
                f"q{quality}",
                f"{100 * np.mean([f == quality for f in files]):.0f} %",
                f"{100 * np.mean([p == quality for p in pngs]):.0f} %",
                f"{100 * len(found) / len(pngs):.0f} %",
                fmt(mae([quality] * len(found), found)) if found else "–",
            ]
        )
    truth = [q for q in JPEG_QUALITIES for _ in results.jpeg_pngs[q]]
    ours = [float(p) if p is not None else 100.0 for q in JPEG_QUALITIES for p in results.jpeg_pngs[q]]
    summary_header = ["", "ours (PNG re-saves, undetected = 100)"]
    summary = [["Spearman with q", fmt(spearman(truth, ours), 3)]]
    if baselines:
        summary_header += ["Wang–Sheikh–Bovik, grid aligned (JPEG)", "Wang–Sheikh–Bovik, grid shifted (PNG)"]
        summary[0] += [fmt(spearman(truth, wsb_aligned), 3), fmt(spearman(truth, wsb_shifted), 3)]
    false = sum(q is not None for q in results.never_compressed)
    summary.append(
        ["never-compressed images reported as JPEG", f"{false} of {len(results.never_compressed)}"]
        + ([""] * 2 if baselines else [])
    )
    header = ["quality", "JPEG file: exact", "PNG re-save: exact", "PNG re-save: detected", "PNG re-save: MAE"]
    return (
        "### JPEG quality: from the file's tables, and from the pixels of PNG re-saves cropped 0–7 px\n\n"
        + table(header, rows)
        + "\n\n"
        + table(summary_header, summary)
    )


def bench_crosstalk(images: list[tuple[str, Array]], results: Results, log: Callable) -> str:
    cases: list[tuple[str, Callable[[Array, int], tuple[Array, dict | None]]]] = [
        ("clean", lambda im, i: (quantize(im), None)),
        ("blur σ 2", lambda im, i: (quantize(gaussian_blur(im, 2.0)), None)),
        ("noise σ 10", lambda im, i: (noisy(im, 10, 9000 + i), None)),
        ("noise σ 30", lambda im, i: (noisy(im, 30, 9100 + i), None)),
        ("JPEG q30 file", lambda im, i: as_jpeg_file(im, 30)),
        ("JPEG q70 file", lambda im, i: as_jpeg_file(im, 70)),
        ("JPEG q90 file", lambda im, i: as_jpeg_file(im, 90)),
    ]
    rows = []
    for label, make in cases:
        noise, blur, quality, quality_found = [], [], [], 0
        for index, (_, clean) in enumerate(images):
            pixels, tables = make(clean, index)
            analysis = analyze(pixels, quantization=tables)
            noise.append(analysis.noise_sigma)
            blur.append(analysis.blur_sigma)
            if analysis.jpeg_quality is not None:
                quality_found += 1
                quality.append(analysis.jpeg_quality)
        log(f"cross-talk {label}: noise {np.mean(noise):.2f} blur {np.mean(blur):.2f}")
        rows.append(
            [
                label,
                fmt(np.mean(noise)),
                fmt(np.percentile(noise, 90)),
                fmt(np.mean(blur)),
                fmt(np.percentile(blur, 90)),
                f"{quality_found} of {len(images)}" + (f" (mean q {np.mean(quality):.0f})" if quality else ""),
            ]
        )
    header = ["image", "noise σ: mean", "noise σ: p90", "blur σ: mean", "blur σ: p90", "JPEG reported"]
    return "### Cross-talk: each reading under the other degradations\n\n" + table(header, rows)


def mosaic(data: Path, height: int = 3000, width: int = 4000) -> Array:
    """A 12 MP photo-like image: the LIVE1 photos tiled at full resolution."""
    paths = sorted((data / "val" / "LIVE1").iterdir())
    canvas = np.zeros((height, width, 3), dtype=np.float32)
    y = x = row_height = 0
    index = 0
    while y < height:
        with Image.open(paths[index % len(paths)]) as image:
            tile = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
        index += 1
        h, w = min(tile.shape[0], height - y), min(tile.shape[1], width - x)
        canvas[y : y + h, x : x + w] = tile[:h, :w]
        row_height = max(row_height, h)
        x += w
        if x >= width:
            x, y, row_height = 0, y + row_height, 0
    return canvas


def bench_speed(data: Path, runs: int, results: Results, log: Callable) -> str:
    image = quantize(gaussian_noise(mosaic(data), 5.0, np.random.default_rng(5)))
    rows = []
    for label, fmt_name, options in (("JPEG q90 (tables)", "JPEG", {"quality": 90}), ("PNG (pixels)", "PNG", {})):
        buffer = io.BytesIO()
        Image.fromarray(to_uint8(image)).save(buffer, format=fmt_name, **options)
        decode_times, analyse_times = [], []
        for _ in range(runs):
            buffer.seek(0)
            start = time.perf_counter()
            with Image.open(buffer) as decoded:
                tables = getattr(decoded, "quantization", None)
                pixels = np.asarray(decoded.convert("RGB"), dtype=np.float32) / np.float32(255.0)
            decode_times.append(time.perf_counter() - start)
            start = time.perf_counter()
            analyze(pixels, quantization=tables)
            analyse_times.append(time.perf_counter() - start)
        results.timing[label] = statistics.median(analyse_times)
        log(f"speed {label}: analyse {statistics.median(analyse_times):.3f} s")
        rows.append(
            [
                label,
                f"{statistics.median(decode_times):.3f}",
                f"{statistics.median(analyse_times):.3f}",
                f"{min(analyse_times):.3f}–{max(analyse_times):.3f}",
            ]
        )
    header = ["12 MP (4000×3000)", "decode s (median)", "analyse s (median)", "analyse s (range)"]
    return f"### Speed: {runs} runs each, this machine\n\n" + table(header, rows)


def summary(results: Results) -> str:
    truth = [s for s in NOISE_LEVELS for _ in results.noise[s]]
    ours = [v for s in NOISE_LEVELS for v in results.noise[s]]
    noise_mae = mae(truth, ours)
    zero = float(np.mean(results.noise[0]))
    after_jpeg = [float(np.mean(results.noise_jpeg[("file", q)])) for q in NOISE_JPEG_QUALITIES]
    blur_truth = [s for s in BLUR_LEVELS for _ in results.blur[(0.0, s)]]
    blur_clean = [v for s in BLUR_LEVELS for v in results.blur[(0.0, s)]]
    blur_noisy = [v for s in BLUR_LEVELS for v in results.blur[(10.0, s)]]
    pick = [i for i, t in enumerate(blur_truth) if t >= 1.0]
    blur_mae = mae([blur_truth[i] for i in pick], [blur_clean[i] for i in pick])
    blur_noisy_mae = mae([blur_truth[i] for i in pick], [blur_noisy[i] for i in pick])
    blur_rho = spearman(blur_truth, blur_clean)
    exact_files = float(np.mean([f == q for q in JPEG_QUALITIES for f in results.jpeg_files[q]]))
    png_truth = [q for q in JPEG_QUALITIES for _ in results.jpeg_pngs[q]]
    png_ours = [float(p) if p is not None else 100.0 for q in JPEG_QUALITIES for p in results.jpeg_pngs[q]]
    png_rho = spearman(png_truth, png_ours)
    false = sum(q is not None for q in results.never_compressed)
    speed = max(results.timing.values()) if results.timing else float("nan")

    def verdict(ok: bool) -> str:
        return "met" if ok else "**missed**"

    rows = [
        ["noise MAE, σ 0–50", "≤ 1.0", fmt(noise_mae), verdict(noise_mae <= 1.0)],
        ["noise reading at σ 0 (mean)", "≤ 1.5", fmt(zero), verdict(zero <= 1.5)],
        [
            "noise σ 10 after JPEG q70 / 80 / 90 (mean, files)",
            "8–12",
            " / ".join(fmt(v) for v in after_jpeg),
            verdict(all(8.0 <= v <= 12.0 for v in after_jpeg)),
        ],
        ["blur MAE, σ 1–3", "≤ 0.25", fmt(blur_mae), verdict(blur_mae <= 0.25)],
        ["blur Spearman", "≥ 0.96", fmt(blur_rho, 3), verdict(blur_rho >= 0.96)],
        ["blur MAE with σ 10 noise, σ 1–3", "≤ 0.5", fmt(blur_noisy_mae), verdict(blur_noisy_mae <= 0.5)],
        ["JPEG files exact, q 10–95", "100 %", f"{100 * exact_files:.1f} %", verdict(exact_files == 1.0)],
        ["JPEG from PNG re-saves, Spearman", "≥ 0.9", fmt(png_rho, 3), verdict(png_rho >= 0.9)],
        ["never-compressed reported as JPEG", "0", str(false), verdict(false == 0)],
        ["12 MP analysis (median, slower path)", "< 1 s", f"{speed:.3f} s", verdict(speed < 1.0)],
    ]
    return "### Targets (issue 2, section 4)\n\n" + table(["target", "goal", "measured", ""], rows)


# ----------------------------------------------------------------------------------------------- calibration


def monotone(values: list[float]) -> list[float]:
    """Least-squares non-decreasing fit (pool adjacent violators): the response of a noise estimator to more noise."""
    blocks: list[list[float]] = []  # [mean, weight, count]
    for value in values:
        blocks.append([value, 1.0, 1])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            right, left = blocks.pop(), blocks.pop()
            weight = left[1] + right[1]
            blocks.append([(left[0] * left[1] + right[0] * right[1]) / weight, weight, int(left[2] + right[2])])
    return [block[0] for block in blocks for _ in range(int(block[2]))]


def calibrate_jpeg_noise(data: Path, photos: int = 24) -> dict[int, list[float]]:
    """Luma-noise readings of training photos with known luma noise, compressed at each libjpeg quality.

    Training photos (never the validation set), 2x area-downscaled like the benchmark's references and cropped
    to 224x160; per-channel noise sigma = luma sigma / 0.668; median over the photos, made non-decreasing.
    """
    paths = sorted(p for p in (data / "train" / "CBSD432").iterdir() if p.suffix.lower() in {".png", ".jpg", ".bmp"})
    crops = []
    for path in paths[::18][:photos]:
        with Image.open(path) as image:
            pixels = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
        h, w = pixels.shape[0] // 2 * 2, pixels.shape[1] // 2 * 2
        small = pixels[:h, :w].reshape(h // 2, 2, w // 2, 2, 3).mean(axis=(1, 3))
        crops.append(small[:160, :224])
    responses = {}
    for quality in CALIBRATION_QUALITIES:
        readings = []
        for sigma in JPEG_SIGMA_GRID:
            values = []
            for seed, crop in enumerate(crops):
                rng = np.random.default_rng(seed)
                noisy_crop = crop + rng.standard_normal(crop.shape) * sigma / LUMA_NOISE_GAIN / 255.0
                pixels, _ = as_jpeg_file(noisy_crop.astype(np.float32), quality)
                values.append(luma_noise(pixels, np.random.default_rng(seed)))
            readings.append(float(np.median(values)))
        responses[quality] = monotone(readings)
    return responses


def calibrate_blur_percentile() -> dict[float, float]:
    """Mean error of the blur estimate on scikit-image's bundled photos (not the val set) per edge percentile."""
    import skimage.data

    from core.analysis import blur as blur_module
    from core.analysis.ops import luma

    photos = [
        getattr(skimage.data, name)() for name in ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry")
    ]
    photos = [p.astype(np.float32) / 255.0 for p in photos]
    photos = [
        p[: p.shape[0] // 2 * 2, : p.shape[1] // 2 * 2]
        .reshape(p.shape[0] // 2, 2, p.shape[1] // 2, 2, 3)
        .mean(axis=(1, 3))
        for p in photos
    ]
    errors: dict[float, list[float]] = {}
    original = blur_module.EDGE_PERCENTILE
    try:
        for percentile in (40.0, 45.0, 50.0, 55.0, 60.0, 65.0, 70.0):
            blur_module.EDGE_PERCENTILE = percentile
            for sigma in (1.0, 1.5, 2.0, 2.5, 3.0):
                for photo in photos:
                    image = quantize(gaussian_blur(photo, sigma))
                    estimate = blur_module.estimate_blur(luma(image), 0.2, 32).sigma
                    errors.setdefault(percentile, []).append(estimate - sigma)
    finally:
        blur_module.EDGE_PERCENTILE = original
    return {p: float(np.mean(e)) for p, e in errors.items()}


def calibrate(data: Path) -> None:
    print("# JPEG_RESPONSE: luma noise readings at JPEG_SIGMA_GRID after compression, per libjpeg quality")
    for quality, readings in calibrate_jpeg_noise(data).items():
        print(f"    {quality}: ({', '.join(f'{v:.2f}' for v in readings)}),")
    print("# blur bias (px) on scikit-image photos, sigma 1-3, per EDGE_PERCENTILE")
    for percentile, bias in calibrate_blur_percentile().items():  # pick the percentile closest to zero
        print(f"    {percentile:.0f}: {bias:+.3f}")
    print("# IJG luma table at q50 (check):", ijg_table(50)[:8].tolist())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/datasets"))
    parser.add_argument("--limit", type=int, default=0, help="images per set (0: all)")
    parser.add_argument("--runs", type=int, default=5, help="timing runs for the 12 MP image")
    parser.add_argument("--no-baselines", action="store_true", help="skip the reference estimators")
    parser.add_argument(
        "--calibrate", action="store_true", help="print the calibration constants (from train/ and synthetic data)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    args = parser.parse_args(argv)
    if args.calibrate:
        calibrate(args.data)
        return 0

    def log(message: str) -> None:
        if not args.quiet:
            print(message, file=sys.stderr, flush=True)

    images = load_val(args.data, args.limit)
    if not images:
        print(f"no images under {args.data / 'val'}", file=sys.stderr)
        return 1
    baselines = not args.no_baselines
    results = Results()
    started = time.perf_counter()
    sections = [
        bench_noise(images, results, baselines, log),
        bench_noise_jpeg(images, results, baselines, log),
        bench_blur(images, results, baselines, log),
        bench_jpeg(images, results, baselines, log),
        bench_crosstalk(images, results, log),
        bench_speed(args.data, args.runs, results, log),
    ]
    print(f"## Analyser benchmark: {len(images)} photos (CBSD68 + LIVE1, downscaled 2x)\n")
    print(summary(results) + "\n")
    for section in sections:
        print(section + "\n")
    print(f"_{time.perf_counter() - started:.0f} s in all._")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
