"""Queries for recovering after a crash: leases of workers known to be dead, originals whose policy is unfinished.

The worker calls these at start-up. Like every query here they take a Session and never commit.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from storage.models import Image, ImageState


def processing_owners(session: Session) -> dict[str, list[int]]:
    """Ids of ``processing`` images by lease owner."""
    owners: dict[str, list[int]] = {}
    query = select(Image.lease_owner, Image.id).where(Image.state == ImageState.PROCESSING).order_by(Image.id)
    for owner, image_id in session.execute(query):
        owners.setdefault(owner or "", []).append(image_id)
    return owners


def expire_leases(session: Session, owners: Collection[str], now: datetime) -> list[int]:
    """End the leases of ``owners`` at once (they are known to be dead); ``requeue_expired_leases`` then takes them.

    The attempt stays counted: an image that kills its worker must not be able to do so forever.
    """
    if not owners:
        return []
    expire = (
        update(Image)
        .where(Image.state == ImageState.PROCESSING, Image.lease_owner.in_(list(owners)))
        .values(lease_expires_at=now - timedelta(microseconds=1))
        .returning(Image.id)
        .execution_options(synchronize_session=False)
    )
    return sorted(session.scalars(expire))


def originals_pending(
    session: Session,
    inboxes: Collection[str],
    *,
    finished_after: datetime | None = None,
    after_id: int = 0,
    limit: int = 1000,
) -> list[Image]:
    """``done`` images of ``inboxes`` whose original was neither moved nor deleted, by id above ``after_id``.

    Under ``originals = "archive"`` or ``"delete"`` these are images whose worker stopped between the commit and the
    file operation.
    """
    if not inboxes:
        return []
    query = (
        select(Image)
        .where(
            Image.state == ImageState.DONE,
            Image.inbox.in_(list(inboxes)),
            Image.archive_path.is_(None),
            Image.original_deleted_at.is_(None),
            Image.id > after_id,
        )
        .order_by(Image.id)
        .limit(limit)
    )
    if finished_after is not None:
        query = query.where(Image.finished_at >= finished_after)
    return list(session.scalars(query))
