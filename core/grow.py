"""Grow a trained restorer by residual blocks without changing what it computes, so training can go on from it.

    python -m core.grow --from core/weights/restorer.safetensors --decoder-blocks 3,3,3 --out runs/grown
    python -m core.train --init-from runs/grown/restorer.safetensors ...

Why: retraining a larger network from scratch costs the hundreds of CPU minutes the shipped one took. Every
residual block starts as the identity (its last convolution is zero), so blocks appended to the end of a stage
leave the network's output exactly as it was; training then only has to teach the new blocks what to add.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import torch

from core.model import Restorer, RestorerConfig, count_parameters, macs_per_pixel
from core.weights import export_weights, load_weights


def check_growth(old: RestorerConfig, new: RestorerConfig) -> None:
    """Refuse a change that is not "more blocks per stage": widths, levels and packing must stay."""
    if (old.widths, old.unshuffle, old.channels) != (new.widths, new.unshuffle, new.channels):
        raise ValueError("only block counts can grow: widths, unshuffle and channels must stay the same")
    pairs = [
        *zip(old.encoder_blocks, new.encoder_blocks, strict=True),
        *zip(old.decoder_blocks, new.decoder_blocks, strict=True),
        (old.middle_blocks, new.middle_blocks),
    ]
    if any(after < before for before, after in pairs):
        raise ValueError(f"a stage cannot shrink: {old} -> {new}")


def grow(model: Restorer, config: RestorerConfig, seed: int = 0) -> Restorer:
    """A network with ``config``'s block counts holding all of ``model``'s weights; new blocks are identities."""
    check_growth(model.config, config)
    with torch.random.fork_rng(devices=[]):  # reproducible new blocks without touching the caller's generator
        torch.manual_seed(seed)
        grown = Restorer(config)
    missing, unexpected = grown.load_state_dict(model.state_dict(), strict=False)
    if unexpected:
        raise ValueError(f"weights with no place in the grown network: {unexpected}")
    if any(not name.endswith(("conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias")) for name in missing):
        raise ValueError(f"only new residual blocks may lack weights, not {missing}")
    return grown.eval()


def _blocks(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(","))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core.grow", description=__doc__.split("\n")[0])
    parser.add_argument("--from", dest="source", type=Path, required=True, help="exported safetensors weights")
    parser.add_argument("--out", type=Path, required=True, help="folder for restorer.safetensors and its card")
    parser.add_argument("--encoder-blocks", type=_blocks, default=None, help="e.g. 1,2,3")
    parser.add_argument("--decoder-blocks", type=_blocks, default=None, help="e.g. 3,3,3")
    parser.add_argument("--middle-blocks", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    loaded = load_weights(args.source)
    old = loaded.model.config
    config = replace(
        old,
        encoder_blocks=args.encoder_blocks or old.encoder_blocks,
        decoder_blocks=args.decoder_blocks or old.decoder_blocks,
        middle_blocks=args.middle_blocks if args.middle_blocks is not None else old.middle_blocks,
    )
    grown = grow(loaded.model, config, args.seed)
    card = dict(loaded.card)
    card["grown_from"] = {"version": loaded.version, "config": old.to_dict()}
    card["parameters"] = count_parameters(grown)
    card["flops_per_pixel"] = 2 * macs_per_pixel(config)
    card["receptive_field_px"] = config.receptive_field
    export_weights(grown, card, args.out)
    print(
        f"grown {count_parameters(loaded.model) / 1e6:.2f} -> {count_parameters(grown) / 1e6:.2f} M parameters, "
        f"{2 * macs_per_pixel(old) / 1e3:.0f} -> {2 * macs_per_pixel(config) / 1e3:.0f} kFLOP/px; wrote {args.out}",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
