"""Read-only listings as plain rows (mappings), for the API's hot paths.

Building ORM objects (identity map, instrumentation, the ``selectin`` load of scores) costs most of a listing's time;
pages of up to 1,000 images are only turned into JSON, so they are read as Core rows: the filter and cursor logic is
:mod:`storage.listing`'s own, only the final fetch differs.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from storage.listing import ImageFilter, _filtered
from storage.models import Image, Score
from storage.pages import Page, check_limit, decode_cursor, encode_cursor

IMAGES = Image.__table__
SCORES = Score.__table__


def list_image_rows(
    session: Session,
    filters: ImageFilter | None = None,
    *,
    limit: int = 50,
    cursor: str | None = None,
    newest_first: bool = False,
) -> Page[dict[str, Any]]:
    """Like :func:`storage.list_images` (same filters, order and cursors), but each item is a mapping of the image's
    columns plus ``scores``: ``{"before": {...} | None, "after": {...} | None}`` (score columns and ``extra``)."""
    check_limit(limit)
    order = Image.id.desc() if newest_first else Image.id
    query = _filtered(select(Image.id), filters or ImageFilter()).order_by(order).limit(limit + 1)
    if cursor is not None:
        last = decode_cursor(cursor, "images", descending=newest_first)
        query = query.where(Image.id < last if newest_first else Image.id > last)
    ids = list(session.scalars(query))
    more = len(ids) > limit
    ids = ids[:limit]
    rows = image_rows(session, ids)
    return Page(rows, encode_cursor("images", ids[-1], descending=newest_first) if more else None)


def image_rows(session: Session, ids: Sequence[int]) -> list[dict[str, Any]]:
    """The images with these ids as mappings with their scores, in the order of ``ids`` (missing ids are skipped)."""
    if not ids:
        return []
    found = session.execute(select(IMAGES).where(IMAGES.c.id.in_(ids))).mappings().all()
    images = {row["id"]: dict(row) for row in found}
    scores: dict[int, dict[str, Any]] = defaultdict(dict)
    for row in session.execute(select(SCORES).where(SCORES.c.image_id.in_(ids))).mappings().all():
        values = dict(row)
        image_id, phase = values.pop("image_id"), values.pop("phase")
        scores[image_id][phase.value] = values
    result = []
    for image_id in ids:
        image = images.get(image_id)
        if image is not None:
            phases = scores.get(image_id, {})
            image["scores"] = {"before": phases.get("before"), "after": phases.get("after")}
            result.append(image)
    return result
