"""Operator controls: invites named by id and revocable, members removable, the operator in the audit.

- `invite.id` becomes the key (the code stays unique): the audit trail and exports name an invite by its
  id, since its code is the secret that joins a unit; `invite.revoked_at` marks an invite withdrawn.
- `member.removed_at` marks a member an operator removed; the row stays (answers, evidence and audit
  refer to it), and one chat may have one member that is not removed, so it can join again later.
- `audit_log.operator` is who ran the `dtibot` command behind a record.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ACTIVE = sa.text("removed_at IS NULL")
INVITE_COLUMNS = (
    "code, unit_id, role, period_id, created_at, expires_at, used_at, used_by_member_id, created_by"
)


def _invite_table(name: str, *, with_id: bool) -> None:
    """The invite table as of this revision (`with_id`) or the one before, under `name` (SQLite)."""
    op.create_table(
        name,
        *([sa.Column("id", sa.Integer(), nullable=False)] if with_id else []),
        sa.Column("code", sa.String(), nullable=False),
        sa.Column("unit_id", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(), nullable=False),
        sa.Column("period_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("used_by_member_id", sa.Integer(), nullable=True),
        sa.Column("created_by", sa.String(), nullable=True),
        *([sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True)] if with_id else []),
        sa.ForeignKeyConstraint(["unit_id"], ["unit.id"], name="fk_invite_unit_id_unit"),
        sa.ForeignKeyConstraint(["period_id"], ["period.id"], name="fk_invite_period_id_period"),
        sa.ForeignKeyConstraint(
            ["used_by_member_id"], ["member.id"], name="fk_invite_used_by_member_id_member"
        ),
        *([sa.UniqueConstraint("code", name="uq_invite_code")] if with_id else []),
        sa.PrimaryKeyConstraint("id" if with_id else "code", name="pk_invite"),
    )


def _rebuild_invite(*, with_id: bool) -> None:
    """SQLite cannot change a primary key in place: copy into a new table (ids numbered by age)."""
    _invite_table("_invite_new", with_id=with_id)
    op.execute(
        f"INSERT INTO _invite_new ({INVITE_COLUMNS}) SELECT {INVITE_COLUMNS} FROM invite"
        + (" ORDER BY created_at, code" if with_id else "")
    )
    op.drop_table("invite")
    op.rename_table("_invite_new", "invite")


def upgrade() -> None:
    if op.get_context().dialect.name == "sqlite":
        _rebuild_invite(with_id=True)
    else:
        op.execute("ALTER TABLE invite ADD COLUMN id SERIAL NOT NULL")
        op.drop_constraint("pk_invite", "invite", type_="primary")
        op.create_primary_key("pk_invite", "invite", ["id"])
        op.create_unique_constraint("uq_invite_code", "invite", ["code"])
        op.add_column("invite", sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("member") as batch:
        batch.add_column(sa.Column("removed_at", sa.DateTime(timezone=True), nullable=True))
        batch.drop_constraint("uq_member_channel_chat_id", type_="unique")
    op.create_index(
        "ix_member_channel_chat_id",
        "member",
        ["channel", "chat_id"],
        unique=True,
        sqlite_where=ACTIVE,
        postgresql_where=ACTIVE,
    )
    op.add_column("audit_log", sa.Column("operator", sa.String(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("audit_log") as batch:
        batch.drop_column("operator")
    op.drop_index("ix_member_channel_chat_id", table_name="member")
    with op.batch_alter_table("member") as batch:
        batch.create_unique_constraint("uq_member_channel_chat_id", ["channel", "chat_id"])
        batch.drop_column("removed_at")
    if op.get_context().dialect.name == "sqlite":
        _rebuild_invite(with_id=False)
    else:
        op.drop_column("invite", "revoked_at")
        op.drop_constraint("uq_invite_code", "invite", type_="unique")
        op.drop_constraint("pk_invite", "invite", type_="primary")
        op.drop_column("invite", "id")
        op.create_primary_key("pk_invite", "invite", ["code"])
