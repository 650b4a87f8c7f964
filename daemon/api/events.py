"""``GET /api/v1/events``: the audit trail (discovered, queued, started, done, failed, reprocessed, deleted, ...),
oldest first by id, filterable by image, kind and time, cursor-paginated."""

from __future__ import annotations

from typing import Any

from flask import Blueprint

import storage
from daemon.api.params import MAX_INT, Field, parse_query
from daemon.api.serialize import event_dict
from daemon.api.spec import Operation, Reply, ref
from daemon.api.state import app_state
from storage import EventKind

DEFAULT_LIMIT = 100

EVENT_FIELDS = (
    Field("image_id", "integer", "Only events of this image.", minimum=1, maximum=MAX_INT),
    Field(
        "kind",
        "array",
        "Only these kinds (comma-separated or repeated).",
        enum=tuple(k.value for k in EventKind),
        max_items=len(EventKind),
    ),
    Field("since", "datetime", "At or after (ISO 8601 with zone, or a date = 00:00 UTC)."),
    Field("until", "datetime", "Before."),
    Field("limit", "integer", "Page size.", minimum=1, maximum=storage.MAX_PAGE_SIZE, default=DEFAULT_LIMIT),
    Field("cursor", "string", "`next_cursor` of the previous page.", max_length=200),
)

OPERATIONS = (
    Operation(
        "GET",
        "/api/v1/events",
        "listEvents",
        "The audit trail",
        "events",
        query=EVENT_FIELDS,
        responses={200: Reply("One page, oldest first.", ref("EventPage"))},
        errors=(400,),
    ),
)


def blueprint() -> Blueprint:
    bp = Blueprint("events", __name__, url_prefix="/api/v1")

    @bp.get("/events")
    def list_events() -> dict[str, Any]:
        values = parse_query(EVENT_FIELDS)
        with app_state().read_sessions() as session:
            page = storage.list_events(
                session,
                image_id=values.get("image_id"),
                kinds=[EventKind(kind) for kind in values.get("kind", ())],
                since=values.get("since"),
                until=values.get("until"),
                limit=values["limit"],
                cursor=values.get("cursor"),
            )
            items = [event_dict(event) for event in page.items]
        return {"items": items, "next_cursor": page.next_cursor, "limit": values["limit"]}

    return bp
