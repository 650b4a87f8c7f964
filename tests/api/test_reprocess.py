"""Reprocessing one image or many: parameters, state rules, and originals that are gone."""

from __future__ import annotations

from pathlib import Path

import pytest


def test_reprocess_requeues_with_merged_parameters(api, library) -> None:
    image_id = library.add()
    response = api.post(f"/api/v1/images/{image_id}/reprocess", {"strength": 0.25})
    assert response.status_code == 202, response.json
    assert response.json["state"] == "queued"
    assert response.json["parameters"] == {"strength": 0.25}
    record = api.get(f"/api/v1/images/{image_id}").json
    assert record["state"] == "queued" and record["parameters"]["strength"] == 0.25
    assert record["output_path"] is not None  # the old output stays until the new one replaces it
    kinds = [event["kind"] for event in api.get(f"/api/v1/events?image_id={image_id}").json["items"]]
    assert kinds[-1] == "reprocessed" and "done" in kinds  # history stays


def test_reprocess_without_a_body_keeps_the_parameters(api, library, auth) -> None:
    image_id = library.add()
    response = api.client.post(f"/api/v1/images/{image_id}/reprocess", headers=auth)
    assert response.status_code == 202 and response.json["parameters"] == {"strength": 1.0}


def test_reprocess_a_known_model(api, library) -> None:
    image_id = library.add()
    response = api.post(f"/api/v1/images/{image_id}/reprocess", {"model": "builtin", "strength": 1})
    assert response.status_code == 202 and response.json["parameters"]["model"] == "builtin"


@pytest.mark.parametrize(("ensemble", "status"), [(8, 202), (1, 202), (3, 422), (16, 422), (0, 422)])
def test_reprocess_with_an_ensemble(api, library, ensemble: int, status: int) -> None:
    image_id = library.add()
    response = api.post(f"/api/v1/images/{image_id}/reprocess", {"ensemble": ensemble})
    assert response.status_code == status, response.json
    if status == 202:
        assert response.json["parameters"] == {"strength": 1.0, "ensemble": ensemble}


def test_reprocess_of_a_deleted_original_is_409(api, library) -> None:
    image_id = library.add(original="delete")
    response = api.post(f"/api/v1/images/{image_id}/reprocess", {"strength": 0.5})
    assert response.status_code == 409
    assert "original" in response.json["detail"] and "gone" in response.json["detail"]
    assert api.get(f"/api/v1/images/{image_id}").json["state"] == "done"


def test_reprocess_of_an_original_missing_on_disk_is_409(api, library) -> None:
    image_id = library.add()
    Path(library.image(image_id).archive_path).unlink()
    response = api.post(f"/api/v1/images/{image_id}/reprocess")
    assert response.status_code == 409 and "gone" in response.json["detail"]


def test_reprocess_of_a_queued_image_is_409(api, library) -> None:
    image_id = library.add(state="queued")
    response = api.post(f"/api/v1/images/{image_id}/reprocess")
    assert response.status_code == 409 and "queued" in response.json["detail"]


def test_failed_images_can_be_reprocessed_from_the_failed_folder(api, library) -> None:
    image_id = library.add(state="failed")
    response = api.post(f"/api/v1/images/{image_id}/reprocess")
    assert response.status_code == 202
    assert "/failed/" in response.json["original_path"]


def test_reprocess_of_an_unknown_image_is_404(api) -> None:
    assert api.post("/api/v1/images/4242/reprocess").status_code == 404


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        (b"{", "application/json", 400),
        (b"{'strength': 1}", "application/json", 400),
        (b'{"strength": NaN}', "application/json", 400),
        (b"\xff\xfe", "application/json", 400),
        (b"[1, 2]", "application/json", 422),
        (b'"text"', "application/json", 422),
        (b"null", "application/json", 422),
        (b'{"strength": "high"}', "application/json", 422),
        (b'{"strength": true}', "application/json", 422),
        (b'{"strength": -0.1}', "application/json", 422),
        (b'{"strength": 1.5}', "application/json", 422),
        (b'{"strength": 1e999}', "application/json", 422),
        (b'{"strength": null}', "application/json", 422),
        (b'{"model": "/etc/passwd"}', "application/json", 422),
        (b'{"model": ""}', "application/json", 422),
        (b'{"model": 3}', "application/json", 422),
        (b'{"strenght": 0.5}', "application/json", 422),
        (b'{"strength": 0.5}', "text/plain", 415),
        (b"strength=0.5", "application/x-www-form-urlencoded", 415),
        (b"[" * 100_000 + b"]" * 100_000, "application/json", 400),
    ],
)
def test_bad_bodies(api, library, auth, body, content_type, status) -> None:
    image_id = library.add()
    response = api.client.post(
        f"/api/v1/images/{image_id}/reprocess",
        data=body,
        content_type=content_type,
        headers=auth,
    )
    assert response.status_code == status, response.json
    assert response.mimetype == "application/problem+json" and response.json["detail"]
    assert api.get(f"/api/v1/images/{image_id}").json["state"] == "done"


def test_bulk_reprocess_by_filter(api, library) -> None:
    noisy = library.add(scores={"noise_sigma": 9.0})
    library.add(scores={"noise_sigma": 1.0})
    gone = library.add(scores={"noise_sigma": 9.5}, original="delete")
    failed = library.add(state="failed")
    queued = library.add(state="queued")
    body = {"filter": {"min_noise_sigma": 5}, "strength": 0.5}
    dry = api.post("/api/v1/reprocess", {**body, "dry_run": True})
    assert dry.status_code == 200 and dry.json["requeued"] == [noisy] and dry.json["dry_run"] is True
    assert api.get(f"/api/v1/images/{noisy}").json["state"] == "done"
    response = api.post("/api/v1/reprocess", body)
    assert response.status_code == 202
    assert response.json["requeued"] == [noisy]
    assert response.json["skipped"] == [{"id": gone, "reason": response.json["skipped"][0]["reason"]}]
    assert "gone" in response.json["skipped"][0]["reason"]
    assert api.get(f"/api/v1/images/{noisy}").json["parameters"]["strength"] == 0.5
    by_state = api.post("/api/v1/reprocess", {"filter": {"state": ["failed", "queued"]}}).json
    assert by_state["requeued"] == [failed]
    assert by_state["skipped"] == [{"id": i, "reason": f"image {i} is queued"} for i in (noisy, queued)]


def test_bulk_reprocess_is_bounded(api, library) -> None:
    ids = [library.add() for _ in range(3)]
    response = api.post("/api/v1/reprocess", {"filter": {"state": ["done"]}, "limit": 2}).json
    assert response["requeued"] == ids[:2] and response["truncated"] is True and response["matched"] == 3
    rest = api.post("/api/v1/reprocess", {"filter": {"state": ["done"]}, "limit": 2}).json
    assert rest["requeued"] == ids[2:] and rest["truncated"] is False


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"filter": {}},
        {"filter": {"phase": "after"}},
        {"filter": []},
        {"filter": {"state": "done"}},
        {"filter": {"state": ["finished"]}},
        {"filter": {"min_noise": 3}},
        {"filter": {"min_quality": "low"}},
        {"filter": {"created_from": "last week"}},
        {"filter": {"state": ["done"]}, "limit": 0},
        {"filter": {"state": ["done"]}, "limit": 10**9},
        {"filter": {"state": ["done"]}, "dry_run": "yes"},
        {"filter": {"state": ["done"]}, "colour": "red"},
    ],
)
def test_bulk_bad_bodies_are_422(api, library, body) -> None:
    library.add()
    response = api.post("/api/v1/reprocess", body)
    assert response.status_code == 422, (body, response.json)
