"""An index for keeping each chat's messages in order across claims.

A row may be claimed only while no earlier row of the same chat is still being sent or waiting for a
retry; that check looks up a chat's earlier rows, by (channel, chat_id, id).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-21
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(op.f("ix_outbox_channel_chat_id_id"), "outbox", ["channel", "chat_id", "id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_outbox_channel_chat_id_id"), table_name="outbox")
