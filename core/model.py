"""The built-in restoration network: a small residual U-Net that spends its compute at low resolution.

Layout: pixel-unshuffle (x2) at the input, four levels of plain 3x3 residual blocks (cheap and fast with
oneDNN on CPUs, unlike depthwise convolutions), strided 2x2 convolutions down, 1x1 + pixel-shuffle up, additive
skips, and a pixel-shuffled output that is *added* to the input: the network predicts a residual, so a
zero-initialised output layer starts as the identity and clean images stay untouched.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn import functional as F


@dataclass(frozen=True)
class RestorerConfig:
    """Hyper-parameters of :class:`Restorer`; stored in the model card so weights and code stay matched."""

    widths: tuple[int, ...] = (24, 48, 96, 192)
    encoder_blocks: tuple[int, ...] = (1, 2, 3)
    middle_blocks: int = 4
    decoder_blocks: tuple[int, ...] = (4, 5, 3)
    """Grown three times with core.grow, each time by one block at each of the two finest decoder levels: 1 / 2 / 3
    until 0.1.6, 2 / 3 / 3 in 0.2.0, 3 / 4 / 3 in 0.3.0, 4 / 5 / 3 since 0.4.0. The first growth gained +0.3 dB
    (σ25 + q10 + mixed, validation subset) where one more middle and level-3 decoder block gained nothing; the second
    beat the same two blocks put on the encoder side; the third gained less (+0.09 dB); a fourth (5 / 6 / 3) gained
    +0.01 dB for 16–18 % less throughput and was not shipped (core/weights/TRAINING.md)."""
    unshuffle: int = 2
    channels: int = 3

    @property
    def tile_multiple(self) -> int:
        """Input sides must be a multiple of this: unshuffle times one halving per level below the first."""
        return self.unshuffle * 2 ** (len(self.widths) - 1)

    @property
    def receptive_field(self) -> int:
        """Theoretical receptive field (pixels, diameter) of one output pixel; the deepest path dominates."""
        field, jump = self.unshuffle, self.unshuffle  # the unshuffle sees a u x u block
        field += 2 * jump  # head 3x3
        for blocks in self.encoder_blocks:
            field += blocks * 2 * 2 * jump + jump  # two 3x3 convs per block, then the 2x2 strided down conv
            jump *= 2
        field += self.middle_blocks * 2 * 2 * jump
        for blocks in reversed(self.decoder_blocks):
            jump //= 2  # 1x1 conv + pixel-shuffle up adds no context
            field += blocks * 2 * 2 * jump
        return field + 2 * jump  # tail 3x3

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> RestorerConfig:
        converted = {key: tuple(value) if isinstance(value, list) else value for key, value in data.items()}
        return cls(**converted)  # type: ignore[arg-type]


class ResidualBlock(nn.Module):
    """conv-ReLU-conv plus identity; the last conv starts at zero so the block starts as the identity."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(width, width, 3, padding=1)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(x), inplace=True))


def _stage(width: int, blocks: int) -> nn.Sequential:
    return nn.Sequential(*(ResidualBlock(width) for _ in range(blocks)))


class Upsample(nn.Module):
    """1x1 convolution to 4x the narrower width, then pixel-shuffle: cheap, no checkerboard."""

    def __init__(self, in_width: int, out_width: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_width, out_width * 4, 1)
        self.shuffle = nn.PixelShuffle(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shuffle(self.conv(x))


class Restorer(nn.Module):
    """Blind restoration network: input and output are RGB in [0, 1], shape (N, C, H, W).

    H and W must be multiples of ``config.tile_multiple``; the engine pads to that.
    """

    def __init__(self, config: RestorerConfig | None = None) -> None:
        super().__init__()
        self.config = config or RestorerConfig()
        cfg = self.config
        levels = len(cfg.widths)
        if len(cfg.encoder_blocks) != levels - 1 or len(cfg.decoder_blocks) != levels - 1:
            raise ValueError("encoder_blocks and decoder_blocks need one entry per level above the middle")
        packed = cfg.channels * cfg.unshuffle**2
        self.unshuffle = nn.PixelUnshuffle(cfg.unshuffle)
        self.head = nn.Conv2d(packed, cfg.widths[0], 3, padding=1)
        self.encoders = nn.ModuleList(_stage(w, n) for w, n in zip(cfg.widths, cfg.encoder_blocks))
        self.downs = nn.ModuleList(nn.Conv2d(cfg.widths[i], cfg.widths[i + 1], 2, stride=2) for i in range(levels - 1))
        self.middle = _stage(cfg.widths[-1], cfg.middle_blocks)
        self.ups = nn.ModuleList(Upsample(cfg.widths[i + 1], cfg.widths[i]) for i in range(levels - 1))
        self.decoders = nn.ModuleList(_stage(w, n) for w, n in zip(cfg.widths, cfg.decoder_blocks))
        self.tail = nn.Conv2d(cfg.widths[0], packed, 3, padding=1)
        self.shuffle = nn.PixelShuffle(cfg.unshuffle)
        nn.init.zeros_(self.tail.weight)
        nn.init.zeros_(self.tail.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.head(self.unshuffle(x))
        skips = []
        for encoder, down in zip(self.encoders, self.downs):
            features = encoder(features)
            skips.append(features)
            features = down(features)
        features = self.middle(features)
        for index in reversed(range(len(self.ups))):
            features = self.ups[index](features) + skips[index]
            features = self.decoders[index](features)
        residual = self.shuffle(self.tail(features))
        return x + residual.to(x.dtype)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def macs_per_pixel(config: RestorerConfig) -> int:
    """Multiply-accumulates per input pixel, counted analytically (convolutions only)."""
    u2 = config.unshuffle**2
    packed = config.channels * u2
    total = 0.0
    total += 9 * packed * config.widths[0] / u2  # head
    total += 9 * config.widths[0] * packed / u2  # tail
    for level, width in enumerate(config.widths):
        area = u2 * 4**level
        blocks = (
            config.middle_blocks
            if level == len(config.widths) - 1
            else (config.encoder_blocks[level] + config.decoder_blocks[level])
        )
        total += blocks * 2 * 9 * width * width / area
        if level < len(config.widths) - 1:
            nxt = config.widths[level + 1]
            total += 4 * width * nxt / (area * 4)  # strided down conv, at the lower resolution
            total += nxt * width * 4 / (area * 4)  # 1x1 up conv, at the lower resolution
    return int(round(total))
