"""Storage fixtures: every test runs on SQLite (a temporary file) and, when ``ENHANCERD_TEST_PG_URL`` is set, on
PostgreSQL in a schema of its own (created and dropped around the test, so parallel or repeated runs never meet).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

import storage

PG_URL_VARIABLE = "ENHANCERD_TEST_PG_URL"


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param(
            "postgresql",
            id="postgresql",
            marks=[
                pytest.mark.postgres,
                pytest.mark.skipif(not os.environ.get(PG_URL_VARIABLE), reason=f"{PG_URL_VARIABLE} is not set"),
            ],
        ),
    ]
)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def db_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """A URL of an empty database: a new SQLite file, or a new PostgreSQL schema selected via ``search_path``."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.db'}"
        return
    base = sa.make_url(os.environ[PG_URL_VARIABLE])
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        yield base.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(hide_password=False)
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    finally:
        admin.dispose()


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
