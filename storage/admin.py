"""What provincial staff do from the command line: units, periods, invites, progress.

Plain functions over a session; the CLI in `bot/` turns their results and errors into messages.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

from sqlmodel import Session, col, func, select

from scoring.answers import VIETNAM_TZ
from scoring.messages import N_
from storage.models import (
    ROLES,
    UNIT_LEVELS,
    AnswerRevision,
    Assessment,
    AuditLog,
    Evidence,
    Extension,
    Invite,
    Member,
    Period,
    Unit,
)

INVITE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: codes are read aloud and typed on phones
INVITE_LENGTH = 8
REVIEWER_LEVELS = ("district", "province")  # a district appraises its communes; else the province


class AdminError(ValueError):
    """Bad input to an admin command; `key` names the message, `params` fill it."""

    def __init__(self, key: str, **params: object) -> None:
        super().__init__(key)
        self.key = key
        self.params = {k: _shown(v) for k, v in params.items()}


def _shown(value: object) -> str:
    if isinstance(value, dt.datetime):
        return value.astimezone(VIETNAM_TZ).strftime("%d/%m/%Y %H:%M")
    return str(value)


@dataclass(frozen=True)
class UnitRow:
    code: str
    name: str
    level: str
    parent: str | None


def import_units(
    s: Session, rows: Sequence[UnitRow], now: dt.datetime, operator: str | None = None
) -> tuple[int, int]:
    """Create or update units by code (parents may come later in the file), each change audited;
    returns (created, updated)."""
    seen: set[str] = set()
    for i, row in enumerate(rows, start=1):
        if not row.code or not row.name:
            raise AdminError(N_("admin.unit_incomplete"), row=i)
        if row.level not in UNIT_LEVELS:
            raise AdminError(N_("admin.unit_level"), row=i, level=row.level, levels=", ".join(UNIT_LEVELS))
        if row.code in seen:
            raise AdminError(N_("admin.unit_duplicate"), row=i, code=row.code)
        seen.add(row.code)
    existing = {u.code: u for u in s.exec(select(Unit).where(col(Unit.code).in_([r.code for r in rows])))}
    codes = {u.id: u.code for u in s.exec(select(Unit))}
    before = {code: _unit_record(u, codes) for code, u in existing.items()}
    for row in rows:
        unit = existing.get(row.code)
        if unit is None:
            unit = Unit(code=row.code, name=row.name, level=row.level, created_at=now)
        unit.name, unit.level = row.name, row.level
        s.add(unit)
        existing[row.code] = unit
    s.flush()
    codes.update({u.id: u.code for u in existing.values()})
    for i, row in enumerate(rows, start=1):
        unit = existing[row.code]
        if row.parent:
            parent = existing.get(row.parent) or s.exec(select(Unit).where(Unit.code == row.parent)).first()
            if parent is None:
                raise AdminError(N_("admin.unit_parent"), row=i, parent=row.parent)
            if parent.id == unit.id:
                raise AdminError(N_("admin.unit_parent"), row=i, parent=row.parent)
            unit.parent_id = parent.id
        else:
            unit.parent_id = None
        s.add(unit)
    s.flush()
    created = updated = 0
    for row in rows:
        unit = existing[row.code]
        old, new = before.get(row.code), _unit_record(unit, codes)
        if old == new:
            continue
        created, updated = (created + 1, updated) if old is None else (created, updated + 1)
        s.add(
            AuditLog(
                at=now,
                operator=operator,
                action="unit.create" if old is None else "unit.update",
                entity="unit",
                entity_id=unit.code,
                unit_id=unit.id,
                old_json=json.dumps(old, ensure_ascii=False) if old is not None else None,
                new_json=json.dumps(new, ensure_ascii=False),
            )
        )
    s.flush()
    return created, updated


def _unit_record(unit: Unit, codes: dict[int | None, str]) -> dict[str, str | None]:
    """What the audit trail keeps of a unit: name, level and parent code."""
    return {
        "name": unit.name,
        "level": unit.level,
        "parent": codes.get(unit.parent_id) if unit.parent_id else None,
    }


def unit_by_code(s: Session, code: str) -> Unit:
    unit = s.exec(select(Unit).where(Unit.code == code)).first()
    if unit is None:
        raise AdminError(N_("admin.unit_unknown"), code=code)
    return unit


def open_period(
    s: Session,
    *,
    name: str,
    year: int,
    framework_id: str,
    framework_version: str,
    now: dt.datetime,
    self_assessment_due: dt.datetime | None = None,
    supplement_due: dt.datetime | None = None,
    appraisal_due: dt.datetime | None = None,
    publication_due: dt.datetime | None = None,
    reminder_policy_json: str | None = None,
    operator: str | None = None,
) -> Period:
    """A new open period; its deadlines must lie ahead of `now` and in order (`check_deadlines`)."""
    check_deadlines(
        {
            "self_assessment_due": self_assessment_due,
            "supplement_due": supplement_due,
            "appraisal_due": appraisal_due,
            "publication_due": publication_due,
        },
        now,
    )
    period = Period(
        name=name,
        year=year,
        framework_id=framework_id,
        framework_version=framework_version,
        opened_at=now,
        self_assessment_due=self_assessment_due,
        supplement_due=supplement_due,
        appraisal_due=appraisal_due,
        publication_due=publication_due,
        reminder_policy_json=reminder_policy_json,
    )
    s.add(period)
    s.flush()
    s.add(
        AuditLog(
            at=now,
            operator=operator,
            action="period.open",
            entity="period",
            entity_id=str(period.id),
            new_json=period.model_dump_json(),
        )
    )
    return period


def period_by_ref(s: Session, ref: str | None) -> Period:
    """A period by id, or the newest open one when `ref` is None."""
    if ref is None:
        period = s.exec(select(Period).where(Period.status == "open").order_by(col(Period.id).desc())).first()
    elif ref.isdigit():
        period = s.get(Period, int(ref))
    else:
        period = s.exec(select(Period).where(Period.name == ref).order_by(col(Period.id).desc())).first()
    if period is None and ref is None:
        raise AdminError(N_("admin.no_open_period"))
    if period is None:
        raise AdminError(N_("admin.period_unknown"), period=ref)
    return period


def create_invite(
    s: Session,
    unit_code: str,
    role: str,
    now: dt.datetime,
    valid_for: dt.timedelta = dt.timedelta(days=14),
    created_by: str | None = None,
) -> Invite:
    if role not in ROLES:
        raise AdminError(N_("admin.role_unknown"), role=role, roles=", ".join(ROLES))
    unit = unit_by_code(s, unit_code)
    assert unit.id is not None
    if role == "reviewer" and unit.level not in REVIEWER_LEVELS:  # they appraise the units below them
        raise AdminError(N_("admin.reviewer_level"), unit=unit.name, code=unit.code)
    invite = Invite(
        code="".join(secrets.choice(INVITE_ALPHABET) for _ in range(INVITE_LENGTH)),
        unit_id=unit.id,
        role=role,
        created_at=now,
        expires_at=now + valid_for,
        created_by=created_by,
    )
    s.add(invite)
    s.flush()
    s.add(
        AuditLog(
            at=now,
            operator=created_by,
            action="invite.create",
            entity="invite",
            entity_id=str(invite.id),
            unit_id=unit.id,
            new_json=json.dumps(
                {"role": role, "expires_at": invite.expires_at.isoformat(), "code": masked_code(invite.code)}
            ),
        )
    )
    return invite


def masked_code(code: str) -> str:
    """An invite code as records and lists show it once it must not be usable: "AB******"."""
    return code[:2] + "*" * max(len(code) - 2, 0)


INVITE_STATES = ("unused", "used", "revoked", "expired")


@dataclass(frozen=True)
class InviteListing:
    invite: Invite
    unit: Unit

    def state(self, now: dt.datetime) -> str:
        """One of `INVITE_STATES`: only an unused invite can still join someone."""
        if self.invite.revoked_at is not None:
            return "revoked"
        if self.invite.used_at is not None:
            return "used"
        return "expired" if self.invite.expires_at <= now else "unused"


def list_invites(s: Session, unit_code: str | None = None) -> list[InviteListing]:
    query = select(Invite, Unit).join(Unit, col(Unit.id) == col(Invite.unit_id)).order_by(col(Invite.id))
    if unit_code is not None:
        query = query.where(Unit.id == unit_by_code(s, unit_code).id)
    return [InviteListing(invite, unit) for invite, unit in s.exec(query)]


def revoke_invite(s: Session, code: str, now: dt.datetime, operator: str | None = None) -> InviteListing:
    """Withdraw an invite nobody used: from now on it joins no one (the chat is told it is unknown)."""
    found = s.exec(
        select(Invite, Unit).join(Unit, col(Unit.id) == col(Invite.unit_id)).where(Invite.code == code)
    )
    row = found.first()
    if row is None:
        raise AdminError(N_("admin.invite_unknown"), code=code)
    invite, unit = row
    if invite.revoked_at is not None:
        raise AdminError(N_("admin.invite_revoked"), code=code, at=invite.revoked_at)
    if invite.used_at is not None:
        raise AdminError(N_("admin.invite_used"), code=code, member=invite.used_by_member_id or "-")
    invite.revoked_at = now
    s.add(invite)
    s.add(
        AuditLog(
            at=now,
            operator=operator,
            action="invite.revoke",
            entity="invite",
            entity_id=str(invite.id),
            unit_id=unit.id,
            new_json=json.dumps({"role": invite.role, "code": masked_code(invite.code)}),
        )
    )
    s.flush()
    return InviteListing(invite, unit)


@dataclass(frozen=True)
class MemberListing:
    member: Member
    unit: Unit


def list_members(s: Session, unit_code: str | None = None, removed: bool = False) -> list[MemberListing]:
    """The members (of a unit), those an operator removed only when asked for."""
    query = select(Member, Unit).join(Unit, col(Unit.id) == col(Member.unit_id)).order_by(col(Member.id))
    if unit_code is not None:
        query = query.where(Unit.id == unit_by_code(s, unit_code).id)
    if not removed:
        query = query.where(col(Member.removed_at).is_(None))
    return [MemberListing(member, unit) for member, unit in s.exec(query)]


def remove_member(s: Session, member_id: int, now: dt.datetime, operator: str | None = None) -> MemberListing:
    """Unbind a member from its chat for good: the chat's next message is a stranger's (it can join
    again with a new invite); what the member answered and sent stays, and so does the row."""
    row = s.exec(
        select(Member, Unit).join(Unit, col(Unit.id) == col(Member.unit_id)).where(Member.id == member_id)
    ).first()
    if row is None:
        raise AdminError(N_("admin.member_unknown"), id=member_id)
    member, unit = row
    if member.removed_at is not None:
        raise AdminError(N_("admin.member_removed"), id=member_id, at=member.removed_at)
    member.removed_at = now
    s.add(member)
    s.add(
        AuditLog(
            at=now,
            operator=operator,
            action="member.remove",
            entity="member",
            entity_id=str(member.id),
            unit_id=unit.id,
            old_json=json.dumps(
                {"unit": unit.code, "role": member.role, "chat": f"{member.channel}:{member.chat_id}"},
                ensure_ascii=False,
            ),
        )
    )
    s.flush()
    return MemberListing(member, unit)


@dataclass(frozen=True)
class UnitProgress:
    code: str
    name: str
    level: str
    parent_code: str | None
    status: str
    answers: dict[str, tuple[str | None, bool]]  # latest revision per indicator: (value JSON, not applicable)
    with_evidence: frozenset[str]
    members: int
    updated_at: dt.datetime | None


def progress(s: Session, period: Period, level: str | None = None) -> list[UnitProgress]:
    """Per unit of `level`: assessment status, the latest answer of each indicator, which have evidence."""
    query = select(Unit).order_by(col(Unit.code))
    if level is not None:
        query = query.where(Unit.level == level)
    units = list(s.exec(query))
    codes = {u.id: u.code for u in s.exec(select(Unit)) if u.id is not None}
    assessments = {a.unit_id: a for a in s.exec(select(Assessment).where(Assessment.period_id == period.id))}
    answers: dict[int, dict[str, tuple[str | None, bool]]] = {}
    latest: dict[int, dt.datetime] = {}
    revisions = s.exec(
        select(AnswerRevision)
        .join(Assessment, col(Assessment.id) == col(AnswerRevision.assessment_id))
        .where(Assessment.period_id == period.id)
        .order_by(col(AnswerRevision.assessment_id), col(AnswerRevision.revision))
    )
    for rev in revisions:
        answers.setdefault(rev.assessment_id, {})[rev.indicator_code] = (rev.value_json, rev.not_applicable)
        latest[rev.assessment_id] = max(latest.get(rev.assessment_id, rev.created_at), rev.created_at)
    evidence: dict[int, set[str]] = {}
    for aid, code in s.exec(
        select(Evidence.assessment_id, Evidence.indicator_code)
        .join(Assessment, col(Assessment.id) == col(Evidence.assessment_id))
        .where(Assessment.period_id == period.id, Evidence.late == False)  # noqa: E712
        .distinct()
    ):
        evidence.setdefault(aid, set()).add(code)
    members = dict(
        s.exec(
            select(Member.unit_id, func.count())
            .where(col(Member.removed_at).is_(None))
            .group_by(col(Member.unit_id))
        ).all()
    )
    rows = []
    for unit in units:
        assert unit.id is not None
        a = assessments.get(unit.id)
        aid = a.id if a is not None and a.id is not None else -1
        rows.append(
            UnitProgress(
                unit.code,
                unit.name,
                unit.level,
                codes.get(unit.parent_id) if unit.parent_id else None,
                a.status if a else "draft",
                answers.get(aid, {}),
                frozenset(evidence.get(aid, ())),
                int(members.get(unit.id, 0)),
                latest.get(aid),
            )
        )
    return rows


DEADLINE_NAMES = ("self_assessment_due", "supplement_due", "appraisal_due", "publication_due")


def check_deadlines(deadlines: dict[str, dt.datetime | None], now: dt.datetime) -> None:
    """A period's deadlines are all ahead of `now` and in the order of the work: self-assessment ≤
    supplement ≤ appraisal ≤ publication (those given; any may be left out)."""
    given = [(name, deadlines[name]) for name in DEADLINE_NAMES if deadlines.get(name) is not None]
    for name, due in given:
        assert due is not None
        if due <= now:
            raise AdminError(N_("admin.deadline_past"), deadline=name, due=due, now=now)
    for (earlier, first), (later, then) in pairwise(given):
        assert first is not None and then is not None
        if then < first:
            raise AdminError(
                N_("admin.deadlines_order"), earlier=earlier, first=first, later=later, then=then
            )


def extend_deadline(
    s: Session,
    period: Period,
    deadline: str,
    due_at: dt.datetime,
    reason: str,
    now: dt.datetime,
    unit_code: str | None = None,
    actor: str | None = None,
) -> dt.datetime | None:
    """Move a deadline for the whole period, or for one unit only; returns what it was before."""
    if deadline not in DEADLINE_NAMES:
        raise AdminError(N_("admin.deadline_unknown"), deadline=deadline, deadlines=", ".join(DEADLINE_NAMES))
    if not reason.strip():
        raise AdminError(N_("admin.reason_required"))
    assert period.id is not None
    old: dt.datetime | None
    if unit_code is None:
        old = getattr(period, deadline)
        _check_later(deadline, old, due_at, now)
        setattr(period, deadline, due_at)
        s.add(period)
        entity, entity_id, unit_id = "period", str(period.id), None
    else:
        unit = unit_by_code(s, unit_code)
        assert unit.id is not None
        ext = s.exec(
            select(Extension).where(
                Extension.period_id == period.id, Extension.unit_id == unit.id, Extension.deadline == deadline
            )
        ).first()
        old = ext.due_at if ext is not None else getattr(period, deadline)
        _check_later(deadline, old, due_at, now)
        if ext is None:
            ext = Extension(
                period_id=period.id,
                unit_id=unit.id,
                deadline=deadline,
                due_at=due_at,
                reason=reason,
                created_by=actor,
                created_at=now,
            )
        else:
            ext.due_at, ext.reason, ext.created_by, ext.created_at = due_at, reason, actor, now
        s.add(ext)
        entity, entity_id, unit_id = "extension", f"{period.id}:{unit.code}:{deadline}", unit.id
    s.add(
        AuditLog(
            at=now,
            operator=actor,
            action="deadline.extend",
            entity=entity,
            entity_id=entity_id,
            unit_id=unit_id,
            old_json=json.dumps(old.isoformat() if old else None),
            new_json=json.dumps(
                {"deadline": deadline, "due_at": due_at.isoformat(), "reason": reason, "by": actor},
                ensure_ascii=False,
            ),
        )
    )
    s.flush()
    return old


@dataclass(frozen=True)
class UnitListing:
    code: str
    name: str
    level: str
    parent_code: str | None
    members: int  # members not removed


def list_units(s: Session, level: str | None = None) -> list[UnitListing]:
    """Every unit (of `level`), by code, with its parent and how many members it has."""
    units = list(s.exec(select(Unit).order_by(col(Unit.code))))
    codes: dict[int | None, str] = {u.id: u.code for u in units}
    counts = dict(
        s.exec(
            select(Member.unit_id, func.count())
            .where(col(Member.removed_at).is_(None))
            .group_by(col(Member.unit_id))
        ).all()
    )
    return [
        UnitListing(u.code, u.name, u.level, codes.get(u.parent_id), int(counts.get(u.id or 0, 0)))
        for u in units
        if level is None or u.level == level
    ]


def all_units(s: Session) -> list[Unit]:
    """Every unit, by code (the rows, for choosing one in a form)."""
    return list(s.exec(select(Unit).order_by(col(Unit.code))))


def list_periods(s: Session) -> list[Period]:
    return list(s.exec(select(Period).order_by(col(Period.id))))


def _check_later(deadline: str, old: dt.datetime | None, due_at: dt.datetime, now: dt.datetime) -> None:
    """An extension moves a deadline later, and to a moment still ahead."""
    if old is not None and due_at <= old:
        raise AdminError(N_("admin.extend_not_later"), deadline=deadline, due=due_at, old=old)
    if due_at <= now:
        raise AdminError(N_("admin.deadline_past"), deadline=deadline, due=due_at, now=now)


def period_extensions(s: Session, period_id: int) -> list[tuple[str, str, dt.datetime, str]]:
    """(unit code, deadline, due, reason) for every per-unit extension of the period."""
    rows = s.exec(
        select(Unit.code, Extension.deadline, Extension.due_at, Extension.reason)
        .join(Unit, col(Unit.id) == col(Extension.unit_id))
        .where(Extension.period_id == period_id)
        .order_by(col(Unit.code))
    )
    return [(code, deadline, due, reason) for code, deadline, due, reason in rows]
