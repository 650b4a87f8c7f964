"""One batch through the stages: decode and analysis on the pool, the engine on this thread, finishing on the pool.

Every decode of the batch is submitted at once, so while the engine works on the first images the pool decodes the
next; the engine pulls them lazily and mixes their tiles in its batches. Finished images are encoded on the pool
while the engine goes on. Outcomes are reported on the calling thread (the worker's, which owns the database session)
as soon as each is known, so a fast image does not wait for a slow one to be committed.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, Future
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from core.pipeline import Analyse, EnhanceRequest, EnhanceResult, PreparedImage, finish_image, prepare_image
from daemon.worker.outcome import Outcome, OutcomeKind, judge, one_line
from daemon.worker.plan import Task

if TYPE_CHECKING:
    from core.engine import Engine

log = logging.getLogger(__name__)

Report = Callable[[Outcome], None]


class BatchRunner:
    """Runs tasks through ``core``'s stages; ``should_abort`` is polled between images (a stop past its deadline)."""

    def __init__(
        self, pool: Executor, *, analyse: Analyse, max_pixels: int, should_abort: Callable[[], bool] = lambda: False
    ) -> None:
        self._pool = pool
        self._analyse = analyse
        self._max_pixels = max_pixels
        self._should_abort = should_abort

    def run(self, tasks: Sequence[Task], engine: Engine, report: Report) -> None:
        """Report exactly one outcome per task (``RELEASED`` for those an abort left unprocessed)."""
        reported: set[int] = set()

        def emit(outcome: Outcome) -> None:
            reported.add(outcome.image_id)
            report(outcome)

        run = _Run(self, tasks, engine, emit)
        leftover = Outcome(0, OutcomeKind.RELEASED, "the worker stopped before this image")
        try:
            run.execute()
        except Exception as error:  # a bug here must cost a retry, not the images
            log.exception("batch of %d image(s) failed", len(tasks))
            leftover = Outcome(0, OutcomeKind.RETRY, f"internal error: {one_line(error)}")
        finally:
            run.cancel()
            for task in tasks:
                if task.image_id not in reported:
                    emit(replace(leftover, image_id=task.image_id))

    def _prepare(self, task: Task) -> PreparedImage:
        """Decode and analyse (on the pool). An analyser error raises: a bug, retried, never a silent degradation."""
        request = EnhanceRequest(task.source, task.output, format=task.output_format, strength=task.strength)
        return prepare_image(
            request, strength=task.strength, analyse=self._analyse, max_pixels=self._max_pixels, strict_analysis=True
        )

    def _finish(
        self, task: Task, prepared: PreparedImage, restored: np.ndarray | None, seconds: float, tiles: int
    ) -> EnhanceResult:
        with contextlib.suppress(OSError):  # if this fails, so does the write: a transient failure with its reason
            task.output.parent.mkdir(parents=True, exist_ok=True)
        return finish_image(
            prepared,
            restored,
            model_seconds=seconds,
            tiles=tiles,
            analyse=self._analyse,
            jpeg_quality=task.jpeg_quality,
        )


class _Run:
    """The state of one :meth:`BatchRunner.run` call."""

    def __init__(self, runner: BatchRunner, tasks: Sequence[Task], engine: Engine, emit: Report) -> None:
        self.runner = runner
        self.tasks = list(tasks)
        self.engine = engine
        self.emit = emit
        self.decoding: list[Future[PreparedImage]] = [runner._pool.submit(runner._prepare, task) for task in self.tasks]
        self.in_engine: dict[int, tuple[Task, PreparedImage]] = {}
        self.finishing: list[tuple[Task, Future[EnhanceResult]]] = []

    def execute(self) -> None:
        source = self.feed()
        try:
            while True:
                try:
                    for result in self.engine.run(source):
                        task, prepared = self.in_engine.pop(result.tag)
                        self.finish(task, prepared, result.pixels, result.seconds, result.tiles)
                        self.collect(block=False)
                        if self.runner._should_abort():
                            return
                    break
                except Exception as error:  # the engine failed a batch: retry what it held, go on with the rest
                    if not self.in_engine:
                        raise
                    reason = _engine_failure(error)
                    log.warning("engine failed on %d image(s): %s", len(self.in_engine), reason)
                    for image_id in sorted(self.in_engine):
                        self.emit(Outcome(image_id, OutcomeKind.RETRY, reason))
                    self.in_engine.clear()
        finally:
            source.close()
        self.collect(block=True)

    def feed(self) -> Iterator[tuple[int, np.ndarray]]:
        """Prepared images in task order, as the engine asks for them; failures and strength 0 go around it."""
        for task, future in zip(self.tasks, self.decoding):
            self.collect(block=False)
            if self.runner._should_abort():
                return
            try:
                prepared = future.result()
            except Exception as error:
                self.emit(Outcome(task.image_id, judge(error), one_line(error)))
                continue
            if prepared.strength == 0:
                self.finish(task, prepared, None, 0.0, 0)
                continue
            self.in_engine[task.image_id] = (task, prepared)
            yield task.image_id, prepared.image.pixels

    def finish(
        self, task: Task, prepared: PreparedImage, restored: np.ndarray | None, seconds: float, tiles: int
    ) -> None:
        future = self.runner._pool.submit(self.runner._finish, task, prepared, restored, seconds, tiles)
        self.finishing.append((task, future))

    def collect(self, *, block: bool) -> None:
        """Report finished encodes (all of them, waiting, when ``block``)."""
        still: list[tuple[Task, Future[EnhanceResult]]] = []
        for task, future in self.finishing:
            if not block and not future.done():
                still.append((task, future))
                continue
            try:
                result = future.result()
            except Exception as error:  # finish_image does not raise; a bug must still not lose the image
                self.emit(Outcome(task.image_id, OutcomeKind.RETRY, f"finishing failed: {one_line(error)}"))
                continue
            if result.ok:
                self.emit(Outcome(task.image_id, OutcomeKind.DONE, result=result))
            else:
                self.emit(Outcome(task.image_id, OutcomeKind.RETRY, result.error or "the output was not written"))
        self.finishing = still

    def cancel(self) -> None:
        """After an abort: drop decodes not started; finishing encodes are awaited (they write the output)."""
        for future in self.decoding:
            future.cancel()
        self.collect(block=True)


def _engine_failure(error: BaseException) -> str:
    if isinstance(error, MemoryError):
        return f"out of memory even after splitting the work: {one_line(error)}"
    return f"model failed: {one_line(error)}"
