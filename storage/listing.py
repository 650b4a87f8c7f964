"""Read side for the API and status: filtered image listings with cursor pagination, counts, throughput.

Score filters (``min_scores`` / ``max_scores``, keyed by analyser column) apply to one phase, ``before`` by default:
admins look for originals that were noisy, blurry or low quality. An image without scores of that phase does not match
a score filter. They are an ``id IN (SELECT image_id FROM scores ...)`` over covering indexes, which stays fast
whether a filter matches few images or nearly all (a join sorted every matching row; a correlated EXISTS scanned every
image for a rare one). Datetimes in filters must be timezone-aware.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from storage.errors import InvalidQuery
from storage.models import SCORE_COLUMNS, Event, EventKind, Image, ImageState, Score, ScorePhase
from storage.pages import Page, check_limit, decode_cursor, encode_cursor


@dataclass(frozen=True)
class ImageFilter:
    """Conditions of an image listing; all given conditions must hold. ``*_from`` is inclusive, ``*_to`` exclusive."""

    states: Sequence[ImageState] = ()
    inbox: str | None = None
    phase: ScorePhase = ScorePhase.BEFORE
    min_scores: Mapping[str, float] = field(default_factory=dict)
    max_scores: Mapping[str, float] = field(default_factory=dict)
    created_from: datetime | None = None
    created_to: datetime | None = None
    finished_from: datetime | None = None
    finished_to: datetime | None = None


@dataclass(frozen=True)
class StatusNumbers:
    """Queue depth and throughput for ``GET /api/v1/status`` and the metrics."""

    counts: dict[ImageState, int]
    processed_total: int
    """``done`` events ever (a reprocessed image counts again)."""
    failed_total: int
    processed_in_window: int
    window_seconds: float
    oldest_queued_at: datetime | None

    @property
    def images_per_minute(self) -> float:
        return self.processed_in_window * 60.0 / self.window_seconds if self.window_seconds > 0 else 0.0


def list_images(
    session: Session,
    filters: ImageFilter | None = None,
    *,
    limit: int = 50,
    cursor: str | None = None,
    newest_first: bool = False,
) -> Page[Image]:
    """One page of images matching ``filters``, ordered by id (ascending, or descending with ``newest_first``)."""
    check_limit(limit)
    order = Image.id.desc() if newest_first else Image.id
    query = _filtered(select(Image.id), filters or ImageFilter()).order_by(order).limit(limit + 1)
    if cursor is not None:
        last = decode_cursor(cursor, "images", descending=newest_first)
        query = query.where(Image.id < last if newest_first else Image.id > last)
    ids = list(session.scalars(query))  # ids first: sorting narrow index entries, not whole rows
    more = len(ids) > limit
    ids = ids[:limit]
    rows = {image.id: image for image in session.scalars(select(Image).where(Image.id.in_(ids)))} if ids else {}
    return Page([rows[i] for i in ids], encode_cursor("images", ids[-1], descending=newest_first) if more else None)


def image_ids(session: Session, filters: ImageFilter, *, limit: int | None = None) -> list[int]:
    """Ids of every image matching ``filters``, ascending (bulk reprocess)."""
    query = _filtered(select(Image.id), filters).order_by(Image.id)
    return list(session.scalars(query.limit(limit) if limit is not None else query))


def count_images(session: Session, filters: ImageFilter) -> int:
    return int(session.scalar(_filtered(select(func.count()).select_from(Image), filters)) or 0)


def _filtered(query: Select[Any], f: ImageFilter) -> Select[Any]:
    if f.states:
        query = query.where(Image.state.in_(list(f.states)))
    if f.inbox is not None:
        query = query.where(Image.inbox == f.inbox)
    for column, bound, op in (
        (Image.created_at, f.created_from, "ge"),
        (Image.created_at, f.created_to, "lt"),
        (Image.finished_at, f.finished_from, "ge"),
        (Image.finished_at, f.finished_to, "lt"),
    ):
        if bound is not None:
            query = query.where(column >= bound if op == "ge" else column < bound)
    if f.min_scores or f.max_scores:
        bounds = [_score_column(name) >= value for name, value in f.min_scores.items()]
        bounds += [_score_column(name) <= value for name, value in f.max_scores.items()]
        query = query.where(Image.id.in_(select(Score.image_id).where(Score.phase == f.phase, *bounds)))
    return query


def _score_column(name: str) -> Any:
    if name not in SCORE_COLUMNS:
        raise InvalidQuery(f"unknown score {name!r}; filterable scores: {', '.join(SCORE_COLUMNS)}")
    return getattr(Score, name)


def count_by_state(session: Session, *, inbox: str | None = None) -> dict[ImageState, int]:
    """Number of images in each state (every state present, zeros included)."""
    query = select(Image.state, func.count()).group_by(Image.state)
    if inbox is not None:
        query = query.where(Image.inbox == inbox)
    counts = dict.fromkeys(ImageState, 0)
    counts.update({state: int(n) for state, n in session.execute(query)})
    return counts


def status_numbers(session: Session, *, now: datetime, window_seconds: float = 300.0) -> StatusNumbers:
    """Counts by state, lifetime totals and the throughput of the last ``window_seconds``."""
    since = now - timedelta(seconds=window_seconds)
    oldest = select(func.min(Image.created_at)).where(Image.state == ImageState.QUEUED)
    return StatusNumbers(
        counts=count_by_state(session),
        processed_total=_count_events(session, EventKind.DONE),
        failed_total=_count_events(session, EventKind.FAILED),
        processed_in_window=_count_events(session, EventKind.DONE, since=since),
        window_seconds=window_seconds,
        oldest_queued_at=session.scalar(oldest),
    )


def _count_events(session: Session, kind: EventKind, *, since: datetime | None = None) -> int:
    query = select(func.count()).select_from(Event).where(Event.kind == kind)
    if since is not None:
        query = query.where(Event.at >= since)
    return int(session.scalar(query) or 0)
