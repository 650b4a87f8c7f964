"""Intake: settled files become committed rows exactly once; same content becomes a duplicate."""

from __future__ import annotations

from pathlib import Path

import pytest

import storage
from config import ensure_folders, load_settings
from daemon.intake import Intake, IntakeRequest, hash_file


@pytest.fixture
def intake(tmp_path: Path) -> Intake:
    settings = load_settings(None, cwd=tmp_path, environ={})
    ensure_folders(settings)
    engine = storage.create_engine(settings.database_url)
    storage.migrate(engine)
    yield Intake(settings, storage.session_factory(engine), model_version="test-1")
    engine.dispose()


def _request(intake: Intake, path: Path) -> IntakeRequest:
    inbox = intake._settings.inboxes[0]
    stat = path.stat()
    return IntakeRequest(inbox.name, path, path.relative_to(inbox.path), stat.st_size, stat.st_mtime_ns)


def _drop(intake: Intake, name: str, content: bytes) -> Path:
    path = intake._settings.inboxes[0].path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def test_a_file_is_queued_once(intake: Intake) -> None:
    path = _drop(intake, "a/photo.jpg", b"one")
    first = intake.submit(_request(intake, path))
    assert first.state == "queued" and not first.already_known
    again = intake.submit(_request(intake, path))
    assert again.image_id == first.image_id and again.already_known
    assert intake.is_known(path, path.stat().st_size, path.stat().st_mtime_ns)


def test_same_content_elsewhere_is_a_duplicate(intake: Intake) -> None:
    first = intake.submit(_request(intake, _drop(intake, "x.jpg", b"same bytes")))
    second = intake.submit(_request(intake, _drop(intake, "sub/y.jpg", b"same bytes")))
    assert second.state == "duplicate" and second.image_id != first.image_id


def test_parameters_come_from_the_inbox_profile(intake: Intake) -> None:
    name = intake._settings.inboxes[0].name
    assert intake.parameters_for(name)["strength"] == intake._settings.profile("default").strength


def test_hash_file_is_sha256(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"abc")
    assert hash_file(path) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
