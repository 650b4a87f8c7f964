"""Database rows as the JSON the API returns (shapes documented in :mod:`daemon.api.schemas`)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from storage import SCORE_COLUMNS, Event

PREFIX = "/api/v1"


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def image_dict(row: Mapping[str, Any]) -> dict[str, Any]:
    """An image record from a :func:`storage.image_rows` mapping: the contract's keys (``id``, ``state``,
    ``source_path``, ``output_path``, ``error``, ``scores`` ``{before, after}``) plus what admins need to understand
    its history."""
    image_id = row["id"]
    base = f"{PREFIX}/images/{image_id}"
    deleted_at = row["original_deleted_at"]
    scores = row["scores"]
    return {
        "id": image_id,
        "state": row["state"].value,
        "inbox": row["inbox"],
        "source_path": row["source_path"],
        "relative_path": row["relative_path"],
        "output_path": row["output_path"],
        "archive_path": row["archive_path"],
        "original_path": None if deleted_at is not None else (row["archive_path"] or row["source_path"]),
        "original_deleted_at": iso(deleted_at),
        "error": row["error"],
        "format": row["format"],
        "width": row["width"],
        "height": row["height"],
        "source_size": row["source_size"],
        "output_size": row["output_size"],
        "content_hash": row["content_hash"],
        "duplicate_of": row["duplicate_of"],
        "attempts": row["attempts"],
        "model_version": row["model_version"],
        "parameters": dict(row["parameters"] or {}),
        "device": row["device"],
        "timings": row["timings"],
        "created_at": iso(row["created_at"]),
        "updated_at": iso(row["updated_at"]),
        "started_at": iso(row["started_at"]),
        "finished_at": iso(row["finished_at"]),
        "next_attempt_at": iso(row["next_attempt_at"]),
        "scores": {"before": _scores(scores["before"]), "after": _scores(scores["after"])},
        "links": {
            "self": base,
            "original": f"{base}/original",
            "output": f"{base}/output",
            "preview": f"{base}/preview",
            "heatmap": f"{base}/heatmap",
            "events": f"{PREFIX}/events?image_id={image_id}",
        },
    }


def _scores(values: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The analyser keys as one flat mapping (columns over ``extra``), as :meth:`storage.Score.as_dict` does."""
    if values is None:
        return None
    extra = values.get("extra") or {}
    return {**extra, **{name: values[name] for name in SCORE_COLUMNS}}


def event_dict(event: Event) -> dict[str, Any]:
    return {
        "id": event.id,
        "image_id": event.image_id,
        "kind": event.kind.value,
        "at": iso(event.at),
        "detail": event.detail,
    }
