"""Delivery bookkeeping: when an outbox row was claimed, the id the channel gave the sent message, and
when a member blocked the bot.

A row stuck in "sending" with an old `claimed_at` (its process died mid-send) goes back to the queue;
`external_id` lets a later message edit the one it replaces; a member with `blocked_at` set gets no
more messages until they come back.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("external_id", sa.String(), nullable=True))
    with op.batch_alter_table("member") as batch:
        batch.add_column(sa.Column("blocked_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("member") as batch:
        batch.drop_column("blocked_at")
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("external_id")
        batch.drop_column("claimed_at")
