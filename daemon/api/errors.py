"""Errors as RFC 9457 ``application/problem+json``: every 4xx/5xx the API sends has ``status``, ``title`` and a
``detail`` a person can act on. Storage errors map to their status here, so views just let them propagate."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from flask import Flask, Response, json, request
from werkzeug.exceptions import HTTPException
from werkzeug.http import HTTP_STATUS_CODES

import storage

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"


class Problem(HTTPException):
    """An error with any status and extra members (e.g. ``errors``: one line per invalid field)."""

    def __init__(self, status: int, detail: str, *, headers: dict[str, str] | None = None, **extra: Any) -> None:
        super().__init__(description=detail)
        self.code = status
        self.extra = extra
        self.extra_headers = headers or {}


def problem_response(status: int, detail: str, headers: dict[str, str] | None = None, **extra: Any) -> Response:
    body = {
        "type": "about:blank",
        "title": HTTP_STATUS_CODES.get(status, "Error"),
        "status": status,
        "detail": detail,
        "instance": request.path,
        **extra,
    }
    response = Response(json.dumps(body), status=status, mimetype=PROBLEM_JSON)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(storage.NotFound, lambda exc: problem_response(404, str(exc)))
    app.register_error_handler(storage.StateConflict, lambda exc: problem_response(409, str(exc)))
    app.register_error_handler(storage.InvalidQuery, lambda exc: problem_response(400, str(exc)))
    app.register_error_handler(Exception, _unexpected)


def _http_error(exc: HTTPException) -> Response | HTTPException:
    status = exc.code or 500
    if status < 400:  # routing redirects (e.g. a missing trailing slash) stay what they are
        return exc
    headers = {
        name: value for name, value in exc.get_headers() if name.lower() not in ("content-type", "content-length")
    }
    extra: dict[str, Any] = {}
    if isinstance(exc, Problem):
        headers.update(exc.extra_headers)
        extra = exc.extra
    detail = exc.description or HTTP_STATUS_CODES.get(status, "error")
    if status == 405:
        detail = f"{request.method} is not allowed on {request.path}; allowed: {headers.get('Allow', 'none')}"
    elif status == 404 and not isinstance(exc, Problem) and detail.startswith("The requested URL was not found"):
        detail = f"no such resource: {request.path}"
    elif status == 413 and not isinstance(exc, Problem):
        detail = "the request body is larger than the server accepts"
    return problem_response(status, detail, headers, **extra)


def _unexpected(exc: Exception) -> Response:
    """Never a stack trace to the client: a reference the admin finds in the log instead."""
    reference = uuid.uuid4().hex[:12]
    log.exception("unexpected error %s on %s %s", reference, request.method, request.path)
    return problem_response(500, f"internal error (reference {reference}; see the daemon log)", reference=reference)
