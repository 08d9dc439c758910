"""What the web workspace reads about one unit: its assessment as the engine sees it (the same
queries and views the chat loads), an indicator's revision history, the unit's audit trail, and
whether a stored file is evidence of the unit (files are served only then)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from flows.model import AssessmentStatus, DecisionView
from scoring.model import Framework
from storage.appraisal import decisions
from storage.load import _EVIDENCE, _REVISIONS, NO_ANSWERS, StoredAnswers, answer_views
from storage.tables import ANSWER, ASSESSMENT, AUDIT, EVIDENCE, MEMBER, UNIT


@dataclass(frozen=True)
class UnitInfo:
    id: int
    code: str
    name: str
    level: str
    parent: str | None


@dataclass(frozen=True)
class UnitView:
    """A unit in a period: its assessment's state, answers (with evidence) and latest decisions."""

    unit: UnitInfo
    assessment_id: int | None
    status: AssessmentStatus
    submitted_at: dt.datetime | None
    answers: StoredAnswers
    decisions: dict[str, DecisionView] = field(default_factory=dict)
    revision: int = 0


def unit_info(s: Session, unit_id: int) -> UnitInfo | None:
    parent = UNIT.alias("parent")
    row = (
        s.connection()
        .execute(
            sa.select(UNIT.c.id, UNIT.c.code, UNIT.c.name, UNIT.c.level, parent.c.name)
            .outerjoin(parent, parent.c.id == UNIT.c.parent_id)
            .where(UNIT.c.id == unit_id)
        )
        .first()
    )
    return UnitInfo(*row) if row is not None else None


def unit_view(s: Session, unit: UnitInfo, period_id: int, fw: Framework) -> UnitView:
    conn = s.connection()
    assessment = conn.execute(
        sa.select(
            ASSESSMENT.c.id, ASSESSMENT.c.status, ASSESSMENT.c.submitted_at, ASSESSMENT.c.revision
        ).where(ASSESSMENT.c.period_id == period_id, ASSESSMENT.c.unit_id == unit.id)
    ).first()
    if assessment is None:
        return UnitView(unit, None, AssessmentStatus.DRAFT, None, NO_ANSWERS)
    revisions = conn.execute(_REVISIONS, {"id": assessment.id}).all()
    evidence = conn.execute(_EVIDENCE, {"id": assessment.id}).all()
    return UnitView(
        unit,
        assessment.id,
        AssessmentStatus(assessment.status),
        assessment.submitted_at,
        answer_views(fw, revisions, evidence),
        decisions(s, assessment.id),
        assessment.revision,
    )


@dataclass(frozen=True)
class RevisionRow:
    revision: int
    value_json: str | None
    not_applicable: bool
    reason: str | None
    channel: str
    at: dt.datetime
    author: str | None


def history(s: Session, assessment_id: int, code: str) -> list[RevisionRow]:
    """Every answer revision of one indicator, newest first, with who gave it and where."""
    rows = s.connection().execute(
        sa.select(
            ANSWER.c.revision,
            ANSWER.c.value_json,
            ANSWER.c.not_applicable,
            ANSWER.c.reason,
            ANSWER.c.channel,
            ANSWER.c.created_at,
            sa.func.coalesce(MEMBER.c.display_name, MEMBER.c.role),
        )
        .outerjoin(MEMBER, MEMBER.c.id == ANSWER.c.author_member_id)
        .where(ANSWER.c.assessment_id == assessment_id, ANSWER.c.indicator_code == code)
        .order_by(ANSWER.c.revision.desc())
    )
    return [RevisionRow(*r) for r in rows]


@dataclass(frozen=True)
class AuditRow:
    at: dt.datetime
    action: str
    entity: str
    entity_id: str
    channel: str | None
    actor: str | None
    new_json: str | None


def audit_trail(s: Session, unit_id: int, limit: int = 200) -> list[AuditRow]:
    """The unit's audit records, newest first."""
    rows = s.connection().execute(
        sa.select(
            AUDIT.c.at,
            AUDIT.c.action,
            AUDIT.c.entity,
            AUDIT.c.entity_id,
            AUDIT.c.channel,
            sa.func.coalesce(MEMBER.c.display_name, MEMBER.c.role, AUDIT.c.operator),
            AUDIT.c.new_json,
        )
        .outerjoin(MEMBER, MEMBER.c.id == AUDIT.c.actor_member_id)
        .where(AUDIT.c.unit_id == unit_id)
        .order_by(AUDIT.c.at.desc(), AUDIT.c.id.desc())
        .limit(limit)
    )
    return [AuditRow(*r) for r in rows]


@dataclass(frozen=True)
class StoredEvidence:
    sha256: str
    name: str | None
    mime: str | None


def evidence_file(s: Session, unit_id: int, sha256: str) -> StoredEvidence | None:
    """A file recorded as evidence of the unit (any period), or None: nothing else is served."""
    row: Any = (
        s.connection()
        .execute(
            sa.select(EVIDENCE.c.sha256, EVIDENCE.c.original_name, EVIDENCE.c.mime)
            .join(ASSESSMENT, ASSESSMENT.c.id == EVIDENCE.c.assessment_id)
            .where(ASSESSMENT.c.unit_id == unit_id, EVIDENCE.c.sha256 == sha256, EVIDENCE.c.kind == "file")
            .order_by(EVIDENCE.c.id)
            .limit(1)
        )
        .first()
    )
    return StoredEvidence(row.sha256, row.original_name, row.mime) if row is not None else None
