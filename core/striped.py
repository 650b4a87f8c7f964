"""Row-striped execution of a :class:`Restorer`: the same output, computed a few rows at a time per level.

Why: on a CPU a convolution over a whole large tile streams every activation through main memory, and at the
finest levels (24 or 48 channels over millions of pixels) that traffic, not arithmetic, sets the pace. Measured on a
2-core AVX2 EPYC: the finest decoder level on a 2048 px tile ran 2.1 s whole and 1.1 s in 128-row stripes, with equal
results. Each level's run of convolutions only needs a few rows of context (one per 3x3 convolution), so every level
is computed in horizontal stripes that stay in cache, each read with that many extra rows above and below, and the
extra rows are cropped off. The deeper levels, which need hundreds of pixels of context, keep seeing the whole tile,
so unlike smaller tiles this costs almost no recomputation and changes no output pixel.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from core.model import Restorer

DEFAULT_STRIPE_ELEMENTS = 128 * 1024 * 24
"""Activation elements (rows x width x channels) per stripe: 128 rows of a 24-channel, 1024-wide level, ~12 MB in
fp32, which kept the finest level inside the 32 MB L3 of the EPYC it was measured on."""


@dataclass(frozen=True)
class Piece:
    """One input of a striped step, with its rows per stripe row (2 = twice as fine, 0.5 = half)."""

    tensor: torch.Tensor
    scale: float


def run_in_stripes(
    step: Callable[..., Sequence[torch.Tensor]],
    pieces: Sequence[Piece],
    height: int,
    rows: int,
    halo: int,
    out_scales: Sequence[float],
) -> list[torch.Tensor]:
    """Run ``step`` over horizontal stripes of ``pieces`` and stitch its outputs back together.

    Rows count at the step's own level, ``height`` of them. ``halo`` is the context, in those rows, that ``step``
    needs on each side; stripe edges fall on even rows so that half-resolution pieces and outputs split exactly. At
    the top and bottom of the tile the slice ends where the tile does, so the convolutions' own zero padding applies
    just as in one whole pass.
    """
    rows = max(2, rows - rows % 2)
    if rows >= height:
        return list(step(*(p.tensor for p in pieces)))
    halo = halo + halo % 2
    parts: list[list[torch.Tensor]] = [[] for _ in out_scales]
    for start in range(0, height, rows):
        stop = min(height, start + rows)
        low, high = max(0, start - halo), min(height, stop + halo)
        outputs = step(*(_rows(p.tensor, low, high, p.scale) for p in pieces))
        for part, output, scale in zip(parts, outputs, out_scales):
            part.append(_rows(output, start - low, stop - low, scale))
    return [torch.cat(part, dim=-2) for part in parts]


def _rows(tensor: torch.Tensor, start: int, stop: int, scale: float) -> torch.Tensor:
    return tensor[..., int(start * scale) : int(stop * scale), :]


def for_inference(model: nn.Module, device: torch.device) -> nn.Module:
    """The module to call for inference on ``device``: a striped view of a Restorer on a CPU, else ``model``.

    On a GPU whole-tile kernels are what is fast, and other architectures' layers are not known here.
    """
    if device.type == "cpu" and isinstance(model, Restorer):
        return StripedRestorer(model)
    return model


class StripedRestorer(nn.Module):
    """Computes exactly what the wrapped :class:`Restorer` computes, level by level in stripes (for inference)."""

    def __init__(self, model: Restorer, stripe_elements: int = DEFAULT_STRIPE_ELEMENTS) -> None:
        super().__init__()
        self.model = model
        self.stripe_elements = stripe_elements

    def _rows(self, channels: int, width: int) -> int:
        return max(2, self.stripe_elements // max(1, channels * width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        model = self.model
        u = float(model.config.unshuffle)
        widths = model.config.widths
        height, width = x.shape[-2] // model.config.unshuffle, x.shape[-1] // model.config.unshuffle
        skips: list[torch.Tensor] = []
        features = x
        for level, (encoder, down) in enumerate(zip(model.encoders, model.downs)):
            rows = self._rows(widths[level], width >> level)
            if level == 0:
                step, pieces, halo = (
                    _encode_first(model, encoder, down),
                    [Piece(x, u)],
                    context_rows(model.head, encoder),
                )
            else:
                step, pieces, halo = _encode(encoder, down), [Piece(features, 1.0)], context_rows(encoder)
            skip, features = run_in_stripes(step, pieces, height >> level, rows, halo, (1.0, 0.5))
            skips.append(skip)
        features = model.middle(features)
        for level in reversed(range(len(model.ups))):
            up, decoder, skip = model.ups[level], model.decoders[level], skips[level]
            rows = self._rows(widths[level], width >> level)
            pieces = [Piece(skip, 1.0), Piece(features, 0.5)]
            if level == 0:
                step, halo, scale = _decode_last(model, up, decoder), context_rows(decoder, model.tail), u
                pieces.append(Piece(x, u))
            else:
                step, halo, scale = _decode(up, decoder), context_rows(decoder), 1.0
            (features,) = run_in_stripes(step, pieces, height >> level, rows, halo, (scale,))
        return features


def context_rows(*modules: nn.Module) -> int:
    """Rows of context a chain of same-resolution layers needs on each side: the sum of its convolutions' reach.

    Derived from the layers themselves, so a block with more or larger convolutions gets a wider halo by itself.
    """
    reach = 0
    for module in modules:
        for layer in module.modules():
            if isinstance(layer, nn.Conv2d):
                reach += layer.dilation[0] * (layer.kernel_size[0] - 1) // 2
    return reach


def _encode_first(model: Restorer, encoder: nn.Module, down: nn.Module) -> Callable[..., tuple[torch.Tensor, ...]]:
    def step(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        skip = encoder(model.head(model.unshuffle(image)))
        return skip, down(skip)

    return step


def _encode(encoder: nn.Module, down: nn.Module) -> Callable[..., tuple[torch.Tensor, ...]]:
    def step(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        skip = encoder(features)
        return skip, down(skip)

    return step


def _decode(up: nn.Module, decoder: nn.Module) -> Callable[..., tuple[torch.Tensor, ...]]:
    def step(skip: torch.Tensor, coarse: torch.Tensor) -> tuple[torch.Tensor]:
        return (decoder(up(coarse) + skip),)

    return step


def _decode_last(model: Restorer, up: nn.Module, decoder: nn.Module) -> Callable[..., tuple[torch.Tensor, ...]]:
    def step(skip: torch.Tensor, coarse: torch.Tensor, image: torch.Tensor) -> tuple[torch.Tensor]:
        residual = model.shuffle(model.tail(decoder(up(coarse) + skip)))
        return (image + residual.to(image.dtype),)

    return step
