"""Intake: settled files become committed rows exactly once; same content becomes a duplicate."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

import storage
from config import ensure_folders, load_settings
from daemon.intake import Intake, IntakeRequest, hash_file

BUSY_TIMEOUT_MS = 200
"""Short, so that a check which wrongly waits for SQLite's write lock fails fast instead of after 30 s."""


@pytest.fixture
def intake(tmp_path: Path) -> Iterator[Intake]:
    settings = load_settings(None, cwd=tmp_path, environ={})
    ensure_folders(settings)
    engine = storage.create_engine(settings.database_url, busy_timeout_ms=BUSY_TIMEOUT_MS)
    storage.migrate(engine)
    yield Intake(
        settings,
        storage.session_factory(engine),
        model_version="test-1",
        read_sessions=storage.session_factory(engine, readonly=True),
    )
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


def test_known_checks_do_not_wait_for_the_write_lock(intake: Intake) -> None:
    """The watcher asks for every file of every rescan; a worker commit in progress must not hold it up."""
    path = _drop(intake, "photo.jpg", b"one")
    first = intake.submit(_request(intake, path))
    size, mtime_ns = path.stat().st_size, path.stat().st_mtime_ns
    with intake._sessions.begin() as writer:  # another unit of work holds SQLite's write lock (BEGIN IMMEDIATE)
        writer.execute(sa.text("SELECT 1"))
        started = time.monotonic()
        assert intake.is_known(path, size, mtime_ns)
        assert not intake.is_known(path, size + 1, mtime_ns)
        again = intake.submit(_request(intake, path))
        assert time.monotonic() - started < BUSY_TIMEOUT_MS / 1000
    assert again.image_id == first.image_id and again.already_known


def test_same_content_elsewhere_is_a_duplicate(intake: Intake) -> None:
    first = intake.submit(_request(intake, _drop(intake, "x.jpg", b"same bytes")))
    second = intake.submit(_request(intake, _drop(intake, "sub/y.jpg", b"same bytes")))
    assert second.state == "duplicate" and second.image_id != first.image_id


def test_parameters_come_from_the_inbox_profile(intake: Intake) -> None:
    name = intake._settings.inboxes[0].name
    assert intake.parameters_for(name)["strength"] == intake._settings.profile("default").strength


def test_a_profile_ensemble_is_recorded_so_it_joins_the_duplicate_key(intake: Intake, tmp_path: Path) -> None:
    name = intake._settings.inboxes[0].name
    assert "ensemble" not in intake.parameters_for(name)  # 0: the worker's views, recorded as nothing
    config = tmp_path / "archive.toml"
    config.write_text('[[inbox]]\npath = "in"\nprofile = "archive"\n[profiles.archive]\nensemble = 8\n')
    archive = Intake(load_settings(config, environ={}), intake._sessions, model_version="test-1")
    assert archive.parameters_for(archive._settings.inboxes[0].name) == {"strength": 1.0, "ensemble": 8}


def test_hash_file_is_sha256(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"abc")
    assert hash_file(path) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
