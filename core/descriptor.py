"""A typed description of an image-to-image network: what the engine must know to tile, batch and cast it.

The idea is spandrel's ``ImageModelDescriptor``: the engine never inspects a network, it reads these fields,
so the built-in restorer and bring-your-own models (see :mod:`core.model_loader`) run through one code path.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from torch import nn

from core.model import Restorer

BUILTIN_CONTEXT: int = 176
"""Context (pixels per side) the built-in restorer needs for tiles to match a whole-image run within 1/255.

Measured with ``python -m core.receptive --limit 6`` (hard seams, fp32, 6 CBSD68 photos with sigma 25/50 noise or
JPEG q10; largest difference over all pixels, x255). Restorer 0.3.0: context 64: 20.0, 96: 6.8, 128: 3.0,
136: 1.52, 144: 1.02, 152: 0.93 -- so 152 px is the *effective* receptive-field radius (the theoretical field is
600 px wide, 300 px per side, needed only for float equality); 0.2.0 needed 144 (128: 1.50, 144: 0.70), as did
0.1.6 (144: 0.999, 96: 6.7). For 0.4.0 it was measured on its twin run (same growth and recipe, another seed, at
step 231,535): 136: 1.68, 144: 0.73. Restorer 0.4.1 (256 px crops): 128: 3.77, 144: 1.33, 152: 1.09, 160: 0.61.
Restorer 0.4.2 (288 px crops): 128: 3.25, 144: 1.40, 152: 1.23, 160: 1.04, 168: 0.60, so the constant went from
160 to 176 (the next multiple of 16 above 168). Training on larger crops (128-288 px since 0.1.3) widened it each
time: 0.1.0 needed 88 px, the value this constant held until 0.2.0 (then 96, then 160 until 0.4.2). Re-measure
after the next training on larger crops. Restorer 0.4.3 (288 x 448 crops): 128: 3.08, 144: 1.34, 152: 1.41, 160: 0.97,
so 176 still holds it with a 16 px margin; 0.4.4 (the same crops): 152: 1.72, 160: 1.02, 168: 0.68, an 8 px
margin. The engine's 16 px cross-fade beyond it lowers seam differences further.
A card key ``effective_context`` overrides.
"""

DEFAULT_CONTEXT: int = 32
"""Context for bring-your-own models whose effective receptive field we have not measured (typical CNN SR/denoise)."""


@dataclass(frozen=True)
class ModelDescriptor:
    """A network ready for inference (eval mode, on CPU until the engine moves it) and its contract."""

    model: nn.Module
    name: str
    version: str
    architecture: str
    scale: int = 1
    """Output side / input side."""
    input_channels: int = 3
    output_channels: int = 3
    tile_multiple: int = 1
    """Input sides must be multiples of this (the engine reflect-pads)."""
    minimum_size: int = 0
    square: bool = False
    receptive_field: int | None = None
    """Theoretical receptive field diameter in input pixels; None when unknown or unbounded (attention)."""
    context: int = DEFAULT_CONTEXT
    """Recommended context per tile side, input pixels: the *effective* receptive-field radius."""
    supports_half: bool = True
    supports_bfloat16: bool = True
    features_per_pixel: float = 64.0
    """Float activations alive per input pixel at the peak of a forward pass; sizes batches from memory."""
    tiling_recommended: bool = True

    def with_model(self, model: nn.Module) -> ModelDescriptor:
        """The same description for a moved or converted copy of the network."""
        return replace(self, model=model)


def restorer_features_per_pixel(model: Restorer) -> float:
    """Activation floats per input pixel: skips kept for the decoder plus a few working maps per level."""
    cfg = model.config
    area = cfg.unshuffle**2
    skips = sum(width / (area * 4**level) for level, width in enumerate(cfg.widths))
    working = 4 * cfg.widths[0] / area  # block input, conv1, conv2, sum at the widest level
    return float(2 * cfg.channels + skips + working)


def describe_restorer(model: Restorer, card: dict[str, object] | None = None) -> ModelDescriptor:
    """Descriptor of the built-in architecture (shipped weights or a Restorer safetensors file)."""
    card = card or {}
    context = card.get("effective_context", BUILTIN_CONTEXT)
    return ModelDescriptor(
        model=model.eval(),
        name=str(card.get("name", "enhancerd-restorer")),
        version=str(card.get("version", "unknown")),
        architecture="Restorer",
        scale=1,
        input_channels=model.config.channels,
        output_channels=model.config.channels,
        tile_multiple=model.config.tile_multiple,
        receptive_field=model.config.receptive_field,
        context=int(context) if isinstance(context, int | float | str) else BUILTIN_CONTEXT,
        supports_half=True,
        supports_bfloat16=True,
        features_per_pixel=restorer_features_per_pixel(model),
    )
