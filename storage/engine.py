"""Engines and sessions: one engine per process, one session per unit of work, opened and committed by the caller.

SQLite gets WAL (readers never block the writer), a busy timeout (writers queue instead of failing), foreign keys and
``synchronous=FULL`` (a commit survives power loss: originals are archived or deleted only after it) on every
connection. SQLAlchemy emits BEGIN itself instead of the sqlite3 driver's legacy mode, so a transaction covers its reads
too. Sessions from :func:`session_factory` begin with ``BEGIN IMMEDIATE`` (they take the write lock up front, so a
read-then-write transaction never fails with "database is locked" half-way); read-only sessions and plain
``engine.connect()`` use SQLite's usual deferred ``BEGIN``, so readers never queue behind the worker.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, Engine
from sqlalchemy.orm import Session, sessionmaker

SQLITE_BUSY_TIMEOUT_MS = 30_000
"""How long a SQLite writer waits for the write lock before giving up with "database is locked"."""

SQLITE_BEGIN_OPTION = "enhancerd_sqlite_begin"
"""Execution option naming the SQLite BEGIN mode of a connection: ``DEFERRED`` (default) or ``IMMEDIATE``."""


def create_engine(url: str | URL, *, busy_timeout_ms: int = SQLITE_BUSY_TIMEOUT_MS, **kwargs: Any) -> Engine:
    """An engine for ``url`` (SQLite or PostgreSQL) with the connection settings above; ``kwargs`` go to SQLAlchemy."""
    if sa.make_url(url).get_backend_name() != "sqlite":
        kwargs.setdefault("pool_pre_ping", True)  # a server restart must not fail the next unit of work
    kwargs.setdefault("json_deserializer", load_json)
    engine = sa.create_engine(url, **kwargs)
    if engine.dialect.name == "sqlite":
        _configure_sqlite(engine, busy_timeout_ms)
    return engine


def load_json(text: str | bytes) -> Any:
    """JSON columns as Python values: orjson, several times faster on listings of a thousand rows, with the standard
    library as the fallback for what orjson refuses and older rows may hold (``NaN``, integers beyond 64 bits)."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def _configure_sqlite(engine: Engine, busy_timeout_ms: int) -> None:
    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # driver autocommit: SQLAlchemy emits BEGIN (see on_begin)
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = FULL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(connection: sa.Connection) -> None:
        mode = connection.get_execution_options().get(SQLITE_BEGIN_OPTION, "DEFERRED")
        connection.exec_driver_sql(f"BEGIN {mode}")


def writer(engine: Engine) -> Engine:
    """The same engine, whose transactions take SQLite's write lock when they begin (no effect on PostgreSQL)."""
    return engine.execution_options(**{SQLITE_BEGIN_OPTION: "IMMEDIATE"})


def session_factory(engine: Engine, *, readonly: bool = False) -> sessionmaker[Session]:
    """Sessions for units of work: ``with factory.begin() as session: ...`` commits on success, rolls back on error.

    Objects stay usable after the commit (``expire_on_commit=False``): the worker hands claimed rows to its threads as
    plain values. ``readonly`` sessions (API listings, status) do not take SQLite's write lock; never write with them.
    A session belongs to one thread.
    """
    bind = engine if readonly else writer(engine)
    return sessionmaker(bind=bind, expire_on_commit=False)


def analyze(engine: Engine) -> None:
    """Refresh the planner's statistics (SQLite has none until asked; PostgreSQL's autovacuum also does this).

    Without them SQLite may sort every row of a state instead of walking the primary key; the daemon calls this at
    start-up and after the nightly retention run.
    """
    with engine.connect() as connection:
        connection.exec_driver_sql("ANALYZE")
        connection.commit()
