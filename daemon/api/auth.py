"""Bearer-token authentication for every route except the health check and the metrics.

The token comes resolved from config (the file, ``ENHANCERD_API_TOKEN`` or ``token_file``) and is compared in
constant time. With no token configured the API is open: config refuses that except on a loopback address (and
:class:`daemon.api.server.ApiServer` checks again), where only local users reach it, as with a database socket.
"""

from __future__ import annotations

import hmac
from collections.abc import Collection

from flask import Flask, Response, request

from daemon.api.errors import problem_response

REALM = "enhancerd"


def install_auth(app: Flask, token: str, open_paths: Collection[str]) -> None:
    """Refuse requests without ``Authorization: Bearer <token>`` (401 with ``WWW-Authenticate``)."""
    expected = token.encode()
    public = frozenset(open_paths)

    def check() -> Response | None:
        if not expected or request.path in public:
            return None
        header = request.headers.get("Authorization", "")
        scheme, _, given = header.partition(" ")
        if not header:
            return _refuse("this endpoint needs 'Authorization: Bearer <token>'", None)
        if scheme.lower() != "bearer" or not given.strip():
            return _refuse("use the Bearer scheme: 'Authorization: Bearer <token>'", "invalid_request")
        if not hmac.compare_digest(given.strip().encode(), expected):
            return _refuse("the bearer token is not valid", "invalid_token")
        return None

    app.before_request(check)


def _refuse(detail: str, error: str | None) -> Response:
    challenge = f'Bearer realm="{REALM}"' + (f', error="{error}"' if error else "")
    return problem_response(401, detail, {"WWW-Authenticate": challenge})
