"""Index images.output_path.

Revision ID: 0002
Revises: 0001
Create Date: second release

``storage.output_paths_in_use`` looks images up by output path whenever the worker chooses output names and when
recovery decides whether a file may be deleted; without an index each lookup reads the whole table.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_images_output_path", "images", ["output_path"])


def downgrade() -> None:
    op.drop_index("ix_images_output_path", table_name="images")
