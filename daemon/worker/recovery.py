"""Crash recovery: what a worker finds at start-up after a predecessor was killed, and the periodic lease reaper.

In order: leases of dead owners on this host end at once and expired leases return to the queue (images that used
up their attempts fail); temporary files of interrupted writes beside those images' outputs, archive and failed
places are deleted; output reservations whose image will never succeed are removed with their files; originals whose
image was committed ``done`` but not yet archived or deleted are settled.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

import storage
from config import OriginalsPolicy, Settings
from daemon.metrics import Metrics
from daemon.worker.files import remove_quietly, remove_stale_uploads, remove_temp_files
from daemon.worker.leases import is_dead_owner
from daemon.worker.naming import mirrored
from daemon.worker.originals import Originals
from storage import Image, ImageState

log = logging.getLogger(__name__)

DELETE_RECOVERY_HOURS = 24.0
"""``originals = "delete"`` is finished at start-up only for images done within this window: an inbox switched from
``keep`` to ``delete`` must not lose every original it kept before (``archive`` has no window: moving loses nothing)."""

SETTLE_PAGE = 500


@dataclass
class RecoveryReport:
    requeued: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    temp_files: list[Path] = field(default_factory=list)
    orphan_outputs: list[Path] = field(default_factory=list)
    originals_settled: int = 0


def requeue_expired(
    sessions: sessionmaker[Session], max_attempts: int, now: datetime, *, metrics: Metrics | None = None
) -> list[Image]:
    """Return images whose lease expired to the queue (the scheduler runs this every ~30 s); returns the rows.

    An image out of attempts fails instead; it counts as a ``crashed`` failure (its worker died every time).
    """
    with sessions.begin() as session:
        images = storage.requeue_expired_leases(session, now, max_attempts=max_attempts)
    for image in images:
        if image.state is ImageState.FAILED:
            log.warning("image %d: %s", image.id, image.error)
            if metrics is not None:
                metrics.failed.labels(kind="crashed").inc()
        else:
            log.info("image %d: its worker stopped; queued again (attempt %d used)", image.id, image.attempts)
    return images


class Recovery:
    """One start-up pass; see the module docstring."""

    def __init__(
        self,
        settings: Settings,
        sessions: sessionmaker[Session],
        owner: str,
        clock: Callable[[], datetime],
        originals: Originals,
    ) -> None:
        self._settings = settings
        self._sessions = sessions
        self._owner = owner
        self._clock = clock
        self._originals = originals

    def run(self) -> RecoveryReport:
        report = RecoveryReport()
        now = self._clock()
        with self._sessions() as session:
            owners = storage.processing_owners(session)
        dead = [owner for owner in owners if is_dead_owner(owner, self._owner)]
        if dead:
            with self._sessions.begin() as session:
                storage.expire_leases(session, dead, now)
            log.info("leases of %d image(s) of stopped worker(s) %s ended", sum(len(owners[o]) for o in dead), dead)
        touched = requeue_expired(self._sessions, self._settings.worker.max_attempts, now)
        report.requeued = [image.id for image in touched if image.state is ImageState.QUEUED]
        report.failed = [image.id for image in touched if image.state is ImageState.FAILED]
        report.temp_files, report.orphan_outputs = self._clean_files(touched)
        report.originals_settled = self.settle_originals()
        return report

    def _clean_files(self, touched: list[Image]) -> tuple[list[Path], list[Path]]:
        with self._sessions() as session:
            pending = storage.pending_outputs(session)
            rows = {image_id: storage.get_image(session, image_id) for image_id in pending}
        folders: list[Path] = [Path(path).parent for path in pending.values()]
        for image in touched:
            try:
                inbox = self._settings.inbox(image.inbox)
                folders += [mirrored(root, image.relative_path).parent for root in (inbox.archive, inbox.failed)]
            except (KeyError, ValueError):
                continue
        temps = remove_temp_files(folders)
        temps += remove_stale_uploads(inbox.path for inbox in self._settings.inboxes)
        orphans: list[Path] = []
        finished = (ImageState.DONE, ImageState.FAILED, ImageState.DUPLICATE, ImageState.DELETED)
        for image_id, path in pending.items():
            image = rows[image_id]
            if image.state not in finished:
                continue  # queued again: the retry writes this very name
            with self._sessions.begin() as session:
                in_use = storage.output_paths_in_use(session, [path], exclude_id=image_id)
                storage.clear_pending_outputs(session, [image_id])
            if path != image.output_path and not in_use and remove_quietly(Path(path)):
                orphans.append(Path(path))
                log.info(
                    "image %d: removed an output written by an attempt that was never recorded: %s", image_id, path
                )
        return temps, orphans

    def settle_originals(self) -> int:
        """Archive or delete the originals of ``done`` images that a stop left in their inbox; returns how many."""
        settled = 0
        now = self._clock()
        policies = {inbox.name: inbox for inbox in self._settings.inboxes}
        archive = [name for name, inbox in policies.items() if inbox.originals is OriginalsPolicy.ARCHIVE]
        delete = [name for name, inbox in policies.items() if inbox.originals is OriginalsPolicy.DELETE]
        since = now - timedelta(hours=DELETE_RECOVERY_HOURS)
        for names, finished_after in ((archive, None), (delete, since)):
            after_id = 0
            while names:
                with self._sessions() as session:
                    page = storage.originals_pending(
                        session, names, finished_after=finished_after, after_id=after_id, limit=SETTLE_PAGE
                    )
                if not page:
                    break
                inboxes = {image.id: policies[image.inbox] for image in page}
                remove_temp_files(  # a copy to another filesystem interrupted by the crash
                    mirrored(inboxes[image.id].archive, image.relative_path).parent for image in page
                )
                for image in page:
                    after_id = image.id
                    try:
                        self._originals.settle(image, inboxes[image.id])
                        settled += 1
                    except Exception:
                        log.exception("image %d: settling its original failed", image.id)
        return settled
