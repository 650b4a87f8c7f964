"""Intake: a settled file (from a watcher, a rescan or an upload) becomes a committed ``queued`` row.

The row is committed before any work starts, so nothing discovered is ever forgotten. Files already known at
the same path, size and mtime are skipped (rescans, restarts); the same content with the same model version and
parameters becomes a ``duplicate`` of the first (no second output). Content is not sniffed here: a file that is
not an image is queued like any other and fails in the worker with a recorded reason, through the one path every
bad file takes.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

import storage
from config import Settings

log = logging.getLogger(__name__)

HASH_CHUNK = 1 << 20


def hash_file(path: Path) -> str:
    """SHA-256 of the file's bytes, read in chunks (large scans never load whole)."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class IntakeRequest:
    """A file that has stopped changing inside an inbox."""

    inbox: str
    path: Path
    relative: Path
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class IntakeOutcome:
    image_id: int
    state: str
    already_known: bool


class Intake:
    """Turns settled files into database rows; one instance is shared by the watcher thread and the API.

    ``read_sessions`` (``storage.session_factory(engine, readonly=True)``) serve the "already known?" checks, which the
    watcher makes for every file of every rescan: write sessions would take SQLite's write lock for each of them and
    queue behind the worker's commits. Without it the write sessions are used for those checks too.
    """

    def __init__(
        self,
        settings: Settings,
        sessions: sessionmaker[Session],
        model_version: str,
        clock: Callable[[], datetime] = storage.utcnow,
        *,
        read_sessions: sessionmaker[Session] | None = None,
    ) -> None:
        self._settings = settings
        self._sessions = sessions
        self._read_sessions = sessions if read_sessions is None else read_sessions
        self._model_version = model_version
        self._clock = clock

    def parameters_for(self, inbox: str) -> dict[str, Any]:
        """The enhancement parameters an inbox's profile asks for (recorded with the image, part of the dedup key)."""
        profile = self._settings.profile(self._settings.inbox(inbox).profile)
        parameters: dict[str, Any] = {"strength": profile.strength}
        if profile.model:
            parameters["model"] = profile.model
        if profile.ensemble:
            parameters["ensemble"] = profile.ensemble
        return parameters

    def is_known(self, path: Path, size: int, mtime_ns: int) -> bool:
        """Whether this file (same path, size and mtime) already has a row; a read, never waiting for the writer."""
        return self._find_known(str(path), size, mtime_ns) is not None

    def submit(self, request: IntakeRequest) -> IntakeOutcome:
        """Record ``request`` (idempotent for an unchanged file). Raises OSError if the file cannot be read."""
        source = str(request.path)
        known = self._find_known(source, request.size, request.mtime_ns)
        if known is not None:
            return known
        content_hash = hash_file(request.path)  # outside the transaction: hashing a large file must not hold the lock
        with self._sessions.begin() as session:
            known = storage.find_known(session, source, request.size, request.mtime_ns)
            if known is not None:
                return IntakeOutcome(known.id, str(known.state), already_known=True)
            image = storage.intake(
                session,
                storage.NewImage(
                    inbox=request.inbox,
                    source_path=source,
                    relative_path=request.relative.as_posix(),
                    content_hash=content_hash,
                    source_size=request.size,
                    source_mtime_ns=request.mtime_ns,
                    model_version=self._model_version,
                    parameters=self.parameters_for(request.inbox),
                ),
                now=self._clock(),
            )
            outcome = IntakeOutcome(image.id, str(image.state), already_known=False)
        log.info("intake %s -> image %d (%s)", source, outcome.image_id, outcome.state)
        return outcome

    def _find_known(self, source: str, size: int, mtime_ns: int) -> IntakeOutcome | None:
        """The row already recorded for this file, read without the write lock (``submit`` checks again under it)."""
        with self._read_sessions() as session:
            known = storage.find_known(session, source, size, mtime_ns)
            return None if known is None else IntakeOutcome(known.id, str(known.state), already_known=True)
