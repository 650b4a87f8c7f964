"""Which rows retention may act on, oldest first; the daemon deletes the files and records it (``mark_deleted``...).

Candidates per target:
- ``outputs``: ``done`` images with an output, finished before the cutoff;
- ``originals``: ``done``/``duplicate``/``deleted`` images whose original still exists (kept in the inbox or archived);
- ``failed``: ``failed`` images whose original (in the failed folder) still exists.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from storage.models import Image, ImageState


class RetentionTarget(StrEnum):
    """The kinds of files retention deletes, each with its own age limit."""

    OUTPUTS = "outputs"
    ORIGINALS = "originals"
    FAILED = "failed"


def _condition(target: RetentionTarget) -> ColumnElement[bool]:
    if target is RetentionTarget.OUTPUTS:
        return (Image.state == ImageState.DONE) & Image.output_path.is_not(None)
    states = (
        [ImageState.FAILED]
        if target is RetentionTarget.FAILED
        else [ImageState.DONE, ImageState.DUPLICATE, ImageState.DELETED]
    )
    return Image.state.in_(states) & Image.original_deleted_at.is_(None)


def retention_candidates(
    session: Session,
    target: RetentionTarget,
    *,
    inbox: str,
    older_than: datetime | None,
    limit: int | None = None,
) -> list[Image]:
    """Images of ``inbox`` whose ``target`` files may go, finished before ``older_than`` (``None``: any age; used
    for the disk ceiling), oldest finished first."""
    query = select(Image).where(Image.inbox == inbox, _condition(target), Image.finished_at.is_not(None))
    if older_than is not None:
        query = query.where(Image.finished_at < older_than)
    query = query.order_by(Image.finished_at, Image.id)
    return list(session.scalars(query.limit(limit) if limit is not None else query))


def output_bytes(session: Session, *, inbox: str) -> int:
    """Total recorded size of the outputs of ``inbox`` that still exist (for the disk ceiling)."""
    query = select(func.coalesce(func.sum(Image.output_size), 0)).where(
        Image.inbox == inbox, _condition(RetentionTarget.OUTPUTS)
    )
    return int(session.scalar(query) or 0)
