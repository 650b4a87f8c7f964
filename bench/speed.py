"""Throughput of the engine and the whole pipeline, with OpenCV NLM as the reference, in one markdown table.

    python -m bench.speed [--quick] [--model FILE] [--skip-huge]

Images are photo-like and synthetic (scikit-image's astronaut, enlarged, with fine texture and sigma-15 noise),
4 MP (2304x1728) and 12 MP (4000x3000). Rows:
- model: the engine alone (tiling, batching, stitching) at default settings, plus fp32 and whole-tile passes
  (``striped=False``: no :mod:`core.striped`) for comparison, and with
  2 and 8 self-ensemble views (the ``ensemble`` setting: what the quality they buy costs in time);
- pipeline: decode -> analyse -> engine -> blend -> encode (JPEG in, JPEG out) through core.pipeline, with the
  time of each stage; "model+blend" MP/s is the target figure (>= 1 MP/s on the 2-core CPU);
- 1 MP x N: image-at-a-time versus cross-image batching through one ``Engine.run``;
- CUDA fp16 at several batch sizes when a GPU is present;
- OpenCV fastNlMeansDenoisingColored on the same image;
- 50 MP on the CPU: the whole pipeline in a child process, so its peak RSS is its own (target: 4 GB).
Peak RSS is the process's high-water mark after the row (it only grows); VRAM is torch's peak allocation.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    from core.engine import Engine

SIZES = {"4 MP": (1728, 2304), "12 MP": (3000, 4000)}
HUGE = (5773, 8660)  # 50.0 MP


@dataclass
class Row:
    case: str
    image: str
    device: str
    settings: str
    megapixels: float
    seconds: float
    peak_rss_mb: float
    vram_mb: float | None = None
    detail: str = ""

    @property
    def rate(self) -> float:
        return self.megapixels / self.seconds if self.seconds > 0 else float("nan")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux reports KiB


def photo_like(height: int, width: int, seed: int = 0, sigma: float = 15.0) -> np.ndarray:
    """A float32 RGB 'photo': the astronaut enlarged to size, plus film-like fine texture and sensor noise."""
    from PIL import Image
    from skimage import data

    rng = np.random.default_rng(seed)
    base = Image.fromarray(data.astronaut()).resize((width, height), Image.Resampling.BICUBIC)
    texture = rng.standard_normal((height // 4 + 1, width // 4 + 1, 1), dtype=np.float32)
    image = np.empty((height, width, 3), dtype=np.float32)
    for top in range(0, height, 512):  # in strips: a 50 MP image must not need several GB to make
        rows = slice(top, min(top + 512, height))
        strip = np.asarray(base.crop((0, rows.start, width, rows.stop)), dtype=np.float32) / 255.0
        fine = np.repeat(np.repeat(texture[rows.start // 4 : rows.stop // 4 + 1], 4, axis=0), 4, axis=1)
        strip += 0.015 * fine[rows.start % 4 : rows.start % 4 + strip.shape[0], :width]
        strip += rng.standard_normal(strip.shape, dtype=np.float32) * (sigma / 255.0)
        image[rows] = np.round(np.clip(strip, 0, 1) * 255) / 255
    return image


def timed(function: Callable[[], object], repeat: int = 1) -> float:
    """Best of ``repeat`` wall-clock runs, in seconds."""
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - started)
    return best


def engine_for(model_path: Path | None, **settings: object) -> Engine:
    from core.engine import Engine, EngineSettings
    from core.model_loader import load_model

    return Engine(load_model(model_path), EngineSettings(**settings))  # type: ignore[arg-type]


def model_rows(images: dict[str, np.ndarray], model: Path | None, quick: bool) -> list[Row]:
    rows = []
    # The default, then fp32 and whole-tile passes (no core.striped) at 4 MP, to compare against.
    for precision, striped in (("auto", True), ("fp32", True), ("auto", False)):
        engine = engine_for(model, device="cpu", precision=precision, striped=striped)
        engine.restore(images["4 MP"][:512, :512])  # warm-up: oneDNN primitive creation
        for name, image in images.items():
            if (precision == "fp32" and quick) or ((precision, striped) != ("auto", True) and name != "4 MP"):
                continue
            seconds = timed(lambda engine=engine, image=image: engine.restore(image), repeat=2)
            batch = engine.batch_size((engine.tile, engine.tile))
            label = f"{engine.autocast_name}, tile {engine.tile}, context {engine.context}, batch {batch}"
            label += "" if striped else ", whole-tile passes"
            rows.append(Row("model (engine)", name, "cpu", label, image.size / 3e6, seconds, peak_rss_mb()))
    for views in () if quick else (2, 8):
        engine = engine_for(model, device="cpu", ensemble=views)
        image = images["4 MP"]
        # Best of two: the turned views are new tile shapes, whose kernels the first run sets up.
        seconds = timed(lambda engine=engine, image=image: engine.restore(image), repeat=2)
        label = f"{engine.autocast_name}, tile {engine.tile}, ensemble {views} views"
        rows.append(Row("model (engine)", "4 MP", "cpu", label, image.size / 3e6, seconds, peak_rss_mb()))
    return rows


def pipeline_rows(images: dict[str, np.ndarray], model: Path | None, folder: Path) -> list[Row]:
    from core.imageio import ImageData, save_image
    from core.pipeline import EnhanceRequest, enhance_images

    engine = engine_for(model, device="cpu")
    rows = []
    for name, image in images.items():
        source = folder / f"{name.replace(' ', '')}.jpg"
        save_image(ImageData(image, format="JPEG"), source, format="JPEG", jpeg_quality=95)
        request = EnhanceRequest(source, folder / f"{source.stem}-out.jpg", format="JPEG")
        engine.restore(image)  # warm-up: oneDNN sets up kernels per tile shape on first use
        (result,) = list(enhance_images([request], engine, analyse_output=False))
        if not result.ok:
            raise RuntimeError(result.error)
        t = result.timings
        mp = result.megapixels
        detail = (
            f"decode {t.decode:.2f} s, analyse {t.analysis:.2f} s, model {t.model:.2f} s, blend {t.blend:.2f} s, "
            f"encode {t.encode:.2f} s; end to end {mp / t.total:.2f} MP/s"
        )
        rows.append(
            Row(
                "model+blend (pipeline)",
                name,
                "cpu",
                engine.autocast_name,
                mp,
                t.model + t.blend,
                peak_rss_mb(),
                None,
                detail,
            )
        )
    return rows


def batching_rows(model: Path | None, device: str, count: int) -> list[Row]:
    """1 MP images one at a time versus tiles of all of them batched across images."""
    images = [photo_like(1024, 1024, seed=i) for i in range(count)]
    rows = []
    engine = engine_for(model, device=device)
    engine.restore(images[0][:256, :256])
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    def one_by_one() -> None:
        for image in images:
            engine.restore(image)
        sync()

    def batched() -> None:
        for _ in engine.run(enumerate(images)):
            pass
        sync()

    for label, function in (("image at a time", one_by_one), ("cross-image batches", batched)):
        seconds = timed(function)
        rows.append(
            Row(
                f"1 MP x {count}: {label}",
                "1 MP",
                device,
                engine.autocast_name,
                count * 1.048576,
                seconds,
                peak_rss_mb(),
                _vram(),
            )
        )
    return rows


def cuda_rows(images: dict[str, np.ndarray], model: Path | None) -> list[Row]:
    rows = []
    for batch in (1, 4, 16, 64):
        for tile in (512, 1024):
            engine = engine_for(model, device="cuda", precision="fp16", batch=batch, tile=tile)
            engine.restore(images["4 MP"])
            torch.cuda.reset_peak_memory_stats()
            for name, image in images.items():
                seconds = timed(lambda e=engine, im=image: (e.restore(im), torch.cuda.synchronize()), repeat=2)
                rows.append(
                    Row(
                        "model (engine)",
                        name,
                        "cuda",
                        f"fp16, tile {tile}, batch {batch}",
                        image.size / 3e6,
                        seconds,
                        peak_rss_mb(),
                        _vram(),
                    )
                )
    return rows


def _vram() -> float | None:
    return torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None


def nlm_rows(images: dict[str, np.ndarray]) -> list[Row]:
    import cv2

    rows = []
    for name, image in images.items():
        bgr = np.round(image[..., ::-1] * 255).astype(np.uint8)
        seconds = timed(lambda bgr=bgr: cv2.fastNlMeansDenoisingColored(bgr, None, 12, 12, 7, 21))
        rows.append(
            Row(
                "OpenCV fastNlMeansDenoisingColored",
                name,
                "cpu",
                "h=hColor=12, 7/21",
                image.size / 3e6,
                seconds,
                peak_rss_mb(),
            )
        )
    return rows


def huge_child(model: Path | None, source: Path, output: Path) -> dict[str, object]:
    """Runs in a fresh process: the whole pipeline on one 50 MP JPEG; reports timings and peak RSS."""
    from core.pipeline import EnhanceRequest, enhance_images

    engine = engine_for(model, device="cpu")
    baseline = peak_rss_mb()
    started = time.perf_counter()
    (result,) = list(enhance_images([EnhanceRequest(source, output, format="JPEG")], engine, analyse_output=True))
    return {
        "ok": result.ok,
        "error": result.error,
        "seconds": time.perf_counter() - started,
        "megapixels": result.megapixels,
        "timings": result.timings.as_dict(),
        "peak_rss_mb": peak_rss_mb(),
        "rss_after_model_load_mb": baseline,
    }


def huge_row(model: Path | None, folder: Path) -> Row:
    from core.imageio import ImageData, save_image

    source = folder / "huge.jpg"
    save_image(ImageData(photo_like(*HUGE, seed=5), format="JPEG"), source, format="JPEG", jpeg_quality=92)
    command = [sys.executable, "-m", "bench.speed", "--huge-child", str(source), str(folder / "huge-out.jpg")]
    if model is not None:
        command += ["--model", str(model)]
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        raise RuntimeError(f"50 MP child failed: {completed.stderr.strip()[-2000:]}")
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    if not report["ok"]:
        raise RuntimeError(f"50 MP child failed: {report['error']}")
    t = report["timings"]
    detail = (
        ", ".join(f"{k} {v:.1f} s" for k, v in t.items())
        + f"; whole pipeline incl. output analysis; {'within' if report['peak_rss_mb'] <= 4096 else 'OVER'} 4 GB"
    )
    return Row(
        "pipeline, child process",
        "50 MP",
        "cpu",
        "default",
        float(report["megapixels"]),
        float(report["seconds"]),
        float(report["peak_rss_mb"]),
        None,
        detail,
    )


def format_table(rows: list[Row]) -> str:
    lines = [
        "| case | image | device | settings | MP/s | seconds | peak RSS (MB) | peak VRAM (MB) | notes |",
        "|---|---|---|---|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        vram = f"{r.vram_mb:.0f}" if r.vram_mb is not None else "-"
        cells = (
            r.case,
            r.image,
            r.device,
            r.settings,
            f"{r.rate:.2f}",
            f"{r.seconds:.2f}",
            f"{r.peak_rss_mb:.0f}",
            vram,
        )
        lines.append("| " + " | ".join((*cells, r.detail)) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.speed", description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None, help="model file (default: the built-in restorer)")
    parser.add_argument("--quick", action="store_true", help="4 MP only, fewer rows")
    parser.add_argument("--skip-huge", action="store_true", help="skip the 50 MP child process")
    parser.add_argument("--huge-child", nargs=2, type=Path, metavar=("SOURCE", "OUTPUT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.huge_child:
        print(json.dumps(huge_child(args.model, *args.huge_child)))
        return 0
    sizes = {"4 MP": SIZES["4 MP"]} if args.quick else SIZES
    images = {name: photo_like(*shape) for name, shape in sizes.items()}
    rows: list[Row] = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="enhancerd-speed-") as temp:
        folder = Path(temp)
        steps: list[Callable[[], list[Row]]] = [
            lambda: model_rows(images, args.model, args.quick),
            lambda: pipeline_rows(images, args.model, folder),
            lambda: batching_rows(args.model, "cpu", 4 if args.quick else 6),
            lambda: nlm_rows(images),
        ]
        if torch.cuda.is_available():
            steps += [lambda: cuda_rows(images, args.model), lambda: batching_rows(args.model, "cuda", 32)]
        if not args.skip_huge:
            steps.append(lambda: [huge_row(args.model, folder)])
        for step in steps:
            new = step()
            for row in new:
                print(
                    f"  {row.case} {row.image} {row.device} {row.settings}: {row.rate:.2f} MP/s",
                    file=sys.stderr,
                    flush=True,
                )
            rows.extend(new)
    cpu = os.cpu_count()
    print(
        f"<!-- python -m bench.speed: torch {torch.__version__}, {cpu} CPUs, {time.perf_counter() - started:.0f} s -->"
    )
    print(format_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
