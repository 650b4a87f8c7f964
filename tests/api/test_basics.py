"""Health, metrics, status, auth and error shapes."""

from __future__ import annotations

import pytest

from daemon.api.app import create_app

PROBLEM = "application/problem+json"


def test_health_is_open(client) -> None:
    response = client.get("/api/v1/health")
    assert response.status_code == 200
    assert response.json["status"] == "ok"


def test_metrics_are_open_and_count_the_queue(client, library) -> None:
    library.add(state="queued")
    library.add()
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    text = response.get_data(as_text=True)
    assert 'enhancerd_queue_depth{state="queued"} 1.0' in text
    assert 'enhancerd_queue_depth{state="done"} 1.0' in text
    assert "enhancerd_retention_deleted" in text


@pytest.mark.parametrize(
    ("headers", "error"),
    [
        ({}, None),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, "invalid_request"),
        ({"Authorization": "Bearer"}, "invalid_request"),
        ({"Authorization": "Bearer wrong"}, "invalid_token"),
        ({"Authorization": "Bearer s3cret-test-token-and-more"}, "invalid_token"),
    ],
)
def test_everything_else_needs_the_token(client, headers, error) -> None:
    for path in ("/api/v1/status", "/api/v1/images", "/api/v1/openapi.json", "/api/v1/no-such-route"):
        response = client.get(path, headers=headers)
        assert response.status_code == 401, path
        assert response.mimetype == PROBLEM
        challenge = response.headers["WWW-Authenticate"]
        assert challenge.startswith('Bearer realm="enhancerd"')
        assert (f'error="{error}"' in challenge) if error else ("error=" not in challenge)
        assert response.json["detail"]


def test_bearer_scheme_is_case_insensitive(client, auth) -> None:
    token = auth["Authorization"].split(" ", 1)[1]
    assert client.get("/api/v1/status", headers={"Authorization": f"bearer {token}"}).status_code == 200


@pytest.mark.parametrize("settings_overrides", [{"api.token": ""}])
def test_without_a_token_loopback_is_open(client) -> None:
    assert client.get("/api/v1/status").status_code == 200


def test_status_merges_database_numbers_with_live_facts(api, library, clock) -> None:
    library.add(state="queued")
    library.add(finished_at=clock.now)
    library.add(state="failed", finished_at=clock.now)
    body = api.get("/api/v1/status").json
    assert body["queue"]["counts"] == {
        "queued": 1,
        "processing": 0,
        "done": 1,
        "failed": 1,
        "duplicate": 0,
        "deleted": 0,
    }
    assert body["queue"]["depth"] == 1
    assert body["queue"]["paused"] is False
    assert body["totals"] == {"processed": 1, "failed": 1}
    assert body["throughput"]["processed_in_window"] == 1
    assert body["throughput"]["images_per_minute"] == pytest.approx(0.2)
    assert body["device"] == "cpu" and body["model_version"] == "test-1" and body["precision"] == "fp32"
    assert body["watchers"]["inbox"]["healthy"] is True
    assert body["worker"]["busy"] is False


def test_status_survives_a_failing_live_report(make_context, auth) -> None:
    def broken() -> dict:
        raise RuntimeError("watchers are gone")

    client = create_app(make_context(status=broken)).test_client()
    body = client.get("/api/v1/status", headers=auth).json
    assert body["status_error"] == "watchers are gone"
    assert body["device"] is None and body["queue"]["counts"]["queued"] == 0


def test_status_numbers_are_cached_between_requests(make_context, auth, library) -> None:
    client = create_app(make_context(status_cache_seconds=3600)).test_client()
    first = client.get("/api/v1/status", headers=auth).json
    library.add(state="queued")
    second = client.get("/api/v1/status", headers=auth).json
    assert second["queue"]["counts"]["queued"] == first["queue"]["counts"]["queued"] == 0


def test_unknown_routes_and_methods_are_problems(api) -> None:
    response = api.get("/api/v1/nothing-here")
    assert response.status_code == 404 and response.mimetype == PROBLEM
    assert "/api/v1/nothing-here" in response.json["detail"]
    response = api.post("/api/v1/status")
    assert response.status_code == 405 and response.mimetype == PROBLEM
    assert "GET" in response.headers["Allow"] and "GET" in response.json["detail"]
    response = api.client.delete("/api/v1/health")
    assert response.status_code == 405


def test_unexpected_errors_are_500_problems_without_internals(make_context, auth, caplog) -> None:
    class Exploding:
        def policies(self) -> dict:
            raise RuntimeError("secret internals")

    client = create_app(make_context(retention=Exploding())).test_client()
    response = client.get("/api/v1/retention", headers=auth)
    assert response.status_code == 500 and response.mimetype == PROBLEM
    assert "secret" not in response.get_data(as_text=True)
    assert response.json["reference"] in response.json["detail"]
    assert "secret internals" in caplog.text


def test_building_an_app_starts_no_thread(make_context) -> None:
    import threading

    before = threading.active_count()
    create_app(make_context())
    assert threading.active_count() == before


def test_stale_status_is_served_at_once_and_refreshed_after_the_response() -> None:
    from daemon.api.state import StaleWhileRevalidate

    calls = []
    now = [0.0]
    cache = StaleWhileRevalidate(lambda: calls.append(1) or len(calls), ttl=1.0, max_age=30, monotonic=lambda: now[0])
    assert cache.get() == (1, None)  # first reading: computed while the caller waits
    now[0] = 0.5
    assert cache.get() == (1, None)  # fresh
    now[0] = 1.5
    value, refresh = cache.get()
    assert value == 1 and refresh is not None  # stale: served as is, refresh handed to the caller
    assert cache.get() == (1, None)  # someone is already refreshing: no second refresh
    refresh()
    assert cache.get() == (2, None)
    now[0] = 100.0  # too old to serve: computed while the caller waits
    assert cache.get() == (3, None)
