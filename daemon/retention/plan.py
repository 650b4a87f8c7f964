"""What a retention run deletes: a pure reading of the database and the folders, shared by dry and real runs.

A dry run returns this plan; a real run executes exactly this plan (computed at the same instant), so the two agree.
Every file is checked before it is planned: it must resolve (symlinks followed) inside one of the folders its kind
may live in, and a file at a row's recorded path that is not the file the row describes (another size or mtime:
a new file dropped under an old name) is never deleted; the row is only marked (``missing``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

import storage
from config import InboxSettings, RetentionPolicy, Settings
from storage import Image, RetentionTarget

GIB = 1024**3
"""``max_disk_gb`` counts binary gigabytes, as ``du -h`` and ``df -h`` do."""

ERROR_SUFFIX = ".error.txt"
"""The worker writes ``<name>.error.txt`` beside a failed original; it goes with it."""


@dataclass(frozen=True)
class RetentionItem:
    """One image's file of one kind that goes (or would go)."""

    image_id: int
    inbox: str
    kind: RetentionTarget
    path: str
    """The file as recorded in the database (absolute)."""
    root: str
    """The configured folder the file was checked to be inside; the trash mirrors the path below it."""
    bytes: int
    reason: str
    """``age`` (older than the policy's days) or ``disk`` (over the output ceiling)."""
    finished_at: datetime
    missing: bool = False
    """The file is already gone (or replaced by an unrelated one): only the row is marked."""
    sidecars: tuple[str, ...] = ()
    """Files that go with it (the failed original's ``.error.txt``)."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "image_id": self.image_id,
            "inbox": self.inbox,
            "kind": self.kind.value,
            "path": self.path,
            "bytes": self.bytes,
            "reason": self.reason,
            "finished_at": self.finished_at.isoformat(),
            "missing": self.missing,
            "sidecars": list(self.sidecars),
        }


@dataclass(frozen=True)
class SkippedItem:
    """A candidate retention refused to touch, with why."""

    image_id: int
    inbox: str
    kind: RetentionTarget
    path: str | None
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "image_id": self.image_id,
            "inbox": self.inbox,
            "kind": self.kind.value,
            "path": self.path,
            "reason": self.reason,
        }


@dataclass
class Plan:
    items: list[RetentionItem] = field(default_factory=list)
    skipped: list[SkippedItem] = field(default_factory=list)


def allowed_roots(inbox: InboxSettings, kind: RetentionTarget) -> tuple[Path, ...]:
    """The configured folders a file of ``kind`` may be deleted from."""
    if kind is RetentionTarget.OUTPUTS:
        return (inbox.output,)
    if kind is RetentionTarget.FAILED:
        return (inbox.failed, inbox.path)
    # the archive counts even when the inbox no longer archives: it still owns what it archived before
    return (inbox.path, inbox.archive)


def containing_root(path: str | os.PathLike[str], roots: tuple[Path, ...]) -> Path | None:
    """The root that ``path`` lies inside after resolving symlinks and ``..``, or ``None``: then it is not ours."""
    real = Path(os.path.realpath(path))
    for root in roots:
        real_root = Path(os.path.realpath(root))
        if real != real_root and real.is_relative_to(real_root):
            return root
    return None


def build_plan(session: Session, settings: Settings, policies: Mapping[str, RetentionPolicy], now: datetime) -> Plan:
    """Everything the policies delete at ``now``: per inbox, outputs by age, then by disk ceiling, then originals,
    then failed files; oldest first within each."""
    plan = Plan()
    for inbox in settings.inboxes:
        policy = policies[inbox.name]
        planned: set[int] = set()
        if policy.outputs_days is not None:
            for image in _candidates(session, inbox, RetentionTarget.OUTPUTS, now, policy.outputs_days):
                if _add(plan, inbox, RetentionTarget.OUTPUTS, image, "age"):
                    planned.add(image.id)
        if policy.max_disk_gb is not None:
            _plan_ceiling(session, plan, inbox, policy.max_disk_gb, planned)
        if policy.originals_days is not None:
            for image in _candidates(session, inbox, RetentionTarget.ORIGINALS, now, policy.originals_days):
                _add(plan, inbox, RetentionTarget.ORIGINALS, image, "age")
        if policy.failed_days is not None:
            for image in _candidates(session, inbox, RetentionTarget.FAILED, now, policy.failed_days):
                _add(plan, inbox, RetentionTarget.FAILED, image, "age")
    return plan


def _candidates(
    session: Session, inbox: InboxSettings, kind: RetentionTarget, now: datetime, days: float
) -> list[Image]:
    return storage.retention_candidates(session, kind, inbox=inbox.name, older_than=now - timedelta(days=days))


def _plan_ceiling(session: Session, plan: Plan, inbox: InboxSettings, max_disk_gb: float, planned: set[int]) -> None:
    """Oldest outputs first until the recorded output bytes of the inbox fit under the ceiling."""
    ceiling = max_disk_gb * GIB
    total = storage.output_bytes(session, inbox=inbox.name)
    total -= sum(item.bytes for item in plan.items if item.inbox == inbox.name and item.image_id in planned)
    if total <= ceiling:
        return
    for image in storage.retention_candidates(session, RetentionTarget.OUTPUTS, inbox=inbox.name, older_than=None):
        if total <= ceiling:
            break
        if image.id in planned:
            continue
        if _add(plan, inbox, RetentionTarget.OUTPUTS, image, "disk"):
            total -= image.output_size or 0


def _add(plan: Plan, inbox: InboxSettings, kind: RetentionTarget, image: Image, reason: str) -> bool:
    """Plan ``image``'s file of ``kind`` (or record why not); True when planned."""
    path = image.output_path if kind is RetentionTarget.OUTPUTS else image.original_location
    assert image.finished_at is not None  # retention_candidates only returns finished images
    if path is None:
        plan.skipped.append(SkippedItem(image.id, inbox.name, kind, None, "no file recorded"))
        return False
    roots = allowed_roots(inbox, kind)
    root = containing_root(path, roots)
    if root is None:
        folders = ", ".join(str(r) for r in roots)
        reason_text = f"outside the configured folders ({folders}): not touched"
        plan.skipped.append(SkippedItem(image.id, inbox.name, kind, path, reason_text))
        return False
    size = _matching_size(path, image, kind)
    sidecars = tuple(_sidecars(path, root)) if kind is RetentionTarget.FAILED else ()
    item = RetentionItem(
        image_id=image.id,
        inbox=inbox.name,
        kind=kind,
        path=path,
        root=str(root),
        bytes=size or 0,
        reason=reason,
        finished_at=image.finished_at,
        missing=size is None,
        sidecars=sidecars,
    )
    plan.items.append(item)
    return True


def _matching_size(path: str, image: Image, kind: RetentionTarget) -> int | None:
    """The file's size when it is the file the row describes; ``None`` when gone or replaced by another file."""
    try:
        st = os.stat(path, follow_symlinks=False)
    except OSError:
        return None
    if not os.path.isfile(path) or os.path.islink(path):
        return None
    if kind is RetentionTarget.OUTPUTS:
        recorded = image.output_size
        return st.st_size if recorded is None or recorded == st.st_size else None
    if path == image.source_path:  # still where it was discovered: a new file may have taken the old name
        if image.source_size is not None and image.source_size != st.st_size:
            return None
        if image.source_mtime_ns is not None and image.source_mtime_ns != st.st_mtime_ns:
            return None
    return st.st_size


def _sidecars(path: str, root: Path) -> Iterator[str]:
    candidate = path + ERROR_SUFFIX
    if os.path.isfile(candidate) and containing_root(candidate, (root,)) is not None:
        yield candidate
