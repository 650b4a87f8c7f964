"""``GET /api/v1/images`` (filtered, cursor-paginated, stable order) and ``GET /api/v1/images/{id}``."""

from __future__ import annotations

from typing import Any

from flask import Blueprint

import storage
from daemon.api.filters import FILTER_FIELDS, image_filter
from daemon.api.params import MAX_INT, Field, parse_query
from daemon.api.serialize import image_dict
from daemon.api.spec import Operation, Reply, ref
from daemon.api.state import app_state

DEFAULT_LIMIT = 50

IMAGE_ID = Field("image_id", "integer", "The image's id.", minimum=1, maximum=MAX_INT, required=True)

LIST_FIELDS: tuple[Field, ...] = (
    *FILTER_FIELDS,
    Field("limit", "integer", "Page size.", minimum=1, maximum=storage.MAX_PAGE_SIZE, default=DEFAULT_LIMIT),
    Field("cursor", "string", "`next_cursor` of the previous page.", max_length=200),
    Field("order", "string", "By id: `asc` (oldest first) or `desc` (newest first).", enum=("asc", "desc")),
)

OPERATIONS = (
    Operation(
        "GET",
        "/api/v1/images",
        "listImages",
        "List images, filtered by state, inbox, score ranges and dates",
        "images",
        description="Ordered by id, so pages never skip or repeat a row while the daemon works. A cursor only "
        "continues the listing (filters and order) it came from.",
        query=LIST_FIELDS,
        responses={200: Reply("One page.", ref("ImagePage"))},
        errors=(400,),
    ),
    Operation(
        "GET",
        "/api/v1/images/{image_id}",
        "getImage",
        "One image with its scores before and after",
        "images",
        path_params=(IMAGE_ID,),
        responses={200: Reply("The image record.", ref("Image"))},
        errors=(404,),
    ),
)


def load(session: Any, image_id: int) -> storage.Image:
    """The image, or 404 (ids beyond the column's range cannot exist and never reach the driver)."""
    if not 1 <= image_id <= MAX_INT:
        raise storage.NotFound(image_id)
    return storage.get_image(session, image_id)


def blueprint() -> Blueprint:
    bp = Blueprint("images", __name__, url_prefix="/api/v1")

    @bp.get("/images")
    def list_images() -> dict[str, Any]:
        values = parse_query(LIST_FIELDS)
        with app_state().read_sessions() as session:
            page = storage.list_image_rows(
                session,
                image_filter(values),
                limit=values["limit"],
                cursor=values.get("cursor"),
                newest_first=values.get("order") == "desc",
            )
            items = [image_dict(image) for image in page.items]
        return {"items": items, "next_cursor": page.next_cursor, "limit": values["limit"]}

    @bp.get("/images/<int:image_id>")
    def get_image(image_id: int) -> dict[str, Any]:
        rows = []
        if 1 <= image_id <= MAX_INT:
            with app_state().read_sessions() as session:
                rows = storage.image_rows(session, [image_id])
        if not rows:
            raise storage.NotFound(image_id)
        return image_dict(rows[0])

    return bp
