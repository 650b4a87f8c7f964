"""Tiling: plans cover the canvas, weights are a partition of unity, and tiled output equals whole-image output."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from core.descriptor import ModelDescriptor, describe_restorer
from core.engine import Engine, EngineSettings
from core.model import Restorer, RestorerConfig
from core.tiling import accumulate, extract, pad_to_canvas, plan_tiles, reflect_indices, round_up


class TinyUNet(nn.Module):
    """Pixel-unshuffle x2, two 3x3 convs at half resolution, pixel-shuffle back: multiple 2, RF radius 5 px."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.PixelUnshuffle(2), nn.Conv2d(12, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 12, 3, padding=1)
        )
        self.shuffle = nn.PixelShuffle(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.shuffle(self.body(x))


def tiny_descriptor(context: int) -> ModelDescriptor:
    torch.manual_seed(0)
    return ModelDescriptor(TinyUNet().eval(), "tiny", "0", "tiny", tile_multiple=2, receptive_field=11, context=context)


def whole(descriptor: ModelDescriptor, image: np.ndarray, canvas: tuple[int, int]) -> np.ndarray:
    height, width = image.shape[:2]
    with torch.inference_mode():
        tensor = torch.from_numpy(pad_to_canvas(image, canvas)).permute(2, 0, 1)[None]
        return descriptor.model(tensor)[0].permute(1, 2, 0).numpy()[:height, :width]


@settings(max_examples=60, deadline=None)
@given(
    height=st.integers(1, 700),
    width=st.integers(1, 700),
    tile=st.integers(64, 300),
    context=st.integers(0, 24),
    blend=st.integers(0, 16),
    multiple=st.sampled_from([1, 2, 8, 16]),
)
def test_plan_covers_canvas_with_unit_weights(height, width, tile, context, blend, multiple) -> None:
    if tile - 2 * context - blend < 2 * multiple:
        return
    plan = plan_tiles(height, width, tile=tile, context=context, blend=blend, multiple=multiple)
    assert plan.canvas[0] >= height and plan.canvas[1] >= width
    for spans, length in ((plan.rows, plan.canvas[0]), (plan.cols, plan.canvas[1])):
        assert spans[0].start == 0 and spans[-1].stop == length
        total = np.zeros(length)
        for span, weight in zip(spans, plan.axis_weights(0 if spans is plan.rows else 1)):
            assert span.start % multiple == 0 and span.size % multiple == 0 and span.size <= max(tile, length)
            total[span.start : span.stop] += weight
        np.testing.assert_allclose(total, 1.0, atol=1e-6)
        for before, after in itertools.pairwise(spans):  # each overlap leaves room for context and cross-fade
            assert before.stop - after.start >= 2 * context + blend
        assert len({span.size for span in spans}) == 1


def test_reflect_indices_fold_like_numpy_reflect() -> None:
    np.testing.assert_array_equal(reflect_indices(0, 9, 4), [0, 1, 2, 3, 2, 1, 0, 1, 2])
    np.testing.assert_array_equal(reflect_indices(0, 3, 1), [0, 0, 0])


@pytest.mark.parametrize("shape", [(203, 157, 3), (64, 300, 1), (30, 40, 3)])
def test_tiled_equals_whole_when_context_covers_receptive_field(shape: tuple[int, int, int]) -> None:
    image = np.random.default_rng(1).random(shape, dtype=np.float32)
    descriptor = tiny_descriptor(context=6)
    engine = Engine(descriptor, EngineSettings(device="cpu", precision="fp32", tile=48, blend=4, channels_last=False))
    plan = engine.plan(shape[0], shape[1])
    tiled = engine.restore(image)
    reference = whole(engine.descriptor, np.repeat(image, 3, axis=2) if shape[2] == 1 else image, plan.canvas)
    if shape[2] == 1:
        reference = reference.mean(axis=2, keepdims=True)
    assert tiled.shape == shape
    assert np.abs(tiled - reference).max() <= 1e-4


def test_too_little_context_shows_seams() -> None:
    """The invariance test can fail: with no context the tiles' borders differ from the whole image."""
    image = np.random.default_rng(2).random((120, 120, 3), dtype=np.float32)
    descriptor = tiny_descriptor(context=0)
    engine = Engine(descriptor, EngineSettings(device="cpu", precision="fp32", tile=48, blend=0))
    assert len(engine.plan(120, 120).tiles) > 1
    reference = whole(engine.descriptor, image, engine.plan(120, 120).canvas)
    assert np.abs(engine.restore(image) - reference).max() > 1e-3


def test_accumulate_with_scale_rebuilds_an_upscaled_image() -> None:
    """Stitching at output scale: tiles of a 2x nearest upscale reassemble the upscaled image exactly."""
    image = np.random.default_rng(3).random((70, 90, 3), dtype=np.float32)
    plan = plan_tiles(70, 90, tile=32, context=4, blend=4, multiple=4)
    output = np.zeros((140, 180, 3), dtype=np.float32)
    for tile in plan.tiles:
        window = extract(image, tile)
        accumulate(output, plan, tile, window.repeat(2, axis=0).repeat(2, axis=1), scale=2)
    np.testing.assert_allclose(output, image.repeat(2, axis=0).repeat(2, axis=1), atol=1e-6)


@pytest.mark.slow
def test_real_restorer_tiled_equals_whole_at_full_receptive_field() -> None:
    """The built-in architecture with random weights, context half its theoretical receptive field: exact."""
    torch.manual_seed(0)
    config = RestorerConfig()
    model = Restorer(config).eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_(0.0, 0.02)
    descriptor = describe_restorer(model)
    context = config.receptive_field // 2
    blend, multiple = 16, config.tile_multiple
    tile = round_up(2 * context + blend + multiple, multiple)  # the smallest tile that leaves a stride
    engine = Engine(descriptor, EngineSettings(device="cpu", precision="fp32", tile=tile, context=context, blend=blend))
    image = np.random.default_rng(4).random((tile + 2 * multiple, tile + multiple, 3), dtype=np.float32)
    plan = engine.plan(*image.shape[:2])
    assert len(plan.tiles) >= 4
    reference = whole(engine.descriptor, image, plan.canvas)
    assert np.abs(reference - image).mean() > 1e-3  # the network is not the identity
    assert np.abs(engine.restore(image) - reference).max() <= 1e-4
