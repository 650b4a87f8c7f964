"""``GET /metrics``: Prometheus text from the daemon's own registry (open, like every exporter)."""

from __future__ import annotations

from flask import Blueprint, Response

from daemon.api.spec import Operation, Reply
from daemon.api.state import app_state
from daemon.metrics import CONTENT_TYPE

OPERATIONS = (
    Operation(
        "GET",
        "/metrics",
        "getMetrics",
        "Prometheus metrics",
        "metrics",
        description="Queue depth by state, processed/failed totals, processing seconds, batch fill, out-of-memory "
        "splits, watcher restarts, rescan finds, retention deletions, model and device info.",
        responses={200: Reply("Prometheus text exposition format 0.0.4.", None, "text/plain")},
        public=True,
    ),
)


def blueprint() -> Blueprint:
    bp = Blueprint("metrics", __name__)

    @bp.get("/metrics")
    def metrics() -> Response:
        return Response(app_state().context.metrics.render(), content_type=CONTENT_TYPE)

    return bp
