"""Run the Alembic migrations programmatically: no ``alembic.ini`` on disk, the scripts ship inside the package.

``enhancerd run`` calls :func:`migrate` before anything else touches the database; it creates the schema on an empty
database and upgrades one written by an earlier release. Developers add a revision with
``python -c "from storage.migrate import new_revision; new_revision('sqlite:///var/enhancerd.db', 'what changed')"``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection
from sqlalchemy.engine import Engine

from storage.engine import create_engine, writer

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
"""The Alembic script folder (``env.py``, ``script.py.mako``, ``versions/``)."""


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic config pointing at the packaged scripts; ``connection`` is used by ``env.py`` when given."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


@contextmanager
def _connection(engine_or_url: Engine | str) -> Iterator[Connection]:
    """One transaction on the given engine (or a temporary one for a URL), committed when the block succeeds."""
    engine = create_engine(engine_or_url) if isinstance(engine_or_url, str) else engine_or_url
    try:
        with writer(engine).begin() as connection:  # one migrator at a time
            yield connection
    finally:
        if engine is not engine_or_url:
            engine.dispose()


def migrate(engine_or_url: Engine | str, revision: str = "head") -> None:
    """Upgrade the database to ``revision`` (default: the newest); a no-op when it is already there."""
    with _connection(engine_or_url) as connection:
        command.upgrade(alembic_config(connection), revision)


def downgrade(engine_or_url: Engine | str, revision: str) -> None:
    """Downgrade to ``revision`` (``"base"`` = empty); for tests and for undoing a release by hand."""
    with _connection(engine_or_url) as connection:
        command.downgrade(alembic_config(connection), revision)


def current_revision(engine_or_url: Engine | str) -> str | None:
    """The revision the database is at (``None`` for an empty database)."""
    with _connection(engine_or_url) as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str:
    """The newest revision shipped with this code."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "no migration scripts found"
    return head


def revisions() -> list[str]:
    """Every shipped revision, oldest first."""
    script = ScriptDirectory.from_config(alembic_config())
    return [rev.revision for rev in reversed(list(script.walk_revisions()))]


def new_revision(url: str, message: str) -> None:
    """Autogenerate a new revision file from the difference between the models and a database at head."""
    config = alembic_config()
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    command.revision(config, message=message, autogenerate=True)
