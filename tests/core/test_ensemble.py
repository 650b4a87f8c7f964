"""Geometric self-ensemble: the views are the dihedral group, each undoes exactly, and the engine averages them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from core.descriptor import ModelDescriptor
from core.engine import Engine, EngineSettings
from core.ensemble import ENSEMBLE_SIZES, VIEWS, ensemble_forward, from_view, to_view


class Lopsided(nn.Module):
    """A fixed random 3x3 convolution added to the input: not rotation- or mirror-equivariant, so views differ."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(3)
        self.conv = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + 0.2 * torch.tanh(self.conv(x))


def batch(height: int = 16, width: int = 32) -> torch.Tensor:
    return torch.rand(2, 3, height, width, generator=torch.Generator().manual_seed(1))


def test_the_eight_views_are_the_eight_distinct_turns_and_mirrors() -> None:
    x = batch()
    seen = {(tuple(to_view(x, view).shape), tuple(to_view(x, view).flatten().tolist())) for view in VIEWS}
    assert len(VIEWS) == 8 and len(seen) == 8


@pytest.mark.parametrize("view", VIEWS)
def test_every_view_is_undone_exactly_on_a_non_square_batch(view: tuple[int, bool]) -> None:
    x = batch()
    assert torch.equal(from_view(to_view(x, view), view), x)


@pytest.mark.parametrize("size", ENSEMBLE_SIZES)
def test_the_identity_model_is_unchanged_by_any_ensemble(size: int) -> None:
    x = batch()
    assert torch.allclose(ensemble_forward(nn.Identity(), x, size), x, atol=1e-6)


@pytest.mark.parametrize("size", [2, 4, 8])
def test_the_ensemble_is_the_mean_of_the_undone_views(size: int) -> None:
    model, x = Lopsided().eval(), batch()
    with torch.no_grad():
        expected = torch.stack([from_view(model(to_view(x, v)), v) for v in VIEWS[:size]]).mean(0)
        got = ensemble_forward(model, x, size)
        single = ensemble_forward(model, x, 1)
    assert torch.allclose(got, expected, atol=1e-6)
    assert not torch.allclose(got, single, atol=1e-4)  # the views really differ for this model


def test_channels_last_input_gives_the_same_answer() -> None:
    model, x = Lopsided().eval(), batch()
    with torch.no_grad():
        plain = ensemble_forward(model, x, 4)
        last = ensemble_forward(model, x.contiguous(memory_format=torch.channels_last), 4)
    assert torch.allclose(plain, last, atol=1e-6)


@pytest.mark.parametrize("size", [0, 3, 16])
def test_other_sizes_are_refused(size: int) -> None:
    with pytest.raises(ValueError, match="ensemble must be one of 1, 2, 4, 8"):
        ensemble_forward(nn.Identity(), batch(), size)
    with pytest.raises(ValueError, match="ensemble must be one of"):
        EngineSettings(ensemble=size)


def test_the_engine_averages_the_views_of_a_one_tile_image() -> None:
    """A 40x56 image is one tile: the engine's 2-view answer is the mean of its plain answers on the two views."""

    def descriptor() -> ModelDescriptor:
        return ModelDescriptor(Lopsided().eval(), "test", "0", "test", tile_multiple=1, context=4, receptive_field=5)

    settings = {"device": "cpu", "precision": "fp32", "tile": 64, "blend": 4}
    image = np.random.default_rng(5).random((40, 56, 3), dtype=np.float32)
    plain = Engine(descriptor(), EngineSettings(**settings))  # type: ignore[arg-type]
    two = Engine(descriptor(), EngineSettings(**settings, ensemble=2)).restore(image)  # type: ignore[arg-type]
    transposed = np.ascontiguousarray(np.rot90(image, 1)[:, ::-1])  # view (1, True) in HWC
    back = np.rot90(plain.restore(transposed)[:, ::-1], -1)
    expected = (plain.restore(image) + back) / 2
    assert np.allclose(two, expected, atol=1e-5)
    assert not np.allclose(two, plain.restore(image), atol=1e-4)


def test_an_upscaling_model_keeps_its_output_size_with_eight_views() -> None:
    class Nearest2(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return nn.functional.interpolate(x, scale_factor=2, mode="nearest")

    descriptor = ModelDescriptor(
        Nearest2(), "test", "0", "test", scale=2, tile_multiple=1, context=2, receptive_field=1
    )
    image = np.random.default_rng(6).random((20, 36, 3), dtype=np.float32)
    settings = EngineSettings(device="cpu", precision="fp32", tile=32, blend=2, ensemble=8)
    out = Engine(descriptor, settings).restore(image)
    assert out.shape == (40, 72, 3)
    assert np.allclose(out, image.repeat(2, axis=0).repeat(2, axis=1), atol=1e-6)  # equivariant: views agree
