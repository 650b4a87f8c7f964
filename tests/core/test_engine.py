"""Engine: cross-image batching, input order, out-of-memory splitting, threads, channels, depth, scale."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from torch import nn

from core.autosplit import OutOfMemory, SplitCounts, run_split
from core.descriptor import ModelDescriptor, describe_restorer
from core.engine import Engine, EngineSettings
from core.model import Restorer, RestorerConfig


class Smooth(nn.Module):
    """Two 3x3 convolutions (receptive-field radius 2) with fixed random weights."""

    def __init__(self, channels: int = 3) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.a = nn.Conv2d(channels, 8, 3, padding=1)
        self.b = nn.Conv2d(8, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + 0.1 * self.b(torch.tanh(self.a(x)))


class OutOfMemoryOnce(nn.Module):
    """Raises CUDA's OutOfMemoryError on its first call, then behaves like ``inner``."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.calls == 1:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        return self.inner(x)


class SmallMemory(nn.Module):
    """Raises OutOfMemoryError for any batch holding more than ``limit`` pixels: forces tile splits."""

    def __init__(self, inner: nn.Module, limit: int) -> None:
        super().__init__()
        self.inner = inner
        self.limit = limit

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] * x.shape[2] * x.shape[3] > self.limit:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory.")
        return self.inner(x)


class Upscale2(nn.Module):
    """Nearest 2x enlargement followed by a 3x3 convolution: a stand-in super-resolution model."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.conv = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(nn.functional.interpolate(x, scale_factor=2, mode="nearest"))


def describe(model: nn.Module, **fields: object) -> ModelDescriptor:
    defaults: dict[str, object] = {"tile_multiple": 1, "context": 4, "receptive_field": 5}
    defaults.update(fields)
    return ModelDescriptor(model.eval(), "test", "0", "test", **defaults)  # type: ignore[arg-type]


def cpu(**fields: object) -> EngineSettings:
    values: dict[str, object] = {"device": "cpu", "precision": "fp32", "tile": 48, "blend": 4}
    values.update(fields)
    return EngineSettings(**values)  # type: ignore[arg-type]


def images(*shapes: tuple[int, ...]) -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    return [rng.random(shape, dtype=np.float32) for shape in shapes]


def test_cross_image_batching_equals_one_by_one_for_different_sizes() -> None:
    inputs = images((100, 70, 3), (40, 40, 3), (130, 95, 3), (48, 48, 3), (100, 70, 3))
    batched = Engine(describe(Smooth()), cpu(batch=8))
    single = Engine(describe(Smooth()), cpu(batch=1))
    together = [r.pixels for r in batched.run(enumerate(inputs))]
    apart = [single.restore(image) for image in inputs]
    for a, b, image in zip(together, apart, inputs):
        assert a.shape == image.shape
        assert np.abs(a - b).max() <= 1e-5
    stats = batched.stats()
    assert stats.batches < stats.tiles  # batches really held several tiles ...
    assert stats.images == len(inputs)


def test_batches_mix_tiles_of_several_images_and_results_keep_input_order() -> None:
    inputs = images(*[(40, 40, 3)] * 6)  # one tile each: any batch > 1 mixes images
    engine = Engine(describe(Smooth()), cpu(batch=4))
    results = list(engine.run((f"image-{i}", image) for i, image in enumerate(inputs)))
    assert [r.tag for r in results] == [f"image-{i}" for i in range(6)]
    assert engine.stats().batches == 2
    for result, image in zip(results, inputs):
        assert np.abs(result.pixels - Engine(describe(Smooth()), cpu()).restore(image)).max() <= 1e-5


def test_out_of_memory_once_halves_the_batch_and_the_image_survives() -> None:
    inputs = images((100, 100, 3))
    reference = Engine(describe(Smooth()), cpu(batch=1)).restore(inputs[0])
    model = OutOfMemoryOnce(Smooth())
    engine = Engine(describe(model), cpu(batch=4))
    output = engine.restore(inputs[0])
    assert np.abs(output - reference).max() <= 1e-5
    stats = engine.stats()
    assert stats.batch_splits == 1 and stats.tile_splits == 0 and stats.splits == 1


def test_out_of_memory_on_a_single_tile_splits_the_tile() -> None:
    image = images((64, 64, 3))[0]
    reference = Engine(describe(Smooth()), cpu(tile=64)).restore(image)
    engine = Engine(describe(SmallMemory(Smooth(), limit=40 * 40)), cpu(tile=64, batch=1))
    output = engine.restore(image)
    assert engine.stats().tile_splits >= 1
    assert np.abs(output - reference).max() <= 1e-5


def test_run_split_falls_back_then_gives_up_with_memory_error() -> None:
    def never(items: list[np.ndarray]) -> list[np.ndarray] | OutOfMemory:
        return OutOfMemory("no")

    counts = SplitCounts()
    item = np.zeros((8, 8, 3), dtype=np.float32)
    rescued = run_split(
        [item], never, lambda _: None, scale=1, channels_out=3, counts=counts, fallback=lambda items: items
    )
    assert counts.fallbacks == 1 and rescued[0] is item
    with pytest.raises(MemoryError):
        run_split([item], never, lambda _: None, scale=1, channels_out=3, counts=SplitCounts())


def test_concurrent_calls_never_mix_outputs() -> None:
    first = images((90, 60, 3), (50, 50, 3), (64, 80, 3))
    second = [1.0 - image for image in images((70, 70, 3), (90, 60, 3), (30, 100, 3))]
    engine = Engine(describe(Smooth()), cpu(batch=3))
    expected = [[engine.restore(im) for im in group] for group in (first, second)]
    outputs: dict[int, list[np.ndarray]] = {}
    errors: list[BaseException] = []

    def work(slot: int, group: list[np.ndarray]) -> None:
        try:
            for _ in range(3):
                outputs[slot] = [r.pixels for r in engine.run(enumerate(group))]
        except BaseException as error:  # reported by the main thread
            errors.append(error)

    threads = [threading.Thread(target=work, args=(i, g), name=f"engine-{i}") for i, g in enumerate((first, second))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors and all(not t.is_alive() for t in threads)
    for slot in (0, 1):
        for got, want in zip(outputs[slot], expected[slot]):
            assert got.shape == want.shape
            assert np.abs(got - want).max() <= 1e-5


def test_grayscale_goes_through_an_rgb_model_and_comes_back_gray() -> None:
    gray = images((60, 50, 1))[0]
    engine = Engine(describe(Smooth()), cpu())
    out = engine.restore(gray)
    assert out.shape == (60, 50, 1)
    rgb = engine.restore(np.repeat(gray, 3, axis=2))
    np.testing.assert_allclose(out[..., 0], rgb.mean(axis=2), atol=1e-6)


def test_rgb_goes_through_a_gray_model_plane_by_plane() -> None:
    rgb = images((40, 30, 3))[0]
    engine = Engine(describe(Smooth(channels=1), input_channels=1, output_channels=1), cpu())
    out = engine.restore(rgb)
    for c in range(3):
        np.testing.assert_allclose(out[..., c : c + 1], engine.restore(rgb[..., c : c + 1]), atol=1e-6)


def test_sixteen_bit_input_is_never_quantised_to_eight_bits() -> None:
    """The identity-initialised Restorer returns its input: 16-bit levels must come back, at default precision."""
    levels = np.random.default_rng(3).integers(0, 65536, size=(64, 80, 3), dtype=np.uint16)
    engine = Engine(describe_restorer(Restorer(RestorerConfig())), EngineSettings(device="cpu", tile=64))
    out = engine.restore(levels)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(np.round(out * 65535).astype(np.uint16), levels)


def test_upscaling_model_tiles_to_the_larger_output() -> None:
    image = images((70, 90, 3))[0]
    engine = Engine(describe(Upscale2(), scale=2, context=2), cpu(tile=32))
    assert len(engine.plan(70, 90).tiles) > 1
    with torch.inference_mode():
        whole = engine.descriptor.model(torch.from_numpy(image).permute(2, 0, 1)[None])[0].permute(1, 2, 0).numpy()
    out = engine.restore(image)
    assert out.shape == (140, 180, 3)
    assert np.abs(out - whole).max() <= 1e-5


def test_settings_are_validated() -> None:
    with pytest.raises(ValueError, match="precision"):
        EngineSettings(precision="int8")
    with pytest.raises(ValueError, match="batch"):
        EngineSettings(batch=0)


@pytest.mark.gpu
def test_cuda_fp16_matches_cpu_fp32_and_batches_across_images() -> None:
    descriptor = describe_restorer(Restorer(RestorerConfig()))
    with torch.no_grad():
        for parameter in descriptor.model.parameters():
            parameter.normal_(0.0, 0.01)
    inputs = images((300, 200, 3), (300, 200, 3), (120, 90, 3))
    cpu_engine = Engine(descriptor, EngineSettings(device="cpu", precision="fp32", tile=256, context=64))
    want = [cpu_engine.restore(image) for image in inputs]
    gpu_engine = Engine(descriptor, EngineSettings(device="cuda", precision="fp16", tile=256, context=64))
    got = [r.pixels for r in gpu_engine.run(enumerate(inputs))]
    for a, b in zip(got, want):
        assert np.abs(a - b).max() < 2e-2
    assert gpu_engine.stats().batches < gpu_engine.stats().tiles
