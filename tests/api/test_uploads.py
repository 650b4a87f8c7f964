"""POST /api/v1/images: size limit, content sniffing, sanitised names, atomic placement, intake."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from daemon.api.app import create_app
from daemon.api.uploads import safe_name


def _upload(api, data: bytes, name: str = "photo.png", **form):
    fields = {"file": (io.BytesIO(data), name), **form}
    return api.post("/api/v1/images", data=fields, content_type="multipart/form-data")


def _inbox_files(settings) -> list[str]:
    root = settings.inboxes[0].path
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_an_upload_lands_in_the_inbox_and_is_queued(api, settings, make_image_bytes) -> None:
    data = make_image_bytes(1)
    response = _upload(api, data, "holiday.png")
    assert response.status_code == 202, response.json
    body = response.json
    assert body["state"] == "queued" and body["name"] == "holiday.png" and body["inbox"] == "inbox"
    assert response.headers["Location"] == f"/api/v1/images/{body['id']}"
    assert (settings.inboxes[0].path / "holiday.png").read_bytes() == data
    record = api.get(body["location"]).json
    assert record["state"] == "queued" and record["source_path"] == str(settings.inboxes[0].path / "holiday.png")
    assert _inbox_files(settings) == ["holiday.png"]  # no temporary file left behind


def test_same_content_is_a_duplicate_and_a_taken_name_gets_a_suffix(api, settings, make_image_bytes) -> None:
    first = _upload(api, make_image_bytes(1), "a.png").json
    same = _upload(api, make_image_bytes(1), "b.png").json
    assert same["state"] == "duplicate" and same["id"] != first["id"]
    other = _upload(api, make_image_bytes(2), "a.png").json
    assert other["name"] == "a-1.png" and other["state"] == "queued"
    assert (settings.inboxes[0].path / "a.png").read_bytes() == make_image_bytes(1)  # never overwritten
    assert _inbox_files(settings) == ["a-1.png", "a.png", "b.png"]


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("../../etc/evil.png", "evil.png"),
        ("..\\..\\windows\\evil.png", "windowsevil.png"),  # multipart quoting unescapes the backslashes
        ("/etc/passwd", "passwd.png"),
        (".hidden.png", "hidden.png"),
        ("~$lock.png", "lock.png"),
        ("..", "upload.png"),
        ("", "upload.png"),
        ("noext", "noext.png"),
        ("fake.jpg", "fake.jpg.png"),
        ("tab\tname.png", "tab_name.png"),
        ("what?<>|*.png", "what_____.png"),
        ("été.png", "été.png"),
        ("x" * 400 + ".png", "x" * 196 + ".png"),
    ],
)
def test_names_are_sanitised_and_stay_in_the_inbox(api, settings, make_image_bytes, given, stored) -> None:
    response = _upload(api, make_image_bytes(3), given)
    assert response.status_code == 202, response.json
    assert response.json["name"] == stored
    assert (settings.inboxes[0].path / stored).is_file()
    assert _inbox_files(settings) == [stored]


def test_safe_name_keeps_matching_extensions() -> None:
    assert safe_name("IMG_0001.JPG", "JPEG") == "IMG_0001.JPG"
    assert safe_name("scan.tiff", "TIFF") == "scan.tiff"
    assert safe_name("scan.png", "TIFF") == "scan.png.tif"
    assert safe_name('a:b"c\x00d\x7f.jpeg', "JPEG") == "a_b_c_d_.jpeg"
    assert safe_name("C:\\Users\\me\\pic.jpg", "JPEG") == "pic.jpg"
    assert safe_name(" . ", "PNG") == "upload.png"


def test_non_images_are_415(api, settings) -> None:
    for data, name in (
        (b"hello world", "notes.png"),
        (b"%PDF-1.7 ...", "doc.jpg"),
        (b"\xff\xd8\xff" + b"\0" * 5, "x.jpg"),
    ):
        response = _upload(api, data, name)
        assert response.status_code == 415, name
        assert response.mimetype == "application/problem+json"
    assert _inbox_files(settings) == []


def test_formats_the_inbox_does_not_accept_are_415(api, settings) -> None:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, "GIF")
    response = _upload(api, buffer.getvalue(), "anim.gif")
    assert response.status_code == 415 and "does not accept GIF" in response.json["detail"]


def test_oversized_uploads_are_413(api, settings, make_image_bytes) -> None:
    big = make_image_bytes(1) + b"\0" * (1024 * 1024 + 1)  # max_upload_mb = 1 in these tests
    response = _upload(api, big, "big.png")
    assert response.status_code == 413
    assert response.mimetype == "application/problem+json"
    assert _inbox_files(settings) == []


def test_a_file_just_over_the_limit_but_within_the_multipart_slack_is_413(api, settings, make_image_bytes) -> None:
    data = make_image_bytes(1)
    data += b"\0" * (1024 * 1024 + 10 - len(data))
    response = _upload(api, data, "edge.png")
    assert response.status_code == 413 and "max_upload_mb" in response.json["detail"]
    assert _inbox_files(settings) == []


def test_a_file_at_the_limit_is_accepted(api, make_image_bytes) -> None:
    data = make_image_bytes(1)
    data += b"\0" * (1024 * 1024 - len(data))
    assert _upload(api, data, "edge.png").status_code == 202


def test_form_problems_are_4xx(api, make_image_bytes) -> None:
    data = make_image_bytes(1)
    assert api.post("/api/v1/images", data={}, content_type="multipart/form-data").status_code == 422
    assert _upload(api, data, inbox="nope").status_code == 422
    assert _upload(api, data, extra="1").status_code == 422
    assert api.post("/api/v1/images", json={"file": "x"}).status_code == 415
    assert api.post("/api/v1/images", data=b"raw", content_type="image/png").status_code == 415
    assert _upload(api, b"", "empty.png").status_code == 422
    two = {"file": [(io.BytesIO(data), "a.png"), (io.BytesIO(data), "b.png")]}
    assert api.post("/api/v1/images", data=two, content_type="multipart/form-data").status_code == 422


def test_uploads_need_the_token(client, make_image_bytes) -> None:
    response = client.post("/api/v1/images", data={"file": (io.BytesIO(make_image_bytes(1)), "a.png")})
    assert response.status_code == 401


def test_without_an_intake_uploads_are_503(make_context, auth, make_image_bytes) -> None:
    client = create_app(make_context(intake=None)).test_client()
    response = client.post("/api/v1/images", data={"file": (io.BytesIO(make_image_bytes(1)), "a.png")}, headers=auth)
    assert response.status_code == 503


def test_upload_into_a_named_inbox(api, settings, make_image_bytes) -> None:
    response = _upload(api, make_image_bytes(5), "n.png", inbox="inbox")
    assert response.status_code == 202
    assert Path(settings.inboxes[0].path / "n.png").is_file()
