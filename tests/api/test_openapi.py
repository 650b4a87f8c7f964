"""The OpenAPI document matches the routes, in both directions, and is well-formed."""

from __future__ import annotations

import re

import pytest

from daemon.api.app import RESOURCES, operations

IGNORED_METHODS = {"HEAD", "OPTIONS"}


def _routes(app) -> set[tuple[str, str]]:
    routes = set()
    for rule in app.url_map.iter_rules():
        path = re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule.rule)
        for method in (rule.methods or set()) - IGNORED_METHODS:
            routes.add((method.lower(), path))
    return routes


def test_every_route_is_documented_and_every_documented_route_exists(api, app) -> None:
    document = api.get("/api/v1/openapi.json").json
    documented = {(method, path) for path, item in document["paths"].items() for method in item}
    routes = _routes(app)
    assert routes - documented == set(), "routes missing from the OpenAPI document"
    assert documented - routes == set(), "documented operations without a route"
    assert len(routes) >= 18


def test_the_contract_endpoints_are_there(api) -> None:
    paths = api.get("/api/v1/openapi.json").json["paths"]
    for method, path in [
        ("get", "/api/v1/health"),
        ("get", "/api/v1/status"),
        ("get", "/api/v1/images"),
        ("get", "/api/v1/images/{image_id}"),
        ("get", "/api/v1/images/{image_id}/output"),
        ("post", "/api/v1/images/{image_id}/reprocess"),
        ("post", "/api/v1/retention/run"),
        ("get", "/metrics"),
    ]:
        assert method in paths[path], (method, path)


def test_operations_are_consistent(api) -> None:
    document = api.get("/api/v1/openapi.json").json
    assert document["openapi"].startswith("3.1")
    ids = [op["operationId"] for item in document["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids))
    for path, item in document["paths"].items():
        for method, operation in item.items():
            public = operation.get("security") == []
            assert public == (path in ("/api/v1/health", "/metrics")), path
            assert ("401" in operation["responses"]) != public, (method, path)
            assert "500" in operation["responses"]
            for name in re.findall(r"{(\w+)}", path):
                assert any(p["in"] == "path" and p["name"] == name for p in operation["parameters"]), path
            query = [p["name"] for p in operation.get("parameters", []) if p["in"] == "query"]
            assert len(query) == len(set(query))


def test_filter_parameters_cover_every_score_column(api) -> None:
    from storage import SCORE_COLUMNS

    parameters = api.get("/api/v1/openapi.json").json["paths"]["/api/v1/images"]["get"]["parameters"]
    names = {p["name"] for p in parameters}
    for column in SCORE_COLUMNS:
        assert {f"min_{column}", f"max_{column}"} <= names


def test_every_schema_is_valid_json_schema(api) -> None:
    jsonschema_rs = pytest.importorskip("jsonschema_rs")
    document = api.get("/api/v1/openapi.json").json

    def walk(node):
        if isinstance(node, dict):
            if "schema" in node and isinstance(node["schema"], dict):
                yield node["schema"]
            for value in node.values():
                yield from walk(value)
        elif isinstance(node, list):
            for value in node:
                yield from walk(value)

    schemas = [*document["components"]["schemas"].values(), *walk(document["paths"])]
    assert len(schemas) > 50
    for schema in schemas:
        assert jsonschema_rs.meta.is_valid(schema), schema


def test_each_resource_module_is_one_blueprint(app) -> None:
    assert len(RESOURCES) == len(app.blueprints)
    assert {op.operation_id for op in operations()} == {
        op["operationId"] for item in app.extensions["enhancerd"].openapi["paths"].values() for op in item.values()
    }
