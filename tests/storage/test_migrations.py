"""Migrations: an empty database reaches head, an older one upgrades with its data, and models equal the schema."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Engine

import storage
from storage.migrate import revisions


def _schema_diff(engine: Engine, metadata: sa.MetaData) -> list:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True, "compare_server_default": True})
        return compare_metadata(context, metadata)


def test_empty_database_is_migrated_to_head(engine: Engine) -> None:
    assert storage.current_revision(engine) is None
    storage.migrate(engine)
    assert storage.current_revision(engine) == storage.head_revision()
    tables = set(sa.inspect(engine).get_table_names())
    assert {"images", "scores", "events", "kv", "alembic_version"} <= tables


def test_migrate_is_idempotent(engine: Engine) -> None:
    storage.migrate(engine)
    storage.migrate(engine)
    assert storage.current_revision(engine) == storage.head_revision()


def test_migrate_accepts_a_url(db_url: str) -> None:
    storage.migrate(db_url)
    assert storage.current_revision(db_url) == storage.head_revision()


def test_models_match_the_migrated_schema(db: Engine) -> None:
    assert _schema_diff(db, storage.Base.metadata) == []


def test_schema_comparison_notices_a_difference(db: Engine) -> None:
    """Guards the test above: a model that drifts from the migrations must show up in the diff."""
    drifted = sa.MetaData()
    for table in storage.Base.metadata.sorted_tables:
        table.to_metadata(drifted)
    drifted.tables["images"].append_column(sa.Column("colour_space", sa.String(16)))
    diff = _schema_diff(db, drifted)
    assert any(op[0] == "add_column" and op[3].name == "colour_space" for op in diff)


def test_every_revision_upgrades_one_step_at_a_time_and_downgrades(engine: Engine) -> None:
    for revision in revisions():
        storage.migrate(engine, revision)
        assert storage.current_revision(engine) == revision
    storage.downgrade(engine, "base")
    assert storage.current_revision(engine) is None
    assert "images" not in sa.inspect(engine).get_table_names()
    storage.migrate(engine)
    assert _schema_diff(engine, storage.Base.metadata) == []


def _index_names(engine: Engine, table: str) -> set[str]:
    return {index["name"] for index in sa.inspect(engine).get_indexes(table)}


def test_database_of_the_first_release_upgrades_with_its_data(engine: Engine) -> None:
    """Rows written by release 1 (raw SQL, the 0001 columns) are readable by today's models after the upgrade."""
    storage.migrate(engine, "0001")
    assert "ix_images_output_path" not in _index_names(engine, "images")
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO images (id, inbox, source_path, relative_path, state, attempts, parameters,"
                " parameters_key, created_at, updated_at, content_hash, output_path)"
                " VALUES (7, 'inbox', '/in/a.jpg', 'a.jpg', 'done', 1, :params, 'k', :at, :at, 'abc', '/out/a.jpg')"
            ),
            {"params": json.dumps({"strength": 0.5}), "at": "2024-01-02 03:04:05"},
        )
    storage.migrate(engine)
    assert storage.current_revision(engine) == storage.head_revision()
    assert "ix_images_output_path" in _index_names(engine, "images")
    assert _schema_diff(engine, storage.Base.metadata) == []
    with storage.session_factory(engine).begin() as session:
        image = storage.get_image(session, 7)
        assert image.state is storage.ImageState.DONE
        assert image.parameters == {"strength": 0.5}
        assert image.created_at.tzinfo is not None
        assert storage.output_paths_in_use(session, ["/out/a.jpg", "/out/b.jpg"]) == {"/out/a.jpg"}
        assert storage.output_paths_in_use(session, ["/out/a.jpg"], exclude_id=7) == set()


def test_output_path_lookups_use_the_index(db: Engine, backend: str) -> None:
    """``output_paths_in_use`` runs for every output name the worker picks: it must not read the whole table."""
    if backend != "sqlite":
        pytest.skip("the plan of a tiny PostgreSQL table is a sequential scan whatever the indexes")
    query = sa.select(storage.Image.output_path).where(
        storage.Image.output_path.in_(["/out/a.jpg", "/out/b.jpg"]), storage.Image.id != 7
    )
    compiled = query.compile(db, compile_kwargs={"literal_binds": True})
    with db.connect() as connection:
        plan = " ".join(str(row[-1]) for row in connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}"))
    assert "ix_images_output_path" in plan, plan


@pytest.mark.parametrize("name", ["images", "scores", "events", "kv"])
def test_constraints_have_deterministic_names(name: str) -> None:
    """SQLite batch migrations can only drop named constraints, so the models name every one of them."""
    table = storage.Base.metadata.tables[name]
    assert table.primary_key.name == f"pk_{name}"
    for fk in table.foreign_key_constraints:
        assert fk.name == f"fk_{name}_{fk.column_keys[0]}_images"
