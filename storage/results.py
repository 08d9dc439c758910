"""What final results are made of, and where they are kept.

`unit_inputs` gathers, for every unit of a framework's level, the answers as they stand, their
evidence with its late flag, the reviewer's appraised points and whether the appraisal was closed, and
the unit's district (where districts exist). Results are stored per unit (`result`, replaced by each
computation); a publication stores a frozen copy that nothing later can change.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from sqlmodel import Session, col, delete, select

from flows.model import FINAL
from scoring.answers import Answer, Evidence, decode_value
from scoring.model import Framework
from storage.appraisal import appraised_points
from storage.evidence import download_name, extension_for
from storage.models import (
    AnswerRevision,
    AppraisalDecision,
    Assessment,
    AuditLog,
    Member,
    Publication,
    Result,
    Unit,
)
from storage.models import (
    Evidence as EvidenceRow,
)


@dataclass(frozen=True)
class UnitInput:
    unit: Unit
    district: Unit | None
    appraised: bool
    answers: dict[str, Answer]
    self_answers: dict[str, Answer]  # the same, without the appraisal: what the unit claimed


def unit_inputs(s: Session, period_id: int, framework: Framework) -> list[UnitInput]:
    units = {u.id: u for u in s.exec(select(Unit)) if u.id is not None}
    level = [u for u in units.values() if u.level == framework.level.value]
    assessments = {a.unit_id: a for a in s.exec(select(Assessment).where(Assessment.period_id == period_id))}
    ids = [a.id for a in assessments.values() if a.id is not None]
    latest: dict[int, dict[str, AnswerRevision]] = {}
    if ids:
        for rev in s.exec(
            select(AnswerRevision)
            .where(col(AnswerRevision.assessment_id).in_(ids))
            .order_by(col(AnswerRevision.revision))
        ):
            latest.setdefault(rev.assessment_id, {})[rev.indicator_code] = rev
    evidence: dict[tuple[int, str], list[Evidence]] = {}
    if ids:
        for ev in s.exec(
            select(EvidenceRow).where(col(EvidenceRow.assessment_id).in_(ids)).order_by(col(EvidenceRow.id))
        ):
            label = ev.original_name or ev.citation_number or ev.url or ev.kind
            evidence.setdefault((ev.assessment_id, ev.indicator_code), []).append(
                Evidence(label, ev.created_at, ev.late)
            )
    decisions = appraised_points(s, ids)
    out = []
    for unit in sorted(level, key=lambda u: u.code):
        assert unit.id is not None
        parent = units.get(unit.parent_id) if unit.parent_id is not None else None
        district = parent if parent is not None and parent.level == "district" else None
        a = assessments.get(unit.id)
        answers: dict[str, Answer] = {}
        claimed: dict[str, Answer] = {}
        if a is not None and a.id is not None:
            for code, rev in latest.get(a.id, {}).items():
                ind = framework.indicator(code)
                if ind is None:
                    continue
                value = decode_value(ind, json.loads(rev.value_json)) if rev.value_json else None
                proof = tuple(evidence.get((a.id, code), ()))
                decision = decisions.get(a.id, {}).get(code)
                points = decision[1] if decision is not None and decision[0] in FINAL else None
                claimed[code] = Answer(value, rev.not_applicable, proof, None, rev.reason)
                answers[code] = Answer(value, rev.not_applicable, proof, points, rev.reason)
        out.append(UnitInput(unit, district, a is not None and a.status == "appraised", answers, claimed))
    return out


def save_results(
    s: Session, period_id: int, rows: list[dict[str, Any]], now: dt.datetime, operator: str | None = None
) -> None:
    """Replace the period's computed results (one dict per unit, as `results compute` builds them)."""
    s.execute(delete(Result).where(col(Result.period_id) == period_id))
    for row in rows:
        s.add(
            Result(
                period_id=period_id,
                unit_id=row["unit_id"],
                computed_at=now,
                total=row["total"],
                max_points=row["max"],
                index_value=row["index"],
                band=row["band"],
                rank=row["rank"],
                district_rank=row["district_rank"],
                appraised=row["appraised"],
                data_json=json.dumps(row, ensure_ascii=False),
            )
        )
    s.add(
        AuditLog(
            at=now,
            operator=operator,
            action="results.compute",
            entity="period",
            entity_id=str(period_id),
            new_json=json.dumps({"units": len(rows)}),
        )
    )
    s.flush()


def computed(s: Session, period_id: int) -> list[dict[str, Any]]:
    rows = s.exec(
        select(Result).where(Result.period_id == period_id).order_by(col(Result.rank), col(Result.unit_id))
    )
    return [json.loads(r.data_json) for r in rows]


def publish(
    s: Session, period_id: int, document: dict[str, Any], by: str | None, now: dt.datetime
) -> Publication:
    publication = Publication(
        period_id=period_id,
        published_at=now,
        published_by=by,
        data_json=json.dumps(document, ensure_ascii=False),
    )
    s.add(publication)
    s.flush()
    s.add(
        AuditLog(
            at=now,
            operator=by,
            action="results.publish",
            entity="publication",
            entity_id=str(publication.id),
            new_json=json.dumps({"period": period_id, "by": by}),
        )
    )
    return publication


def latest_publication(s: Session, period_id: int) -> Publication | None:
    return s.exec(
        select(Publication).where(Publication.period_id == period_id).order_by(col(Publication.id).desc())
    ).first()


def published_units(s: Session, period_id: int) -> set[str]:
    """The codes of the units whose appraised result the period's latest publication carries."""
    pub = latest_publication(s, period_id)
    if pub is None:
        return set()
    return {u["code"] for u in json.loads(pub.data_json)["units"] if u["appraised"]}


def assessment_statuses(s: Session, period_id: int) -> dict[int, str]:
    """unit id → the state of its assessment in the period (units that never started have none)."""
    return {a.unit_id: a.status for a in s.exec(select(Assessment).where(Assessment.period_id == period_id))}


def unit_recipients(s: Session, unit_id: int) -> list[Member]:
    return list(
        s.exec(
            select(Member)
            .where(
                Member.unit_id == unit_id,
                col(Member.role).in_(("respondent", "leader")),
                col(Member.blocked_at).is_(None),
                col(Member.removed_at).is_(None),
            )
            .order_by(col(Member.id))
        )
    )


@dataclass(frozen=True)
class Person:
    """A member as records name them: the name if known, role and unit, and the chat account."""

    name: str | None
    role: str
    unit_name: str
    account: str


def person(member: Member, unit_name: str) -> Person:
    return Person(member.display_name, member.role, unit_name, f"{member.channel}:{member.chat_id}")


def people(s: Session) -> dict[int, Person]:
    """Every member, by id, as records name them."""
    units = {u.id: u.name for u in s.exec(select(Unit))}
    return {m.id: person(m, units.get(m.unit_id, "")) for m in s.exec(select(Member)) if m.id is not None}


@dataclass(frozen=True)
class EvidenceIndexRow:
    unit_code: str
    unit_name: str
    indicator_code: str
    kind: str
    name: str
    sha256: str | None
    size: int | None
    uploader: Person | None
    at: dt.datetime
    late: bool
    citation_date: dt.date | None


def evidence_index(s: Session, period_id: int, unit_code: str | None = None) -> list[EvidenceIndexRow]:
    """The period's evidence (of one unit), by unit code, then indicator code and order of arrival."""
    query = (
        select(EvidenceRow, Unit, Member)
        .join(Assessment, col(Assessment.id) == col(EvidenceRow.assessment_id))
        .join(Unit, col(Unit.id) == col(Assessment.unit_id))
        .outerjoin(Member, col(Member.id) == col(EvidenceRow.uploader_member_id))
        .where(Assessment.period_id == period_id)
    )
    unit_names = {u.id: u.name for u in s.exec(select(Unit))}
    if unit_code is not None:
        query = query.where(Unit.code == unit_code)
    rows = []
    for ev, unit, member in s.exec(
        query.order_by(col(Unit.code), col(EvidenceRow.indicator_code), col(EvidenceRow.id))
    ):
        name = (
            (download_name(ev.original_name, extension_for(ev.mime)) if ev.original_name else None)
            or (f"{ev.citation_number} – {ev.citation_summary}" if ev.citation_number else ev.url)
            or ev.kind
        )
        uploader = person(member, unit_names.get(member.unit_id, "")) if member is not None else None
        rows.append(
            EvidenceIndexRow(
                unit.code,
                unit.name,
                ev.indicator_code,
                ev.kind,
                name,
                ev.sha256,
                ev.size,
                uploader,
                ev.created_at,
                ev.late,
                ev.citation_date,
            )
        )
    return rows


def decision_comments(s: Session, period_id: int) -> dict[tuple[int, str], str]:
    """(unit id, indicator) → the reviewer's latest comment."""
    out: dict[tuple[int, str], str] = {}
    rows = s.exec(
        select(AppraisalDecision, Assessment)
        .join(Assessment, col(Assessment.id) == col(AppraisalDecision.assessment_id))
        .where(Assessment.period_id == period_id)
        .order_by(col(AppraisalDecision.revision))
    )
    for d, a in rows:
        if d.comment:
            out[(a.unit_id, d.indicator_code)] = d.comment
    return out


def audit_rows(s: Session, period_id: int) -> list[AuditLog]:
    """The audit trail of a period: its assessments' records and the period-wide ones, in order."""
    assessment_ids = [
        a.id for a in s.exec(select(Assessment).where(Assessment.period_id == period_id)) if a.id is not None
    ]
    query = select(AuditLog).order_by(col(AuditLog.id))
    rows = s.exec(query)
    keep = []
    for row in rows:
        if row.assessment_id in assessment_ids or row.entity in (
            "period",
            "publication",
            "extension",
            "invite",
            "member",
            "chat",
            "unit",
        ):
            keep.append(row)
    return keep
