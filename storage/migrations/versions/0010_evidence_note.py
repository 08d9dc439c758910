"""A file's caption that is not a document citation, kept as a note the reviewer sees.

Officials caption their files in their own words ("ảnh chụp cổng dịch vụ công ngày 12/3"); the chat
reads a citation out of a caption where there is one and keeps any other caption here, so nothing an
official wrote is dropped.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("evidence") as batch:
        batch.add_column(sa.Column("note", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("evidence") as batch:
        batch.drop_column("note")
