"""Property-based run of the live OpenAPI document against the WSGI app: no 500s, no schema violations.

Positive cases (valid by the document) and negative ones (invalid by it, which must be refused with a 4xx) for
every operation, bounded in examples (no per-example deadline) so it stays a CI test. The database holds a few real
images so ids sometimes hit. Operations are listed from the document built without an app (collection does no I/O).
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from daemon.api.app import operations

pytestmark = pytest.mark.slow

MAX_EXAMPLES = 20

OPERATIONS = [(op.method, op.path) for op in operations()]
WITH_INPUT = {
    (op.method, op.path)
    for op in operations()
    if op.path_params or op.query or op.body or op.body_schema or op.multipart
}


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=["positive", "negative"])
@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_api_conforms_to_its_document(app, library, auth, method, path, mode) -> None:
    if mode is GenerationMode.NEGATIVE and (method, path) not in WITH_INPUT:
        pytest.skip("no input to make invalid")
    for state in ("done", "failed", "queued"):
        library.add(state=state)
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app, headers=auth)
    operation = schema[path][method]

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def check(case) -> None:
        # a cursor is opaque and an upload must be an image: the document cannot say which strings or bytes are
        # valid ones, and refusing the others (400, 415) is right
        opaque = "cursor" in (case.query or {}) or (method, path) == ("POST", "/api/v1/images")
        excluded = [positive_data_acceptance] if opaque else []
        case.call_and_validate(headers=auth, excluded_checks=excluded)

    check()
