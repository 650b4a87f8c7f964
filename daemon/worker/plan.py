"""From claimed rows to tasks: where each original is now, and the output name it will be written under.

Output names are chosen for the whole batch in one transaction that also records them (``storage.reserve_outputs``)
before any file is written: a name is free when no other image has it as output or reservation, no file is there,
and no other image of the batch took it. An image's own previous output (a reprocess) and its own reservation (a
retry after a crash) are reused, so they are replaced instead of being joined by a ``-1`` sibling.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

import storage
from config import InboxSettings, OutputFormat, Settings
from core.imageio import DEFAULT_JPEG_QUALITY, format_extension, sniff_format
from daemon.worker.files import find_copy, sha256_file
from daemon.worker.naming import choose_free, mirrored, output_name
from daemon.worker.outcome import Outcome, OutcomeKind
from storage import Image

log = logging.getLogger(__name__)

_PILLOW_FORMATS = {
    OutputFormat.PNG: "PNG",
    OutputFormat.JPEG: "JPEG",
    OutputFormat.WEBP: "WEBP",
    OutputFormat.TIFF: "TIFF",
}


class Place(StrEnum):
    """Where the original of a task is now."""

    INBOX = "inbox"
    ARCHIVE = "archive"
    FAILED = "failed"


@dataclass(frozen=True)
class Task:
    """One claimed image, ready for the pipeline."""

    image_id: int
    attempts: int
    inbox: InboxSettings
    relative: str
    source: Path
    place: Place
    record_place: bool
    """The database still names the inbox although the file was found elsewhere (a move a crash interrupted)."""
    content_hash: str | None
    output: Path
    output_format: str
    """Pillow name of the format written (consistent with ``output``'s extension)."""
    stale_outputs: tuple[Path, ...]
    """This image's earlier outputs under other names, deleted once the new one is committed."""
    strength: float
    model: str | None
    jpeg_quality: int | None
    ensemble: int | None = None
    """Views the model averages for this image (None: the engine's own, ``[worker] ensemble``)."""


@dataclass(frozen=True)
class _Located:
    image: Image
    inbox: InboxSettings
    source: Path
    place: Place
    record_place: bool


class Planner:
    """Turns claimed rows into tasks (or immediate outcomes) and reserves their output names."""

    def __init__(self, settings: Settings, sessions: sessionmaker[Session], owner: str) -> None:
        self._settings = settings
        self._sessions = sessions
        self._owner = owner

    def plan(self, images: Sequence[Image], now: datetime) -> tuple[list[Task], list[Outcome]]:
        located: list[_Located] = []
        outcomes: list[Outcome] = []
        for image in images:
            found = self._locate(image)
            if isinstance(found, Outcome):
                outcomes.append(found)
            else:
                located.append(found)
        if not located:
            return [], outcomes
        with self._sessions.begin() as session:
            pending = storage.pending_outputs(session)
            tasks: list[Task] = []
            batch_names: set[Path] = set()
            for item in located:
                tasks.append(self._task(session, item, pending, batch_names))
            reservations = {task.image_id: str(task.output) for task in tasks}
            storage.reserve_outputs(session, reservations, owner=self._owner, now=now)
        return tasks, outcomes

    # --- where the original is --------------------------------------------------------------------------------------

    def _locate(self, image: Image) -> _Located | Outcome:
        try:
            inbox = self._settings.inbox(image.inbox)
        except KeyError:
            return _failed(image, f"inbox {image.inbox!r} is no longer configured")
        location = image.original_location
        if location is None:
            return _failed(image, "the original was deleted; there is nothing to process")
        source = Path(location)
        place = self._place(inbox, image)
        if source.is_file():
            if place is Place.INBOX:
                changed = self._changed_since_intake(image, source)
                if changed is not None:
                    return changed
            return _Located(image, inbox, source, place, record_place=False)
        if place is Place.INBOX and image.output_path is None:
            # a permanent failure moves the file before it is recorded: a crash in between leaves it in failed/
            copy = find_copy(mirrored(inbox.failed, image.relative_path), image.content_hash, image.source_size)
            if copy is not None:
                return _Located(image, inbox, copy, Place.FAILED, record_place=True)
            return Outcome(image.id, OutcomeKind.RETRY, f"{source}: the file is no longer in the inbox")
        return _failed(image, f"the original is gone: {source} no longer exists")

    @staticmethod
    def _place(inbox: InboxSettings, image: Image) -> Place:
        if image.archive_path is None:
            return Place.INBOX
        return Place.FAILED if Path(image.archive_path).is_relative_to(inbox.failed) else Place.ARCHIVE

    @staticmethod
    def _changed_since_intake(image: Image, source: Path) -> Outcome | None:
        """A file rewritten after it was discovered is a new version: the watcher queues it as its own image."""
        try:
            stat = source.stat()
        except OSError:
            return None  # decoding will say what is wrong
        if image.source_size is None or (stat.st_size, stat.st_mtime_ns) == (image.source_size, image.source_mtime_ns):
            return None
        try:
            same = image.content_hash is not None and sha256_file(source) == image.content_hash
        except OSError:
            return None
        if same:
            return None  # touched, not changed
        return _failed(
            image,
            f"superseded: {source} changed after it was discovered; the new version is processed as a new image",
        )

    # --- the output name --------------------------------------------------------------------------------------------

    def _task(self, session: Session, item: _Located, reserved: dict[int, str], batch_names: set[Path]) -> Task:
        image, inbox = item.image, item.inbox
        pending = reserved.get(image.id)
        profile = self._settings.profile(inbox.profile)
        fmt = self._output_format(inbox, item.source)
        base = mirrored(inbox.output, image.relative_path, output_name(image.relative_path, format_extension(fmt)))
        own = [Path(p) for p in (image.output_path, pending) if p]
        reusable = [p for p in own if p.parent == base.parent and p.suffix == base.suffix and p not in batch_names]
        taken = self._taken(session, image.id, own, batch_names, reserved)
        target = reusable[0] if reusable else choose_free(base, taken)
        batch_names.add(target)
        stale = tuple(p for p in dict.fromkeys(own) if p != target)
        parameters = image.parameters or {}
        quality = profile.quality if profile.quality != DEFAULT_JPEG_QUALITY else None
        return Task(
            image_id=image.id,
            attempts=image.attempts,
            inbox=inbox,
            relative=image.relative_path,
            source=item.source,
            place=item.place,
            record_place=item.record_place,
            content_hash=image.content_hash,
            output=target,
            output_format=fmt,
            stale_outputs=stale,
            strength=float(parameters.get("strength", profile.strength)),
            model=parameters.get("model") or None,
            jpeg_quality=quality,
            ensemble=int(parameters.get("ensemble") or 0) or None,
        )

    @staticmethod
    def _output_format(inbox: InboxSettings, source: Path) -> str:
        """The Pillow format to write: the inbox's, or the source's own (by content) under ``same``."""
        if inbox.output_format is not OutputFormat.SAME:
            return _PILLOW_FORMATS[inbox.output_format]
        sniffed = sniff_format(source)
        try:
            format_extension(sniffed or "")
        except Exception:  # not an image we can write: decoding will fail; the name only has to be valid
            return "PNG"
        return "PNG" if sniffed == "GIF" else str(sniffed)

    @staticmethod
    def _taken(
        session: Session, image_id: int, own: list[Path], batch_names: set[Path], reserved: dict[int, str]
    ) -> Callable[[Path], bool]:
        def taken(path: Path) -> bool:
            if path in batch_names:
                return True
            if storage.output_paths_in_use(session, [str(path)], exclude_id=image_id, reserved=reserved):
                return True
            return os.path.lexists(path) and path not in own

        return taken


def _failed(image: Image, reason: str) -> Outcome:
    return Outcome(image.id, OutcomeKind.FAILED, reason)
