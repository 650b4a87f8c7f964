"""Image listing (filters, pagination, ordering) and single records."""

from __future__ import annotations

from datetime import timedelta

import pytest


def _ids(response) -> list[int]:
    assert response.status_code == 200, response.json
    return [item["id"] for item in response.json["items"]]


def test_a_record_has_the_contract_keys(api, library) -> None:
    image_id = library.add(scores={"noise_sigma": 7.5})
    body = api.get(f"/api/v1/images/{image_id}").json
    for key in ("id", "state", "source_path", "output_path", "error", "scores"):
        assert key in body
    assert body["state"] == "done"
    assert body["scores"]["before"]["noise_sigma"] == 7.5
    assert body["scores"]["after"]["noise_sigma"] == 1.0
    assert body["original_path"].endswith("archive/photo1.png")


def test_unknown_and_impossible_ids_are_404(api) -> None:
    for path in ("/api/v1/images/999", f"/api/v1/images/{2**31}", f"/api/v1/images/{10**30}", "/api/v1/images/0"):
        response = api.get(path)
        assert response.status_code == 404, path
        assert response.mimetype == "application/problem+json"
    assert api.get("/api/v1/images/-1").status_code == 404
    assert api.get("/api/v1/images/abc").status_code == 404


def test_filters_by_state_inbox_scores_and_dates(api, library, clock) -> None:
    t0 = clock.now
    noisy = library.add(scores={"noise_sigma": 12.0, "quality": 30.0}, finished_at=t0)
    clean = library.add(scores={"noise_sigma": 1.0, "quality": 90.0}, finished_at=t0 + timedelta(days=1))
    failed = library.add(state="failed", finished_at=t0 + timedelta(days=2))
    queued = library.add(state="queued", finished_at=t0 + timedelta(days=3))
    assert _ids(api.get("/api/v1/images")) == [noisy, clean, failed, queued]
    assert _ids(api.get("/api/v1/images?state=failed,queued")) == [failed, queued]
    assert _ids(api.get("/api/v1/images?state=failed&state=done")) == [noisy, clean, failed]
    assert _ids(api.get("/api/v1/images?min_noise_sigma=5")) == [noisy]
    assert _ids(api.get("/api/v1/images?max_quality=50")) == [noisy]
    assert _ids(api.get("/api/v1/images?min_quality=30&max_quality=90")) == [noisy, clean]
    assert _ids(api.get("/api/v1/images?phase=after&max_noise_sigma=1")) == [noisy, clean]
    assert _ids(api.get("/api/v1/images?inbox=inbox&state=done")) == [noisy, clean]
    assert _ids(api.get("/api/v1/images?inbox=other")) == []
    day1 = (t0 + timedelta(days=1)).isoformat()
    assert _ids(api.get("/api/v1/images", query_string={"finished_from": day1})) == [clean, failed]
    assert _ids(api.get("/api/v1/images", query_string={"finished_to": day1})) == [noisy]
    created = (t0 + timedelta(days=2, minutes=-1)).isoformat()
    assert _ids(api.get("/api/v1/images", query_string={"created_from": created})) == [failed, queued]
    assert _ids(api.get("/api/v1/images?created_to=2025-06-02")) == [noisy]  # a bare date is 00:00 UTC


def test_pages_are_stable_while_rows_are_added(api, library) -> None:
    ids = [library.add(state="queued") for _ in range(7)]
    first = api.get("/api/v1/images?limit=3").json
    assert [item["id"] for item in first["items"]] == ids[:3]
    library.add(state="queued")  # arrives while the client pages
    second = api.get(f"/api/v1/images?limit=3&cursor={first['next_cursor']}").json
    assert [item["id"] for item in second["items"]] == ids[3:6]
    third = api.get(f"/api/v1/images?limit=3&cursor={second['next_cursor']}").json
    assert [item["id"] for item in third["items"]][:1] == [ids[6]]


def test_newest_first(api, library) -> None:
    ids = [library.add(state="queued") for _ in range(4)]
    page = api.get("/api/v1/images?order=desc&limit=2").json
    assert [item["id"] for item in page["items"]] == ids[::-1][:2]
    rest = api.get(f"/api/v1/images?order=desc&limit=2&cursor={page['next_cursor']}").json
    assert [item["id"] for item in rest["items"]] == ids[::-1][2:]
    assert rest["next_cursor"] is None
    # a cursor only continues the listing it came from
    assert api.get(f"/api/v1/images?order=asc&cursor={page['next_cursor']}").status_code == 400


@pytest.mark.parametrize(
    "query",
    [
        "limit=0",
        "limit=-5",
        "limit=1001",
        "limit=99999999999999999999999",
        "limit=abc",
        "limit=1.5",
        "limit=1&limit=2",
        "state=finished",
        "state=done,bogus",
        "phase=during",
        "min_noise_sigma=loud",
        "min_noise_sigma=nan",
        "max_quality=inf",
        "max_quality=1e400",
        "min_nose_sigma=3",
        "created_from=yesterday",
        "created_from=2025-06-01T00:00:00",
        "order=sideways",
        "cursor=%%%",
        "cursor=eyJsIjoiZXZlbnRzIiwiaWQiOjEsImQiOmZhbHNlfQ",
        "inbox=" + "x" * 300,
        "inbox=a%00b",
    ],
)
def test_bad_queries_are_400(api, query) -> None:
    response = api.get(f"/api/v1/images?{query}")
    assert response.status_code == 400, (query, response.json)
    assert response.mimetype == "application/problem+json"
    assert response.json["detail"]
