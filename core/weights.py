"""Shipped weights: safetensors files plus a JSON model card, loaded without pickle."""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from core.model import Restorer, RestorerConfig

BUILTIN_WEIGHTS = "restorer.safetensors"
BUILTIN_CARD = "restorer.json"


@dataclass(frozen=True)
class LoadedModel:
    """A network ready for inference together with the card that describes it."""

    model: Restorer
    card: dict[str, Any]

    @property
    def version(self) -> str:
        return str(self.card.get("version", "unknown"))


def builtin_weights_dir() -> Path:
    return Path(str(resources.files("core") / "weights"))


def export_weights(model: Restorer, card: dict[str, Any], directory: Path, stem: str = "restorer") -> Path:
    """Write ``stem.safetensors`` (fp16, to halve the shipped size) and ``stem.json`` (the card)."""
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {name: value.detach().to(torch.float16).contiguous() for name, value in model.state_dict().items()}
    weights_path = directory / f"{stem}.safetensors"
    metadata = {"config": json.dumps(model.config.to_dict()), "version": str(card.get("version", ""))}
    save_file(tensors, str(weights_path), metadata=metadata)
    full_card = dict(card)
    full_card["config"] = model.config.to_dict()
    (directory / f"{stem}.json").write_text(json.dumps(full_card, indent=2) + "\n")
    return weights_path


def load_weights(weights_path: Path, card_path: Path | None = None) -> LoadedModel:
    """Load a :class:`Restorer` from safetensors; the card (if any) supplies the architecture."""
    card: dict[str, Any] = {}
    card_path = card_path or weights_path.with_suffix(".json")
    if card_path.exists():
        card = json.loads(card_path.read_text())
    config = RestorerConfig.from_dict(card["config"]) if "config" in card else RestorerConfig()
    model = Restorer(config)
    state = {name: value.float() for name, value in load_file(str(weights_path)).items()}
    model.load_state_dict(state)
    model.eval()
    return LoadedModel(model, card)


def load_builtin() -> LoadedModel:
    """The network shipped inside the package."""
    directory = builtin_weights_dir()
    return load_weights(directory / BUILTIN_WEIGHTS, directory / BUILTIN_CARD)
