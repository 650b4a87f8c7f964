"""Recording outcomes: one transaction per image, then the file operations that must follow the commit.

``done``: the output is already in place (written atomically by the pipeline); scores, timings, device and model
version are committed in one transaction with the reservation cleared, then the original is kept, archived or
deleted. Permanent failures of the file: the file goes to the failed folder with ``<name>.error.txt`` first, then
``failed`` and its new place are committed together (a crash in between is recognised by the next attempt, which
finds the file there). Transient failures: retried after a backoff, or ``failed`` once the attempts are used up; the
original untouched. Nothing here raises: a database error leaves the row leased, so it returns to the queue when
the lease expires.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session, sessionmaker

import storage
from config import WorkerSettings
from daemon.metrics import Metrics
from daemon.worker.files import move_to_free_name, remove_quietly, write_note
from daemon.worker.naming import error_note, mirrored
from daemon.worker.originals import OriginalRequest, Originals
from daemon.worker.outcome import Outcome, OutcomeKind
from daemon.worker.plan import Place, Task
from storage import Image

if TYPE_CHECKING:
    from core.pipeline import EnhanceResult

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EngineInfo:
    """Recorded with each output."""

    device: str
    model_version: str


@dataclass(frozen=True)
class Pending:
    """An outcome waiting to be recorded, with what recording it needs."""

    outcome: Outcome
    image: Image
    task: Task | None
    engine: EngineInfo | None


@dataclass
class Tally:
    """Counts since start, for the status endpoint."""

    done: int = 0
    failed: int = 0
    retried: int = 0
    released: int = 0
    last_error: str | None = None


class Recorder:
    """Commits outcomes for one worker (its lease ``owner``), on the worker's thread."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        worker: WorkerSettings,
        owner: str,
        clock: Callable[[], datetime],
        originals: Originals,
        metrics: Metrics | None = None,
    ) -> None:
        self._sessions = sessions
        self._worker = worker
        self._owner = owner
        self._clock = clock
        self._originals = originals
        self._metrics = metrics
        self.tally = Tally()
        self.originals_behind = False
        """Set when an original could not be archived or deleted; the worker settles it later."""

    def record(self, outcome: Outcome, image: Image, task: Task | None, engine: EngineInfo | None) -> None:
        """Record one outcome (see :meth:`record_many`)."""
        self.record_many([Pending(outcome, image, task, engine)])

    def record_many(self, items: Sequence[Pending]) -> None:
        """Record outcomes; the ``done`` ones together in one transaction (one fsync for the group)."""
        done = [item for item in items if item.outcome.kind is OutcomeKind.DONE and item.task and item.engine]
        if done:
            self._guarded(done, self._done)
        for item in items:
            if not (item.outcome.kind is OutcomeKind.DONE and item.task and item.engine):
                self._guarded([item], self._other)

    def _guarded(self, items: list[Pending], action: Callable[[list[Pending]], None]) -> None:
        try:
            action(items)
        except storage.StateConflict as conflict:
            if len(items) > 1:  # one of the group changed under us: record them one by one
                for item in items:
                    self._guarded([item], action)
                return
            log.warning("image %d changed while it was processed; result not recorded: %s", items[0].image.id, conflict)
        except Exception:
            ids = [item.image.id for item in items]
            log.exception("recording image(s) %s failed; they return to the queue when their leases end", ids)

    def _other(self, items: list[Pending]) -> None:
        (item,) = items
        outcome, image, task = item.outcome, item.image, item.task
        if outcome.kind is OutcomeKind.RETRY:
            self._retry(outcome.reason or "transient failure", image)
        elif outcome.kind is OutcomeKind.BAD_INPUT and task is not None:
            self._bad_input(outcome.reason or "the file cannot be processed", image, task)
        elif outcome.kind is OutcomeKind.RELEASED:
            self._release(image)
        else:
            self._fail(outcome.reason or "failed", image, kind="permanent")

    # --- the kinds ----------------------------------------------------------------------------------------------------

    def _done(self, items: list[Pending]) -> None:
        now = self._clock()
        outputs: list[Path] = []
        try:
            with self._sessions.begin() as session:
                for item in items:
                    outputs.append(self._mark_done(session, item, now))
        except storage.StateConflict:
            if len(items) == 1:
                self._drop_unrecorded_output(items[0].image.id, _output_of(items[0]))
            raise
        originals = []
        for item, output in zip(items, outputs):
            task, result = item.task, item.outcome.result
            assert task is not None
            self.tally.done += 1
            if self._metrics is not None:
                self._metrics.processed.inc()
                self._metrics.processing_seconds.observe(result.seconds)
            log.info("image %d done: %s -> %s (%.2f s)", item.image.id, task.source, output, result.seconds)
            for stale in task.stale_outputs:
                if remove_quietly(stale):
                    log.info("image %d: removed its earlier output %s", item.image.id, stale)
            originals.append(
                OriginalRequest(item.image.id, task.inbox, task.relative, task.source, task.place, task.record_place)
            )
        self.originals_behind |= not self._originals.finish(originals)

    def _mark_done(self, session: Session, item: Pending, now: datetime) -> Path:
        """``mark_done`` with everything measured, and the output reservation cleared; returns the output."""
        assert item.engine is not None
        result: EnhanceResult = item.outcome.result
        output = _output_of(item)
        try:
            size: int | None = output.stat().st_size
        except OSError:
            size = None
        before = {"width": result.width, "height": result.height, **(result.before or {})}
        timings: dict[str, Any] = {**result.timings.as_dict(), "total": round(result.seconds, 4), "tiles": result.tiles}
        storage.mark_done(
            session,
            item.image.id,
            output_path=str(output),
            now=now,
            owner=self._owner,
            output_size=size,
            before=before,
            after=result.after,
            timings=timings,
            device=item.engine.device,
            model_version=item.engine.model_version,
            format=result.source_format,
            notes=result.notes,
        )
        for note in result.notes:
            log.info("image %d: %s", item.image.id, note)
        storage.clear_pending_outputs(session, [item.image.id])
        return output

    def _retry(self, reason: str, image: Image) -> None:
        attempts, limit = image.attempts, self._worker.max_attempts
        if attempts >= limit:
            self._fail(f"gave up after {attempts} attempts: {reason}", image, kind="transient")
            return
        delay = storage.retry_delay(attempts, self._worker.backoff_base_seconds, self._worker.backoff_max_seconds)
        now = self._clock()
        with self._sessions.begin() as session:
            storage.schedule_retry(
                session, image.id, reason, now + timedelta(seconds=delay), now=now, owner=self._owner
            )
        self.tally.retried += 1
        self.tally.last_error = reason
        if self._metrics is not None:
            self._metrics.retried.inc()
        log.warning("image %d: %s (attempt %d of %d; retry in %.0f s)", image.id, reason, attempts, limit, delay)

    def _bad_input(self, reason: str, image: Image, task: Task) -> None:
        place: Path | None = None
        if task.place is Place.INBOX and _changed(image, task.source):
            reason = f"superseded: {task.source} changed while it was read ({reason}); the new version is queued"
            self._fail(reason, image, kind="permanent")
            return
        if task.place is Place.INBOX:
            try:
                place = move_to_free_name(task.source, mirrored(task.inbox.failed, task.relative))
            except OSError as error:
                log.warning("image %d: could not move %s to the failed folder: %s", image.id, task.source, error)
        elif task.place is Place.FAILED:
            place = task.source
        if place is not None:
            try:
                write_note(error_note(place), _note(reason, image, self._clock()))
            except OSError as error:
                log.warning("image %d: could not write %s: %s", image.id, error_note(place), error)
        moved = place if place is not None and (task.place is Place.INBOX or task.record_place) else None
        self._fail(reason, image, kind="permanent", moved_to=moved)

    def _fail(self, reason: str, image: Image, *, kind: str, moved_to: Path | None = None) -> None:
        now = self._clock()
        with self._sessions.begin() as session:
            pending = storage.pending_outputs(session, [image.id]).get(image.id)
            storage.mark_failed(session, image.id, reason, now=now, owner=self._owner)
            if moved_to is not None:
                storage.mark_original_moved(session, image.id, str(moved_to), now=now)
            storage.clear_pending_outputs(session, [image.id])
        if pending is not None and pending != image.output_path:
            remove_quietly(Path(pending))  # an output a crashed attempt wrote, which no row will ever name
        self.tally.failed += 1
        self.tally.last_error = reason
        if self._metrics is not None:
            self._metrics.failed.labels(kind=kind).inc()
        where = f" (file moved to {moved_to})" if moved_to is not None else ""
        log.warning("image %d failed (%s): %s%s", image.id, kind, reason, where)

    def _release(self, image: Image) -> None:
        with self._sessions.begin() as session:
            storage.release_claims(session, self._owner, [image.id], self._clock())
        self.tally.released += 1

    def _drop_unrecorded_output(self, image_id: int, output: Path) -> None:
        """After a refused commit: delete the file just written unless the row names it (its previous output)."""
        with self._sessions() as session:
            current = storage.get_image(session, image_id).output_path
        if current != str(output):
            remove_quietly(output)


def _output_of(item: Pending) -> Path:
    result = item.outcome.result
    assert item.task is not None
    return Path(result.output) if result is not None and result.output is not None else item.task.output


def _changed(image: Image, source: Path) -> bool:
    """Whether the file differs from what intake saw: a damaged read of a file still being written."""
    try:
        stat = source.stat()
    except OSError:
        return False
    return image.source_size is not None and (stat.st_size, stat.st_mtime_ns) != (
        image.source_size,
        image.source_mtime_ns,
    )


def _note(reason: str, image: Image, now: datetime) -> str:
    return (
        f"{reason}\n\n"
        f"image id: {image.id}\n"
        f"discovered as: {image.source_path}\n"
        f"failed at: {now.isoformat(timespec='seconds')}\n"
        "Fix or replace the file and drop it into the inbox again; or ask the API to reprocess this image.\n"
    )
