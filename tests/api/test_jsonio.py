"""The orjson response provider: valid JSON where the standard encoder would not write it, same shapes otherwise."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime

from flask import Flask, jsonify

from daemon.api.jsonio import OrjsonProvider


def make_app(debug: bool = False) -> Flask:
    app = Flask("jsonio-test")
    app.json = OrjsonProvider(app)
    app.debug = debug

    @app.get("/values")
    def values() -> dict[str, object]:
        return {"nan": math.nan, "inf": math.inf, "when": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), 7: "int key"}

    @app.get("/list")
    def listing() -> object:
        return jsonify([1, "two", None])

    return app


def refuse(constant: str) -> object:
    raise ValueError(f"{constant} is not JSON")


def test_non_finite_numbers_become_null_and_datetimes_rfc3339() -> None:
    reply = make_app().test_client().get("/values")
    assert reply.status_code == 200 and reply.mimetype == "application/json"
    body = json.loads(reply.data, parse_constant=refuse)  # the standard library would have written NaN
    assert body == {"nan": None, "inf": None, "when": "2026-01-02T03:04:05+00:00", "7": "int key"}


def test_jsonify_and_debug_indentation() -> None:
    assert make_app().test_client().get("/list").data == b'[1,"two",null]\n'
    indented = make_app(debug=True).test_client().get("/list").data
    assert json.loads(indented) == [1, "two", None] and b"\n  " in indented


def test_dumps_returns_text() -> None:
    app = make_app()
    assert app.json.dumps({"a": [1.5]}) == '{"a":[1.5]}'
