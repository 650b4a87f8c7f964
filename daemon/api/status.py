"""``GET /api/v1/status``: queue counts, totals and throughput from the database, merged with the daemon's live
facts (watchers, worker, device, model version) from ``ApiContext.status``.

The database numbers cost 100-190 ms on a large database, so they are shared between requests for about a second
(:class:`daemon.api.state.StaleWhileRevalidate`): fifty dashboards polling at once cost one query per second.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Response, jsonify

import storage
from daemon.api.context import ApiContext
from daemon.api.serialize import iso
from daemon.api.spec import Operation, Reply, ref
from daemon.api.state import app_state

log = logging.getLogger(__name__)

THROUGHPUT_WINDOW_SECONDS = 300.0
"""Images per minute are averaged over the last five minutes."""

OPERATIONS = (
    Operation(
        "GET",
        "/api/v1/status",
        "getStatus",
        "Queue counts, totals, throughput, device, model version, watcher health",
        "status",
        responses={200: Reply("What the daemon is doing.", ref("Status"))},
    ),
)

LIVE_DEFAULTS: dict[str, Any] = {"device": None, "precision": None, "model_version": None}


def database_numbers(context: ApiContext, sessions: Any) -> dict[str, Any]:
    """The part of the status the database knows (cached by the caller)."""
    now = context.clock()
    with sessions() as session:
        numbers = storage.status_numbers(session, now=now, window_seconds=THROUGHPUT_WINDOW_SECONDS)
        paused = storage.is_paused(session)
    counts = {state.value: count for state, count in numbers.counts.items()}
    return {
        "as_of": now.isoformat(),
        "queue": {
            "counts": counts,
            "depth": counts["queued"] + counts["processing"],
            "paused": paused,
            "oldest_queued_at": iso(numbers.oldest_queued_at),
        },
        "totals": {"processed": numbers.processed_total, "failed": numbers.failed_total},
        "throughput": {
            "images_per_minute": round(numbers.images_per_minute, 3),
            "window_seconds": numbers.window_seconds,
            "processed_in_window": numbers.processed_in_window,
        },
    }


def blueprint() -> Blueprint:
    bp = Blueprint("status", __name__, url_prefix="/api/v1")

    @bp.get("/status")
    def status() -> Response:
        state = app_state()
        numbers, refresh = state.status.get()
        try:
            live = dict(state.context.status())
        except Exception as exc:  # the numbers are still worth having when the daemon's report fails
            log.exception("status callable failed")
            live = {"status_error": str(exc)}
        body = {**LIVE_DEFAULTS, "watchers": {}, "worker": {}, **live, "status": "ok", **numbers}
        response = jsonify(body)
        if refresh is not None:
            response.call_on_close(refresh)
        return response

    return bp
