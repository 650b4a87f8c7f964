"""Connection settings and column types: SQLite pragmas on every connection, foreign keys, UTC timestamps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

import storage


def _pragma(connection: sa.Connection, name: str) -> object:
    return connection.exec_driver_sql(f"PRAGMA {name}").scalar()


def test_sqlite_pragmas_are_set_on_every_connection(tmp_path) -> None:
    engine = storage.create_engine(f"sqlite:///{tmp_path / 'p.db'}", busy_timeout_ms=1234)
    try:
        with engine.connect() as first, engine.connect() as second:  # two pooled DBAPI connections
            for connection in (first, second):
                assert _pragma(connection, "journal_mode") == "wal"
                assert _pragma(connection, "busy_timeout") == 1234
                assert _pragma(connection, "foreign_keys") == 1
                assert _pragma(connection, "synchronous") == 2  # FULL
    finally:
        engine.dispose()


def test_foreign_keys_are_enforced(sessions: sessionmaker[Session]) -> None:
    with pytest.raises(sa.exc.IntegrityError), sessions.begin() as session:
        session.add(storage.Score(image_id=999, phase=storage.ScorePhase.BEFORE, quality=1.0))


def test_timestamps_come_back_as_aware_utc(make_image, sessions: sessionmaker[Session]) -> None:
    paris = timezone(timedelta(hours=2))
    at = datetime(2025, 6, 1, 14, 30, 15, 123456, tzinfo=paris)
    with sessions.begin() as session:
        image_id = storage.intake(session, make_image("a"), now=at).id
    with sessions.begin() as session:
        image = storage.get_image(session, image_id)
        assert image.created_at == at
        assert image.created_at.tzinfo is UTC
        assert image.created_at.hour == 12


def test_naive_timestamps_are_refused(make_image, sessions: sessionmaker[Session]) -> None:
    with pytest.raises(sa.exc.StatementError, match="naive datetime"), sessions.begin() as session:
        storage.intake(session, make_image("a"), now=datetime(2025, 1, 1))


def test_enums_are_stored_as_their_values(
    make_image, db: Engine, sessions: sessionmaker[Session], now: datetime
) -> None:
    with sessions.begin() as session:
        storage.intake(session, make_image("a"), now=now)
    with db.connect() as connection:
        assert connection.execute(sa.text("SELECT state FROM images")).scalar() == "queued"
        kinds = connection.execute(sa.text("SELECT kind FROM events ORDER BY id")).scalars().all()
    assert kinds == ["discovered", "queued"]


def test_sqlite_reader_is_not_blocked_by_an_open_write_transaction(make_image, tmp_path) -> None:
    """WAL plus deferred BEGIN for read-only sessions: the API can list while the worker holds the write lock."""
    engine = storage.create_engine(f"sqlite:///{tmp_path / 'r.db'}", busy_timeout_ms=100)
    try:
        storage.migrate(engine)
        writer, reader = storage.session_factory(engine), storage.session_factory(engine, readonly=True)
        with writer.begin() as writing:
            storage.intake(writing, make_image("a"), now=datetime(2025, 1, 1, tzinfo=UTC))
            writing.flush()
            with reader.begin() as reading:
                assert storage.count_by_state(reading)[storage.ImageState.QUEUED] == 0  # not committed yet
            with pytest.raises(sa.exc.OperationalError, match="locked"), writer.begin() as second_writer:
                storage.set_paused(second_writer, True)  # BEGIN IMMEDIATE waits 100 ms, then gives up
        with reader.begin() as reading:
            assert storage.count_by_state(reading)[storage.ImageState.QUEUED] == 1
    finally:
        engine.dispose()


def test_query_functions_leave_the_commit_to_the_caller(
    sessions: sessionmaker[Session], make_image, now: datetime
) -> None:
    session = sessions()
    try:
        image = storage.intake(session, make_image("a"), now=now)
        storage.claim_batch(session, "w", 1, 60, now)
        storage.mark_done(session, image.id, owner="w", output_path="/o.png", before={"quality": 1.0}, now=now)
        storage.set_paused(session, True, now=now)
        session.rollback()
    finally:
        session.close()
    with sessions.begin() as check:
        assert storage.count_images(check, storage.ImageFilter()) == 0
        assert storage.list_events(check).items == []
        assert storage.is_paused(check) is False


def test_analyze_refreshes_planner_statistics(db: Engine, sessions: sessionmaker[Session], make_image, now) -> None:
    with sessions.begin() as session:
        storage.intake(session, make_image("a"), now=now)
    storage.analyze(db)
    if db.dialect.name == "sqlite":
        with db.connect() as connection:
            tables = connection.exec_driver_sql("SELECT DISTINCT tbl FROM sqlite_stat1").scalars().all()
        assert "images" in tables


def test_json_columns_read_what_the_standard_library_wrote_too() -> None:
    """orjson reads JSON columns; rows holding what only the standard library accepts still load."""
    from storage.engine import load_json

    assert load_json('{"a": [1, 2.5, null]}') == {"a": [1, 2.5, None]}
    nan = load_json('{"noise": NaN, "big": 123456789012345678901234567890}')
    assert nan["big"] == 123456789012345678901234567890 and nan["noise"] != nan["noise"]
