"""Deadlines per unit and reminders that go out once.

`extension`: a later deadline for one unit (with the reason, audited elsewhere). `reminder`: the ledger
of reminders — one row per (member, period, deadline, offset), so a reminder is queued exactly once
across restarts and concurrent schedulers. `period.reminder_policy_json`: offsets, quiet hours and
weekends for the period (defaults apply when it is empty).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("period") as batch:
        batch.add_column(sa.Column("reminder_policy_json", sa.Text(), nullable=True))
    op.create_table(
        "extension",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("period_id", sa.Integer(), nullable=False),
        sa.Column("unit_id", sa.Integer(), nullable=False),
        sa.Column("deadline", sa.String(), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["period_id"], ["period.id"], name=op.f("fk_extension_period_id_period")),
        sa.ForeignKeyConstraint(["unit_id"], ["unit.id"], name=op.f("fk_extension_unit_id_unit")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_extension")),
        sa.UniqueConstraint(
            "period_id", "unit_id", "deadline", name=op.f("uq_extension_period_id_unit_id_deadline")
        ),
    )
    op.create_table(
        "reminder",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("period_id", sa.Integer(), nullable=False),
        sa.Column("deadline", sa.String(), nullable=False),
        sa.Column("offset_key", sa.String(), nullable=False),
        sa.Column("planned_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("send_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("outbox_id", sa.Integer(), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["member_id"], ["member.id"], name=op.f("fk_reminder_member_id_member")),
        sa.ForeignKeyConstraint(["period_id"], ["period.id"], name=op.f("fk_reminder_period_id_period")),
        sa.ForeignKeyConstraint(["outbox_id"], ["outbox.id"], name=op.f("fk_reminder_outbox_id_outbox")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reminder")),
        sa.UniqueConstraint(
            "member_id",
            "period_id",
            "deadline",
            "offset_key",
            name=op.f("uq_reminder_member_id_period_id_deadline_offset_key"),
        ),
    )
    op.create_index(op.f("ix_reminder_period_id_status"), "reminder", ["period_id", "status"])


def downgrade() -> None:
    op.drop_index(op.f("ix_reminder_period_id_status"), table_name="reminder")
    op.drop_table("reminder")
    op.drop_table("extension")
    with op.batch_alter_table("period") as batch:
        batch.drop_column("reminder_policy_json")
