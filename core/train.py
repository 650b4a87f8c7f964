"""Train the built-in restorer on random crops of the shared training photos, degraded on the fly.

    python -m core.train --run runs/main --minutes 240            # start (or continue: add --resume)
    python -m core.train --run runs/main --resume --minutes 120   # later session: continue the same run

The learning rate follows a 200-step warm-up, then a cosine over ``--total-steps`` (counted across resumes), so
a run interrupted by the end of a session resumes where its schedule left off; a later session may resume with a
larger ``--total-steps`` to stretch the schedule.

Every few minutes: a checkpoint (``last.pt``: model, EMA, optimiser, step, seconds) and a
validation pass on a fixed subset of the validation photos; the best EMA weights are kept in ``best.pt``.
Recipe (see shared/README.md): identity-initialised residual blocks, AdamW, warm-up, gradient-norm clipping.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.nn import functional as F
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from core.degrade import (
    DegradationMix,
    blur_noise_jpeg,
    gaussian_noise,
    jpeg_compress,
    quantize,
    random_degradation,
    tone_shift,
)
from core.device import autocast_dtype, emulated_precision_note, resolve_device
from core.metrics import psnr
from core.model import Restorer, RestorerConfig, count_parameters, macs_per_pixel
from core.weights import load_weights

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}

SUSPENDED_STEP_SECONDS = 120.0
"""A step that took longer than this was a suspended process (SIGSTOP, a laptop asleep), not training: its time is
not added to the training minutes the card reports."""


def list_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)


def load_rgb(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"), dtype=np.uint8)


def parse_crop(text: str) -> tuple[int, int]:
    """``"288"`` is a 288 x 288 crop; ``"288x448"`` is 288 px high and 448 px wide."""
    parts = text.lower().split("x")
    try:
        sides = tuple(int(part) for part in parts)
    except ValueError:
        sides = ()
    if len(sides) not in (1, 2) or min(sides) <= 0:
        raise argparse.ArgumentTypeError(f"a crop is SIDE or HEIGHTxWIDTH in pixels, not {text!r}")
    return (sides[0], sides[-1])


def crop_label(crop: tuple[int, int]) -> int | str:
    """How the card's history records a crop: the side of a square one, ``"HxW"`` otherwise."""
    return crop[0] if crop[0] == crop[1] else f"{crop[0]}x{crop[1]}"


class TrainingPatches(IterableDataset):
    """An endless stream of (degraded, clean) crops, each (3, height, width) float32 in [0, 1].

    A rectangular crop is cut from each photo in the crop's orientation: portrait photos are turned a quarter turn
    for a landscape crop, and only the shape-keeping flips and half turn augment it, so that batches stack. This
    lets a 288 x 448 crop use almost all of a 481 x 321 BSD photo, where a square crop is held to 288 px.
    """

    margin = 16  # degraded with context, then cut out, so blur and JPEG see no artificial border

    def __init__(
        self, images: list[np.ndarray], crop: int | tuple[int, int], seed: int, mix: DegradationMix | None = None
    ) -> None:
        self.crop = (crop, crop) if isinstance(crop, int) else (int(crop[0]), int(crop[1]))
        short, long = sorted(side + 2 * self.margin for side in self.crop)
        # A photo smaller than the padded window would have to be upscaled, and upscaled photos are smooth
        # targets that teach the model to blur (a 384 px trial on the 481 x 321 BSD photos lost 0.25 dB).
        self.images = [image for image in images if self._holds(image, short, long)]
        if not self.images:
            raise ValueError(self._refusal(images, short, long))
        self.skipped = len(images) - len(self.images)
        self.seed = seed
        self.mix = mix or DegradationMix()

    def _refusal(self, images: list[np.ndarray], short: int, long: int) -> str:
        height, width = self.crop
        if height == width:
            largest = max((min(image.shape[:2]) for image in images), default=0)
            return (
                f"no training photo holds a {height} px crop with its {self.margin} px margins ({short} px); "
                f"the largest short side is {largest} px, so use --crop {max(largest - 2 * self.margin, 0)} or less"
            )
        return (
            f"no training photo holds a {height} x {width} px crop with its {self.margin} px margins "
            f"({short} x {long} px in either orientation)"
        )

    @staticmethod
    def _holds(image: np.ndarray, short: int, long: int) -> bool:
        low, high = sorted(image.shape[:2])
        return low >= short and high >= long

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        info = get_worker_info()
        worker = info.id if info is not None else 0
        torch.set_num_threads(1)
        rng = np.random.default_rng([self.seed, worker])
        while True:
            yield self.sample(rng)

    def _source_window(self, rng: np.random.Generator) -> np.ndarray:
        padded_h, padded_w = (side + 2 * self.margin for side in self.crop)
        image = self.images[int(rng.integers(len(self.images)))]
        height, width = image.shape[:2]
        if padded_h != padded_w and (height > width) != (padded_h > padded_w):
            image = np.rot90(image, 1 if rng.random() < 0.5 else 3)
            height, width = width, height
        scale = float(rng.uniform(0.5, 0.9)) if rng.random() < 0.3 else 1.0
        scale = max(scale, padded_h / height, padded_w / width)  # a window never larger than the photo
        side_h = min(int(math.ceil(padded_h / scale)), height)
        side_w = min(int(math.ceil(padded_w / scale)), width)
        top = int(rng.integers(0, height - side_h + 1))
        left = int(rng.integers(0, width - side_w + 1))
        window = image[top : top + side_h, left : left + side_w]
        if (side_h, side_w) != (padded_h, padded_w):
            # Downscaling by area averaging also removes the source's own noise and JPEG traces.
            window = np.asarray(Image.fromarray(window).resize((padded_w, padded_h), Image.Resampling.BOX))
        return window.astype(np.float32) / 255.0

    def _augment(self, clean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One of the eight flips and quarter turns for a square crop; of the four that keep the shape otherwise."""
        if self.crop[0] == self.crop[1]:
            clean = np.rot90(clean, int(rng.integers(4)))
        elif rng.random() < 0.5:
            clean = np.rot90(clean, 2)
        if rng.random() < 0.5:
            clean = clean[:, ::-1]
        return np.ascontiguousarray(clean)

    def sample(self, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        clean = self._augment(self._source_window(rng), rng)
        if rng.random() < 0.25:
            clean = tone_shift(clean, float(rng.uniform(0.85, 1.1)), float(rng.uniform(0.8, 1.25)))
        clean = quantize(clean)
        degraded = random_degradation(clean, rng, self.mix).image
        aligned = rng.random() < 0.7
        top, left = (
            (self.margin, self.margin) if aligned else tuple(int(v) for v in rng.integers(0, 2 * self.margin + 1, 2))
        )
        cut = (slice(top, top + self.crop[0]), slice(left, left + self.crop[1]))
        to_tensor = lambda a: torch.from_numpy(np.ascontiguousarray(a[cut].transpose(2, 0, 1)))  # noqa: E731
        return to_tensor(degraded), to_tensor(clean)


@dataclass(frozen=True)
class ValidationCase:
    name: str
    degraded: np.ndarray
    clean: np.ndarray


def build_validation(val_root: Path, count: int = 8, side: int = 256) -> dict[str, list[ValidationCase]]:
    """Fixed, seeded validation subsets: CBSD68 at sigma 25, LIVE1 at JPEG q10, CBSD68 clean, CBSD68 mixed
    (blur 1.0, noise sigma 8, JPEG q60, as in bench/quality.py)."""

    def centre(image: np.ndarray) -> np.ndarray:
        h, w = image.shape[:2]
        top, left = (h - side) // 2, (w - side) // 2
        return image[top : top + side, left : left + side].astype(np.float32) / 255.0

    rng = np.random.default_rng(2024)
    cbsd = [centre(load_rgb(p)) for p in list_images(val_root / "CBSD68")[:count]]
    live = [centre(load_rgb(p)) for p in list_images(val_root / "LIVE1")[:count]]
    return {
        "sigma25": [ValidationCase(f"cbsd{i}", quantize(gaussian_noise(c, 25.0, rng)), c) for i, c in enumerate(cbsd)],
        "jpeg10": [ValidationCase(f"live{i}", jpeg_compress(c, 10), c) for i, c in enumerate(live)],
        "clean": [ValidationCase(f"clean{i}", c, c) for i, c in enumerate(cbsd)],
        "mixed": [ValidationCase(f"mixed{i}", blur_noise_jpeg(c, 1.0, 8.0, 60, rng), c) for i, c in enumerate(cbsd)],
    }


def evaluate(model: torch.nn.Module, cases: dict[str, list[ValidationCase]], device: torch.device) -> dict[str, float]:
    """Mean PSNR (dB, 8-bit output) per validation subset, in fp32."""
    model.eval()
    results: dict[str, float] = {}
    with torch.inference_mode():
        for subset, items in cases.items():
            scores = []
            for case in items:
                x = torch.from_numpy(case.degraded.transpose(2, 0, 1).copy())[None].to(device)
                y = model(x)[0].float().clamp(0, 1).cpu().numpy().transpose(1, 2, 0)
                scores.append(psnr(np.round(case.clean * 255), np.round(y * 255)))
            results[subset] = float(np.mean(scores))
    model.train()
    return results


def learning_rate(step: int, progress: float, peak: float, warmup: int, floor: float = 1e-6) -> float:
    """Cosine from ``peak`` to ``floor`` as progress goes 0 -> 1, scaled by a linear warm-up over the first
    ``warmup`` steps of a fresh optimiser (``step`` counts from when the optimiser was created)."""
    cosine = floor + 0.5 * (peak - floor) * (1.0 + math.cos(math.pi * min(1.0, progress)))
    return cosine * min(1.0, (step + 1) / warmup) if warmup > 0 else cosine


LOSSES = {"l1": F.l1_loss, "mse": F.mse_loss}
"""L1 trains robustly from scratch; MSE is the objective PSNR measures (it asks for the posterior mean, not the
median), for fine-tuning a trained model."""


def training_step(
    model: torch.nn.Module,
    optimiser: torch.optim.Optimizer,
    degraded: torch.Tensor,
    clean: torch.Tensor,
    amp: torch.dtype | None,
    clip: float,
    loss_name: str = "l1",
) -> float:
    """One optimiser step on the named loss; returns the loss. The forward pass runs under autocast when ``amp``."""
    with torch.autocast(degraded.device.type, dtype=amp or torch.float32, enabled=amp is not None):
        restored = model(degraded)
    loss = LOSSES[loss_name](restored.float(), clean)
    optimiser.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    optimiser.step()
    return loss.item()


def fused_optimiser_available(device: torch.device) -> bool:
    """torch has a fused AdamW kernel for CPU and CUDA: one pass over all weights instead of a Python loop over ~90
    tensors, which took a fifth of each CPU training step."""
    return device.type in ("cpu", "cuda")


def build_optimiser(model: torch.nn.Module, lr: float, device: torch.device) -> torch.optim.AdamW:
    fused = fused_optimiser_available(device)
    return torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.99), weight_decay=1e-4, fused=fused or None)


def keep_fused(optimiser: torch.optim.Optimizer, device: torch.device) -> None:
    """``load_state_dict`` restores the groups' ``fused``/``foreach`` flags from the file; use the fused kernel."""
    if fused_optimiser_available(device):
        for group in optimiser.param_groups:
            group.update(fused=True, foreach=None)


def update_ema(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    """Exponential moving average of the weights: what gets validated and exported (smoother than the raw ones)."""
    with torch.no_grad():
        for ema_p, p in zip(ema.parameters(), model.parameters(), strict=True):
            ema_p.lerp_(p.detach(), 1.0 - decay)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m core.train", description=__doc__.split("\n")[0])
    parser.add_argument("--run", type=Path, default=Path("runs/main"), help="folder for checkpoints and the log")
    parser.add_argument("--data", type=Path, default=Path("../shared/datasets"), help="holds train/ and val/")
    parser.add_argument("--minutes", type=float, default=60.0, help="wall-clock limit of this invocation")
    parser.add_argument("--total-steps", type=int, default=50_000, help="steps the cosine schedule spans")
    parser.add_argument("--resume", action="store_true", help="continue from RUN/last.pt")
    parser.add_argument(
        "--init-from",
        type=Path,
        default=None,
        help="start from exported safetensors weights (e.g. core/weights/restorer.safetensors) and the step count "
        "on their card, with a fresh optimiser; for when a run's checkpoints are gone but its export is not",
    )
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument(
        "--crop",
        type=parse_crop,
        default=(128, 128),
        help="crop side, or HEIGHTxWIDTH (e.g. 288x448); 128 px gave +0.18 dB at σ25 over 64 px",
    )
    parser.add_argument("--lr", type=float, default=7e-4)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--loss", default="l1", choices=sorted(LOSSES), help="l1; mse to fine-tune for PSNR")
    parser.add_argument("--clip", type=float, default=0.2, help="gradient-norm clipping")
    parser.add_argument("--ema", type=float, default=0.999, help="EMA decay of the weights that get validated")
    parser.add_argument("--checkpoint-minutes", type=float, default=5.0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"])
    parser.add_argument("--workers", type=int, default=1, help="data-synthesis processes")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: leave the default)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-steps", type=int, default=0, help="stop after this many steps (0: no limit)")
    parser.add_argument("--val-count", type=int, default=8)
    parser.add_argument(
        "--mix",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override one core.degrade.DegradationMix setting of the training degradations (repeatable), "
        "e.g. --mix p_jpeg_only=0.32 --mix p_clean=0.04",
    )
    args = parser.parse_args(argv)
    try:
        DegradationMix().with_overrides(args.mix)
    except ValueError as error:
        parser.error(str(error))
    return args


def starting_config(args: argparse.Namespace) -> RestorerConfig:
    """The architecture to train: a resumed run's own, else that of the weights it starts from, else the default.

    So a network grown by ``core.grow`` trains (and resumes) as itself without an architecture flag.
    """
    last = args.run / "last.pt"
    if args.resume and last.exists():
        saved = torch.load(last, map_location="cpu", weights_only=True).get("config")
        return RestorerConfig.from_dict(saved) if saved else RestorerConfig()
    if args.init_from is not None:
        return load_weights(args.init_from).model.config
    return RestorerConfig()


def _init_from_export(weights_path: Path, model: Restorer, ema: Restorer) -> tuple[int, float]:
    """Load exported weights into both the model and its EMA; return the (step, seconds) their card records."""
    loaded = load_weights(weights_path)
    model.load_state_dict(loaded.model.state_dict())
    ema.load_state_dict(loaded.model.state_dict())
    return int(loaded.card.get("steps", 0)), float(loaded.card.get("training_minutes", 0.0)) * 60


def _save(path: Path, state: dict) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def run_recipe(args: argparse.Namespace) -> dict[str, float | int | str]:
    """The settings of this invocation that shape the weights; the export copies them into the card's history."""
    return {
        "crop": crop_label(args.crop),
        "batch": args.batch,
        "peak_lr": args.lr,
        "total_steps": args.total_steps,
        "precision": args.precision,
        "loss": args.loss,
        **({"mix": " ".join(args.mix)} if args.mix else {}),
    }


def train(args: argparse.Namespace) -> dict[str, float]:
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    amp = autocast_dtype(device, args.precision)
    note = emulated_precision_note(device, amp)
    if note:
        print(f"warning: {note}", file=sys.stderr, flush=True)
    args.run.mkdir(parents=True, exist_ok=True)
    log = (args.run / "log.jsonl").open("a")

    config = starting_config(args)
    model = Restorer(config).to(device)
    ema = copy.deepcopy(model).eval()
    optimiser = build_optimiser(model, args.lr, device)
    step, trained_seconds, best_score, resumes, warm_start = 0, 0.0, -math.inf, 0, 0
    last = args.run / "last.pt"
    if args.resume and last.exists():
        state = torch.load(last, map_location=device, weights_only=True)
        model.load_state_dict(state["model"])
        ema.load_state_dict(state["ema"])
        optimiser.load_state_dict(state["optimiser"])
        keep_fused(optimiser, device)  # a saved state carries its own (maybe unfused) implementation choice
        step, trained_seconds = int(state["step"]), float(state["trained_seconds"])
        best_score, resumes = float(state["best_score"]), int(state.get("resumes", 0)) + 1
        warm_start = int(state.get("warm_start", 0))
    elif args.init_from is not None:
        step, trained_seconds = _init_from_export(args.init_from, model, ema)
        warm_start, resumes = step, 1
    if device.type == "cpu":
        model = model.to(memory_format=torch.channels_last)
    print(
        f"restorer: {count_parameters(model) / 1e6:.2f} M parameters, {2 * macs_per_pixel(config) / 1e3:.0f} kFLOP/px, "
        f"device {device}, autocast {amp}, step {step}, trained {trained_seconds / 60:.1f} min",
        flush=True,
    )

    train_images = [load_rgb(p) for p in list_images(args.data / "train")]
    if not train_images:
        raise SystemExit(f"no training images under {args.data / 'train'}")
    validation = build_validation(args.data / "val", args.val_count)
    mix = DegradationMix().with_overrides(args.mix)
    try:
        patches = TrainingPatches(train_images, args.crop, seed=args.seed * 1000 + resumes, mix=mix)
    except ValueError as error:
        raise SystemExit(str(error)) from error
    if patches.skipped:
        print(
            f"{patches.skipped} of {len(train_images)} training photos are too small for "
            f"{args.crop[0]} x {args.crop[1]} px crops",
            flush=True,
        )
    loader = DataLoader(
        patches,
        batch_size=args.batch,
        num_workers=args.workers,
        persistent_workers=args.workers > 0,
        prefetch_factor=4 if args.workers else None,
    )

    started = time.monotonic()
    last_checkpoint = started
    losses: list[float] = []
    result: dict[str, float] = {}

    def checkpoint() -> None:
        nonlocal best_score, result
        result = evaluate(ema, validation, device)
        score = result["sigma25"] + result["jpeg10"] + result["mixed"]
        improved = score > best_score
        if improved:
            best_score = score
            _save(
                args.run / "best.pt",
                {
                    "ema": ema.state_dict(),
                    "step": step,
                    "val": result,
                    "trained_seconds": trained_seconds,
                    "config": config.to_dict(),
                    "recipe": run_recipe(args),
                },
            )
        _save(
            last,
            {
                "model": model.state_dict(),
                "ema": ema.state_dict(),
                "optimiser": optimiser.state_dict(),
                "step": step,
                "trained_seconds": trained_seconds,
                "best_score": best_score,
                "resumes": resumes,
                "warm_start": warm_start,
                "config": config.to_dict(),
            },
        )
        entry = {
            "step": step,
            "minutes": round(trained_seconds / 60, 2),
            "loss": float(np.mean(losses or [0.0])),
            "lr": optimiser.param_groups[0]["lr"],
            **{k: round(v, 3) for k, v in result.items()},
            "best": improved,
            "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        losses.clear()
        log.write(json.dumps(entry) + "\n")
        log.flush()
        print(json.dumps(entry), flush=True)

    for degraded, clean in loader:
        tick = time.monotonic()
        degraded, clean = degraded.to(device, non_blocking=True), clean.to(device, non_blocking=True)
        if device.type == "cpu":
            degraded = degraded.contiguous(memory_format=torch.channels_last)
        for group in optimiser.param_groups:
            group["lr"] = learning_rate(step - warm_start, step / args.total_steps, args.lr, args.warmup)
        loss = training_step(model, optimiser, degraded, clean, amp, args.clip, args.loss)
        update_ema(ema, model, min(args.ema, (1 + step) / (10 + step)))
        losses.append(loss)
        step += 1
        now = time.monotonic()
        if now - tick < SUSPENDED_STEP_SECONDS:
            trained_seconds += now - tick
        finished = (
            step >= args.total_steps
            or now - started >= args.minutes * 60
            or (args.max_steps and step >= args.max_steps)
        )
        if finished or now - last_checkpoint >= args.checkpoint_minutes * 60:
            checkpoint()
            last_checkpoint = time.monotonic()
        if finished:
            break
    log.close()
    return result


def main(argv: list[str] | None = None) -> int:
    train(parse_args(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
