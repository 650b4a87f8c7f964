"""Restoration quality of the built-in model on the standard test sets, with baselines, in one table.

    python -m bench.quality [--data ../shared/datasets] [--limit N] [--precision auto|fp32|bf16] [--ensemble N]

Cases (8-bit files, clipped, seeded): CBSD68 with Gaussian noise sigma 15/25/50; LIVE1 JPEG q 10/20/30/40 (Pillow,
default 4:2:0 subsampling); "mixed" = blur 1.0 -> noise sigma 8 -> JPEG q60 on CBSD68; "clean" = CBSD68 untouched
(PSNR of the output against its own input). Columns: the degraded input, OpenCV fastNlMeansDenoisingColored (noise
cases only, and given the true sigma, an advantage the blind model does not get), the model alone (whole image,
reflect-padded to the tile multiple), and the enhancer at default settings (strength 1: the analyser's maps, the
model, the damage-masked blend with its anti-halo guards, and the tone step, as ``enhancerd enhance`` runs them on
an 8-bit file). With ``--ensemble N`` (2, 4 or 8) one more column: the model averaged over N turned and mirrored
views (:mod:`core.ensemble`, the ``[worker] ensemble`` / ``enhance --ensemble`` setting). PSNR (dB) and SSIM on
RGB, 0-255.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from core.analysis import analyze
from core.blend import blend
from core.degrade import blur_noise_jpeg, gaussian_noise, jpeg_compress, quantize
from core.device import autocast_dtype
from core.ensemble import ENSEMBLE_SIZES, ensemble_forward
from core.metrics import psnr, ssim
from core.tone import apply_tone, plan_tone
from core.train import list_images, load_rgb
from core.weights import load_builtin, load_weights

Image = np.ndarray  # float32 (H, W, 3) in [0, 1]


@dataclass(frozen=True)
class Case:
    name: str
    dataset: str
    degrade: Callable[[Image, np.random.Generator], Image]
    noise_sigma: float | None = None  # given to the classical baseline only


def _noise(sigma: float) -> Callable[[Image, np.random.Generator], Image]:
    return lambda image, rng: quantize(gaussian_noise(image, sigma, rng))


def _jpeg(quality: int) -> Callable[[Image, np.random.Generator], Image]:
    return lambda image, rng: jpeg_compress(image, quality)


def _mixed(image: Image, rng: np.random.Generator) -> Image:
    return blur_noise_jpeg(image, 1.0, 8.0, 60, rng)


CASES = (
    Case("CBSD68 σ15", "CBSD68", _noise(15), 15),
    Case("CBSD68 σ25", "CBSD68", _noise(25), 25),
    Case("CBSD68 σ50", "CBSD68", _noise(50), 50),
    Case("LIVE1 q10", "LIVE1", _jpeg(10)),
    Case("LIVE1 q20", "LIVE1", _jpeg(20)),
    Case("LIVE1 q30", "LIVE1", _jpeg(30)),
    Case("LIVE1 q40", "LIVE1", _jpeg(40)),
    Case("mixed (blur1→σ8→q60)", "CBSD68", _mixed),
    Case("clean CBSD68", "CBSD68", lambda image, rng: image),
)


def model_restorer(
    model: torch.nn.Module, multiple: int, precision: str, ensemble: int = 1
) -> Callable[[Image], Image]:
    """Whole-image inference, reflect-padded to the model's multiple; float output (not yet rounded)."""
    dtype = autocast_dtype(torch.device("cpu"), precision)
    model = model.to(memory_format=torch.channels_last).eval()

    def restore(image: Image) -> Image:
        height, width = image.shape[:2]
        x = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))[None]
        pad_h, pad_w = (-height) % multiple, (-width) % multiple
        x = F.pad(x, (0, pad_w, 0, pad_h), mode="reflect").contiguous(memory_format=torch.channels_last)
        with torch.inference_mode(), torch.autocast("cpu", dtype=dtype or torch.float32, enabled=dtype is not None):
            y = ensemble_forward(model, x, ensemble)
        return np.clip(y[0, :, :height, :width].float().numpy().transpose(1, 2, 0), 0.0, 1.0)

    return restore


def enhancer_outputs(degraded: Image, restored: Image) -> tuple[Image, Image]:
    """What the enhancer writes at default settings, given the model's output for ``degraded``, and the same
    before its contrast correction (which PSNR against the original counts as error on low-contrast photos)."""
    analysis = analyze(degraded)
    out = blend(degraded, restored, analysis.maps, jpeg_quality=analysis.jpeg_quality)
    blended = quantize(out)
    curve = plan_tone(analysis, degraded)
    if curve is None:
        return blended, blended
    apply_tone(out, curve)
    return quantize(out), blended


def nlm_restorer(sigma: float) -> Callable[[Image], Image]:
    import cv2

    strength = 0.8 * sigma  # h and hColor in OpenCV's 0-255 units, scaled with the true noise level

    def restore(image: Image) -> Image:
        bgr = np.round(image[..., ::-1] * 255).astype(np.uint8)
        out = cv2.fastNlMeansDenoisingColored(bgr, None, strength, strength, 7, 21)
        return out[..., ::-1].astype(np.float32) / 255.0

    return restore


def score(reference: Image, test: Image) -> tuple[float, float]:
    ref, out = np.round(reference * 255), np.round(test * 255)
    return psnr(ref, out), ssim(ref, out)


def run(data: Path, limit: int, precision: str, weights: Path | None, ensemble: int = 1) -> list[dict[str, object]]:
    loaded = load_weights(weights) if weights else load_builtin()
    multiple = loaded.model.config.tile_multiple
    restore = model_restorer(loaded.model, multiple, precision)
    restore_views = model_restorer(loaded.model, multiple, precision, ensemble) if ensemble > 1 else None
    images = {
        name: [load_rgb(p).astype(np.float32) / 255.0 for p in list_images(data / "val" / name)[:limit]]
        for name in ("CBSD68", "LIVE1")
    }
    rows = []
    for case in CASES:
        rng = np.random.default_rng(68)
        sums: dict[str, list[tuple[float, float]]] = {
            method: [] for method in ("input", "opencv-nlm", "model", "model-ensemble", "enhancer", "blend-only")
        }
        started = time.perf_counter()
        for clean in images[case.dataset]:
            degraded = case.degrade(clean, rng)
            reference = degraded if case.name.startswith("clean") else clean
            sums["input"].append(score(reference, degraded))
            if case.noise_sigma is not None:
                sums["opencv-nlm"].append(score(reference, nlm_restorer(case.noise_sigma)(degraded)))
            restored = restore(degraded)
            sums["model"].append(score(reference, quantize(restored)))
            if restore_views is not None:
                sums["model-ensemble"].append(score(reference, quantize(restore_views(degraded))))
            enhanced, blended = enhancer_outputs(degraded, restored)
            sums["enhancer"].append(score(reference, enhanced))
            # Most images get no contrast correction: the same array, scored once.
            sums["blend-only"].append(sums["enhancer"][-1] if blended is enhanced else score(reference, blended))
        row: dict[str, object] = {"case": case.name, "images": len(images[case.dataset])}
        for method, values in sums.items():
            if values:
                row[method] = (float(np.mean([v[0] for v in values])), float(np.mean([v[1] for v in values])))
        row["seconds"] = time.perf_counter() - started
        rows.append(row)
        print(f"  {case.name}: {row}", file=sys.stderr, flush=True)
    return rows


def format_table(rows: list[dict[str, object]], card: dict, ensemble: int = 1) -> str:
    def cell(value: object) -> str:
        if isinstance(value, tuple):
            return "inf / 1.0000" if value[0] == float("inf") else f"{value[0]:.2f} / {value[1]:.4f}"
        return "—"

    lines = [
        f"model {card.get('name')} {card.get('version')}: {card.get('steps')} steps, "
        f"{card.get('training_minutes')} training minutes",
        "",
        "| case | images | input PSNR / SSIM | OpenCV NLM PSNR / SSIM | model PSNR / SSIM "
        + (f"| model ×{ensemble} views PSNR / SSIM " if ensemble > 1 else "")
        + "| enhancer (default) PSNR / SSIM | enhancer without contrast correction PSNR / SSIM |",
        "|---|---|---|---|---|---|---|" + ("---|" if ensemble > 1 else ""),
    ]
    for row in rows:
        views = f"{cell(row.get('model-ensemble'))} | " if ensemble > 1 else ""
        lines.append(
            f"| {row['case']} | {row['images']} | {cell(row.get('input'))} | "
            f"{cell(row.get('opencv-nlm'))} | {cell(row.get('model'))} | {views}{cell(row.get('enhancer'))} | "
            f"{cell(row.get('blend-only'))} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.quality", description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/datasets"))
    parser.add_argument("--limit", type=int, default=0, help="images per set (0: all)")
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    parser.add_argument("--weights", type=Path, default=None, help="a .safetensors file (default: the shipped model)")
    parser.add_argument("--ensemble", type=int, default=1, choices=ENSEMBLE_SIZES, help="add a column: model x N views")
    args = parser.parse_args(argv)
    rows = run(args.data, args.limit or 10**6, args.precision, args.weights, args.ensemble)
    card = (load_weights(args.weights) if args.weights else load_builtin()).card
    print(format_table(rows, card, args.ensemble))
    return 0


if __name__ == "__main__":
    sys.exit(main())
