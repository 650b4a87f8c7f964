"""Every route, fed malformed input: always the documented 4xx as problem+json, never a 500."""

from __future__ import annotations

import re

import pytest

from daemon.api.app import operations

NASTY_IDS = ("0", "999999", str(2**31), str(2**63), "99999999999999999999999999", "-1", "1.5", "abc", "%00", "..%2f..")
NASTY_BODIES: tuple[tuple[bytes, str], ...] = (
    (b"{", "application/json"),
    (b"[]", "application/json"),
    (b"null", "application/json"),
    (b'{"unknown": 1}', "application/json"),
    (b'{"dry_run": "maybe", "strength": "x", "filter": 3, "inboxes": 4}', "application/json"),
    (b'{"a": 1e999}', "application/json"),
    (b"\x00\xff\xfe", "application/json"),
    (b"<xml/>", "application/xml"),
    (b"plain", "text/plain"),
    (b"--x\r\n", "multipart/form-data; boundary=x"),
    (b"", "multipart/form-data"),
)
NASTY_QUERIES = (
    "limit=-1",
    "limit=10000000",
    "cursor=%ff%fe",
    "state=%00",
    "since=9999-99-99",
    "x=1",
    "a" * 3000 + "=1",
)
ALLOWED = {400, 401, 404, 405, 409, 413, 415, 422, 503}


def _concrete(path: str, image_id: str) -> str:
    return re.sub(r"{image_id}", image_id, path)


@pytest.mark.parametrize(("method", "path"), [(op.method, op.path) for op in operations()])
def test_nothing_is_a_500(api, library, method, path) -> None:
    real = str(library.add())
    ids = NASTY_IDS if "{image_id}" in path else ("",)
    for image_id in (*ids, real):
        url = _concrete(path, image_id)
        for query in NASTY_QUERIES:
            response = api.client.open(f"{url}?{query}", method=method, headers=_auth(api))
            _check(response, method, url, query)
        if method in ("POST", "PUT"):
            for body, content_type in NASTY_BODIES:
                response = api.client.open(url, method=method, data=body, content_type=content_type, headers=_auth(api))
                _check(response, method, url, body)


def _auth(api) -> dict[str, str]:
    return {"Authorization": "Bearer s3cret-test-token"}


def _check(response, method: str, url: str, what: object) -> None:
    assert response.status_code < 500, (method, url, what, response.get_data(as_text=True)[:300])
    if response.status_code >= 400:
        assert response.status_code in ALLOWED, (method, url, what, response.status_code)
        assert response.mimetype == "application/problem+json", (method, url, what)
        assert response.json["detail"]


def test_wrong_methods_everywhere_are_405(api) -> None:
    for op in operations():
        url = _concrete(op.path, "1")
        for method in {"GET", "POST", "PUT", "DELETE", "PATCH"} - {op.method}:
            if any(other.path == op.path and other.method == method for other in operations()):
                continue
            response = api.client.open(url, method=method, headers=_auth(api))
            assert response.status_code == 405, (method, url)
            assert response.mimetype == "application/problem+json"
