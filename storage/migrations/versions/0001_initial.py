"""Initial schema: images, scores, events, kv.

Revision ID: 0001
Revises:
Create Date: first release

Written with plain SQLAlchemy types (not the models' TypeDecorators) so this file stays valid whatever the models
become: DateTime(timezone=True) for UTC timestamps, VARCHAR for the str Enums, JSON (JSONB on PostgreSQL).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json() -> sa.types.TypeEngine:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _time(name: str, nullable: bool = True) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "images",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=True),
        sa.Column("inbox", sa.String(length=200), nullable=False),
        sa.Column("source_path", sa.Text(), nullable=False),
        sa.Column("relative_path", sa.Text(), nullable=False),
        sa.Column("source_size", sa.BigInteger(), nullable=True),
        sa.Column("source_mtime_ns", sa.BigInteger(), nullable=True),
        sa.Column("output_path", sa.Text(), nullable=True),
        sa.Column("output_size", sa.BigInteger(), nullable=True),
        sa.Column("archive_path", sa.Text(), nullable=True),
        _time("original_deleted_at"),
        sa.Column("format", sa.String(length=16), nullable=True),
        sa.Column("width", sa.Integer(), nullable=True),
        sa.Column("height", sa.Integer(), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        _time("next_attempt_at"),
        sa.Column("lease_owner", sa.String(length=200), nullable=True),
        _time("lease_expires_at"),
        sa.Column("duplicate_of", sa.Integer(), nullable=True),
        sa.Column("model_version", sa.String(length=200), nullable=True),
        sa.Column("parameters", _json(), nullable=False),
        sa.Column("parameters_key", sa.String(length=64), nullable=False),
        sa.Column("timings", _json(), nullable=True),
        sa.Column("device", sa.String(length=64), nullable=True),
        _time("created_at", nullable=False),
        _time("updated_at", nullable=False),
        _time("started_at"),
        _time("finished_at"),
        sa.ForeignKeyConstraint(["duplicate_of"], ["images.id"], name="fk_images_duplicate_of_images"),
        sa.PrimaryKeyConstraint("id", name="pk_images"),
    )
    op.create_index("ix_images_claim", "images", ["state", "next_attempt_at", "id"])
    op.create_index("ix_images_lease", "images", ["state", "lease_expires_at"])
    op.create_index("ix_images_identity", "images", ["content_hash", "model_version", "parameters_key"])
    op.create_index("ix_images_inbox_state", "images", ["inbox", "state"])
    op.create_index("ix_images_state_finished", "images", ["state", "finished_at"])
    op.create_index("ix_images_source_path", "images", ["source_path"])
    op.create_index("ix_images_created_at", "images", ["created_at"])

    op.create_table(
        "scores",
        sa.Column("image_id", sa.Integer(), nullable=False),
        sa.Column("phase", sa.String(length=8), nullable=False),
        sa.Column("width", sa.Integer(), nullable=True),
        sa.Column("height", sa.Integer(), nullable=True),
        sa.Column("noise_sigma", sa.Float(), nullable=True),
        sa.Column("blur_sigma", sa.Float(), nullable=True),
        sa.Column("jpeg_quality", sa.Integer(), nullable=True),
        sa.Column("contrast", sa.Float(), nullable=True),
        sa.Column("quality", sa.Float(), nullable=True),
        sa.Column("megapixels", sa.Float(), nullable=True),
        sa.Column("blockiness", sa.Float(), nullable=True),
        sa.Column("exposure", sa.Float(), nullable=True),
        sa.Column("clipped_shadows", sa.Float(), nullable=True),
        sa.Column("clipped_highlights", sa.Float(), nullable=True),
        sa.Column("extra", _json(), nullable=True),
        sa.ForeignKeyConstraint(["image_id"], ["images.id"], name="fk_scores_image_id_images", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("image_id", "phase", name="pk_scores"),
    )
    for column in ("quality", "noise_sigma", "blur_sigma", "jpeg_quality", "contrast"):
        op.create_index(f"ix_scores_{column}", "scores", ["phase", column, "image_id"])

    op.create_table(
        "events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("image_id", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(length=32), nullable=False),
        _time("at", nullable=False),
        sa.Column("detail", _json(), nullable=True),
        sa.ForeignKeyConstraint(["image_id"], ["images.id"], name="fk_events_image_id_images"),
        sa.PrimaryKeyConstraint("id", name="pk_events"),
    )
    op.create_index("ix_events_image", "events", ["image_id", "id"])
    op.create_index("ix_events_kind_at", "events", ["kind", "at"])
    op.create_index("ix_events_at", "events", ["at"])

    op.create_table(
        "kv",
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("value", _json(), nullable=False),
        _time("updated_at", nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_kv"),
    )


def downgrade() -> None:
    op.drop_table("kv")
    op.drop_table("events")
    op.drop_table("scores")
    op.drop_table("images")
