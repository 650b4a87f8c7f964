"""The durable queue: claiming with leases, and every state transition of an image.

Each transition is one guarded ``UPDATE ... WHERE id = ? AND state IN (...) [AND lease_owner = ?]``: if another
worker, the lease reaper or the API changed the row first, nothing is written and :class:`StateConflict` is raised,
so correctness never depends on the isolation level. Each transition appends its event in the same transaction.

Claiming is one ``WITH due AS MATERIALIZED (SELECT ... LIMIT n) UPDATE ... WHERE id IN (SELECT id FROM due)
RETURNING``. On PostgreSQL the SELECT takes ``FOR UPDATE SKIP LOCKED``, so concurrent claimers skip each other's rows
instead of waiting; the CTE is evaluated exactly once (a plain ``IN (subquery)`` may be re-run per row by the planner,
skip the rows this very statement already updated, and claim more than ``n``). On SQLite the session's
``BEGIN IMMEDIATE`` (see :mod:`storage.engine`) makes writers take turns, so two claimers can never see the same
queued row.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from storage.errors import NotFound, StateConflict
from storage.events import add_event
from storage.intake import parameters_key
from storage.models import SCORE_COLUMNS, EventKind, Image, ImageState, Score, ScorePhase

_INSERT_BY_DIALECT = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}
"""The dialects' INSERT, which has ``on_conflict_do_update``; storage supports these two databases."""

_CLEAR_LEASE: dict[str, Any] = {"lease_owner": None, "lease_expires_at": None}
REPROCESSABLE = (ImageState.DONE, ImageState.FAILED, ImageState.DUPLICATE, ImageState.DELETED)
"""States from which an image can be sent back to the queue with (new) parameters."""


def retry_delay(attempts: int, base_seconds: float, max_seconds: float) -> float:
    """Exponential backoff: ``base * 2**(attempts - 1)``, capped at ``max_seconds``."""
    return min(max_seconds, base_seconds * 2.0 ** max(0, attempts - 1))


def claim_batch(session: Session, owner: str, limit: int, lease_seconds: float, now: datetime) -> list[Image]:
    """Move up to ``limit`` due queued images (oldest id first) to ``processing``, leased to ``owner``.

    Counts an attempt and writes a ``started`` event per image. Does not look at the paused flag (the worker does).
    """
    due = (
        select(Image.id)
        .where(Image.state == ImageState.QUEUED, Image.next_attempt_at <= now)
        .order_by(Image.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .cte("due")
        .prefix_with("MATERIALIZED")
    )
    claim = (
        update(Image)
        .where(Image.id.in_(select(due.c.id)), Image.state == ImageState.QUEUED)
        .values(
            state=ImageState.PROCESSING,
            lease_owner=owner,
            lease_expires_at=now + timedelta(seconds=lease_seconds),
            attempts=Image.attempts + 1,
            started_at=now,
            updated_at=now,
        )
        .returning(Image.id)
        .execution_options(synchronize_session=False)
    )
    ids = sorted(session.scalars(claim))
    for image_id in ids:
        add_event(session, EventKind.STARTED, image_id=image_id, detail={"owner": owner}, now=now)
    return _load(session, ids)


def renew_leases(
    session: Session, owner: str, image_ids: Collection[int], lease_seconds: float, now: datetime
) -> list[int]:
    """Extend the leases ``owner`` still holds; returns those renewed (a missing id means the lease was lost)."""
    if not image_ids:
        return []
    renew = (
        update(Image)
        .where(Image.id.in_(list(image_ids)), Image.state == ImageState.PROCESSING, Image.lease_owner == owner)
        .values(lease_expires_at=now + timedelta(seconds=lease_seconds), updated_at=now)
        .returning(Image.id)
        .execution_options(synchronize_session=False)
    )
    ids = sorted(session.scalars(renew))
    _expire(session, ids)
    return ids


def requeue_expired_leases(session: Session, now: datetime, *, max_attempts: int | None = None) -> list[Image]:
    """Return ``processing`` images whose lease expired (their worker died) to the queue, due at once.

    Images that have already used ``max_attempts`` claims fail instead: an image that crashes the daemon every time
    must not crash it forever.
    """
    expired = (Image.state == ImageState.PROCESSING, Image.lease_expires_at < now)
    error = f"gave up after {max_attempts} attempts: the worker stopped (lease expired) each time"
    failed_ids: list[int] = []
    if max_attempts is not None:
        exhausted = (*expired, Image.attempts >= max_attempts)
        failed_ids = _bulk(session, exhausted, state=ImageState.FAILED, error=error, finished_at=now, now=now)
    requeued_ids = _bulk(session, expired, state=ImageState.QUEUED, next_attempt_at=now, now=now)
    for image_id in requeued_ids:
        add_event(session, EventKind.LEASE_EXPIRED, image_id=image_id, now=now)
    for image_id in failed_ids:
        add_event(session, EventKind.FAILED, image_id=image_id, detail={"error": error}, now=now)
    return _load(session, sorted(failed_ids + requeued_ids))


def release_claims(session: Session, owner: str, image_ids: Collection[int], now: datetime) -> list[int]:
    """Give unfinished claims back on shutdown: queued again, due at once, the attempt not counted."""
    if not image_ids:
        return []
    release = (
        update(Image)
        .where(Image.id.in_(list(image_ids)), Image.state == ImageState.PROCESSING, Image.lease_owner == owner)
        .values(
            state=ImageState.QUEUED, attempts=Image.attempts - 1, next_attempt_at=now, updated_at=now, **_CLEAR_LEASE
        )
        .returning(Image.id)
        .execution_options(synchronize_session=False)
    )
    ids = sorted(session.scalars(release))
    for image_id in ids:
        add_event(session, EventKind.QUEUED, image_id=image_id, detail={"released_by": owner}, now=now)
    _expire(session, ids)
    return ids


def mark_done(
    session: Session,
    image_id: int,
    *,
    output_path: str,
    now: datetime,
    owner: str | None = None,
    output_size: int | None = None,
    before: Mapping[str, Any] | None = None,
    after: Mapping[str, Any] | None = None,
    timings: Mapping[str, Any] | None = None,
    device: str | None = None,
    model_version: str | None = None,
    format: str | None = None,
    notes: Sequence[str] = (),
) -> None:
    """``processing`` → ``done`` with the output and what was measured; ``owner`` (if given) must hold the lease.

    ``format`` is the decoded source's format; ``notes`` (e.g. "multi-page TIFF: processed page 1 of 3") go into
    the ``done`` event so the audit trail says what was, and was not, processed. Returns nothing: the worker
    records whole batches while the API is being read, so this writes without reading the row back (read it with
    :func:`get_image`).
    """
    values: dict[str, Any] = {"output_path": output_path, "output_size": output_size, "error": None}
    values |= {"timings": dict(timings) if timings else None, "device": device, "finished_at": now, **_CLEAR_LEASE}
    if model_version is not None:
        values["model_version"] = model_version
    if format is not None:
        values["format"] = format
    if before is not None:
        values |= {key: before[key] for key in ("width", "height") if before.get(key) is not None}
    _transition(session, image_id, (ImageState.PROCESSING,), ImageState.DONE, values, now=now, owner=owner)
    for phase, scores in ((ScorePhase.BEFORE, before), (ScorePhase.AFTER, after)):
        if scores is not None:
            record_scores(session, image_id, phase, scores)
    detail: dict[str, Any] = {"output_path": output_path}
    if notes:
        detail["notes"] = list(notes)
    add_event(session, EventKind.DONE, image_id=image_id, detail=detail, now=now)


def mark_failed(session: Session, image_id: int, error: str, *, now: datetime, owner: str | None = None) -> Image:
    """``queued``/``processing`` → ``failed`` for good (undecodable, unsupported, too large, out of attempts)."""
    allowed = (ImageState.QUEUED, ImageState.PROCESSING)
    values = {"error": error, "finished_at": now, **_CLEAR_LEASE}
    _transition(session, image_id, allowed, ImageState.FAILED, values, now=now, owner=owner)
    add_event(session, EventKind.FAILED, image_id=image_id, detail={"error": error}, now=now)
    return get_image(session, image_id)


def schedule_retry(
    session: Session, image_id: int, error: str, next_attempt_at: datetime, *, now: datetime, owner: str | None = None
) -> Image:
    """``processing`` → ``queued`` after a transient failure, claimable again at ``next_attempt_at``.

    The attempt was already counted by the claim; the caller decides between this and :func:`mark_failed` by
    comparing ``image.attempts`` with its limit (see :func:`retry_delay`).
    """
    values = {"error": error, "next_attempt_at": next_attempt_at, **_CLEAR_LEASE}
    _transition(session, image_id, (ImageState.PROCESSING,), ImageState.QUEUED, values, now=now, owner=owner)
    detail = {"error": error, "next_attempt_at": next_attempt_at.isoformat()}
    add_event(session, EventKind.RETRIED, image_id=image_id, detail=detail, now=now)
    return get_image(session, image_id)


def mark_duplicate(
    session: Session, image_id: int, duplicate_of: int, *, now: datetime, owner: str | None = None
) -> Image:
    """``queued``/``processing`` → ``duplicate`` of ``duplicate_of`` (found after intake, e.g. once hashed)."""
    allowed = (ImageState.QUEUED, ImageState.PROCESSING)
    values = {"duplicate_of": duplicate_of, "finished_at": now, **_CLEAR_LEASE}
    _transition(session, image_id, allowed, ImageState.DUPLICATE, values, now=now, owner=owner)
    add_event(session, EventKind.DUPLICATE, image_id=image_id, detail={"duplicate_of": duplicate_of}, now=now)
    return get_image(session, image_id)


def requeue_for_reprocess(
    session: Session,
    image_id: int,
    parameters: Mapping[str, Any] | None = None,
    *,
    now: datetime,
    model_version: str | None = None,
) -> Image:
    """``done``/``failed``/``duplicate``/``deleted`` → ``queued`` with ``parameters`` merged over the old ones.

    Attempts and error are reset; the old output stays until the new one replaces it. Whether the original still
    exists is the caller's check (the API answers 409 when it is gone).
    """
    image = get_image(session, image_id)
    previous = image.state
    merged = {**image.parameters, **(parameters or {})}
    values: dict[str, Any] = {"parameters": merged, "parameters_key": parameters_key(merged), "attempts": 0}
    values |= {"error": None, "next_attempt_at": now, "duplicate_of": None, "started_at": None, "finished_at": None}
    if model_version is not None:
        values["model_version"] = model_version
    _transition(session, image_id, REPROCESSABLE, ImageState.QUEUED, values, now=now)
    detail = {"previous_state": previous.value, "parameters": merged}
    add_event(session, EventKind.REPROCESSED, image_id=image_id, detail=detail, now=now)
    return get_image(session, image_id)


def mark_original_moved(session: Session, image_id: int, archive_path: str, *, now: datetime) -> None:
    """Record that the original now lives at ``archive_path`` (archive or failed folder)."""
    _set(session, image_id, archive_path=archive_path, updated_at=now)
    add_event(session, EventKind.ARCHIVED, image_id=image_id, detail={"archive_path": archive_path}, now=now)


def mark_original_deleted(session: Session, image_id: int, *, now: datetime, reason: str = "policy") -> None:
    """Record that the original was removed (``originals = "delete"`` or retention)."""
    _set(session, image_id, original_deleted_at=now, updated_at=now)
    add_event(session, EventKind.ORIGINAL_DELETED, image_id=image_id, detail={"reason": reason}, now=now)


def mark_deleted(
    session: Session,
    image_id: int,
    *,
    now: datetime,
    original_deleted: bool = False,
    detail: Mapping[str, Any] | None = None,
) -> Image:
    """``done``/``failed``/``duplicate`` → ``deleted`` (retention removed its files; the row and scores stay).

    Idempotent: an image already ``deleted`` is returned unchanged, without a second event, so a retention run
    interrupted after its commit can simply run again.
    """
    image = get_image(session, image_id)
    if image.state is ImageState.DELETED:
        return image
    values: dict[str, Any] = {**_CLEAR_LEASE}
    if original_deleted and image.original_deleted_at is None:
        values["original_deleted_at"] = now
    allowed = (ImageState.DONE, ImageState.FAILED, ImageState.DUPLICATE)
    _transition(session, image_id, allowed, ImageState.DELETED, values, now=now)
    add_event(session, EventKind.DELETED, image_id=image_id, detail=dict(detail or {}), now=now)
    return get_image(session, image_id)


def record_scores(session: Session, image_id: int, phase: ScorePhase, values: Mapping[str, Any]) -> None:
    """Store the analyser's output for one phase, replacing earlier scores of that phase (reprocessing).

    Known keys fill their columns, anything else (except ``path``) goes to ``extra``. One ``INSERT ... ON CONFLICT
    DO UPDATE`` (SQLite and PostgreSQL spell it alike) instead of a read, then a write.
    """
    columns: dict[str, Any] = {name: values.get(name) for name in SCORE_COLUMNS}
    extra = {key: value for key, value in values.items() if key not in SCORE_COLUMNS and key != "path"}
    columns["extra"] = extra or None
    upsert = _INSERT_BY_DIALECT[session.get_bind().dialect.name](Score).values(image_id=image_id, phase=phase)
    upsert = upsert.values(**columns).on_conflict_do_update(index_elements=["image_id", "phase"], set_=columns)
    session.execute(upsert)
    cached = session.identity_map.get(session.identity_key(Score, (image_id, phase)))  # type: ignore[arg-type]
    if cached is not None:
        session.expire(cached)
    image = session.identity_map.get(session.identity_key(Image, image_id))  # type: ignore[arg-type]
    if image is not None:
        session.expire(image, ["scores"])


def get_image(session: Session, image_id: int) -> Image:
    """The image with this id, freshly read; :class:`NotFound` otherwise."""
    image = session.get(Image, image_id, populate_existing=True)
    if image is None:
        raise NotFound(image_id)
    return image


# --- helpers ----------------------------------------------------------------------------------------------------


def _transition(
    session: Session,
    image_id: int,
    allowed: Sequence[ImageState],
    target: ImageState,
    values: Mapping[str, Any],
    *,
    now: datetime,
    owner: str | None = None,
) -> None:
    """Compare-and-set the state; raise :class:`NotFound` / :class:`StateConflict` when the guard does not hold."""
    guard = [Image.id == image_id, Image.state.in_(list(allowed))]
    if owner is not None:
        guard.append(Image.lease_owner == owner)
    stmt = update(Image).where(*guard).values(state=target, updated_at=now, **values)
    result = session.execute(stmt.execution_options(synchronize_session=False))
    if result.rowcount != 1:  # type: ignore[attr-defined]
        image = get_image(session, image_id)
        lease = f" held by {owner!r} (lease owner is {image.lease_owner!r})" if owner is not None else ""
        raise StateConflict(image_id, image.state.value, [state.value for state in allowed], lease)
    _expire(session, [image_id])


def _bulk(session: Session, where: Sequence[Any], *, now: datetime, **values: Any) -> list[int]:
    stmt = update(Image).where(*where).values(updated_at=now, **_CLEAR_LEASE, **values).returning(Image.id)
    ids = list(session.scalars(stmt.execution_options(synchronize_session=False)))
    _expire(session, ids)
    return ids


def _set(session: Session, image_id: int, **values: Any) -> None:
    result = session.execute(
        update(Image).where(Image.id == image_id).values(**values).execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise NotFound(image_id)
    _expire(session, [image_id])


def _expire(session: Session, ids: Sequence[int]) -> None:
    """Forget cached copies of rows changed by a bulk UPDATE, so later reads in this session see the new values."""
    for image_id in ids:
        cached = session.identity_map.get(session.identity_key(Image, image_id))  # type: ignore[arg-type]
        if cached is not None:
            session.expire(cached)


def _load(session: Session, ids: Sequence[int]) -> list[Image]:
    if not ids:
        return []
    query = select(Image).where(Image.id.in_(list(ids))).order_by(Image.id).execution_options(populate_existing=True)
    return list(session.scalars(query))
