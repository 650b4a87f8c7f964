"""Average the best weights of several fine-tuning runs that started from the same weights (a "model soup").

    python -m core.soup --runs runs/a runs/b --start-step 139706 --start-minutes 419.5 --out runs/soup
    python -m core.export --run runs/soup --version 0.1.6

Why: on two CPU cores, two single-threaded training processes make more steps between them than one
two-threaded process. Runs fine-tuned from one starting point at a low learning rate stay in one basin, so the
average of their weights is a model too, often better than either (Wortsman et al., 2022; for 0.1.6 it tied
with the better run, see core/weights/TRAINING.md). The soup is validated on the same fixed subset as the
runs, and every run's own numbers are printed beside it, so the export can take whichever is best.

The soup's checkpoint counts the steps and minutes of all its runs: the steps from the common start onwards
are added up, as are the training minutes, because each run spent its own processor time.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import torch

from core.model import Restorer, RestorerConfig
from core.train import build_validation, evaluate


def average_states(states: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The element-wise mean of state dicts with the same keys and shapes."""
    if not states:
        raise ValueError("nothing to average")
    keys = states[0].keys()
    if any(state.keys() != keys for state in states):
        raise ValueError("the checkpoints hold different tensors: not the same architecture")
    return {key: torch.stack([state[key].float() for state in states]).mean(dim=0) for key in keys}


def soup_checkpoint(checkpoints: list[dict[str, Any]], start_step: int, start_seconds: float) -> dict[str, Any]:
    """A checkpoint in train.py's best.pt layout for the averaged EMA weights, with the runs' work added up."""
    configs = [c.get("config", RestorerConfig().to_dict()) for c in checkpoints]
    if any(config != configs[0] for config in configs):
        raise ValueError("the runs trained different architectures")
    if any(int(c["step"]) < start_step for c in checkpoints):
        raise ValueError(f"every run must have started from step {start_step}")
    recipe = dict(checkpoints[0].get("recipe", {}))
    recipe["soup_of"] = [int(c["step"]) - start_step for c in checkpoints]
    return {
        "ema": average_states([c["ema"] for c in checkpoints]),
        "step": start_step + sum(int(c["step"]) - start_step for c in checkpoints),
        "trained_seconds": start_seconds + sum(float(c["trained_seconds"]) - start_seconds for c in checkpoints),
        "config": configs[0],
        "recipe": recipe,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core.soup", description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=Path, nargs="+", required=True, help="run folders, each with best.pt")
    parser.add_argument("--start-step", type=int, required=True, help="the step all runs started from")
    parser.add_argument("--start-minutes", type=float, required=True, help="the training minutes at that step")
    parser.add_argument("--out", type=Path, required=True, help="folder for the soup's best.pt")
    parser.add_argument("--data", type=Path, default=Path("../shared/datasets"))
    parser.add_argument("--val-count", type=int, default=8)
    args = parser.parse_args(argv)

    checkpoints = [torch.load(run / "best.pt", map_location="cpu", weights_only=True) for run in args.runs]
    soup = soup_checkpoint(checkpoints, args.start_step, args.start_minutes * 60)
    model = Restorer(RestorerConfig.from_dict(soup["config"]))
    model.load_state_dict(soup["ema"])
    validation = build_validation(args.data / "val", args.val_count)
    soup["val"] = evaluate(model, validation, torch.device("cpu"))
    for run, checkpoint in zip(args.runs, checkpoints, strict=True):
        print(f"{run}: step {checkpoint['step']}, {json.dumps({k: round(v, 3) for k, v in checkpoint['val'].items()})}")
    print(f"soup: step {soup['step']}, {json.dumps({k: round(v, 3) for k, v in soup['val'].items()})}")
    args.out.mkdir(parents=True, exist_ok=True)
    torch.save(soup, args.out / "best.pt")
    return 0


if __name__ == "__main__":
    sys.exit(main())
