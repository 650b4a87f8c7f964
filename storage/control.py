"""Runtime switches the API sets and the daemon reads: the queue's paused flag and retention policy overrides.

They live in the ``kv`` table so they survive restarts and reach the worker through storage only.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from storage.events import add_event
from storage.models import EventKind, KeyValue
from storage.types import utcnow

PAUSED_KEY = "queue.paused"
"""``true`` while the worker must not claim new images."""

RETENTION_KEY = "retention.overrides"
"""JSON object of retention policy overrides set with ``PUT /api/v1/retention`` (its shape is the API's)."""


def get_value(session: Session, key: str, default: Any = None) -> Any:
    """The stored JSON value of ``key``, or ``default``."""
    value = session.scalar(select(KeyValue.value).where(KeyValue.key == key))
    return default if value is None else value


def set_value(session: Session, key: str, value: Any, *, now: datetime | None = None) -> None:
    """Insert or replace ``key`` in one statement (no read-then-write race between two writers)."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    row = {"key": key, "value": value, "updated_at": now or utcnow()}
    stmt = insert(KeyValue).values(**row)
    stmt = stmt.on_conflict_do_update(
        index_elements=[KeyValue.key], set_={"value": value, "updated_at": row["updated_at"]}
    )
    session.execute(stmt)


def is_paused(session: Session) -> bool:
    return bool(get_value(session, PAUSED_KEY, False))


def set_paused(session: Session, paused: bool, *, now: datetime | None = None, by: str | None = None) -> bool:
    """Pause or resume claiming; returns whether the flag changed (only a change writes an event)."""
    if is_paused(session) == paused:
        return False
    now = now or utcnow()
    set_value(session, PAUSED_KEY, paused, now=now)
    add_event(session, EventKind.PAUSED if paused else EventKind.RESUMED, detail={"by": by} if by else None, now=now)
    return True


def get_retention_overrides(session: Session) -> dict[str, Any]:
    return dict(get_value(session, RETENTION_KEY, {}))


def set_retention_overrides(session: Session, overrides: Mapping[str, Any], *, now: datetime | None = None) -> None:
    set_value(session, RETENTION_KEY, dict(overrides), now=now)
