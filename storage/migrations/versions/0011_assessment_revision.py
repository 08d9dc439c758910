"""Counters on the assessment row that every change of its content or appraisal bumps.

`revision` counts the answer revisions and evidence items recorded on the assessment, `decided` the
reviewers' decisions. A submission is written only over the revision the leader was shown, a return or
a close only over the decisions the reviewer saw: a compare-and-set on the row itself, which PostgreSQL
re-checks on the newest version of the row when another transaction changed it meanwhile.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("assessment") as batch:
        batch.add_column(sa.Column("revision", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("decided", sa.Integer(), nullable=False, server_default="0"))
    op.execute(
        "UPDATE assessment SET"
        " revision = (SELECT count(*) FROM answer_revision a WHERE a.assessment_id = assessment.id)"
        " + (SELECT count(*) FROM evidence e WHERE e.assessment_id = assessment.id),"
        " decided = (SELECT count(*) FROM appraisal_decision d WHERE d.assessment_id = assessment.id)"
    )


def downgrade() -> None:
    with op.batch_alter_table("assessment") as batch:
        batch.drop_column("decided")
        batch.drop_column("revision")
