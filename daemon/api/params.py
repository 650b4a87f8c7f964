"""Declared inputs: one :class:`Field` list per query string or JSON body is both the validator and the OpenAPI text,
so the document cannot drift from what the code accepts.

Status codes: a query string that does not parse or holds an unknown parameter is 400 (a typo such as
``min_nose_sigma`` must not silently match every image); a body that is not JSON is 400; a JSON body that parses but
breaks the schema (unknown field, wrong type, out of range) is 422; a body that is not JSON-typed is 415.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Literal

from flask import request
from werkzeug.datastructures import MultiDict

from daemon.api.errors import Problem

Choices = Mapping[str, Sequence[str]]
"""Sets of values known from the settings, by name: ``{"inboxes": (...), "models": (...)}``."""

Kind = Literal["integer", "number", "string", "boolean", "datetime", "array", "object"]

MAX_INT = 2**31 - 1
"""Ids are 32-bit integers in PostgreSQL: larger values cannot exist (and must not reach the driver)."""

MAX_NUMBER = 1e12
"""Bounds for free numeric filters: wide enough for every score, small enough to stay finite everywhere."""

NO_NUL = "^[^\\x00]*$"
"""Strings never contain NUL: PostgreSQL cannot store or compare it, so it is refused everywhere alike."""

EMPTY: Any = object()
"""What :func:`parse_json_value` returns for an empty body (``null`` is a body, and not an object)."""

_DATE_ONLY = re.compile(r"\d{4}-\d{2}-\d{2}")


@dataclass(frozen=True)
class Field:
    """One input: its name, JSON type, bounds and description (for validation and for OpenAPI)."""

    name: str
    kind: Kind
    description: str
    minimum: float | None = None
    maximum: float | None = None
    enum: tuple[str, ...] = ()
    """Allowed values (for ``array``: of its items)."""
    values: tuple[int, ...] = ()
    """Allowed values of an ``integer`` (documented as its enum)."""
    default: Any = None
    required: bool = False
    nullable: bool = False
    max_length: int | None = None
    max_items: int | None = None
    fields: tuple[Field, ...] = ()
    """Members of an ``object`` (validated recursively; unknown members refused)."""
    min_properties: int = 0
    choices: str | None = None
    """Name of a set of allowed values known only from the settings (``inboxes``, ``models``): documented as an enum
    in the live document; the view checks them (422)."""

    def schema(self, choices: Choices | None = None) -> dict[str, Any]:
        """The JSON Schema (OpenAPI 3.1) of this field; ``choices`` resolves :attr:`choices`."""
        if self.kind == "object":
            schema = object_schema(self.fields, choices)
            if self.min_properties:
                schema["minProperties"] = self.min_properties
        elif self.kind == "array":
            items: dict[str, Any] = {"type": "string"}
            if self.enum:
                items["enum"] = list(self.enum)
            schema: dict[str, Any] = {"type": "array", "items": items}
            if self.max_items is not None:
                schema["maxItems"] = self.max_items
        elif self.kind == "datetime":
            schema = {"type": "string", "format": "date-time"}
        else:
            schema = {"type": self.kind}
            if self.enum or self.values:
                schema["enum"] = list(self.enum or self.values)
            elif self.choices is not None and choices is not None and self.choices in choices:
                schema["enum"] = list(choices[self.choices])
            if self.minimum is not None:
                schema["minimum"] = self.minimum
            if self.maximum is not None:
                schema["maximum"] = self.maximum
            if self.max_length is not None:
                schema["minLength"] = 1
                schema["maxLength"] = self.max_length
            if self.kind == "string" and "enum" not in schema:
                schema["pattern"] = NO_NUL
        if self.nullable:
            schema["type"] = [schema["type"], "null"]
        if self.default is not None:
            schema["default"] = self.default
        schema["description"] = self.description
        return schema


def object_schema(fields: Sequence[Field], choices: Choices | None = None) -> dict[str, Any]:
    """JSON Schema of an object with exactly ``fields``."""
    schema: dict[str, Any] = {
        "type": "object",
        "additionalProperties": False,
        "properties": {field.name: field.schema(choices) for field in fields},
    }
    required = [field.name for field in fields if field.required]
    if required:
        schema["required"] = required
    return schema


def parse_query(fields: Sequence[Field], args: MultiDict[str, str] | None = None) -> dict[str, Any]:
    """Validated query parameters (defaults filled in); :class:`Problem` 400 naming every mistake."""
    args = request.args if args is None else args
    known = {field.name: field for field in fields}
    problems = [f"unknown query parameter {name!r}" for name in args if name not in known]
    values: dict[str, Any] = {}
    for field in fields:
        raw = args.getlist(field.name)
        if not raw:
            if field.required:
                problems.append(f"{field.name}: required")
            elif field.default is not None:
                values[field.name] = field.default
            continue
        if field.kind != "array" and len(raw) > 1:
            problems.append(f"{field.name}: given {len(raw)} times, expected once")
            continue
        try:
            values[field.name] = _from_text(field, raw)
        except ValueError as exc:
            problems.append(f"{field.name}: {exc}")
    if problems:
        raise Problem(400, "invalid query: " + "; ".join(problems), errors=problems)
    return values


def parse_json(fields: Sequence[Field], *, body_required: bool = False) -> dict[str, Any]:
    """The validated JSON object body (defaults filled in). An empty body counts as ``{}`` unless required."""
    document = parse_json_value(body_required=body_required)
    return check_object(fields, {} if document is EMPTY else document)


def parse_json_value(*, body_required: bool = False) -> Any:
    """The body parsed as JSON (:data:`EMPTY` when empty and not required): 415 unless JSON-typed, 400 unless JSON."""
    raw = request.get_data(cache=True)
    if not raw.strip():
        if body_required:
            raise Problem(422, "a JSON object body is required", errors=["body: required"])
        return EMPTY
    if request.mimetype != "application/json" and not request.mimetype.endswith("+json"):
        raise Problem(415, f"send the body as application/json (got {request.mimetype or 'no content type'})")
    try:
        return json.loads(raw, parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:
        raise Problem(400, f"invalid JSON: {exc}") from None


def check_object(fields: Sequence[Field], document: Any, where: str = "") -> dict[str, Any]:
    """Validate an already parsed JSON value as an object with ``fields``; :class:`Problem` 422 otherwise."""
    if not isinstance(document, Mapping):
        raise Problem(422, f"{where or 'the body'} must be a JSON object, got {_json_type(document)}")
    known = {field.name: field for field in fields}
    problems = [f"{where}{name}: unknown field" for name in document if name not in known]
    values: dict[str, Any] = {}
    for field in fields:
        if field.name not in document:
            if field.required:
                problems.append(f"{where}{field.name}: required")
            elif field.default is not None:
                values[field.name] = field.default
            continue
        try:
            values[field.name] = _from_json(field, document[field.name])
        except ValueError as exc:
            problems.append(f"{where}{field.name}: {exc}")
    if problems:
        raise Problem(422, "invalid body: " + "; ".join(problems), errors=problems)
    return values


def parse_datetime(text: str) -> datetime:
    """ISO 8601 with a time zone (``Z`` or an offset), or a bare date meaning its midnight UTC."""
    text = text.strip()
    try:
        if _DATE_ONLY.fullmatch(text):
            day = date.fromisoformat(text)
            return datetime(day.year, day.month, day.day, tzinfo=UTC)
        value = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        raise ValueError(f"not an ISO 8601 date or date-time: {text[:40]!r}") from None
    if value.tzinfo is None:
        raise ValueError(f"{text[:40]!r} has no time zone: add Z (UTC) or an offset such as +02:00")
    return value.astimezone(UTC)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _from_text(field: Field, raw: list[str]) -> Any:
    text = raw[0]
    if field.kind == "array":
        items = [item.strip() for value in raw for item in value.split(",") if item.strip()]
        return _check_items(field, items)
    if field.kind == "integer":
        if not re.fullmatch(r"[+-]?\d{1,18}", text.strip()):
            raise ValueError(f"must be an integer, got {text[:40]!r}")
        return _check_range(field, int(text))
    if field.kind == "number":
        try:
            number = float(text)
        except ValueError:
            raise ValueError(f"must be a number, got {text[:40]!r}") from None
        return _check_range(field, number)
    if field.kind == "boolean":
        lowered = text.strip().lower()
        if lowered not in ("true", "false", "1", "0"):
            raise ValueError(f"must be true or false, got {text[:40]!r}")
        return lowered in ("true", "1")
    if field.kind == "datetime":
        return parse_datetime(text)
    return _check_string(field, text)


def _from_json(field: Field, value: Any) -> Any:
    if value is None:
        if field.nullable:
            return None
        raise ValueError("must not be null")
    if field.kind == "object":
        if not isinstance(value, Mapping):
            raise ValueError(f"must be an object, got {_json_type(value)}")
        if len(value) < field.min_properties:
            raise ValueError(f"must have at least {field.min_properties} member(s)")
        return check_object(field.fields, value, f"{field.name}.")
    if field.kind == "array":
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise ValueError(f"must be an array of strings, got {_json_type(value)}")
        return _check_items(field, value)
    if field.kind == "integer":
        if isinstance(value, float) and value.is_integer():  # JSON has one number type: 3.0 is the integer 3
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"must be an integer, got {_json_type(value)}")
        if field.values and value not in field.values:
            raise ValueError(f"must be one of {', '.join(map(str, field.values))}, got {value}")
        return _check_range(field, value)
    if field.kind == "number":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"must be a number, got {_json_type(value)}")
        return _check_range(field, float(value))
    if field.kind == "boolean":
        if not isinstance(value, bool):
            raise ValueError(f"must be true or false, got {_json_type(value)}")
        return value
    if not isinstance(value, str):
        raise ValueError(f"must be a string, got {_json_type(value)}")
    if field.kind == "datetime":
        return parse_datetime(value)
    return _check_string(field, value)


def _check_range(field: Field, value: float) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("must be a finite number")
    low, high = field.minimum, field.maximum
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"must be between {_fmt(low, '-inf')} and {_fmt(high, 'inf')}, got {value}")
    return value


def _check_string(field: Field, value: str) -> str:
    if field.enum and value not in field.enum:
        raise ValueError(f"must be one of {', '.join(field.enum)}, got {value[:40]!r}")
    if field.max_length is not None and not 1 <= len(value) <= field.max_length:
        raise ValueError(f"must be 1 to {field.max_length} characters long")
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


def _check_items(field: Field, items: Iterable[str]) -> list[str]:
    items = list(items)
    if field.max_items is not None and len(items) > field.max_items:
        raise ValueError(f"at most {field.max_items} values")
    bad = [item for item in items if field.enum and item not in field.enum]
    if bad:
        raise ValueError(f"unknown value(s) {', '.join(repr(b[:40]) for b in bad)}; allowed: {', '.join(field.enum)}")
    return list(dict.fromkeys(items))


def _fmt(bound: float | None, unbounded: str) -> str:
    return unbounded if bound is None else f"{bound:g}"


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"
