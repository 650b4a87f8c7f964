"""Run retention: plan (shared with dry runs), move the files away, then mark the rows, chunk by chunk.

Order within a chunk: files first, rows second. A run killed in between leaves rows whose files are already in the
trash; the next run finds those rows again, sees their files gone ("a file already gone is fine") and marks them,
so an interrupted run finishes cleanly without a journal. A row that changed since it was planned (e.g. sent back
to the queue for reprocessing) is not marked, and its file is put back. Only one real run happens at a time.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

import storage
from config import Settings
from daemon.metrics import Metrics
from daemon.retention import trash
from daemon.retention.plan import Plan, RetentionItem, SkippedItem, build_plan
from daemon.retention.policy import describe, effective_policy, validate_overrides
from storage import EventKind, ImageState, RetentionTarget

log = logging.getLogger(__name__)

CHUNK = 200
"""Files moved per transaction: short write locks for the worker, few commits for a large first run."""


class RetentionBusy(RuntimeError):
    """A real run is already in progress (the API answers 409)."""


@dataclass(frozen=True)
class RetentionReport:
    """What a run deleted (or, for a dry run, would delete), per file, with totals per kind; JSON-able."""

    dry_run: bool
    started_at: datetime
    finished_at: datetime
    items: tuple[RetentionItem, ...]
    skipped: tuple[SkippedItem, ...]
    purge: trash.PurgeResult
    trash_folder: str | None = None

    def totals(self) -> dict[str, dict[str, int]]:
        totals = {kind.value: {"files": 0, "bytes": 0} for kind in RetentionTarget}
        for item in self.items:
            totals[item.kind.value]["files"] += 1
            totals[item.kind.value]["bytes"] += item.bytes
        return totals

    def summary(self) -> str:
        parts = [f"{kind} {t['files']} file(s) {t['bytes']} B" for kind, t in self.totals().items()]
        verb = "would delete" if self.dry_run else "deleted"
        return f"{verb}: {', '.join(parts)}; skipped {len(self.skipped)}; purged {self.purge.files} trashed file(s)"

    def as_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat(),
            "totals": self.totals(),
            "items": [item.as_dict() for item in self.items],
            "skipped": [item.as_dict() for item in self.skipped],
            "trash_folder": self.trash_folder,
            "purged": {"folders": list(self.purge.folders), "files": self.purge.files, "bytes": self.purge.bytes},
        }


class RetentionRunner:
    """Applies the per-inbox policies; shared by the scheduler (nightly) and the API (on demand)."""

    def __init__(
        self,
        settings: Settings,
        sessions: sessionmaker[Session],
        metrics: Metrics,
        clock: Callable[[], datetime] = storage.utcnow,
    ) -> None:
        self._settings = settings
        self._sessions = sessions
        self._metrics = metrics
        self._clock = clock
        self._lock = threading.Lock()

    # --- policies -------------------------------------------------------------------------------------------------

    def policies(self) -> dict[str, Any]:
        """Schedule, trash days and, per inbox, the configured policy, the stored override and the effective one."""
        return describe(self._settings, self._overrides())

    def set_policies(self, overrides: Mapping[str, Any]) -> dict[str, Any]:
        """Validate and store ``{"inboxes": {NAME: {KEY: value|null}}}`` (replacing earlier overrides); raises
        :class:`~daemon.retention.policy.PolicyError`. Returns :meth:`policies`."""
        document = validate_overrides(self._settings, overrides)
        with self._sessions.begin() as session:
            storage.set_retention_overrides(session, document, now=self._clock())
        return self.policies()

    def _overrides(self) -> dict[str, Any]:
        with self._sessions() as session:
            return storage.get_retention_overrides(session)

    # --- runs -----------------------------------------------------------------------------------------------------

    def plan(self, now: datetime) -> Plan:
        overrides = self._overrides()
        policies = {inbox.name: effective_policy(inbox, overrides) for inbox in self._settings.inboxes}
        with self._sessions() as session:
            return build_plan(session, self._settings, policies, now)

    def run(self, dry_run: bool) -> RetentionReport:
        """Delete what the policies say (or only report it); raises :class:`RetentionBusy` during another real run."""
        if dry_run:
            now = self._clock()
            plan = self.plan(now)
            purged = trash.purge(self._settings.trash_dir, now, self._settings.retention.trash_days, dry_run=True)
            return RetentionReport(True, now, self._clock(), tuple(plan.items), tuple(plan.skipped), purged)
        if not self._lock.acquire(blocking=False):
            raise RetentionBusy("a retention run is already in progress")
        try:
            return self._run()
        finally:
            self._lock.release()

    def purge_trash(self) -> trash.PurgeResult:
        """Remove trash folders older than ``trash_days`` (the scheduler calls this hourly)."""
        result = trash.purge(self._settings.trash_dir, self._clock(), self._settings.retention.trash_days)
        if result.folders:
            log.info("purged %d trash folder(s), %d file(s), %d bytes", len(result.folders), result.files, result.bytes)
        return result

    def _run(self) -> RetentionReport:
        now = self._clock()
        plan = self.plan(now)
        keep_trash = self._settings.retention.trash_days > 0
        folder = trash.run_folder(self._settings.trash_dir, now) if keep_trash and plan.items else None
        done: list[RetentionItem] = []
        skipped = list(plan.skipped)
        for start in range(0, len(plan.items), CHUNK):
            chunk = plan.items[start : start + CHUNK]
            moved = {item: self._remove(item, folder) for item in chunk}
            conflicts = self._mark(chunk, moved, now)
            for item in chunk:
                if item in conflicts:
                    self._put_back(item, moved[item])
                    skipped.append(SkippedItem(item.image_id, item.inbox, item.kind, item.path, conflicts[item]))
                else:
                    done.append(item)
                    if not item.missing:
                        self._metrics.retention_deleted.labels(kind=item.kind.value).inc()
        purged = self.purge_trash()
        report = RetentionReport(
            False, now, self._clock(), tuple(done), tuple(skipped), purged, str(folder) if folder else None
        )
        with self._sessions.begin() as session:
            detail = {"totals": report.totals(), "skipped": len(skipped), "trash_folder": report.trash_folder}
            storage.add_event(session, EventKind.RETENTION, detail=detail, now=now)
        log.info("retention run: %s", report.summary())
        return report

    def _remove(self, item: RetentionItem, folder: Path | None) -> list[tuple[Path, Path | None]]:
        """Move (or unlink) the item's files; returns (original, trashed-or-None) pairs for putting them back."""
        if item.missing:
            return []
        result: list[tuple[Path, Path | None]] = []
        for name in (item.path, *item.sidecars):
            path = Path(name)
            if folder is None:
                trash.delete_now(path)
                result.append((path, None))
                continue
            below = Path(name).relative_to(item.root) if Path(name).is_relative_to(item.root) else Path(path.name)
            target = folder / item.inbox / item.kind.value / below
            trashed = trash.move_to_trash(path, target)
            result.append((path, trashed))
        return result

    def _put_back(self, item: RetentionItem, moved: list[tuple[Path, Path | None]]) -> None:
        for original, trashed in moved:
            if trashed is not None:
                trash.restore(trashed, original)
            else:
                log.warning("image %d changed during retention, but %s was already deleted", item.image_id, original)

    def _mark(
        self, chunk: list[RetentionItem], moved: Mapping[RetentionItem, Any], now: datetime
    ) -> dict[RetentionItem, str]:
        """Record the chunk in one transaction, each item in a savepoint; returns items whose row changed."""
        conflicts: dict[RetentionItem, str] = {}
        with self._sessions.begin() as session:
            for item in chunk:
                try:
                    with session.begin_nested():
                        _mark_one(session, item, moved.get(item) or [], now)
                except (storage.StateConflict, storage.NotFound) as exc:
                    conflicts[item] = f"changed during the run, left alone: {exc}"
        return conflicts


_MARKABLE = {
    RetentionTarget.OUTPUTS: (ImageState.DONE,),
    RetentionTarget.ORIGINALS: (ImageState.DONE, ImageState.DUPLICATE, ImageState.DELETED),
    RetentionTarget.FAILED: (ImageState.FAILED,),
}


def _mark_one(session: Session, item: RetentionItem, moved: list[tuple[Path, Path | None]], now: datetime) -> None:
    image = storage.get_image(session, item.image_id)
    allowed = _MARKABLE[item.kind]
    still_there = image.output_path if item.kind is RetentionTarget.OUTPUTS else image.original_location
    if image.state not in allowed or still_there != item.path:
        detail = f" (file now {still_there!r})" if still_there != item.path else ""
        raise storage.StateConflict(image.id, image.state.value, [s.value for s in allowed], detail)
    trashed = [str(t) for _, t in moved if t is not None]
    detail = {"retention": item.kind.value, "reason": item.reason, "path": item.path, "bytes": item.bytes}
    if item.missing:
        detail["missing"] = True
    if trashed:
        detail["trash"] = trashed
    if item.kind is RetentionTarget.OUTPUTS:
        storage.mark_deleted(session, image.id, now=now, detail=detail)
    elif item.kind is RetentionTarget.FAILED:
        storage.mark_deleted(session, image.id, now=now, original_deleted=True, detail=detail)
    else:
        storage.mark_original_deleted(session, image.id, now=now, reason="retention")
        if image.state is ImageState.DUPLICATE:  # a duplicate has no output: with its original gone, nothing is left
            storage.mark_deleted(session, image.id, now=now, original_deleted=True, detail=detail)
