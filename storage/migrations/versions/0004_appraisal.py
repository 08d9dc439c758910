"""Appraisal decisions, computed results and frozen publications.

`appraisal_decision` is append-only: each decision on an indicator is a new revision, recording the
self-assessed and appraised points, the comment and who decided; a reviewer decides against the
revision they saw, so two reviewers cannot overwrite each other silently. `assessment` gains when and
by whom its appraisal was closed. `result` holds the latest computed results of a period, one row per
unit; `publication` is the frozen copy each `results publish` stores.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("assessment") as batch:
        batch.add_column(sa.Column("appraised_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("appraised_by_member_id", sa.Integer(), nullable=True))
        batch.create_foreign_key(
            op.f("fk_assessment_appraised_by_member_id_member"), "member", ["appraised_by_member_id"], ["id"]
        )
    op.create_table(
        "appraisal_decision",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("assessment_id", sa.Integer(), nullable=False),
        sa.Column("indicator_code", sa.String(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("decision", sa.String(), nullable=False),
        sa.Column("self_points", sa.String(), nullable=True),
        sa.Column("appraised_points", sa.String(), nullable=True),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("supplement_due", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reviewer_member_id", sa.Integer(), nullable=True),
        sa.Column("previous_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["assessment_id"], ["assessment.id"], name=op.f("fk_appraisal_decision_assessment_id_assessment")
        ),
        sa.ForeignKeyConstraint(
            ["reviewer_member_id"],
            ["member.id"],
            name=op.f("fk_appraisal_decision_reviewer_member_id_member"),
        ),
        sa.ForeignKeyConstraint(
            ["previous_id"],
            ["appraisal_decision.id"],
            name=op.f("fk_appraisal_decision_previous_id_appraisal_decision"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_appraisal_decision")),
        sa.UniqueConstraint(
            "assessment_id",
            "indicator_code",
            "revision",
            name=op.f("uq_appraisal_decision_assessment_id_indicator_code_revision"),
        ),
    )
    op.create_table(
        "result",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("period_id", sa.Integer(), nullable=False),
        sa.Column("unit_id", sa.Integer(), nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("total", sa.String(), nullable=False),
        sa.Column("max_points", sa.String(), nullable=False),
        sa.Column("index_value", sa.String(), nullable=False),
        sa.Column("band", sa.String(), nullable=True),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("district_rank", sa.Integer(), nullable=True),
        sa.Column("appraised", sa.Boolean(), nullable=False),
        sa.Column("data_json", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["period_id"], ["period.id"], name=op.f("fk_result_period_id_period")),
        sa.ForeignKeyConstraint(["unit_id"], ["unit.id"], name=op.f("fk_result_unit_id_unit")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_result")),
        sa.UniqueConstraint("period_id", "unit_id", name=op.f("uq_result_period_id_unit_id")),
    )
    op.create_table(
        "publication",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("period_id", sa.Integer(), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("published_by", sa.String(), nullable=True),
        sa.Column("data_json", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["period_id"], ["period.id"], name=op.f("fk_publication_period_id_period")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_publication")),
    )


def downgrade() -> None:
    op.drop_table("publication")
    op.drop_table("result")
    op.drop_table("appraisal_decision")
    with op.batch_alter_table("assessment") as batch:
        batch.drop_constraint(op.f("fk_assessment_appraised_by_member_id_member"), type_="foreignkey")
        batch.drop_column("appraised_by_member_id")
        batch.drop_column("appraised_at")
