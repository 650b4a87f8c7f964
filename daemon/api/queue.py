"""``GET /api/v1/queue``, ``POST /api/v1/queue/pause`` and ``/resume``: the worker stops claiming new images while
paused (it reads the flag through storage); a batch in flight finishes. The flag survives restarts."""

from __future__ import annotations

from typing import Any

from flask import Blueprint

import storage
from daemon.api.params import parse_json
from daemon.api.spec import Operation, Reply, ref
from daemon.api.state import app_state

OPERATIONS = (
    Operation(
        "GET",
        "/api/v1/queue",
        "getQueue",
        "Whether the queue is paused",
        "queue",
        responses={200: Reply("The flag.", ref("Queue"))},
    ),
    Operation(
        "POST",
        "/api/v1/queue/pause",
        "pauseQueue",
        "Stop claiming new images (the batch in flight finishes)",
        "queue",
        body=(),
        responses={200: Reply("Paused.", ref("Queue"))},
        errors=(400, 415, 422),
    ),
    Operation(
        "POST",
        "/api/v1/queue/resume",
        "resumeQueue",
        "Claim images again",
        "queue",
        body=(),
        responses={200: Reply("Running.", ref("Queue"))},
        errors=(400, 415, 422),
    ),
)


def blueprint() -> Blueprint:
    bp = Blueprint("queue", __name__, url_prefix="/api/v1/queue")

    @bp.get("")
    def get_queue() -> dict[str, Any]:
        with app_state().read_sessions() as session:
            return {"paused": storage.is_paused(session)}

    @bp.post("/pause")
    def pause() -> dict[str, Any]:
        return _set(True)

    @bp.post("/resume")
    def resume() -> dict[str, Any]:
        return _set(False)

    return bp


def _set(paused: bool) -> dict[str, Any]:
    parse_json(())  # no fields: an empty body or {}; anything else is refused
    context = app_state().context
    with context.sessions.begin() as session:
        changed = storage.set_paused(session, paused, now=context.clock(), by="api")
    return {"paused": paused, "changed": changed}
