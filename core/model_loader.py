"""Loading networks safely: the built-in restorer by default, or a user's file (``--model FILE``).

Only pickle-free or restricted loading: safetensors, or ``torch.load(weights_only=True)`` for .pth/.pt/.ckpt.
Our own Restorer files (shipped weights, exported safetensors, training checkpoints) are recognised by their
keys; anything else goes to spandrel (optional extra ``models``), imported only here and only when needed,
which detects the architecture (Real-ESRGAN, SCUNet, NAFNet, SwinIR, ...) from the state dict alone.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from core.descriptor import DEFAULT_CONTEXT, ModelDescriptor, describe_restorer
from core.model import Restorer, RestorerConfig

SAFE_SUFFIXES = (".safetensors", ".pth", ".pt", ".ckpt", ".bin")
_WRAPPER_KEYS = ("ema", "params_ema", "params-ema", "params", "model_state_dict", "state_dict", "model", "net")
_RESTORER_KEYS = ("head.weight", "tail.weight", "middle.0.conv1.weight")


class ModelLoadError(Exception):
    """The file cannot be loaded as an image-to-image model; the message says why, for the user."""


def load_model(path: Path | str | None = None) -> ModelDescriptor:
    """The built-in restorer (``path`` None) or the model in ``path``, on CPU, in eval mode."""
    if path is None:
        from core.weights import load_builtin

        loaded = load_builtin()
        return describe_restorer(loaded.model, loaded.card)
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"{path}: no such model file")
    state, metadata = read_state_dict(path)
    if is_restorer_state(state):
        return _restorer_from_state(path, state, metadata)
    return _spandrel_from_state(path, state)


def read_state_dict(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Tensors (unwrapped from the usual checkpoint containers) and any config found beside them."""
    suffix = path.suffix.lower()
    if suffix not in SAFE_SUFFIXES:
        raise ModelLoadError(f"{path}: unsupported model file type {suffix!r} (use one of {', '.join(SAFE_SUFFIXES)})")
    metadata: dict[str, Any] = {}
    try:
        if suffix == ".safetensors":
            from safetensors import safe_open
            from safetensors.torch import load_file

            with safe_open(str(path), framework="pt") as handle:
                raw_meta = handle.metadata() or {}
            if "config" in raw_meta:
                metadata["config"] = json.loads(raw_meta["config"])
            if raw_meta.get("version"):
                metadata["version"] = raw_meta["version"]
            return load_file(str(path), device="cpu"), metadata
        content = torch.load(str(path), map_location="cpu", weights_only=True)
    except ModelLoadError:
        raise
    except Exception as error:  # corrupt file, or a pickle that needs more than weights (refused on purpose)
        raise ModelLoadError(f"{path}: cannot be read safely ({type(error).__name__}: {error})") from error
    if not isinstance(content, Mapping):
        raise ModelLoadError(f"{path}: expected a state dict, found {type(content).__name__}")
    if isinstance(content.get("config"), Mapping):
        metadata["config"] = dict(content["config"])
    return _unwrap(content), metadata


def _unwrap(content: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    for key in _WRAPPER_KEYS:
        inner = content.get(key)
        if isinstance(inner, Mapping) and inner and all(isinstance(v, torch.Tensor) for v in inner.values()):
            content = inner
            break
    tensors = {k: v for k, v in content.items() if isinstance(v, torch.Tensor)}
    for prefix in ("module.", "netG.", "_orig_mod."):
        if tensors and all(k.startswith(prefix) for k in tensors):
            tensors = {k[len(prefix) :]: v for k, v in tensors.items()}
    if not tensors:
        raise ModelLoadError("the file holds no tensors")
    return tensors


def is_restorer_state(state: Mapping[str, torch.Tensor]) -> bool:
    return all(key in state for key in _RESTORER_KEYS)


def _restorer_from_state(path: Path, state: dict[str, torch.Tensor], metadata: dict[str, Any]) -> ModelDescriptor:
    card: dict[str, Any] = {}
    card_path = path.with_suffix(".json")
    if card_path.is_file():
        card = json.loads(card_path.read_text())
    config_data = card.get("config") or metadata.get("config")
    config = RestorerConfig.from_dict(config_data) if config_data else RestorerConfig()
    model = Restorer(config)
    try:
        model.load_state_dict({name: value.float() for name, value in state.items()})
    except RuntimeError as error:
        raise ModelLoadError(f"{path}: Restorer weights do not match their config: {error}") from error
    card.setdefault("name", path.stem)
    card.setdefault("version", metadata.get("version", "custom"))
    return describe_restorer(model, card)


def _spandrel_from_state(path: Path, state: dict[str, torch.Tensor]) -> ModelDescriptor:
    try:
        import spandrel
    except Exception as error:  # ImportError, or a broken torchvision underneath it
        raise ModelLoadError(
            f"{path}: not a built-in Restorer file; other architectures need the optional extra "
            f"'models' (pip install 'enhancerd[models]'): {error}"
        ) from error
    try:
        loaded = spandrel.ModelLoader(device="cpu").load_from_state_dict(state)
    except Exception as error:
        raise ModelLoadError(f"{path}: unsupported model ({type(error).__name__}: {error})") from error
    if not isinstance(loaded, spandrel.ImageModelDescriptor):
        raise ModelLoadError(f"{path}: {loaded.architecture.name} is not an image-to-image model (inpainting?)")
    return describe_spandrel(loaded)


def describe_spandrel(loaded: Any) -> ModelDescriptor:
    """Our descriptor for a spandrel ``ImageModelDescriptor``; activation memory estimated from conv widths."""
    model = loaded.model.eval()
    widths = [m.out_channels for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    width = max(widths) if widths else 64
    scale = int(loaded.scale)
    requirements = loaded.size_requirements
    tiling = getattr(loaded.tiling, "name", "SUPPORTED")
    return ModelDescriptor(
        model=model,
        name=str(loaded.architecture.name),
        version=str(getattr(loaded.architecture, "id", "")),
        architecture=str(loaded.architecture.name),
        scale=scale,
        input_channels=int(loaded.input_channels),
        output_channels=int(loaded.output_channels),
        tile_multiple=max(1, int(requirements.multiple_of)),
        minimum_size=int(requirements.minimum),
        square=bool(requirements.square),
        receptive_field=None,
        context=DEFAULT_CONTEXT,
        supports_half=bool(loaded.supports_half),
        supports_bfloat16=bool(loaded.supports_bfloat16),
        features_per_pixel=float(4 * width * max(1, scale) ** 2),
        tiling_recommended=tiling == "SUPPORTED",
    )
