"""Appraisal in the database: who reviews which units, the queue, decisions as revisions.

A unit is reviewed by the reviewers of its nearest ancestor that has any — its district where
districts exist, otherwise the province. Decisions are append-only revisions; inserting revision n+1
of an indicator fails if someone else wrote it first, so the reviewer's step is retried and shown the
new state instead of silently overwriting it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from flows.model import FINAL, AssessmentStatus, DecisionView, QueueItem, Verdict
from storage.models import AppraisalDecision, Assessment, Member, Unit, table_of

QUEUE_STATUSES = ("submitted", "returned", "appraised")


def reviewer_units(s: Session, joining: int | None = None) -> dict[int, int]:
    """unit id → the id of the unit whose reviewers appraise it (nearest ancestor with reviewers), with
    a reviewer of `joining` counted who is joining right now."""
    units = {u.id: u for u in s.exec(select(Unit)) if u.id is not None}
    with_reviewers = {
        m.unit_id
        for m in s.exec(select(Member).where(Member.role == "reviewer", col(Member.removed_at).is_(None)))
    }
    if joining is not None:
        with_reviewers.add(joining)
    out: dict[int, int] = {}
    for uid, unit in units.items():
        parent, hops = unit.parent_id, 0
        while parent is not None and hops < 12:
            if parent in with_reviewers:
                out[uid] = parent
                break
            parent = units[parent].parent_id if parent in units else None
            hops += 1
    return out


def scope(s: Session, reviewer_unit_id: int, joining: bool = False) -> list[int]:
    """The units the reviewers of `reviewer_unit_id` appraise (`joining`: one joins it right now)."""
    units = reviewer_units(s, reviewer_unit_id if joining else None)
    return sorted(uid for uid, rid in units.items() if rid == reviewer_unit_id)


def reviewers_of(s: Session, unit_id: int) -> list[Member]:
    rid = reviewer_units(s).get(unit_id)
    if rid is None:
        return []
    return list(
        s.exec(
            select(Member)
            .where(Member.unit_id == rid, Member.role == "reviewer", col(Member.removed_at).is_(None))
            .order_by(col(Member.id))
        )
    )


DECISION = table_of(AppraisalDecision)
DECISION_COLUMNS = (
    DECISION.c.indicator_code,
    DECISION.c.id,
    DECISION.c.decision,
    DECISION.c.appraised_points,
    DECISION.c.comment,
    DECISION.c.revision,
    DECISION.c.supplement_due,
    DECISION.c.created_at,
)
# One assessment's decisions, oldest first.
DECISIONS = (
    sa.select(*DECISION_COLUMNS)
    .where(DECISION.c.assessment_id == sa.bindparam("id"))
    .order_by(DECISION.c.revision)
)


def decision_views(rows: Iterable[Sequence[Any]]) -> tuple[dict[str, DecisionView], dict[str, int]]:
    """The latest decision per indicator from decision rows (oldest first, as `DECISION_COLUMNS`), and
    the row id of each."""
    views: dict[str, DecisionView] = {}
    ids: dict[str, int] = {}
    for code, row_id, decision, points, comment, revision, due, created_at in rows:
        points_value = Decimal(points) if points is not None else None
        views[code] = DecisionView(Verdict(decision), points_value, comment, revision, due, created_at)
        ids[code] = row_id
    return views, ids


def decisions(s: Session, assessment_id: int) -> dict[str, DecisionView]:
    """The latest decision per indicator of an assessment."""
    return decision_views(s.connection().execute(DECISIONS, {"id": assessment_id}))[0]


def queue(s: Session, period_id: int, unit_ids: Iterable[int]) -> list[QueueItem]:
    ids = list(unit_ids)
    if not ids:
        return []
    rows = s.exec(
        select(Assessment, Unit)
        .join(Unit, col(Unit.id) == col(Assessment.unit_id))
        .where(
            Assessment.period_id == period_id,
            col(Assessment.unit_id).in_(ids),
            col(Assessment.status).in_(QUEUE_STATUSES),
        )
        .order_by(col(Assessment.submitted_at), col(Unit.code))
    )
    items = []
    for assessment, unit in rows:
        assert assessment.id is not None and unit.id is not None
        made = decisions(s, assessment.id)
        items.append(
            QueueItem(
                unit.id,
                unit.name,
                AssessmentStatus(assessment.status),
                assessment.submitted_at,
                sum(1 for d in made.values() if d.decision in FINAL),
                sum(1 for d in made.values() if d.decision is Verdict.RETURN),
            )
        )
    return items


def appraised_points(
    s: Session, assessment_ids: Iterable[int]
) -> Mapping[int, dict[str, tuple[str, Decimal | None]]]:
    """Per assessment, per indicator: the latest decision and its appraised points."""
    out: dict[int, dict[str, tuple[str, Decimal | None]]] = {}
    ids = list(assessment_ids)
    if not ids:
        return out
    for row in s.exec(
        select(AppraisalDecision)
        .where(col(AppraisalDecision.assessment_id).in_(ids))
        .order_by(col(AppraisalDecision.revision))
    ):
        points = Decimal(row.appraised_points) if row.appraised_points is not None else None
        out.setdefault(row.assessment_id, {})[row.indicator_code] = (row.decision, points)
    return out
