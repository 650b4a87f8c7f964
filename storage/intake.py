"""Intake: a discovered file becomes a ``queued`` row (or a ``duplicate`` of an earlier one) before any work starts.

Duplicates are found by content hash + model version + parameters. Two intakes of the same content running at the
same moment in different transactions may both queue it (no lock is taken): the daemon has one intake thread, and the
cost of the race is one extra output, never a lost file.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from storage.events import add_event
from storage.models import EventKind, Image, ImageState
from storage.types import utcnow

DUPLICATE_TARGET_STATES = (ImageState.QUEUED, ImageState.PROCESSING, ImageState.DONE)
"""An image can be the original of duplicates while it is on its way to an output or has one."""


@dataclass(frozen=True)
class NewImage:
    """What the watcher (or an upload) knows about a file when it hands it over."""

    inbox: str
    source_path: str
    relative_path: str
    content_hash: str | None
    source_size: int | None = None
    source_mtime_ns: int | None = None
    format: str | None = None
    model_version: str | None = None
    parameters: Mapping[str, Any] = field(default_factory=dict)


def parameters_key(parameters: Mapping[str, Any]) -> str:
    """A stable hash of ``parameters``: key order does not matter and 1 equals 1.0."""
    canonical = json.dumps(_canonical(dict(parameters)), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _canonical(value: Any) -> Any:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, Mapping):
        return {str(key): _canonical(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_canonical(item) for item in value]
    return str(value)


def find_duplicate_target(
    session: Session, content_hash: str, model_version: str | None, params_key: str
) -> Image | None:
    """The first (lowest id) queued, processing or done image with the same content, model and parameters."""
    version = Image.model_version.is_(None) if model_version is None else Image.model_version == model_version
    query = (
        select(Image)
        .where(Image.content_hash == content_hash, version, Image.parameters_key == params_key)
        .where(Image.state.in_(DUPLICATE_TARGET_STATES))
        .order_by(Image.id)
        .limit(1)
    )
    return session.scalars(query).first()


def intake(session: Session, new: NewImage, *, now: datetime | None = None) -> Image:
    """Insert ``new`` as ``queued`` (events: discovered, queued), or as ``duplicate`` of an earlier image.

    The row is flushed, so its ``id`` is set; the caller commits.
    """
    now = now or utcnow()
    key = parameters_key(new.parameters)
    target = find_duplicate_target(session, new.content_hash, new.model_version, key) if new.content_hash else None
    image = Image(
        inbox=new.inbox,
        source_path=new.source_path,
        relative_path=new.relative_path,
        content_hash=new.content_hash,
        source_size=new.source_size,
        source_mtime_ns=new.source_mtime_ns,
        format=new.format,
        model_version=new.model_version,
        parameters=dict(new.parameters),
        parameters_key=key,
        state=ImageState.DUPLICATE if target else ImageState.QUEUED,
        duplicate_of=target.id if target else None,
        attempts=0,
        next_attempt_at=now,
        created_at=now,
        updated_at=now,
        finished_at=now if target else None,
    )
    session.add(image)
    session.flush()
    add_event(session, EventKind.DISCOVERED, image_id=image.id, detail={"source_path": new.source_path}, now=now)
    if target:
        add_event(session, EventKind.DUPLICATE, image_id=image.id, detail={"duplicate_of": target.id}, now=now)
    else:
        add_event(session, EventKind.QUEUED, image_id=image.id, now=now)
    return image


def find_known(session: Session, source_path: str, size: int | None, mtime_ns: int | None) -> Image | None:
    """The newest image discovered at ``source_path`` with this size and mtime: a rescan skips such files.

    Every state counts (a done file kept in its inbox must not be queued again on the next rescan).
    """
    query = (
        select(Image)
        .where(Image.source_path == source_path, Image.source_size == size, Image.source_mtime_ns == mtime_ns)
        .order_by(Image.id.desc())
        .limit(1)
    )
    return session.scalars(query).first()


def images_at_path(session: Session, source_path: str) -> list[Image]:
    """Every image ever discovered at ``source_path``, oldest first."""
    return list(session.scalars(select(Image).where(Image.source_path == source_path).order_by(Image.id)))
