"""The inference engine: one loaded model, any image size, tiles from several images per batch, input order out.

An :class:`Engine` owns the network on its device (moved once, channels_last, eval) and runs it under
``torch.inference_mode()`` with autocast (fp16 on CUDA, bf16 on CPUs with native bf16, else fp32); on a CPU
the built-in model runs level by level in cache-sized stripes (:mod:`core.striped`). ``run``
takes a stream of images, tiles each (:mod:`core.tiling`), queues the tiles by shape, and runs batches that
mix images; finished images come out in input order. Out-of-memory errors shrink the work
(:mod:`core.autosplit`) instead of failing an image. The model call is serialised by a lock, so one engine
serves several threads; each ``run`` keeps its own queues, so concurrent calls never mix outputs.
"""

from __future__ import annotations

import copy
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import numpy as np
import torch

from core.autosplit import OutOfMemory, SplitCounts, is_out_of_memory, run_split
from core.descriptor import ModelDescriptor
from core.device import autocast_dtype, resolve_device
from core.ensemble import check_size, ensemble_forward
from core.memory import batch_from_budget, bytes_per_item, free_memory_bytes
from core.striped import for_inference
from core.tiling import Tile, TilePlan, accumulate, extract, plan_tiles, round_down, round_up

T = TypeVar("T")
Array = np.ndarray

PRECISIONS = ("auto", "fp32", "bf16", "fp16")

DEFAULT_CPU_TILE: int = 2048
"""Largest CPU tile side (context included); tiles shrink to what an image needs (``tiling.plan_axis``).
Measured on the 2-core bench machine (built-in model, bf16, channels_last, CPU time per pixel): 512 px 1.4,
1024 px 1.7, 1536 px 2.1, 2048 px 2.6 MP/s: the U-Net's low-resolution levels stop being tiny and the
context computed twice shrinks. A 2048 px tile adds ~0.5 GB to peak RSS, so 50 MP still fits in 4 GB. Used for
models the engine runs in whole-tile passes (other architectures, or ``striped=False``)."""

DEFAULT_CPU_STRIPED_TILE: int = 3072
"""CPU tile side for the built-in model run in stripes (:mod:`core.striped`), whose speed per pixel no longer
falls on large tiles, so fewer tiles recompute less context. Measured on a 2-core AVX2 EPYC (fp32, interleaved
runs, medians): 1.11 against 1.02 MP/s on 4 MP (one tile instead of two), 0.90 against 0.84 on 12 MP; a 50 MP image
peaked at 2.3-2.4 GB against 2.0 GB in the engine alone."""

DEFAULT_CUDA_TILE: int = 1024
"""CUDA tile side; batches, not tile size, fill a GPU (and batches of same-shape tiles mix images)."""

DEFAULT_BLEND: int = 16
"""Cross-fade width (pixels) between tiles beyond the discarded context: hides any residual seam."""

MAX_CPU_BATCH: int = 4
"""CPU batches beyond a few tiles do not run faster on a few cores and only cost memory."""

CPU_BATCH_BYTES: int = 1024**3
"""RAM one CPU batch may plan to use (estimate): one 2048 px tile, or a few small images' tiles together."""

MAX_CUDA_BATCH: int = 64

CUDA_BUCKET: int = 128
"""Small images are padded up to a multiple of this on CUDA so similar sizes batch together."""

MEMORY_FRACTION: float = 0.5
"""Share of the free memory one batch may plan to use (other threads, decode and blending need the rest)."""

MAX_IMAGES_IN_FLIGHT: int = 16
"""How many images ``run`` may hold decoded at once while it gathers tiles for a batch."""


@dataclass(frozen=True)
class EngineSettings:
    """How to run a model; ``None`` means "choose for the device" (see the module constants)."""

    device: str = "auto"
    precision: str = "auto"
    tile: int | None = None
    batch: int | None = None
    context: int | None = None
    blend: int = DEFAULT_BLEND
    channels_last: bool = True
    max_images_in_flight: int = MAX_IMAGES_IN_FLIGHT
    ensemble: int = 1
    """Views of each tile to average (:mod:`core.ensemble`): 1, 2, 4 or 8; quality for N times the compute."""
    striped: bool = True
    """On a CPU, run the built-in Restorer level by level in cache-sized stripes (:mod:`core.striped`): equal
    output, faster on large tiles. Off only to compare against."""

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {self.precision!r}")
        if self.tile is not None and self.tile < 16:
            raise ValueError("tile must be at least 16 pixels")
        if self.batch is not None and self.batch < 1:
            raise ValueError("batch must be at least 1")
        if self.context is not None and self.context < 0:
            raise ValueError("context must be non-negative")
        check_size(self.ensemble)


@dataclass(frozen=True)
class EngineResult(Generic[T]):
    """One finished image: the caller's tag, float32 pixels (H*scale, W*scale, C) and what it cost."""

    tag: T
    pixels: Array
    seconds: float
    tiles: int


@dataclass(frozen=True)
class EngineStats:
    """Counters since the engine was created (exported as metrics by the daemon)."""

    images: int
    tiles: int
    batches: int
    batch_splits: int
    tile_splits: int
    cpu_fallbacks: int

    @property
    def splits(self) -> int:
        return self.batch_splits + self.tile_splits + self.cpu_fallbacks


@dataclass
class _Job(Generic[T]):
    """An image being processed by one ``run`` call."""

    index: int
    tag: T
    pixels: Array
    plan: TilePlan
    output: Array
    remaining: int
    tiles: int
    seconds: float = 0.0


@dataclass
class _Counters:
    images: int = 0
    tiles: int = 0
    batches: int = 0
    splits: SplitCounts = field(default_factory=SplitCounts)


def choose_precision(device: torch.device, precision: str, descriptor: ModelDescriptor) -> torch.dtype | None:
    """Autocast dtype: the requested one, else fp16 on CUDA (bf16 where the model can't do fp16), bf16 on CPUs."""
    dtype = autocast_dtype(device, precision)
    if precision != "auto":
        return dtype
    if dtype == torch.float16 and not descriptor.supports_half:
        bf16_ok = device.type != "cuda" or torch.cuda.is_bf16_supported()
        dtype = torch.bfloat16 if descriptor.supports_bfloat16 and bf16_ok else None
    if dtype == torch.bfloat16 and not descriptor.supports_bfloat16:
        dtype = None
    if device.type == "mps" and precision == "auto":
        dtype = torch.float16 if descriptor.supports_half else None
    return dtype


class Engine:
    """Runs one model on images of any size; safe to share between threads.

    The engine takes ownership of ``descriptor.model``: it is moved to the device and to channels_last in place.
    """

    def __init__(self, descriptor: ModelDescriptor, settings: EngineSettings | None = None) -> None:
        self.settings = settings or EngineSettings()
        self.device = resolve_device(self.settings.device)
        self.dtype = choose_precision(self.device, self.settings.precision, descriptor)
        model = descriptor.model.eval().to(self.device)
        if self.settings.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.descriptor = descriptor.with_model(model)
        self._runner = self._inference_module(model, self.device)
        self.context = descriptor.context if self.settings.context is None else self.settings.context
        default_tile = DEFAULT_CUDA_TILE
        if self.device.type == "cpu":
            default_tile = DEFAULT_CPU_STRIPED_TILE if self._runner is not model else DEFAULT_CPU_TILE
        self.tile = self._feasible_tile(self.settings.tile or default_tile)
        self._model_lock = threading.Lock()
        self._stats_lock = threading.Lock()
        self._counters = _Counters()
        self._fallback_model: torch.nn.Module | None = None

    def _inference_module(self, model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
        return for_inference(model, device) if self.settings.striped else model

    # ----------------------------------------------------------------- planning
    def _feasible_tile(self, tile: int) -> int:
        """``tile`` rounded to the model's multiple and raised until context and blend leave a stride."""
        multiple = self.descriptor.tile_multiple
        smallest = round_up(2 * self.context + self.settings.blend + multiple, multiple)
        return max(round_down(tile, multiple), smallest, round_up(self.descriptor.minimum_size, multiple))

    def plan(self, height: int, width: int, tile: int | None = None) -> TilePlan:
        """The tile plan this engine uses for an image (deterministic per size, so batching never changes it)."""
        desc = self.descriptor
        return plan_tiles(
            height,
            width,
            tile=tile or self.tile,
            context=self.context,
            blend=self.settings.blend,
            multiple=desc.tile_multiple,
            minimum=desc.minimum_size,
            square=desc.square,
            bucket=CUDA_BUCKET if self.device.type == "cuda" else 0,
        )

    @property
    def autocast_name(self) -> str:
        return {torch.float16: "fp16", torch.bfloat16: "bf16", None: "fp32"}[self.dtype]

    @property
    def ensemble(self) -> int:
        """Views averaged per tile (:mod:`core.ensemble`)."""
        return self.settings.ensemble

    def items_per_tile(self, channels: int) -> int:
        """Model inputs one tile becomes: 3 for an RGB tile on a grayscale model, else 1."""
        return channels if self.descriptor.input_channels == 1 else 1

    def batch_size(self, shape: tuple[int, int]) -> int:
        """Model inputs per batch for tiles of ``shape``: the setting, else what the memory budget allows."""
        if self.settings.batch is not None:
            return self.settings.batch
        desc = self.descriptor
        per_item = bytes_per_item(
            shape[0],
            shape[1],
            features_per_pixel=desc.features_per_pixel,
            channels_in=desc.input_channels,
            channels_out=desc.output_channels,
            scale=desc.scale,
            activation_bytes=4 if self.dtype is None else 2,
        )
        budget = int(free_memory_bytes(self.device) * MEMORY_FRACTION)
        if self.device.type == "cpu":
            budget = min(budget, CPU_BATCH_BYTES)
        cap = MAX_CPU_BATCH if self.device.type == "cpu" else MAX_CUDA_BATCH
        return batch_from_budget(per_item, budget, cap)

    # ----------------------------------------------------------------- running
    def stats(self) -> EngineStats:
        with self._stats_lock:
            c = self._counters
            return EngineStats(c.images, c.tiles, c.batches, c.splits.batches, c.splits.tiles, c.splits.fallbacks)

    def restore(self, pixels: Array) -> Array:
        """One image in, its restored float32 pixels out (see :meth:`run`)."""
        (result,) = self.run([(0, pixels)])
        return result.pixels

    def run(self, items: Iterable[tuple[T, Array]]) -> Iterator[EngineResult[T]]:
        """Restore a stream of ``(tag, pixels)``; results come back in input order, tagged.

        ``pixels`` are (H, W, C) with C 1 or 3, float in [0, 1] (uint8/uint16 are converted). Images are read
        from ``items`` lazily, only as far ahead as needed to fill batches (at most
        ``settings.max_images_in_flight``), so a long stream never sits in memory at once.
        """
        source = iter(items)
        target = self.batch_size((self.tile, self.tile))
        exhausted = False
        next_index = 0
        jobs: dict[int, _Job[T]] = {}
        queues: dict[tuple[int, int], deque[tuple[_Job[T], Tile]]] = {}
        emit = 0
        while True:
            while not exhausted and len(jobs) < self.settings.max_images_in_flight and _short(queues, target):
                try:
                    tag, pixels = next(source)
                except StopIteration:
                    exhausted = True
                    break
                job = self._start(next_index, tag, pixels)
                del tag, pixels  # only the job holds the image: the caller can free it once it is emitted
                jobs[next_index] = job
                next_index += 1
                for tile in job.plan.tiles:
                    queues.setdefault(tile.shape, deque()).append((job, tile))
                del job
            if not any(queues.values()):  # every image read has been emitted (each has at least one tile)
                break
            self._run_one_batch(jobs, queues, emit)
            while emit in jobs and jobs[emit].remaining == 0:
                done = jobs.pop(emit)
                emit += 1
                with self._stats_lock:
                    self._counters.images += 1
                result = EngineResult(done.tag, done.output, done.seconds, done.tiles)
                del done  # drop the input pixels before the caller blends and encodes (50 MP: 600 MB)
                yield result
                del result

    def _start(self, index: int, tag: T, pixels: Array) -> _Job[T]:
        pixels = as_float_image(pixels)
        height, width, channels = pixels.shape
        plan = self.plan(height, width)
        scale = self.descriptor.scale
        output = np.zeros((height * scale, width * scale, channels), dtype=np.float32)
        count = len(plan.tiles)
        return _Job(index, tag, pixels, plan, output, count, count)

    def _run_one_batch(
        self,
        jobs: dict[int, _Job[T]],
        queues: dict[tuple[int, int], deque[tuple[_Job[T], Tile]]],
        emit: int,
    ) -> None:
        """Run the next batch: tiles of the oldest unfinished image's shape, topped up from younger images.

        Tiles are queued in input order, so the oldest image's remaining tiles sit at the front of their queues.
        """
        oldest = jobs[emit]
        shape = next((s for s, q in queues.items() if q and q[0][0] is oldest), None)
        if shape is None:
            shape = next(s for s, q in queues.items() if q)
        queue = queues[shape]
        limit = self.batch_size(shape)
        chosen: list[tuple[_Job[T], Tile]] = []
        inputs: list[Array] = []
        counts: list[int] = []
        while queue:
            job, tile = queue[0]
            count = self.items_per_tile(job.pixels.shape[2])
            if chosen and len(inputs) + count > limit:
                break
            queue.popleft()
            chosen.append((job, tile))
            inputs.extend(to_model_items(extract(job.pixels, tile), self.descriptor.input_channels))
            counts.append(count)
        started = time.perf_counter()
        outputs = self._infer_with_split(inputs)
        elapsed = time.perf_counter() - started
        position = 0
        for (job, tile), count in zip(chosen, counts):
            pieces = outputs[position : position + count]
            position += count
            tile_output = from_model_items(pieces, job.pixels.shape[2])
            accumulate(job.output, job.plan, tile, tile_output, self.descriptor.scale)
            job.remaining -= 1
            job.seconds += elapsed * count / len(inputs)
        with self._stats_lock:
            self._counters.tiles += len(chosen)
            self._counters.batches += 1

    def _infer_with_split(self, inputs: list[Array]) -> list[Array]:
        counts = SplitCounts()
        try:
            return run_split(
                inputs,
                self._infer,
                self._split_plan,
                scale=self.descriptor.scale,
                channels_out=self.descriptor.output_channels,
                counts=counts,
                fallback=self._infer_on_cpu if self.device.type != "cpu" else None,
            )
        finally:
            with self._stats_lock:
                total = self._counters.splits
                total.batches += counts.batches
                total.tiles += counts.tiles
                total.fallbacks += counts.fallbacks

    def _split_plan(self, item: Array) -> TilePlan | None:
        """A plan of tiles half the size of ``item`` (same context), or None when that is not possible."""
        height, width = item.shape[:2]
        half = round_down(max(height, width) // 2, self.descriptor.tile_multiple)
        smallest = self._feasible_tile(0)
        if half < smallest or max(height, width) <= smallest:
            return None
        desc = self.descriptor
        return plan_tiles(
            height,
            width,
            tile=half,
            context=self.context,
            blend=self.settings.blend,
            multiple=desc.tile_multiple,
            minimum=desc.minimum_size,
            square=desc.square,
        )

    def _infer(self, inputs: list[Array]) -> list[Array] | OutOfMemory:
        """One forward pass on the engine's device; memory exhaustion comes back as a value."""
        try:
            with self._model_lock:
                return self._forward(self._runner, inputs, self.device, self.dtype)
        except RuntimeError as error:
            if not is_out_of_memory(error):
                raise
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
            return OutOfMemory(str(error).splitlines()[0] if str(error) else type(error).__name__)

    def _infer_on_cpu(self, inputs: list[Array]) -> list[Array] | OutOfMemory:
        """Last resort for a tile that fits nowhere on the GPU: a CPU copy of the model, fp32."""
        with self._model_lock:
            if self._fallback_model is None:
                fallback = copy.deepcopy(self.descriptor.model).to("cpu").float()
                self._fallback_model = self._inference_module(fallback, torch.device("cpu"))
            model = self._fallback_model
        try:
            with self._model_lock:
                return self._forward(model, inputs, torch.device("cpu"), None)
        except RuntimeError as error:
            if not is_out_of_memory(error):
                raise
            return OutOfMemory(str(error))

    def _forward(
        self, model: torch.nn.Module, inputs: list[Array], device: torch.device, dtype: torch.dtype | None
    ) -> list[Array]:
        batch = torch.from_numpy(np.stack(inputs)).permute(0, 3, 1, 2)
        batch = batch.to(device, non_blocking=True)
        if self.settings.channels_last:
            batch = batch.contiguous(memory_format=torch.channels_last)
        autocast = torch.autocast(device.type, dtype=dtype) if dtype is not None else nullcontext()
        with torch.inference_mode(), autocast:
            output = ensemble_forward(model, batch, self.settings.ensemble)
        output = output.float().permute(0, 2, 3, 1).contiguous().cpu().numpy()
        return list(output)


def _short(queues: dict[tuple[int, int], deque[tuple[_Job[T], Tile]]], target: int) -> bool:
    """True while no queue holds a full batch yet: read another image to fill one."""
    return max((len(q) for q in queues.values()), default=0) < target


def as_float_image(pixels: Array) -> Array:
    """(H, W, C) float32 in [0, 1]; integer images are scaled by their dtype's maximum."""
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    if pixels.ndim != 3 or pixels.shape[2] not in (1, 3):
        raise ValueError(f"expected an (H, W, 1|3) image, got shape {pixels.shape}")
    if np.issubdtype(pixels.dtype, np.integer):
        return pixels.astype(np.float32) / float(np.iinfo(pixels.dtype).max)
    return pixels.astype(np.float32, copy=False)


def to_model_items(tile: Array, model_channels: int) -> list[Array]:
    """A tile as the model's inputs: gray replicated to RGB, or RGB split into planes for a gray model."""
    channels = tile.shape[2]
    if channels == model_channels:
        return [tile]
    if model_channels == 3 and channels == 1:
        return [np.ascontiguousarray(np.repeat(tile, 3, axis=2))]
    if model_channels == 1 and channels == 3:
        return [np.ascontiguousarray(tile[..., c : c + 1]) for c in range(3)]
    raise ValueError(f"cannot feed a {channels}-channel image to a {model_channels}-channel model")


def from_model_items(outputs: list[Array], channels: int) -> Array:
    """Inverse of :func:`to_model_items`: gray output is the mean of the model's RGB (it saw equal planes)."""
    if len(outputs) == 1:
        out = outputs[0]
        if out.shape[2] == channels:
            return out
        if channels == 1:
            return out.mean(axis=2, keepdims=True)
        return np.repeat(out, channels, axis=2)
    return np.concatenate(outputs, axis=2)
