"""Striped execution: the same output as one whole pass, for any stripe height, shape, batch and layout."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from core.descriptor import describe_restorer
from core.engine import DEFAULT_CPU_STRIPED_TILE, DEFAULT_CPU_TILE, Engine, EngineSettings
from core.model import Restorer, RestorerConfig
from core.striped import Piece, StripedRestorer, context_rows, for_inference, run_in_stripes


def trained_looking(config: RestorerConfig, seed: int = 0) -> Restorer:
    """A Restorer with every weight random (the shipped zero-initialised layers would hide context errors)."""
    torch.manual_seed(seed)
    model = Restorer(config).eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_(0.0, 0.15)
    return model


@pytest.mark.parametrize(
    ("config", "shape", "stripe_elements"),
    [
        (
            RestorerConfig(widths=(8, 16, 32), encoder_blocks=(1, 2), decoder_blocks=(3, 2), middle_blocks=1),
            (1, 3, 96, 80),
            64,
        ),
        (
            RestorerConfig(widths=(8, 16, 32), encoder_blocks=(2, 1), decoder_blocks=(1, 4), middle_blocks=2),
            (2, 3, 64, 128),
            8 * 40,
        ),
        (
            RestorerConfig(widths=(4, 8, 16, 32), encoder_blocks=(1, 1, 1), decoder_blocks=(2, 2, 1), middle_blocks=1),
            (1, 3, 160, 48),
            1,
        ),
    ],
)
@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_striped_output_equals_one_whole_pass(
    config: RestorerConfig, shape: tuple[int, int, int, int], stripe_elements: int, layout: torch.memory_format
) -> None:
    model = trained_looking(config).to(memory_format=layout)
    image = torch.rand(shape).contiguous(memory_format=layout)
    striped = StripedRestorer(model, stripe_elements=stripe_elements)
    with torch.inference_mode():
        whole, parts = model(image), striped(image)
    assert parts.shape == whole.shape
    assert whole.abs().max() > 1.0  # the random network really moves pixels, so a missing row of context shows
    scale = float(whole.abs().max())  # random weights reach large values: compare at float32's precision of them
    torch.testing.assert_close(parts, whole, rtol=0, atol=1e-5 * scale)


def test_too_little_context_shows_as_a_difference() -> None:
    """Guards the test above: one row of context short of what three convolutions need changes the output."""
    torch.manual_seed(1)
    convs = nn.Sequential(*(nn.Conv2d(4, 4, 3, padding=1) for _ in range(3)))
    features = torch.randn(1, 4, 40, 24)
    with torch.inference_mode():
        whole = convs(features)
        enough = run_in_stripes(lambda f: (convs(f),), [Piece(features, 1.0)], 40, 8, 3, (1.0,))[0]
        short = run_in_stripes(lambda f: (convs(f),), [Piece(features, 1.0)], 40, 8, 1, (1.0,))[0]
    torch.testing.assert_close(enough, whole, rtol=1e-5, atol=1e-5)
    assert (short - whole).abs().max() > 1e-3


def test_stripes_as_tall_as_the_level_are_one_call() -> None:
    calls: list[int] = []

    def step(f: torch.Tensor) -> tuple[torch.Tensor]:
        calls.append(f.shape[-2])
        return (f * 2,)

    features = torch.ones(1, 1, 12, 5)
    (out,) = run_in_stripes(step, [Piece(features, 1.0)], 12, 12, 2, (1.0,))
    assert calls == [12]
    assert torch.equal(out, features * 2)


def test_odd_stripe_heights_round_to_even_rows_so_half_resolution_pieces_split_exactly() -> None:
    calls: list[tuple[int, int]] = []

    def step(fine: torch.Tensor, coarse: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        calls.append((fine.shape[-2], coarse.shape[-2]))
        return fine, coarse

    fine, coarse = torch.arange(16.0).reshape(1, 1, 16, 1), torch.arange(8.0).reshape(1, 1, 8, 1)
    outs = run_in_stripes(step, [Piece(fine, 1.0), Piece(coarse, 0.5)], 16, 5, 1, (1.0, 0.5))
    assert all(f == 2 * c for f, c in calls)
    assert torch.equal(outs[0], fine) and torch.equal(outs[1], coarse)


def test_only_a_restorer_on_a_cpu_is_striped() -> None:
    model = Restorer(RestorerConfig())
    assert isinstance(for_inference(model, torch.device("cpu")), StripedRestorer)
    assert for_inference(model, torch.device("cuda")) is model
    other = nn.Conv2d(3, 3, 1)
    assert for_inference(other, torch.device("cpu")) is other


def test_the_engine_gives_the_same_image_striped_or_not() -> None:
    config = RestorerConfig(widths=(8, 16, 32), encoder_blocks=(1, 1), decoder_blocks=(2, 1), middle_blocks=1)
    image = np.random.default_rng(0).random((70, 90, 3), dtype=np.float32)
    results = []
    for striped in (True, False):
        settings = EngineSettings(device="cpu", precision="fp32", tile=64, striped=striped)
        engine = Engine(describe_restorer(trained_looking(config)), settings)
        assert isinstance(engine._runner, StripedRestorer) is striped
        results.append(engine.restore(image))
    np.testing.assert_allclose(results[0], results[1], rtol=1e-5, atol=1e-5)


def test_the_default_cpu_tile_is_larger_only_for_a_striped_model() -> None:
    restorer = describe_restorer(Restorer(RestorerConfig()))
    assert Engine(restorer, EngineSettings(device="cpu")).tile == DEFAULT_CPU_STRIPED_TILE
    assert Engine(describe_restorer(Restorer(RestorerConfig())), EngineSettings(device="cpu", striped=False)).tile == (
        DEFAULT_CPU_TILE
    )
    assert Engine(restorer, EngineSettings(device="cpu", tile=1024)).tile == 1024


def test_striped_output_equals_one_whole_pass_under_bf16_autocast() -> None:
    """The engine's bf16 CPU path: stripes see the same autocast, and the image stays float32."""
    config = RestorerConfig(widths=(8, 16, 32), encoder_blocks=(1, 1), decoder_blocks=(2, 1), middle_blocks=1)
    model = trained_looking(config, seed=3)
    image = torch.rand(1, 3, 64, 48)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        whole, parts = model(image), StripedRestorer(model, stripe_elements=8 * 48)(image)
    assert parts.dtype == whole.dtype == torch.float32
    torch.testing.assert_close(parts, whole, rtol=0, atol=1e-2 * float(whole.abs().max()))


def test_the_context_of_a_stage_is_one_row_per_3x3_convolution() -> None:
    model = Restorer(RestorerConfig())
    assert context_rows(model.decoders[0]) == 2 * len(model.decoders[0])
    assert context_rows(model.head, model.encoders[0]) == 1 + 2 * len(model.encoders[0])
    assert context_rows(nn.Conv2d(3, 3, 5, padding=4, dilation=2), nn.Conv2d(3, 3, 1)) == 4
