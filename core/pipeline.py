"""The enhancement pipeline shared by ``enhancerd enhance`` and the daemon's worker.

    decode -> analyse -> engine (tiles of several images per batch) -> blend -> encode -> analyse the output

:func:`enhance_images` takes a stream of :class:`EnhanceRequest` and yields one :class:`EnhanceResult` per
request, in request order, each with its own error (a bad file never stops the others) and stage timings.
Decoding happens lazily, as the engine asks for more images to fill a batch.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from core.atomicfile import atomic_copy
from core.blend import BlendSettings, blend
from core.engine import Engine
from core.imageio import (
    DEFAULT_MAX_PIXELS,
    ImageData,
    ImageError,
    format_extension,
    load_image,
    output_format,
    save_image,
    sniff_format,
)
from core.tone import apply_tone, plan_tone

Analyse = Callable[[np.ndarray, Any], Any]
"""``analyse(pixels, quantization) -> Analysis`` (core.analysis.analyze); injectable for tests."""


@dataclass(frozen=True)
class EnhanceRequest:
    """One image to enhance: where it is, where the result goes, and optional per-image overrides."""

    source: Path
    output: Path
    format: str | None = None
    """Output format (Pillow name); None: from the output's suffix."""
    strength: float | None = None
    """None: the pipeline's strength."""
    tag: Any = None
    """Opaque to the pipeline (the daemon's record id)."""


@dataclass(frozen=True)
class Timings:
    """Seconds per stage; ``model`` is this image's share of the batches it was part of."""

    decode: float = 0.0
    analysis: float = 0.0
    model: float = 0.0
    blend: float = 0.0
    encode: float = 0.0

    @property
    def total(self) -> float:
        return self.decode + self.analysis + self.model + self.blend + self.encode

    def as_dict(self) -> dict[str, float]:
        return {
            "decode": round(self.decode, 4),
            "analysis": round(self.analysis, 4),
            "model": round(self.model, 4),
            "blend": round(self.blend, 4),
            "encode": round(self.encode, 4),
        }


@dataclass(frozen=True)
class EnhanceResult:
    """What happened to one request. ``ok`` False means ``error`` says why, in one line naming the file."""

    request: EnhanceRequest
    ok: bool
    output: Path | None = None
    error: str | None = None
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    width: int = 0
    height: int = 0
    tiles: int = 0
    timings: Timings = field(default_factory=Timings)
    notes: tuple[str, ...] = ()
    source_format: str | None = None
    """The decoded input's format (Pillow name, e.g. JPEG, PNG, TIFF)."""

    @property
    def megapixels(self) -> float:
        return self.width * self.height / 1e6

    @property
    def seconds(self) -> float:
        return self.timings.total


@dataclass
class PreparedImage:
    """A decoded, analysed image waiting for (or skipping) the model: the output of :func:`prepare_image`."""

    index: int
    request: EnhanceRequest
    image: ImageData
    analysis: Any
    strength: float
    timings: Timings


def default_analyse(pixels: np.ndarray, quantization: Any = None) -> Any:
    from core.analysis import analyze

    return analyze(pixels, quantization=quantization)


def enhance_images(
    requests: Iterable[EnhanceRequest],
    engine: Engine | None,
    *,
    strength: float = 1.0,
    analyse: Analyse = default_analyse,
    analyse_output: bool = True,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    blend_settings: BlendSettings | None = None,
    jpeg_quality: int | None = None,
) -> Iterator[EnhanceResult]:
    """Enhance each request; results in request order. ``engine`` may be None when every strength is 0."""
    settled: dict[int, EnhanceResult | PreparedImage] = {}  # failures and model-free images, by request index
    pending: dict[int, PreparedImage] = {}  # handed to the engine, not yet back
    source = _prepare_all(requests, strength, analyse, max_pixels, settled, pending)
    finish = Finisher(analyse, analyse_output, blend_settings, jpeg_quality, engine)
    emitted = 0

    def drain(upto: int) -> Iterator[EnhanceResult]:
        nonlocal emitted
        while emitted < upto:
            item = settled.pop(emitted)
            emitted += 1
            yield finish.without_model(item) if isinstance(item, PreparedImage) else item

    while True:
        if engine is None:
            for prepared, _pixels in source:
                pending.pop(prepared.index, None)
                settled[prepared.index] = _failure(prepared.request, "no model loaded (strength > 0)", prepared.timings)
            break
        try:
            for result in engine.run(source):
                prepared: PreparedImage = result.tag
                pending.pop(prepared.index, None)
                yield from drain(prepared.index)
                emitted += 1
                yield finish.with_model(prepared, result.pixels, result.seconds, result.tiles)
            break
        except Exception as error:  # the engine failed a batch: fail what it held, carry on with the rest
            if not pending:
                raise
            for index, prepared in sorted(pending.items()):
                settled[index] = _failure(prepared.request, f"model failed: {error}", prepared.timings)
            pending.clear()
    yield from drain(emitted + len(settled))


def _prepare_all(
    requests: Iterable[EnhanceRequest],
    strength: float,
    analyse: Analyse,
    max_pixels: int,
    settled: dict[int, EnhanceResult | PreparedImage],
    pending: dict[int, PreparedImage],
) -> Iterator[tuple[PreparedImage, np.ndarray]]:
    """Decode and analyse lazily; failures and strength-0 images go to ``settled``, the rest to the engine."""
    for index, request in enumerate(requests):
        item_strength = strength if request.strength is None else request.strength
        started = time.perf_counter()
        try:
            prepared = prepare_image(
                request, strength=item_strength, analyse=analyse, max_pixels=max_pixels, index=index
            )
        except (ImageError, OSError) as error:
            settled[index] = _failure(request, _one_line(error), Timings(decode=time.perf_counter() - started))
            continue
        if item_strength == 0:
            settled[index] = prepared
            continue
        pending[index] = prepared
        yield prepared, prepared.image.pixels


class AnalysisFailed(Exception):
    """The analyser raised on a decoded image (only from :func:`prepare_image` with ``strict_analysis``)."""


def prepare_image(
    request: EnhanceRequest,
    *,
    strength: float = 1.0,
    analyse: Analyse = default_analyse,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    index: int = 0,
    strict_analysis: bool = False,
) -> PreparedImage:
    """Decode and analyse one image (the first stage; thread-safe). Raises the decoder's typed ``ImageError``.

    An analyser error raises :class:`AnalysisFailed` with ``strict_analysis``; otherwise the image goes on without
    damage maps (the model's correction is then applied everywhere, guards included) and a note says so.
    """
    started = time.perf_counter()
    image = load_image(request.source, max_pixels=max_pixels)
    decoded = time.perf_counter()
    try:
        analysis = analyse(image.pixels, image.jpeg_quantization)
    except Exception as error:  # a bug in one estimator must not cost the image
        if strict_analysis:
            raise AnalysisFailed(f"{request.source}: analysis failed: {_one_line(error)}") from error
        analysis = None
        image.notes.append(f"analysis failed ({_one_line(error)}); enhanced without damage maps")
    timings = Timings(decode=decoded - started, analysis=time.perf_counter() - decoded)
    return PreparedImage(index, request, image, analysis, strength, timings)


def finish_image(
    prepared: PreparedImage,
    restored: np.ndarray | None,
    *,
    model_seconds: float = 0.0,
    tiles: int = 0,
    analyse: Analyse = default_analyse,
    analyse_output: bool = True,
    jpeg_quality: int | None = None,
    blend_settings: BlendSettings | None = None,
) -> EnhanceResult:
    """Blend, tone, encode atomically to ``prepared.request.output``, analyse the output (the last stage).

    ``restored`` is the engine's output for ``prepared.image.pixels``; None means strength 0 (the input is written
    unchanged). Never raises: a failure comes back as a result with ``ok`` False. Thread-safe.
    """
    finisher = Finisher(analyse, analyse_output, blend_settings, jpeg_quality, None)
    if restored is None:
        return finisher.without_model(prepared)
    return finisher.with_model(prepared, restored, model_seconds, tiles)


@dataclass(frozen=True)
class Finisher:
    """The stages after the model: blend, tone, encode, and the output's own analysis (see :func:`finish_image`)."""

    analyse: Analyse
    analyse_output: bool
    blend_settings: BlendSettings | None
    jpeg_quality: int | None
    engine: Engine | None

    def with_model(self, item: PreparedImage, restored: np.ndarray, model_seconds: float, tiles: int) -> EnhanceResult:
        timings = replace(item.timings, model=model_seconds)
        try:
            started = time.perf_counter()
            size = (item.image.width, item.image.height)
            scale = restored.shape[0] // item.image.height
            original = item.image.pixels if scale == 1 else upscale(item.image.pixels, scale)
            maps = getattr(item.analysis, "maps", None)
            pixels = blend(
                original,
                restored,
                maps,
                item.strength,
                scale=scale,
                settings=self.blend_settings,
                out=restored,
                jpeg_quality=getattr(item.analysis, "jpeg_quality", None),
            )
            curve = plan_tone(item.analysis, item.image.pixels)
            if curve is not None:
                apply_tone(pixels, curve, min(item.strength, 1.0))
            timings = replace(timings, blend=time.perf_counter() - started)
            enhanced = _with_pixels(item.image, pixels, scale)
            del original
            item.image = enhanced  # the input pixels are not needed any more: free them before encoding
            return self._write(item, enhanced, timings, tiles, same_pixels=False, size=size)
        except Exception as error:
            return _failure(item.request, _one_line(error), timings)

    def without_model(self, item: PreparedImage) -> EnhanceResult:
        """Strength 0: the input unchanged (the file itself where nothing about it needs rewriting)."""
        try:
            return self._write(item, item.image, item.timings, 0, same_pixels=True)
        except Exception as error:
            return _failure(item.request, _one_line(error), item.timings)

    def _write(
        self,
        item: PreparedImage,
        enhanced: ImageData,
        timings: Timings,
        tiles: int,
        same_pixels: bool,
        size: tuple[int, int] | None = None,
    ) -> EnhanceResult:
        request = item.request
        if _same_file(request.source, request.output):
            raise ValueError(f"{request.output}: refusing to overwrite the input file")
        started = time.perf_counter()
        target_format = request.format or output_format(item.image.format)
        if same_pixels and _can_copy(item.image, request.source, target_format):
            atomic_copy(request.source, request.output)
        else:
            save_image(enhanced, request.output, format=target_format, jpeg_quality=self.jpeg_quality)
        timings = replace(timings, encode=time.perf_counter() - started)
        before = _scores(item.analysis)
        after = before
        if not same_pixels and self.analyse_output:
            started = time.perf_counter()
            try:
                after = _scores(self.analyse(enhanced.pixels, None))
            except Exception:  # the file is written; only its scores are missing
                after = None
            timings = replace(timings, analysis=timings.analysis + time.perf_counter() - started)
        elif not same_pixels:
            after = None
        return EnhanceResult(
            request,
            True,
            output=request.output,
            before=before,
            after=after,
            width=size[0] if size else item.image.width,
            height=size[1] if size else item.image.height,
            tiles=tiles,
            timings=timings,
            notes=tuple(item.image.notes),
            source_format=item.image.format,
        )


def _scores(analysis: Any) -> dict[str, Any] | None:
    if analysis is None:
        return None
    scores = analysis.scores() if hasattr(analysis, "scores") else dict(analysis)
    return dict(scores)


def _failure(request: EnhanceRequest, message: str, timings: Timings) -> EnhanceResult:
    text = message if str(request.source) in message else f"{request.source}: {message}"
    return EnhanceResult(request, False, error=text, timings=timings)


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def _same_file(a: Path, b: Path) -> bool:
    try:
        return b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def _can_copy(image: ImageData, source: Path, target_format: str) -> bool:
    """Copying the source bytes is exact when the file is already upright and stays in its own format."""
    return image.orientation == 1 and output_format(image.format) == target_format and sniff_format(source) is not None


def upscale(pixels: np.ndarray, scale: int) -> np.ndarray:
    """Bicubic enlargement (float32, per channel) so an upscaling model's output can be blended with its input."""
    from PIL import Image

    height, width = pixels.shape[:2]
    size = (width * scale, height * scale)
    planes = [
        np.asarray(
            Image.fromarray(np.ascontiguousarray(pixels[..., c]), mode="F").resize(size, Image.Resampling.BICUBIC)
        )
        for c in range(pixels.shape[2])
    ]
    return np.clip(np.stack(planes, axis=-1), 0.0, 1.0).astype(np.float32)


def _with_pixels(image: ImageData, pixels: np.ndarray, scale: int) -> ImageData:
    if scale == 1:
        return image.with_pixels(pixels)
    from PIL import Image

    alpha = image.alpha
    if alpha is not None:
        size = (alpha.shape[1] * scale, alpha.shape[0] * scale)
        mode = "I;16" if alpha.dtype == np.uint16 else "L"
        alpha = np.asarray(Image.fromarray(alpha, mode=mode).resize(size, Image.Resampling.BICUBIC)).astype(alpha.dtype)
    metadata = image.metadata
    if metadata.dpi is not None:
        metadata = replace(metadata, dpi=(metadata.dpi[0] * scale, metadata.dpi[1] * scale))
    return replace(image, pixels=pixels, alpha=alpha, metadata=metadata, notes=list(image.notes))


def output_path(source: Path, outdir: Path, format: str | None, taken: set[Path], inputs: set[Path]) -> Path:
    """``outdir/<stem>.<ext>``, made unique against ``taken`` and never one of the ``inputs`` (resolved paths).

    ``format`` None keeps the source's format (as sniffed from its content; GIF becomes PNG). A clash with an
    input gets ``-enhanced``, a clash with another output ``-2``, ``-3`` ...
    """
    if format is None:
        sniffed = sniff_format(source)
        extension = format_extension(sniffed) if sniffed else (source.suffix.lower() or ".png")
    else:
        extension = format_extension(format)
    stem = source.stem
    candidate = outdir / f"{stem}{extension}"
    if candidate.resolve() in inputs:
        stem = f"{stem}-enhanced"
        candidate = outdir / f"{stem}{extension}"
    counter = 2
    while candidate.resolve() in taken or candidate.resolve() in inputs:
        candidate = outdir / f"{stem}-{counter}{extension}"
        counter += 1
    taken.add(candidate.resolve())
    return candidate
