"""What happens to an original once its output is committed: kept, moved to the archive, or deleted.

Always after the commit, so a crash can never lose an original whose result is not recorded; a crash between the
commit and the file operation is finished by :meth:`Originals.settle` at the next start (the moved copy is
recognised by its content hash, see :func:`daemon.worker.files.find_copy`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

import storage
from config import InboxSettings, OriginalsPolicy
from core.atomicfile import fsync_folder
from daemon.worker.files import find_copy, link_to_free_name, remove_quietly
from daemon.worker.naming import error_note, mirrored
from daemon.worker.plan import Place
from storage import Image

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OriginalRequest:
    """An original whose image was just committed ``done``, and where it is."""

    image_id: int
    inbox: InboxSettings
    relative: str
    source: Path
    place: Place
    record_place: bool


@dataclass(frozen=True)
class OriginalAction:
    """What became of an original, to be recorded: moved to ``moved_to``, or ``deleted``."""

    image_id: int
    moved_to: Path | None = None
    deleted: bool = False


class Originals:
    """Applies an inbox's ``originals`` policy and records it."""

    def __init__(self, sessions: sessionmaker[Session], clock: Callable[[], datetime]) -> None:
        self._sessions = sessions
        self._clock = clock

    def after_done(
        self, image_id: int, inbox: InboxSettings, relative: str, source: Path, place: Place, record_place: bool
    ) -> bool:
        """Apply the policy to the original of a freshly committed image and record it; False: try again later."""
        return self.finish([OriginalRequest(image_id, inbox, relative, source, place, record_place)])

    def finish(self, requests: Sequence[OriginalRequest]) -> bool:
        """Apply and record the policy for several committed images; False when some must be tried again later."""
        actions, ok = self.apply(requests)
        try:
            self.record(actions)
        except storage.StorageError as error:
            log.warning("recording what became of %d original(s) failed: %s", len(actions), error)
            return False
        return ok

    def apply(self, requests: Sequence[OriginalRequest]) -> tuple[list[OriginalAction], bool]:
        """Do the file operations; returns what to record, and False when some must be retried later.

        Archiving links every original into the archive, fsyncs those folders once, then removes the originals and
        fsyncs their folders once: an original is never gone before its archived name is durable, and a group of
        moves costs two fsyncs per folder instead of two per file.
        """
        actions: list[OriginalAction] = []
        unlink: list[tuple[OriginalRequest, Path | None]] = []
        ok = True
        for request in requests:
            if request.place is Place.ARCHIVE:
                continue  # a reprocess from the archive: the original stays there
            policy = request.inbox.originals
            try:
                if request.place is Place.FAILED:
                    remove_quietly(error_note(request.source))  # it failed before; it does not any more
                if policy is OriginalsPolicy.KEEP:
                    if request.record_place:
                        actions.append(OriginalAction(request.image_id, moved_to=request.source))
                elif policy is OriginalsPolicy.ARCHIVE:
                    base = mirrored(request.inbox.archive, request.relative)
                    target, linked = link_to_free_name(request.source, base)
                    if linked:
                        unlink.append((request, target))
                    else:
                        actions.append(OriginalAction(request.image_id, moved_to=target))
                else:
                    unlink.append((request, None))
            except OSError as error:
                ok = False
                log.warning(
                    "image %d: %s policy not applied to %s yet: %s", request.image_id, policy, request.source, error
                )
        for folder in {target.parent for _, target in unlink if target is not None}:
            fsync_folder(folder)
        removed: set[Path] = set()
        for request, target in unlink:
            try:
                request.source.unlink(missing_ok=True)
            except OSError as error:
                ok = False
                log.warning("image %d: could not remove %s: %s", request.image_id, request.source, error)
                continue
            removed.add(request.source.parent)
            if target is None:
                actions.append(OriginalAction(request.image_id, deleted=True))
                log.info("image %d: original deleted (%s)", request.image_id, request.source)
            else:
                actions.append(OriginalAction(request.image_id, moved_to=target))
                log.info("image %d: original archived to %s", request.image_id, target)
        for folder in removed:
            fsync_folder(folder)
        return actions, ok

    def record(self, actions: Sequence[OriginalAction]) -> None:
        """Record what became of these originals, in one transaction."""
        if not actions:
            return
        now = self._clock()
        with self._sessions.begin() as session:
            for action in actions:
                if action.deleted:
                    storage.mark_original_deleted(session, action.image_id, now=now)
                elif action.moved_to is not None:
                    storage.mark_original_moved(session, action.image_id, str(action.moved_to), now=now)

    def settle(self, image: Image, inbox: InboxSettings) -> None:
        """Finish the policy for a ``done`` image whose original was neither moved nor deleted (recovery)."""
        source = Path(image.source_path)
        exists = source.is_file()
        if inbox.originals is OriginalsPolicy.ARCHIVE:
            base = mirrored(inbox.archive, image.relative_path)
            copy = find_copy(base, image.content_hash, image.source_size)
            if copy is not None and (not exists or os.path.samefile(copy, source)):
                if exists:
                    remove_quietly(source)  # the move linked the copy, then stopped before the unlink
                self.record([OriginalAction(image.id, moved_to=copy)])
                log.info("image %d: recovered the archived original %s", image.id, copy)
                return
            if exists:
                self.after_done(image.id, inbox, image.relative_path, source, Place.INBOX, False)
                return
            log.warning("image %d: its original %s is missing; nothing to archive", image.id, source)
            return
        if inbox.originals is OriginalsPolicy.DELETE:
            if exists:
                remove_quietly(source)
            self.record([OriginalAction(image.id, deleted=True)])
            log.info("image %d: original deleted (recovered)", image.id)
