"""Send images back to the queue with other settings: ``POST /api/v1/images/{id}/reprocess`` and, by filter,
``POST /api/v1/reprocess``.

The API only changes rows (the worker reaches the API through storage alone): the image returns to ``queued`` with
the new parameters merged over the old ones; the worker later starts from the kept or archived original and
replaces the output atomically, and the events keep the history. An image whose original is gone cannot be
reprocessed: 409 saying so. ``model`` must name a model the daemon knows (``builtin``, ``[worker] model`` or a
profile's model), never an arbitrary path from a client.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from flask import Blueprint, Response, jsonify

import storage
from config import Settings
from config.defaults import WORKER_ENSEMBLE_SIZES
from daemon.api.errors import Problem
from daemon.api.files import original_file
from daemon.api.filters import FILTER_FIELDS, has_condition, image_filter
from daemon.api.images import IMAGE_ID, load
from daemon.api.params import Field, parse_json
from daemon.api.spec import Operation, Reply, ref
from daemon.api.state import app_state
from storage import REPROCESSABLE, Image

MAX_BULK = 10_000
"""Most images one bulk request requeues; larger sets are sent again (``truncated`` says so)."""

PARAMETER_FIELDS = (
    Field(
        "strength",
        "number",
        "Enhancement strength: 0 returns the input unchanged, 1 is the full effect.",
        minimum=0.0,
        maximum=1.0,
    ),
    Field(
        "model",
        "string",
        "A model the daemon knows: `builtin`, `[worker] model` or a profile's model.",
        max_length=200,
        choices="models",
    ),
    Field(
        "ensemble",
        "integer",
        "Views the model averages for this image: 1, 2, 4 or 8 (better restoration for N times the model time); "
        "the default is the inbox profile's, else `[worker] ensemble`.",
        values=WORKER_ENSEMBLE_SIZES,
    ),
)

BULK_FIELDS = (
    Field(
        "filter",
        "object",
        "Which images: the filter keys of GET /api/v1/images (at least one condition).",
        required=True,
        fields=FILTER_FIELDS,
        min_properties=1,
    ),
    *PARAMETER_FIELDS,
    Field("limit", "integer", "Most images to requeue in this request.", minimum=1, maximum=MAX_BULK, default=1000),
    Field("dry_run", "boolean", "Only report what would be requeued.", default=False),
)

OPERATIONS = (
    Operation(
        "POST",
        "/api/v1/images/{image_id}/reprocess",
        "reprocessImage",
        "Enhance an image again, optionally with another strength, model or ensemble",
        "reprocess",
        description="409 when the image is still queued or processing, or when its original is gone.",
        path_params=(IMAGE_ID,),
        body=PARAMETER_FIELDS,
        responses={202: Reply("Queued again.", ref("Reprocessed"))},
        errors=(400, 404, 409, 415, 422),
    ),
    Operation(
        "POST",
        "/api/v1/reprocess",
        "reprocessImages",
        "Enhance every image matching a filter again",
        "reprocess",
        description="Only images in a reprocessable state (done, failed, duplicate, deleted) whose original still "
        "exists are requeued; the others are listed in `skipped` with the reason. A filter without `state` "
        "means every reprocessable state.",
        body=BULK_FIELDS,
        body_required=True,
        responses={
            200: Reply("Dry run: what would be requeued.", ref("BulkReprocessed")),
            202: Reply("Queued again.", ref("BulkReprocessed")),
        },
        errors=(400, 415, 422),
    ),
)


def blueprint() -> Blueprint:
    bp = Blueprint("reprocess", __name__, url_prefix="/api/v1")

    @bp.post("/images/<int:image_id>/reprocess")
    def reprocess_one(image_id: int) -> Response:
        context = app_state().context
        parameters = _parameters(context.settings, parse_json(PARAMETER_FIELDS))
        with context.sessions.begin() as session:
            image = load(session, image_id)
            original = _original_or_409(context.settings, image)
            image = storage.requeue_for_reprocess(session, image_id, parameters, now=context.clock())
            body = {
                "id": image.id,
                "state": image.state.value,
                "parameters": dict(image.parameters),
                "original_path": str(original),
            }
        response = jsonify(body)
        response.status_code = 202
        return response

    @bp.post("/reprocess")
    def reprocess_many() -> Response:
        context = app_state().context
        values = parse_json(BULK_FIELDS, body_required=True)
        conditions = values["filter"]
        if not has_condition(conditions):
            raise Problem(
                422,
                "filter must name at least one condition (e.g. state, inbox, a score bound or a date)",
                errors=["filter: no condition"],
            )
        parameters = _parameters(context.settings, values)
        filters = image_filter(conditions)
        if not filters.states:
            filters = _with_states(filters, REPROCESSABLE)
        limit, dry_run = values["limit"], values["dry_run"]
        requeued: list[int] = []
        skipped: list[dict[str, Any]] = []
        with app_state().read_sessions() as session:
            ids = storage.image_ids(session, filters, limit=limit + 1)
            matched = storage.count_images(session, filters) if len(ids) > limit else len(ids)
        truncated = len(ids) > limit
        ids = ids[:limit]
        now = context.clock()
        for start in range(0, len(ids), 500):  # short transactions: the worker keeps committing in between
            with context.sessions.begin() as session:
                for image_id in ids[start : start + 500]:
                    reason = _refusal(context.settings, load(session, image_id))
                    if reason is None and not dry_run:
                        try:
                            with session.begin_nested():  # a row the worker changed meanwhile is only skipped
                                storage.requeue_for_reprocess(session, image_id, parameters, now=now)
                        except storage.StateConflict as exc:
                            reason = str(exc)
                    if reason is None:
                        requeued.append(image_id)
                    else:
                        skipped.append({"id": image_id, "reason": reason})
        body = {
            "dry_run": dry_run,
            "matched": matched,
            "truncated": truncated,
            "requeued": requeued,
            "skipped": skipped,
        }
        response = jsonify(body)
        response.status_code = 200 if dry_run else 202
        return response

    return bp


def _parameters(settings: Settings, values: dict[str, Any]) -> dict[str, Any]:
    parameters: dict[str, Any] = {}
    if "strength" in values:
        parameters["strength"] = float(values["strength"])
    if "model" in values:
        known = known_models(settings)
        if values["model"] not in known:
            raise Problem(
                422,
                f"unknown model {values['model'][:100]!r}; known: {', '.join(sorted(known))}",
                errors=["model: unknown"],
            )
        parameters["model"] = values["model"]
    if "ensemble" in values:
        parameters["ensemble"] = int(values["ensemble"])
    return parameters


def known_models(settings: Settings) -> set[str]:
    return {"builtin", settings.worker.model, *(p.model for p in settings.profiles if p.model)}


def _original_or_409(settings: Settings, image: Image) -> Any:
    if image.state not in REPROCESSABLE:
        raise storage.StateConflict(image.id, image.state.value, [s.value for s in REPROCESSABLE])
    reason = _refusal(settings, image)
    if reason is not None:
        raise Problem(409, reason)
    return original_file(settings, image)


def _refusal(settings: Settings, image: Image) -> str | None:
    """Why ``image`` cannot be reprocessed now, or ``None``."""
    if image.state not in REPROCESSABLE:
        return f"image {image.id} is {image.state.value}"
    if image.original_deleted_at is not None:
        return (
            f"the original of image {image.id} is gone (deleted at {image.original_deleted_at.isoformat()}); "
            "nothing to start from"
        )
    if original_file(settings, image) is None:
        return f"the original of image {image.id} is gone from {image.original_location}; nothing to start from"
    return None


def _with_states(filters: storage.ImageFilter, states: Any) -> storage.ImageFilter:
    return dataclasses.replace(filters, states=tuple(states))
