"""Cursor pagination: pages are ordered by id, and a cursor is an opaque token naming the last id seen.

Ordering by the primary key keeps pages stable: rows inserted or changed while a client pages through never make it
skip or repeat a row (new rows simply appear on later pages, or not at all when paging newest-first).
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Generic, TypeVar

from storage.errors import InvalidQuery

T = TypeVar("T")

MAX_PAGE_SIZE = 1000
"""Largest ``limit`` a listing accepts."""


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of results; ``next_cursor`` is ``None`` on the last page."""

    items: list[T]
    next_cursor: str | None


def check_limit(limit: int) -> None:
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise InvalidQuery(f"limit must be between 1 and {MAX_PAGE_SIZE}, got {limit}")


def encode_cursor(listing: str, last_id: int, *, descending: bool) -> str:
    payload = json.dumps({"l": listing, "id": last_id, "d": descending}, separators=(",", ":"))
    return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, listing: str, *, descending: bool) -> int:
    """The last id of the previous page; refuses cursors of another listing or ordering."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        payload = json.loads(raw)
        last_id, ok = payload["id"], payload["l"] == listing and payload["d"] is descending
    except (binascii.Error, ValueError, TypeError, KeyError, UnicodeDecodeError):
        raise InvalidQuery("malformed cursor") from None
    if not ok or not isinstance(last_id, int) or isinstance(last_id, bool):
        raise InvalidQuery("cursor belongs to another listing or ordering")
    return last_id
