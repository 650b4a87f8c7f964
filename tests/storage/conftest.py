"""Storage fixtures: an engine on the empty database of ``tests/conftest.py``'s ``db_url`` (SQLite, and PostgreSQL
when ``ENHANCERD_TEST_PG_URL`` is set), the same migrated, sessions, a fixed clock and image factories."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

import storage


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """An engine on the empty database (not migrated)."""
    engine = storage.create_engine(db_url)
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture
def db(engine: Engine) -> Engine:
    """The engine of a database migrated to head."""
    storage.migrate(engine)
    return engine


@pytest.fixture
def sessions(db: Engine) -> sessionmaker[Session]:
    return storage.session_factory(db)


@pytest.fixture
def now() -> datetime:
    """A fixed clock: storage never reads the wall clock when given ``now``."""
    return datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def add_images(sessions: sessionmaker[Session], now: datetime) -> Callable[..., list[int]]:
    """Intake ``count`` distinct images (committed) and return their ids."""

    def add(
        count: int, *, inbox: str = "inbox", prefix: str = "img", at: datetime | None = None, **kw: Any
    ) -> list[int]:
        with sessions.begin() as session:
            return [
                storage.intake(session, new_image(f"{prefix}{i}", inbox=inbox, **kw), now=at or now).id
                for i in range(count)
            ]

    return add


@pytest.fixture
def make_image() -> Callable[..., storage.NewImage]:
    """The :func:`new_image` factory, for tests (test modules do not import conftest)."""
    return new_image


def new_image(name: str, *, inbox: str = "inbox", content: str | None = None, **kw: Any) -> storage.NewImage:
    """A NewImage whose hash defaults to one derived from ``name`` (distinct names: distinct contents)."""
    return storage.NewImage(
        inbox=inbox,
        source_path=f"/photos/{inbox}/{name}.jpg",
        relative_path=f"{name}.jpg",
        content_hash=(content or name).encode().hex().ljust(64, "0")[:64],
        source_size=kw.pop("source_size", 1000),
        source_mtime_ns=kw.pop("source_mtime_ns", 1_700_000_000_000_000_000),
        format="jpeg",
        model_version=kw.pop("model_version", "v1"),
        parameters=kw.pop("parameters", {"strength": 1.0}),
        **kw,
    )
