"""What reminders need from the database: each unit's work, its deadlines, who to tell, the ledger.

The ledger row (member, period, deadline, offset) is inserted with ON CONFLICT DO NOTHING, so two
schedulers, a restart or a crash in between can never queue the same reminder twice: whoever inserts
the row queues the message, in the same transaction.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, col, select

from flows.model import AssessmentStatus, Role
from flows.reminders import DEADLINES, SUPPLEMENT, Due, UnitWork
from scoring.answers import Answer, Evidence, decode_value
from scoring.engine import Report, Rules, Status, score
from scoring.model import Framework
from storage.admin import progress
from storage.appraisal import decisions
from storage.models import Assessment, AuditLog, Extension, Member, Outbox, Period, Reminder, Unit


def open_periods(s: Session) -> list[Period]:
    return list(s.exec(select(Period).where(Period.status == "open").order_by(col(Period.id))))


def period_deadlines(period: Period) -> dict[str, dt.datetime]:
    return {name: getattr(period, name) for name in DEADLINES if getattr(period, name) is not None}


def extensions(s: Session, period_id: int) -> dict[tuple[int, str], dt.datetime]:
    return {
        (e.unit_id, e.deadline): e.due_at
        for e in s.exec(select(Extension).where(Extension.period_id == period_id))
    }


def unit_deadlines(
    period: Period, unit_id: int, ext: Mapping[tuple[int, str], dt.datetime]
) -> dict[str, dt.datetime]:
    out = period_deadlines(period)
    for name in DEADLINES:
        if (unit_id, name) in ext:
            out[name] = ext[(unit_id, name)]
    return out


@dataclass(frozen=True)
class UnitState:
    """A unit's standing in a period: its work (what is missing), its score, when it last changed."""

    unit: Unit
    work: UnitWork
    report: Report
    answered: int
    updated_at: dt.datetime | None


def returned_indicators(
    s: Session, period: Period, framework: Framework, deadlines: Mapping[int, Mapping[str, dt.datetime]]
) -> dict[int, dict[str, dt.datetime]]:
    """Per returned unit: each indicator the reviewer returned, in the framework's order, with the
    reviewer's supplement deadline for it (else the unit's own supplement deadline, as the chat has it)."""
    out: dict[int, dict[str, dt.datetime]] = {}
    for unit_id, assessment_id in s.exec(
        select(Assessment.unit_id, Assessment.id).where(
            Assessment.period_id == period.id, Assessment.status == AssessmentStatus.RETURNED.value
        )
    ):
        assert assessment_id is not None
        made = decisions(s, assessment_id)
        fallback = deadlines.get(unit_id, {}).get(SUPPLEMENT)
        returned: dict[str, dt.datetime] = {}
        for ind in framework.indicators:
            decision = made.get(ind.code)
            if decision is None or decision.decision != "return":
                continue
            due = decision.supplement_due or fallback
            if due is not None:
                returned[ind.code] = due
        out[unit_id] = returned
    return out


def unit_states(s: Session, period: Period, framework: Framework) -> dict[str, UnitState]:
    """Per unit code of the framework's level: its assessment's state, unanswered indicators, claimed
    points lacking evidence, returned indicators, the score under the evidence rules, and the deadlines
    with the unit's extensions applied."""
    assert period.id is not None
    ext = extensions(s, period.id)
    units = {u.code: u for u in s.exec(select(Unit).where(Unit.level == framework.level.value))}
    deadlines = {u.id: unit_deadlines(period, u.id, ext) for u in units.values() if u.id is not None}
    returned = returned_indicators(s, period, framework, deadlines)
    out: dict[str, UnitState] = {}
    for row in progress(s, period, framework.level.value):
        unit = units[row.code]
        assert unit.id is not None
        answers: dict[str, Answer] = {}
        for code, (value_json, na) in row.answers.items():
            ind = framework.indicator(code)
            if ind is None:
                continue
            value = decode_value(ind, json.loads(value_json)) if value_json else None
            answers[code] = Answer(value, na, (Evidence(code),) if code in row.with_evidence else ())
        report = score(framework, answers, Rules())
        unanswered = tuple(i.code for i in framework.indicators if i.code not in answers)
        missing = tuple(r.code for r in report.indicators if r.status is Status.EVIDENCE_MISSING)
        work = UnitWork(
            unit.name, row.status, unanswered, missing, deadlines[unit.id], returned.get(unit.id, {})
        )
        out[row.code] = UnitState(unit, work, report, len(answers), row.updated_at)
    return out


def unit_work(s: Session, period: Period, framework: Framework) -> dict[str, tuple[Unit, UnitWork]]:
    return {code: (st.unit, st.work) for code, st in unit_states(s, period, framework).items()}


def reachable_members(s: Session, unit_ids: Iterable[int]) -> list[Member]:
    """Members who can be reminded: not paused, not blocked, not removed."""
    ids = list(unit_ids)
    if not ids:
        return []
    return list(
        s.exec(
            select(Member)
            .where(
                col(Member.unit_id).in_(ids),
                Member.paused_reminders == sa.false(),
                col(Member.blocked_at).is_(None),
                col(Member.removed_at).is_(None),
            )
            .order_by(col(Member.id))
        )
    )


def reviewers_by_unit(s: Session) -> dict[int, list[Member]]:
    """For each unit, the reviewers of its nearest ancestor that has any (its district, else the province)."""
    units = {u.id: u for u in s.exec(select(Unit)) if u.id is not None}
    reviewers: dict[int, list[Member]] = {}
    for m in s.exec(
        select(Member).where(
            Member.role == Role.REVIEWER.value,
            col(Member.blocked_at).is_(None),
            col(Member.removed_at).is_(None),
        )
    ):
        reviewers.setdefault(m.unit_id, []).append(m)
    out: dict[int, list[Member]] = {}
    for uid, unit in units.items():
        parent = unit.parent_id
        seen = 0
        while parent is not None and seen < 10:
            if parent in reviewers:
                out[uid] = reviewers[parent]
                break
            parent = units[parent].parent_id if parent in units else None
            seen += 1
    return out


def insert_ledger(
    s: Session,
    member_id: int,
    period_id: int,
    deadline: str,
    due: Due,
    status: str,
    now: dt.datetime,
    detail: str | None = None,
) -> int | None:
    """The ledger row's id if this call created it; None if the reminder already exists."""
    values = {
        "member_id": member_id,
        "period_id": period_id,
        "deadline": deadline,
        "offset_key": due.offset_key,
        "planned_at": due.planned_at,
        "send_at": due.send_at,
        "status": status,
        "detail": detail,
        "created_at": now,
    }
    bind = s.get_bind()
    insert = pg_insert if bind.dialect.name == "postgresql" else sqlite_insert
    statement = insert(Reminder).values(**values).on_conflict_do_nothing().returning(col(Reminder.id))
    # Core on the connection: an ORM-enabled statement would scan the session's identity map (every
    # member and ledger row the tick loaded) on each call
    row = s.connection().execute(statement).first()
    return int(row[0]) if row is not None and row[0] is not None else None


def ready_deferred(s: Session, now: dt.datetime) -> list[Reminder]:
    """Deferred reminders whose time has come, claimed (status "queued") by this transaction."""
    rows = list(
        s.exec(
            select(Reminder)
            .where(Reminder.status == "deferred", col(Reminder.send_at) <= now)
            .order_by(col(Reminder.id))
            .with_for_update(skip_locked=True)
        )
    )
    claimed = []
    for r in rows:
        result = s.execute(
            sa.update(Reminder)
            .where(col(Reminder.id) == r.id, col(Reminder.status) == "deferred")
            .values(status="queued")
        )
        if result.rowcount == 1:  # type: ignore[attr-defined]
            claimed.append(r)
    return claimed


def supersede(s: Session, reminder_id: int, detail: str) -> bool:
    """A deferred reminder replaced by a more recent one: it will never be sent. False if it is no longer
    deferred (another scheduler has just queued it)."""
    result = s.execute(
        sa.update(Reminder)
        .where(col(Reminder.id) == reminder_id, col(Reminder.status) == "deferred")
        .values(status="superseded", detail=detail)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def set_outbox(s: Session, reminder_id: int, outbox_id: int) -> None:
    s.connection().execute(
        sa.update(Reminder).where(col(Reminder.id) == reminder_id).values(outbox_id=outbox_id)
    )


@dataclass(frozen=True)
class LedgerStats:
    sent: int = 0
    pending: int = 0
    deferred: int = 0
    undeliverable: int = 0


def ledger_stats(s: Session, period_id: int) -> dict[int, LedgerStats]:
    """Per unit: reminders delivered, waiting in the outbox, deferred (quiet hours), undeliverable."""
    counts: dict[int, dict[str, int]] = {}
    rows = s.execute(
        select(Member.unit_id, Reminder.status, Outbox.status)
        .select_from(Reminder)
        .join(Member, col(Member.id) == col(Reminder.member_id))
        .outerjoin(Outbox, col(Outbox.id) == col(Reminder.outbox_id))
        .where(Reminder.period_id == period_id)
    )
    for unit_id, ledger_status, outbox_status in rows:
        c = counts.setdefault(unit_id, {"sent": 0, "pending": 0, "deferred": 0, "undeliverable": 0})
        if ledger_status == "deferred":
            c["deferred"] += 1
        elif ledger_status == "undeliverable" or outbox_status == "failed":
            c["undeliverable"] += 1
        elif outbox_status == "sent":
            c["sent"] += 1
        elif ledger_status == "queued":
            c["pending"] += 1
    return {uid: LedgerStats(**c) for uid, c in counts.items()}


def mark_reminder(s: Session, reminder_id: int, status: str, detail: str | None = None) -> None:
    s.execute(sa.update(Reminder).where(col(Reminder.id) == reminder_id).values(status=status, detail=detail))


def audit_manual_reminder(
    s: Session, period_id: int, unit_id: int, members: list[int], now: dt.datetime, operator: str | None
) -> None:
    """The audit row of a reminder an operator sent to one unit at once (who was reminded)."""
    s.add(
        AuditLog(
            at=now,
            operator=operator,
            action="reminder.manual",
            entity="unit",
            entity_id=str(unit_id),
            unit_id=unit_id,
            new_json=json.dumps({"period": period_id, "members": members}),
        )
    )
