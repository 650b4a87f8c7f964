"""``GET /api/v1/health``: a liveness probe for load balancers and systemd checks; open, no database access."""

from __future__ import annotations

from typing import Any

from flask import Blueprint

from daemon.api.spec import Operation, Reply, ref
from daemon.api.state import app_state

OPERATIONS = (
    Operation(
        "GET",
        "/api/v1/health",
        "getHealth",
        "Liveness: the API answers",
        "health",
        responses={200: Reply("The daemon's API is up.", ref("Health"))},
        public=True,
    ),
)


def blueprint() -> Blueprint:
    bp = Blueprint("health", __name__, url_prefix="/api/v1")

    @bp.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "time": app_state().context.clock().isoformat()}

    return bp
