"""Pause/resume and the audit trail."""

from __future__ import annotations

import pytest

import storage


def test_pause_and_resume_reach_the_worker_through_storage(api, sessions) -> None:
    assert api.get("/api/v1/queue").json == {"paused": False}
    response = api.post("/api/v1/queue/pause")
    assert response.status_code == 200 and response.json == {"paused": True, "changed": True}
    with sessions() as session:
        assert storage.is_paused(session)
    assert api.post("/api/v1/queue/pause").json == {"paused": True, "changed": False}
    assert api.get("/api/v1/status").json["queue"]["paused"] is True
    assert api.post("/api/v1/queue/resume", {}).json == {"paused": False, "changed": True}
    with sessions() as session:
        assert not storage.is_paused(session)
    kinds = [event["kind"] for event in api.get("/api/v1/events?kind=paused,resumed").json["items"]]
    assert kinds == ["paused", "resumed"]


def test_pause_refuses_a_body_with_fields(api) -> None:
    assert api.post("/api/v1/queue/pause", {"now": True}).status_code == 422
    assert api.client.post("/api/v1/queue/pause").status_code == 401


def test_events_filter_and_paginate(api, library, clock) -> None:
    first = library.add()
    library.add()
    all_events = api.get("/api/v1/events?limit=1000").json["items"]
    assert all_events and [e["id"] for e in all_events] == sorted(e["id"] for e in all_events)
    mine = api.get(f"/api/v1/events?image_id={first}").json["items"]
    assert {e["image_id"] for e in mine} == {first}
    assert [e["kind"] for e in mine] == ["discovered", "queued", "done", "archived"]
    done = api.get("/api/v1/events?kind=done").json["items"]
    assert len(done) == 2 and all(e["kind"] == "done" for e in done)
    page = api.get("/api/v1/events?limit=3").json
    rest = api.get(f"/api/v1/events?limit=1000&cursor={page['next_cursor']}").json
    assert [e["id"] for e in page["items"] + rest["items"]] == [e["id"] for e in all_events]
    since = api.get("/api/v1/events", query_string={"since": clock.now.isoformat()}).json["items"]
    assert since and all(e["at"] >= clock.now.isoformat() for e in since)
    assert api.get("/api/v1/events", query_string={"until": "2000-01-01T00:00:00Z"}).json["items"] == []


@pytest.mark.parametrize(
    "query",
    [
        "kind=exploded",
        "image_id=abc",
        "image_id=0",
        f"image_id={2**31}",
        "limit=0",
        "limit=5000",
        "since=soon",
        "cursor=abc",
        "colour=red",
    ],
)
def test_bad_event_queries_are_400(api, query) -> None:
    assert api.get(f"/api/v1/events?{query}").status_code == 400


def test_an_images_cursor_is_not_an_events_cursor(api, library) -> None:
    for _ in range(3):
        library.add(state="queued")
    cursor = api.get("/api/v1/images?limit=1").json["next_cursor"]
    assert api.get(f"/api/v1/events?cursor={cursor}").status_code == 400
