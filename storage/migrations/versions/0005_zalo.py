"""Zalo Official Account: the token pair, and when each contact last wrote to us.

`zalo_token` holds the OA access token (about 25 hours) and the single-use refresh token (about three
months); one row, locked while refreshing so only one process refreshes, the new pair stored before it
is used. `contact` records the last inbound message of every chat on a channel: Zalo allows free
replies only within a window after it, so reminders outside the window take the template path.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-21
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "zalo_token",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("access_token", sa.Text(), nullable=False),
        sa.Column("refresh_token", sa.Text(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("refreshed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("failed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_zalo_token")),
    )
    op.create_table(
        "contact",
        sa.Column("channel", sa.String(), nullable=False),
        sa.Column("chat_id", sa.String(), nullable=False),
        sa.Column("last_inbound_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("following", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("channel", "chat_id", name=op.f("pk_contact")),
    )


def downgrade() -> None:
    op.drop_table("contact")
    op.drop_table("zalo_token")
