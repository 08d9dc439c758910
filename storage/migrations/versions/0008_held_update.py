"""Updates answered for before they were handled, kept until they are.

A webhook answers an album part as soon as it has it, since Telegram may wait for that answer before
sending the next part; the album is handled once its parts stop coming. `held_update` keeps each such
part from the answer until the album is handled, so a crash in between loses nothing: the next start
handles what it holds.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-21
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "held_update",
        sa.Column("channel", sa.String(), nullable=False),
        sa.Column("update_id", sa.String(), nullable=False),
        sa.Column("chat_id", sa.String(), nullable=False),
        sa.Column("update_json", sa.Text(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("channel", "update_id", name=op.f("pk_held_update")),
    )


def downgrade() -> None:
    op.drop_table("held_update")
