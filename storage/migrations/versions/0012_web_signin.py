"""Sign-in to the web workspace without passwords: single-use links and browser sessions.

- `web_link`: a link a member asked for in the chat (or an operator printed), valid for ten minutes
  and used once; only the SHA-256 of its token is stored.
- `web_session`: a signed-in browser, by the SHA-256 of its cookie's token, with its CSRF token, the
  time it was last seen (idle expiry) and when it was signed out (`revoked_at`).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "web_link",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_sha256", sa.String(), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["member_id"], ["member.id"], name="fk_web_link_member_id_member"),
        sa.PrimaryKeyConstraint("id", name="pk_web_link"),
        sa.UniqueConstraint("token_sha256", name="uq_web_link_token_sha256"),
    )
    op.create_index("ix_web_link_member_id_created_at", "web_link", ["member_id", "created_at"])
    op.create_table(
        "web_session",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_sha256", sa.String(), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("csrf_token", sa.String(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["member_id"], ["member.id"], name="fk_web_session_member_id_member"),
        sa.PrimaryKeyConstraint("id", name="pk_web_session"),
        sa.UniqueConstraint("token_sha256", name="uq_web_session_token_sha256"),
    )
    op.create_index("ix_web_session_member_id", "web_session", ["member_id"])


def downgrade() -> None:
    op.drop_index("ix_web_session_member_id", table_name="web_session")
    op.drop_table("web_session")
    op.drop_index("ix_web_link_member_id_created_at", table_name="web_link")
    op.drop_table("web_link")
