"""Originals, outputs, previews and heatmaps; files only from the configured folders."""

from __future__ import annotations

import io
import os
from pathlib import Path

import sqlalchemy as sa
from PIL import Image as PILImage

from daemon.api.app import create_app
from storage import Image


def _set(sessions, image_id: int, **values) -> None:
    with sessions.begin() as session:
        session.execute(sa.update(Image).where(Image.id == image_id).values(**values))


def test_original_and_output_are_the_files(api, library) -> None:
    image_id = library.add()
    image = library.image(image_id)
    original = api.get(f"/api/v1/images/{image_id}/original")
    assert original.status_code == 200 and original.mimetype == "image/png"
    assert original.data == Path(image.archive_path).read_bytes()
    output = api.get(f"/api/v1/images/{image_id}/output")
    assert output.status_code == 200
    assert output.data == Path(image.output_path).read_bytes()
    assert output.data != original.data


def test_kept_originals_are_served_from_the_inbox(api, library) -> None:
    image_id = library.add(original="keep")
    response = api.get(f"/api/v1/images/{image_id}/original")
    assert response.status_code == 200
    assert response.data == Path(library.image(image_id).source_path).read_bytes()


def test_range_requests_work(api, library) -> None:
    image_id = library.add()
    response = api.get(f"/api/v1/images/{image_id}/output", headers={"Range": "bytes=0-7"})
    assert response.status_code == 206
    assert response.data == b"\x89PNG\r\n\x1a\n"


def test_missing_files_are_404_with_a_reason(api, library) -> None:
    queued = library.add(state="queued")
    response = api.get(f"/api/v1/images/{queued}/output")
    assert response.status_code == 404 and "has no output" in response.json["detail"]
    deleted = library.add(original="delete")
    response = api.get(f"/api/v1/images/{deleted}/original")
    assert response.status_code == 404 and "was deleted" in response.json["detail"]
    gone = library.add()
    Path(library.image(gone).output_path).unlink()
    assert api.get(f"/api/v1/images/{gone}/output").status_code == 404
    assert api.get("/api/v1/images/12345/original").status_code == 404


def test_paths_outside_the_configured_folders_are_never_served(api, library, sessions, tmp_path, settings) -> None:
    secret = tmp_path / "secret.png"
    secret.write_bytes(b"\x89PNG\r\n\x1a\nsecret")
    outbox = settings.inboxes[0].output
    attempts = [
        str(secret),
        "/etc/passwd",
        str(outbox / ".." / "secret.png"),
        str(outbox / ".." / ".." / "secret.png"),
        str(outbox),  # the folder itself is not a file in it
    ]
    link = outbox / "link.png"
    os.symlink(secret, link)
    attempts.append(str(link))
    image_id = library.add()
    for recorded in attempts:
        _set(sessions, image_id, output_path=recorded, archive_path=recorded)
        for kind in ("output", "original", "preview"):
            response = api.get(f"/api/v1/images/{image_id}/{kind}")
            assert response.status_code == 404, (recorded, kind)
            assert b"secret" not in response.data


def test_url_traversal_is_not_a_route(api, library) -> None:
    library.add()
    for path in (
        "/api/v1/images/1/../../../../etc/passwd",
        "/api/v1/images/%2e%2e/%2e%2e/etc/passwd",
        "/api/v1/images/1/output/..%2f..%2fetc%2fpasswd",
        "/api/v1/images/1%2F..%2F/output",
    ):
        response = api.get(path)
        assert response.status_code in (404, 405), path
        assert b"root:" not in response.data


def test_preview_is_a_side_by_side_jpeg(api, library) -> None:
    image_id = library.add()
    response = api.get(f"/api/v1/images/{image_id}/preview?size=24")
    assert response.status_code == 200 and response.mimetype == "image/jpeg"
    picture = PILImage.open(io.BytesIO(response.data))
    assert picture.format == "JPEG"
    # 48x32 originals fit 24x16 each, side by side with an 8 px gap
    assert picture.size == (24 + 8 + 24, 16)
    again = api.get(f"/api/v1/images/{image_id}/preview?size=24")
    assert again.data == response.data


def test_preview_without_an_original_shows_the_output_alone(api, library) -> None:
    image_id = library.add(original="delete")
    picture = PILImage.open(io.BytesIO(api.get(f"/api/v1/images/{image_id}/preview?size=24").data))
    assert picture.size == (24, 16)


def test_preview_needs_an_output(api, library) -> None:
    image_id = library.add(state="failed")
    response = api.get(f"/api/v1/images/{image_id}/preview")
    assert response.status_code == 404 and "has no output" in response.json["detail"]


def test_heatmap_is_a_png_of_the_analysers_map(api, library) -> None:
    image_id = library.add()
    overlay = api.get(f"/api/v1/images/{image_id}/heatmap")
    assert overlay.status_code == 200 and overlay.mimetype == "image/png"
    alone = api.get(f"/api/v1/images/{image_id}/heatmap?overlay=false&map=noise")
    picture = PILImage.open(io.BytesIO(alone.data)).convert("RGB")
    assert picture.size == (48, 32)
    left, right = picture.getpixel((1, 16)), picture.getpixel((46, 16))
    assert sum(left) < 30 < sum(right)  # the fake analyser finds noise on the right only


def test_heatmap_is_cached_beyond_the_original(api, library) -> None:
    image_id = library.add()
    first = api.get(f"/api/v1/images/{image_id}/heatmap")
    Path(library.image(image_id).archive_path).unlink()
    again = api.get(f"/api/v1/images/{image_id}/heatmap")
    assert again.status_code == 200 and again.data == first.data
    other = api.get(f"/api/v1/images/{image_id}/heatmap?map=blur")
    assert other.status_code == 404 and "original" in other.json["detail"]


def test_heatmap_without_an_analyser_is_503(make_context, auth, library, monkeypatch) -> None:
    import core.analysis

    monkeypatch.delattr(core.analysis, "analyze", raising=False)
    client = create_app(make_context(analyse=None)).test_client()
    image_id = library.add()
    response = client.get(f"/api/v1/images/{image_id}/heatmap", headers=auth)
    assert response.status_code == 503 and "analyser" in response.json["detail"]


def test_undecodable_files_are_422_not_500(api, library) -> None:
    image_id = library.add()
    Path(library.image(image_id).archive_path).write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    Path(library.image(image_id).output_path).write_bytes(b"not an image at all")
    for kind in ("preview", "heatmap"):
        response = api.get(f"/api/v1/images/{image_id}/{kind}")
        assert response.status_code == 422, (kind, response.json)


def test_bad_media_queries_are_400(api, library) -> None:
    image_id = library.add()
    for query in ("size=0", "size=100000", "size=big", "map=colour", "overlay=maybe", "zoom=2"):
        for kind in ("preview", "heatmap"):
            if kind == "preview" and query.startswith(("map", "overlay")):
                continue
            response = api.get(f"/api/v1/images/{image_id}/{kind}?{query}")
            assert response.status_code == 400, (kind, query)
