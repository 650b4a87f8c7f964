"""Output names the worker is about to write, recorded before the file exists.

A worker killed after writing an output but before committing ``done`` leaves a file that no row names. Without a
record, the retry would see an "unrelated" file at that name and write beside it with a suffix: one image, two
outputs. The reservation (a row of the key/value table per image, committed before the write) lets the retry
recognise the file as its own and replace it, and lets recovery delete such a file when the image never succeeds.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from storage.control import set_value
from storage.models import Image, KeyValue

PENDING_OUTPUT_PREFIX = "output.pending."
"""Key prefix of a reservation; the image id follows (``output.pending.42``)."""


def _key(image_id: int) -> str:
    return f"{PENDING_OUTPUT_PREFIX}{image_id}"


def reserve_outputs(session: Session, reservations: Mapping[int, str], *, owner: str, now: datetime) -> None:
    """Record that ``owner`` is about to write each image's output at the given path (replacing older records)."""
    for image_id, path in reservations.items():
        set_value(session, _key(image_id), {"path": path, "owner": owner}, now=now)


def pending_outputs(session: Session, image_ids: Collection[int] | None = None) -> dict[int, str]:
    """Reserved output paths by image id (all of them, or those of ``image_ids``)."""
    query = select(KeyValue.key, KeyValue.value)
    if image_ids is None:
        query = query.where(KeyValue.key.like(f"{PENDING_OUTPUT_PREFIX}%"))
    else:
        if not image_ids:
            return {}
        query = query.where(KeyValue.key.in_([_key(image_id) for image_id in image_ids]))
    found: dict[int, str] = {}
    for key, value in session.execute(query):
        suffix = key[len(PENDING_OUTPUT_PREFIX) :]
        if suffix.isdigit() and isinstance(value, dict) and isinstance(value.get("path"), str):
            found[int(suffix)] = value["path"]
    return found


def clear_pending_outputs(session: Session, image_ids: Collection[int]) -> None:
    """Forget the reservations of ``image_ids`` (in the transaction that records the image's outcome)."""
    if image_ids:
        session.execute(delete(KeyValue).where(KeyValue.key.in_([_key(image_id) for image_id in image_ids])))


def output_paths_in_use(
    session: Session,
    paths: Collection[str],
    *,
    exclude_id: int | None = None,
    reserved: Mapping[int, str] | None = None,
) -> set[str]:
    """Those of ``paths`` that another image (not ``exclude_id``) has as its output or has reserved.

    Every state counts: a ``deleted`` image's output path must not be handed to a new image, or the API and retention
    would mistake the newcomer's file for the old one's. ``reserved`` is :func:`pending_outputs` when the caller
    already read it in this transaction.
    """
    if not paths:
        return set()
    query = select(Image.output_path).where(Image.output_path.in_(list(paths)))
    if exclude_id is not None:
        query = query.where(Image.id != exclude_id)
    used = {path for path in session.scalars(query) if path is not None}
    wanted = set(paths)
    for image_id, path in (pending_outputs(session) if reserved is None else reserved).items():
        if image_id != exclude_id and path in wanted:
            used.add(path)
    return used
