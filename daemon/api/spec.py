"""How a view declares itself for the OpenAPI document: each blueprint module exports ``OPERATIONS``.

The document is generated from these declarations (see :mod:`daemon.api.openapi`), and a test compares them with
the app's URL map in both directions, so a route cannot exist undocumented nor a documented route vanish.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from daemon.api.params import Choices, Field

JSON = "application/json"


@dataclass(frozen=True)
class Reply:
    """One documented response."""

    description: str
    schema: dict[str, Any] | None = None
    """JSON Schema (or ``{"$ref": ...}``) of a JSON body; ``None`` with ``content_type`` for binary bodies."""
    content_type: str = JSON
    headers: tuple[str, ...] = ()


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    """OpenAPI form: ``/api/v1/images/{image_id}``."""
    operation_id: str
    summary: str
    tag: str
    description: str = ""
    path_params: tuple[Field, ...] = ()
    query: tuple[Field, ...] = ()
    body: tuple[Field, ...] | None = None
    """Fields of a JSON object body; ``None`` = no body."""
    body_schema: Callable[[Choices], dict[str, Any]] | None = None
    """Builds a hand-written JSON body schema from the settings' choices (replaces ``body``)."""
    body_required: bool = False
    multipart: tuple[Field, ...] | None = None
    """Fields of a multipart/form-data body (``file`` is the binary part)."""
    responses: dict[int, Reply] = field(default_factory=dict)
    errors: tuple[int, ...] = ()
    """Problem responses beyond the ones every operation has (401, 405, 500)."""
    public: bool = False
    """No bearer token needed."""


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}
