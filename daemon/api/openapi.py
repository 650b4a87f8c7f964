"""``GET /api/v1/openapi.json``: the OpenAPI 3.1 document, generated from the ``OPERATIONS`` every blueprint module
declares (the same :class:`~daemon.api.params.Field` lists validate the requests)."""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

from flask import Blueprint

from daemon.api.params import Choices, object_schema
from daemon.api.schemas import COMPONENTS
from daemon.api.spec import JSON, Operation, Reply
from daemon.api.state import app_state

API_VERSION = "1.0.0"

OPERATIONS = (
    Operation(
        "GET",
        "/api/v1/openapi.json",
        "getOpenApi",
        "This document",
        "meta",
        responses={200: Reply("OpenAPI 3.1.", {"type": "object"})},
    ),
)

_ALWAYS = (500,)
_PROBLEM = {"$ref": "#/components/schemas/Problem"}


def build_document(
    operations: Iterable[Operation], choices: Choices | None = None, server_url: str | None = None
) -> dict[str, Any]:
    """The whole document for ``operations``; ``choices`` (inbox and model names) make it exact for one daemon."""
    choices = choices or {}
    paths: dict[str, dict[str, Any]] = {}
    for operation in operations:
        paths.setdefault(operation.path, {})[operation.method.lower()] = _operation(operation, choices)
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "enhancerd",
            "version": API_VERSION,
            "description": "Control plane of the enhancerd photo enhancer: status, images and their scores, "
            "uploads, previews, reprocessing, queue control, audit trail and retention. Errors are "
            "application/problem+json (RFC 9457).",
        },
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": copy.deepcopy(COMPONENTS),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    }
    if server_url:
        document["servers"] = [{"url": server_url}]
    return document


def _operation(operation: Operation, choices: Choices) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "operationId": operation.operation_id,
        "summary": operation.summary,
        "tags": [operation.tag],
        "responses": {},
    }
    if operation.description:
        spec["description"] = operation.description
    parameters = [
        {"name": field.name, "in": "path", "required": True, "schema": field.schema(choices)}
        for field in operation.path_params
    ]
    for field in operation.query:
        parameter: dict[str, Any] = {"name": field.name, "in": "query", "required": field.required}
        parameter["schema"] = field.schema(choices)
        if field.kind == "array":
            parameter |= {"style": "form", "explode": True}
        parameters.append(parameter)
    if parameters:
        spec["parameters"] = parameters
    body = _request_body(operation, choices)
    if body is not None:
        spec["requestBody"] = body
    for status, reply in sorted(operation.responses.items()):
        spec["responses"][str(status)] = _reply(reply)
    errors = set(operation.errors) | set(_ALWAYS) | (set() if operation.public else {401})
    for status in sorted(errors):
        spec["responses"][str(status)] = {
            "description": _ERROR_TEXT.get(status, "Error."),
            "content": {"application/problem+json": {"schema": _PROBLEM}},
        }
    if operation.public:
        spec["security"] = []
    return spec


def _request_body(operation: Operation, choices: Choices) -> dict[str, Any] | None:
    if operation.multipart is not None:
        properties = {
            field.name: {"type": "string", "format": "binary", "description": field.description}
            if field.name == "file"
            else field.schema(choices)
            for field in operation.multipart
        }
        required = [field.name for field in operation.multipart if field.required]
        schema = {"type": "object", "properties": properties, "required": required, "additionalProperties": False}
        return {"required": True, "content": {"multipart/form-data": {"schema": schema}}}
    if operation.body_schema is not None:
        schema = operation.body_schema(choices)
    elif operation.body is not None:
        schema = object_schema(operation.body, choices)
    else:
        return None
    return {"required": operation.body_required, "content": {JSON: {"schema": schema}}}


def _reply(reply: Reply) -> dict[str, Any]:
    result: dict[str, Any] = {"description": reply.description}
    if reply.schema is not None:
        result["content"] = {reply.content_type: {"schema": copy.deepcopy(reply.schema)}}
    else:
        result["content"] = {reply.content_type: {"schema": {"type": "string", "format": "binary"}}}
    if reply.headers:
        result["headers"] = {name: {"schema": {"type": "string"}} for name in reply.headers}
    return result


_ERROR_TEXT = {
    400: "Malformed request: bad query parameter, invalid JSON or cursor.",
    401: "Missing or invalid bearer token.",
    404: "No such image, or the file is gone.",
    409: "Conflicts with the image's state (still queued or processing, original gone) or a run in progress.",
    413: "Upload larger than [api] max_upload_mb.",
    415: "Wrong content type, or an upload that is not an accepted image.",
    422: "Well-formed JSON that breaks the schema: unknown field, wrong type, value out of range.",
    500: "Unexpected error (the detail carries a reference to the daemon log).",
    503: "Not available in this daemon (no intake, no analyser).",
}


def blueprint() -> Blueprint:
    bp = Blueprint("openapi", __name__, url_prefix="/api/v1")

    @bp.get("/openapi.json")
    def document() -> dict[str, Any]:
        return app_state().openapi

    return bp
