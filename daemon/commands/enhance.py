"""``enhancerd enhance [options] PATH...``: enhance image files once, without the daemon.

Writes ``OUTDIR/<input stem>.<ext>`` (OUTDIR defaults to ``./enhanced``). A name that would be one of the
inputs gets ``-enhanced``; two inputs with the same stem get ``-2``, ``-3`` ... so nothing is overwritten that
this run reads or writes. Exit status 0 when every input succeeded, 1 otherwise (one line per failure on
stderr; the other inputs are still processed), 2 for unusable options or model.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from config.defaults import WORKER_ENSEMBLE_SIZES
from daemon.commands.inputs import expand_inputs

if TYPE_CHECKING:
    from core.pipeline import EnhanceResult

DEFAULT_OUTDIR = Path("enhanced")
"""Where outputs go without ``-o``: a folder in the current directory, never beside the inputs."""

FORMATS = ("same", "png", "jpeg", "jpg", "webp", "tiff", "tif")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "enhance",
        help="enhance image files (one-off, no daemon)",
        description="Restore noisy, blurred or JPEG-damaged photos; writes OUTDIR/<stem>.<ext>.",
    )
    parser.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="image files, or folders of images")
    parser.add_argument(
        "-o",
        "--output",
        dest="outdir",
        type=Path,
        default=DEFAULT_OUTDIR,
        metavar="OUTDIR",
        help=f"output folder (default: ./{DEFAULT_OUTDIR})",
    )
    parser.add_argument(
        "--format",
        choices=FORMATS,
        default="same",
        help="output format; same keeps each input's (GIF becomes PNG); png keeps 16 bits",
    )
    parser.add_argument(
        "--strength",
        type=float,
        default=1.0,
        metavar="F",
        help="0 returns the input unchanged, 1 (default) the full enhancement",
    )
    parser.add_argument("--tile", type=int, default=None, metavar="N", help="tile side in pixels (default: per device)")
    parser.add_argument(
        "--overlap",
        type=int,
        default=None,
        metavar="N",
        help="context pixels per tile side (default: the model's effective receptive field)",
    )
    parser.add_argument("--batch", type=int, default=None, metavar="N", help="tiles per batch (default: from memory)")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "mps"))
    parser.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16", "fp16"))
    parser.add_argument(
        "--ensemble",
        type=int,
        default=1,
        choices=WORKER_ENSEMBLE_SIZES,
        metavar="N",
        help="views of each tile to average: 1 (default), 2, 4 or 8; a little better for N times the model time",
    )
    parser.add_argument(
        "--model",
        type=Path,
        default=None,
        metavar="FILE",
        help="a model file (.safetensors/.pth) instead of the built-in one; non-Restorer "
        "architectures need the 'models' extra (spandrel)",
    )
    parser.add_argument("--quality", type=int, default=None, metavar="Q", help="JPEG/WebP quality 1-100")
    parser.add_argument("--json", action="store_true", help="print one JSON object per image on stdout")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from core.device import emulated_precision_note
    from core.engine import Engine, EngineSettings
    from core.model_loader import ModelLoadError, load_model
    from core.pipeline import EnhanceRequest, enhance_images, output_path

    problem = _check_options(args)
    if problem:
        print(f"enhancerd enhance: {problem}", file=sys.stderr)
        return 2
    sources = expand_inputs(args.paths)
    outdir: Path = args.outdir
    fmt = None if args.format == "same" else args.format
    inputs = {path.resolve() for path in sources}
    taken: set[Path] = set()
    requests = [EnhanceRequest(s, output_path(s, outdir, fmt, taken, inputs), format=_pillow(fmt)) for s in sources]
    engine = None
    if requests and args.strength > 0:
        try:
            descriptor = load_model(args.model)
            settings = EngineSettings(
                device=args.device,
                precision=args.precision,
                tile=args.tile,
                batch=args.batch,
                context=args.overlap,
                ensemble=args.ensemble,
            )
            engine = Engine(descriptor, settings)
            note = emulated_precision_note(engine.device, engine.dtype)
            if note:
                print(f"enhancerd enhance: warning: {note}", file=sys.stderr)
        except (ModelLoadError, ValueError, OSError) as error:
            print(f"enhancerd enhance: {error}", file=sys.stderr)
            return 2
    outdir.mkdir(parents=True, exist_ok=True)
    failures, done, megapixels = 0, 0, 0.0
    started = time.perf_counter()

    class Bar(tqdm):
        monitor_interval = 0  # no monitor thread: it would outlive the command (and tests check for that)

    bar = Bar(total=len(requests), unit="img", file=sys.stderr, disable=not sys.stderr.isatty(), leave=False)
    try:
        results = enhance_images(requests, engine, strength=args.strength, jpeg_quality=args.quality)
        for result in results:
            bar.update(1)
            if args.json:
                print(json.dumps(_as_json(result)), flush=True)
            if not result.ok:
                failures += 1
                bar.write(f"enhancerd enhance: {result.error}", file=sys.stderr)
                continue
            done += 1
            megapixels += result.megapixels
    finally:
        bar.close()
    seconds = time.perf_counter() - started
    rate = megapixels / seconds if seconds > 0 else 0.0
    print(
        f"enhanced {done} of {len(requests)} images, {megapixels:.2f} MP in {seconds:.2f} s ({rate:.2f} MP/s)",
        file=sys.stderr,
    )
    return 0 if failures == 0 else 1


def _check_options(args: argparse.Namespace) -> str | None:
    if not 0.0 <= args.strength <= 1.0:  # also rejects NaN; the same range as the config and the API
        return "--strength must be between 0 and 1"
    if args.tile is not None and args.tile < 16:
        return "--tile must be at least 16"
    if args.batch is not None and args.batch < 1:
        return "--batch must be at least 1"
    if args.overlap is not None and args.overlap < 0:
        return "--overlap must be 0 or more"
    if args.quality is not None and not 1 <= args.quality <= 100:
        return "--quality must be in 1..100"
    if args.outdir.exists() and not args.outdir.is_dir():
        return f"{args.outdir} exists and is not a folder"
    return None


def _pillow(fmt: str | None) -> str | None:
    return {"png": "PNG", "jpeg": "JPEG", "jpg": "JPEG", "webp": "WEBP", "tiff": "TIFF", "tif": "TIFF"}.get(fmt or "")


def _as_json(result: EnhanceResult) -> dict[str, object]:
    return {
        "path": str(result.request.source),
        "ok": result.ok,
        "error": result.error,
        "output": str(result.output) if result.output else None,
        "seconds": round(result.seconds, 4),
        "before": result.before,
        "after": result.after,
        "width": result.width,
        "height": result.height,
        "megapixels": round(result.megapixels, 4),
        "tiles": result.tiles,
        "timings": result.timings.as_dict(),
        "notes": list(result.notes),
    }
