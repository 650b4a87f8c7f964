"""Export a training run's best EMA weights into the package, with a model card.

    python -m core.export --run runs/main [--version 0.1.0]

The card records the architecture, parameter count, FLOP per pixel, receptive field, training data, steps and
minutes, and the validation numbers of the exported checkpoint; it keeps the history of earlier exports so the
training of the shipped weights can be followed across sessions.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch

from core.model import Restorer, RestorerConfig, count_parameters, macs_per_pixel
from core.weights import BUILTIN_CARD, builtin_weights_dir, export_weights

TRAINING_DATA = (
    "CBSD432 (BSDS500 minus CBSD68) and CSun_Hays80 photos (research-use licences; not redistributed), "
    "degraded on the fly by core.degrade.random_degradation"
)

TRAINING_RECIPE = (
    "AdamW (betas 0.9/0.99, wd 1e-4), grad-norm clip 0.2, EMA 0.999, a cosine learning rate over each run's steps; "
    "CPU only, bf16 autocast where the CPU has native bf16 (fp32 otherwise); the phases are listed in "
    "training_phases, each history entry records its run's crop, batch, peak learning rate, loss and network config, "
    "and core/weights/TRAINING.md is the training log"
)

TRAINING_PHASES = (
    "from step 0 (0.1.0 on): L1, 200-step warm-up to 7e-4, 64x64 crops, batch 32; from step 31,180 128x128 crops, "
    "batch 8",
    "from step 90,797 (0.1.5 on): 14 % of the samples are camera-order chains (lens blur, sensor noise, JPEG)",
    "from step 139,706 (0.1.6 on): fine-tuned with MSE loss on 256x256 crops, batch 4, as the weight average "
    "(core.soup) of two runs with different seeds, whose steps and minutes the card adds up",
    "from step 172,274 (0.2.0 on): grown by core.grow with one more residual block at each of the two finest decoder "
    "levels (new blocks start as identities; decoder blocks 2/3/3) and fine-tuned with MSE on 192x192 crops, batch 4",
    "from step 194,944 (0.3.0 on): grown again the same way (decoder blocks 3/4/3), MSE on 192x192 crops, batch 4",
    "from step 220,759 (0.4.0 on): grown a third time the same way (decoder blocks 4/5/3), MSE on 192x192 crops, "
    "batch 4",
    "from step 234,507 (0.4.1 on): MSE on 256x256 crops, batch 3, a cosine from lr 1.5e-4",
    "from step 258,507 (0.4.2 on): MSE on 288x288 crops (the largest every training photo holds without upscaling), "
    "batch 3, a cosine from lr 1e-4",
    "from step 285,992 (0.4.3 on): MSE on 288x448 crops (portrait photos turned a quarter turn, only rot180 and "
    "hflip), batch 2, a cosine from lr 8e-5",
    "from step 300,469 (0.4.4 on): the same 288x448 recipe, a cosine from lr 4e-5",
    "from step 318,297 (0.4.5 on): the same 288x448 recipe, a cosine from lr 4e-5, with a Gaussian-heavier mix "
    "(38 % Gaussian-only samples, 6 % clean, 12 % camera chains)",
    "from step 333,782 (0.4.6 on): the same Gaussian-heavier 288x448 recipe, another cosine from lr 4e-5",
)
"""One entry per change of recipe or network, oldest first; the card carries them as ``training_phases``."""


def build_card(config: RestorerConfig, checkpoint: dict[str, Any], version: str, history: list[dict]) -> dict[str, Any]:
    model = Restorer(config)
    validation = {key: round(float(value), 3) for key, value in checkpoint.get("val", {}).items()}
    entry = {
        "exported": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "steps": int(checkpoint["step"]),
        "training_minutes": round(float(checkpoint["trained_seconds"]) / 60.0, 1),
        "validation_psnr_db": validation,
    }
    if "recipe" in checkpoint:
        entry["recipe"] = dict(checkpoint["recipe"])
    entry["config"] = config.to_dict()  # core.grow can change the block counts between exports
    return {
        "name": "enhancerd-restorer",
        "version": version,
        "architecture": "residual U-Net, pixel-unshuffle x2 input, 4 levels, additive skips, residual output",
        "parameters": count_parameters(model),
        "flops_per_pixel": 2 * macs_per_pixel(config),
        "receptive_field_px": config.receptive_field,
        "tile_multiple": config.tile_multiple,
        "input": "RGB float in [0, 1], NCHW; blind (no noise level input)",
        "training_data": TRAINING_DATA,
        "training_recipe": TRAINING_RECIPE,
        "training_phases": list(TRAINING_PHASES),
        "validation_subset": (
            "first 8 CBSD68 (sigma 25, clean, mixed blur 1.0 -> sigma 8 -> q60) / LIVE1 (JPEG q10) images, "
            "256x256 centre crops, EMA weights"
        ),
        "steps": entry["steps"],
        "training_minutes": entry["training_minutes"],
        "validation_psnr_db": validation,
        "history": [*history, entry],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core.export", description=__doc__.split("\n")[0])
    parser.add_argument("--run", type=Path, default=Path("runs/main"))
    parser.add_argument("--checkpoint", default="best.pt")
    parser.add_argument("--version", default="0.1.0")
    parser.add_argument("--out", type=Path, default=None, help="default: the package's core/weights")
    args = parser.parse_args(argv)

    checkpoint = torch.load(args.run / args.checkpoint, map_location="cpu", weights_only=True)
    config = RestorerConfig.from_dict(checkpoint["config"]) if "config" in checkpoint else RestorerConfig()
    out = args.out or builtin_weights_dir()
    card_path = out / BUILTIN_CARD
    history = json.loads(card_path.read_text()).get("history", []) if card_path.exists() else []
    model = Restorer(config)
    model.load_state_dict(checkpoint["ema"])
    card = build_card(config, checkpoint, args.version, history)
    path = export_weights(model, card, out)
    print(f"exported {path} ({path.stat().st_size / 1e6:.1f} MB): step {card['steps']}, {card['validation_psnr_db']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
