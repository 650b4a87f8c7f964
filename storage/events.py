"""The append-only audit trail: every state change writes one event in the same transaction."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from storage.models import Event, EventKind
from storage.pages import Page, check_limit, decode_cursor, encode_cursor
from storage.types import utcnow


def add_event(
    session: Session,
    kind: EventKind,
    *,
    image_id: int | None = None,
    detail: Mapping[str, Any] | None = None,
    now: datetime | None = None,
) -> Event:
    """Append one event (not flushed: it is written with the caller's commit)."""
    event = Event(image_id=image_id, kind=kind, at=now or utcnow(), detail=dict(detail) if detail else None)
    session.add(event)
    return event


def list_events(
    session: Session,
    *,
    image_id: int | None = None,
    kinds: Sequence[EventKind] = (),
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 100,
    cursor: str | None = None,
) -> Page[Event]:
    """Events oldest first (by id, so pages are stable while new events arrive); ``since`` inclusive, ``until`` not."""
    check_limit(limit)
    query = select(Event).order_by(Event.id).limit(limit + 1)
    if image_id is not None:
        query = query.where(Event.image_id == image_id)
    if kinds:
        query = query.where(Event.kind.in_(list(kinds)))
    if since is not None:
        query = query.where(Event.at >= since)
    if until is not None:
        query = query.where(Event.at < until)
    if cursor is not None:
        query = query.where(Event.id > decode_cursor(cursor, "events", descending=False))
    rows = list(session.scalars(query))
    more = len(rows) > limit
    rows = rows[:limit]
    return Page(rows, encode_cursor("events", rows[-1].id, descending=False) if more else None)
