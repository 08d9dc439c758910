"""Conversations against the database: the engine's snapshot in, its decision out, in one transaction.

`load_snapshot` gathers everything the pure engine may look at for one chat — and only for the unit
the chat is bound to, so a member can never see or touch another unit's assessment. `apply` records
the decision: answers as new revisions (never updates), evidence rows, submission, membership, the
session with an optimistic version check, the audit trail and the inbound id that makes handling
exactly-once. The caller's `Database.session()` commits all of it, or none.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import sqlalchemy as sa
from sqlmodel import Session, col, select

from flows.model import (
    AddEvidence,
    AnswerView,
    AssessmentStatus,
    CloseAppraisal,
    Decide,
    Decision,
    EvidenceView,
    InviteView,
    JoinFailed,
    JoinUnit,
    MemberView,
    PeriodView,
    RequestSubmission,
    Resubmit,
    Review,
    ReviewedUnit,
    Role,
    SaveAnswer,
    SendReturns,
    SessionState,
    SetLanguage,
    SetReminders,
    Snapshot,
    Submit,
)
from scoring.answers import decode_value, encode_value
from scoring.model import Framework
from storage import appraisal
from storage.models import (
    AnswerRevision,
    Assessment,
    AuditLog,
    Conversation,
    Evidence,
    Extension,
    Invite,
    JoinAttempt,
    Member,
    Outbox,
    Period,
    ProcessedInbound,
    Unit,
)

FrameworkResolver = Callable[[str, str], Framework]
JOIN_HISTORY = dt.timedelta(hours=1)


class ConcurrentUpdate(RuntimeError):
    """Another process changed this conversation since it was loaded; retry the whole step."""


class InviteTaken(RuntimeError):
    """The invite was used by someone else between loading and applying; retry the whole step."""


@dataclass(frozen=True)
class Loaded:
    """A snapshot and the database identities behind it (kept out of the pure engine)."""

    snapshot: Snapshot
    version: int | None  # None: no conversation row yet
    member_id: int | None
    unit_id: int | None
    period_id: int | None
    assessment_id: int | None


def already_processed(s: Session, channel: str, inbound_id: str) -> bool:
    return s.get(ProcessedInbound, (channel, inbound_id)) is not None


def open_period_for(s: Session, unit: Unit, resolve: FrameworkResolver) -> tuple[Period, Framework] | None:
    """The newest open period whose framework is written for this unit's level."""
    periods = s.exec(
        select(Period)
        .where(Period.status == "open")
        .order_by(col(Period.opened_at).desc(), col(Period.id).desc())
    )
    for period in periods:
        framework = resolve(period.framework_id, period.framework_version)
        if framework.level.value == unit.level:
            return period, framework
    return None


def _unit_deadlines(s: Session, period: Period, unit_id: int) -> dict[str, dt.datetime]:
    """The period's deadlines with this unit's extensions applied."""
    out = {
        name: getattr(period, name)
        for name in ("self_assessment_due", "supplement_due")
        if getattr(period, name)
    }
    for ext in s.exec(
        select(Extension).where(Extension.period_id == period.id, Extension.unit_id == unit_id)
    ):
        out[ext.deadline] = ext.due_at
    return out


def _answers(s: Session, assessment_id: int, framework: Framework) -> dict[str, AnswerView]:
    latest: dict[str, AnswerRevision] = {}
    rows = s.exec(
        select(AnswerRevision)
        .where(AnswerRevision.assessment_id == assessment_id)
        .order_by(col(AnswerRevision.revision))
    )
    for row in rows:
        latest[row.indicator_code] = row
    evidence: dict[str, list[EvidenceView]] = {}
    for ev in s.exec(
        select(Evidence).where(Evidence.assessment_id == assessment_id).order_by(col(Evidence.id))
    ):
        label = ev.original_name or ev.citation_number or ev.url or ""
        evidence.setdefault(ev.indicator_code, []).append(
            EvidenceView(ev.kind, label, ev.created_at, ev.late, ev.sha256)
        )
    views: dict[str, AnswerView] = {}
    for code, row in latest.items():
        indicator = framework.indicator(code)
        if indicator is None:
            continue  # an indicator the pinned framework no longer has
        value = decode_value(indicator, json.loads(row.value_json)) if row.value_json is not None else None
        if value is None and not row.not_applicable:
            continue
        views[code] = AnswerView(
            value, row.not_applicable, row.reason, row.revision, tuple(evidence.get(code, ()))
        )
    return views


def load_snapshot(
    s: Session,
    channel: str,
    chat_id: str,
    resolve: FrameworkResolver,
    now: dt.datetime,
    invite_code: str | None = None,
) -> Loaded:
    conv = s.exec(
        select(Conversation)
        .where(Conversation.channel == channel, Conversation.chat_id == chat_id)
        .with_for_update()
    ).first()
    session = SessionState.from_json(json.loads(conv.state_json)) if conv else SessionState()
    member = s.exec(select(Member).where(Member.channel == channel, Member.chat_id == chat_id)).first()
    version = conv.version if conv else None
    if member is None:
        invite = None
        if invite_code:
            row = s.get(Invite, invite_code)
            if row is not None:
                unit = s.get(Unit, row.unit_id)
                assert unit is not None
                invite = InviteView(
                    row.code, unit.name, Role(row.role), row.expires_at, row.used_at is not None
                )
        failures = s.exec(
            select(JoinAttempt.at).where(
                JoinAttempt.channel == channel,
                JoinAttempt.chat_id == chat_id,
                JoinAttempt.ok == sa.false(),
                JoinAttempt.at >= now - JOIN_HISTORY,
            )
        ).all()
        snap = Snapshot(channel, chat_id, session, invite=invite, join_failures=tuple(failures))
        return Loaded(snap, version, None, None, None, None)
    assert member.id is not None
    unit = s.get(Unit, member.unit_id)
    assert unit is not None and unit.id is not None
    view = MemberView(member.id, Role(member.role), unit.id, unit.code, unit.name, member.language)
    if view.role is Role.REVIEWER:
        return _reviewer_snapshot(s, channel, chat_id, session, view, version, resolve)
    found = open_period_for(s, unit, resolve)
    if found is None:
        return Loaded(Snapshot(channel, chat_id, session, view), version, member.id, unit.id, None, None)
    period, framework = found
    assert period.id is not None
    due = _unit_deadlines(s, period, unit.id)
    period_view = PeriodView(
        period.id, period.name, framework, due.get("self_assessment_due"), due.get("supplement_due")
    )
    assessment = s.exec(
        select(Assessment).where(Assessment.period_id == period.id, Assessment.unit_id == unit.id)
    ).first()
    answers = (
        _answers(s, assessment.id, framework) if assessment is not None and assessment.id is not None else {}
    )
    snap = Snapshot(
        channel,
        chat_id,
        session,
        view,
        period_view,
        AssessmentStatus(assessment.status) if assessment else AssessmentStatus.DRAFT,
        answers,
        submitted_at=assessment.submitted_at if assessment else None,
        decisions=appraisal.decisions(s, assessment.id)
        if assessment is not None and assessment.id is not None
        else {},
    )
    return Loaded(snap, version, member.id, unit.id, period.id, assessment.id if assessment else None)


def _reviewer_snapshot(
    s: Session,
    channel: str,
    chat_id: str,
    session: SessionState,
    view: MemberView,
    version: int | None,
    resolve: FrameworkResolver,
) -> Loaded:
    """A reviewer sees the newest open period of the units they review, their queue, and the unit
    they have open — only ever units of their own scope."""
    units = appraisal.scope(s, view.unit_id)
    levels = {u.level for u in s.exec(select(Unit).where(col(Unit.id).in_(units)))} if units else set()
    found = None
    for period in s.exec(
        select(Period).where(Period.status == "open").order_by(col(Period.opened_at).desc())
    ):
        framework = resolve(period.framework_id, period.framework_version)
        if framework.level.value in levels:
            found = (period, framework)
            break
    if found is None:
        return Loaded(
            Snapshot(channel, chat_id, session, view, review=Review()),
            version,
            view.id,
            view.unit_id,
            None,
            None,
        )
    period, framework = found
    assert period.id is not None
    queue = tuple(appraisal.queue(s, period.id, units))
    reviewed = None
    if session.unit is not None and any(q.unit_id == session.unit for q in queue):
        assessment = s.exec(
            select(Assessment).where(Assessment.period_id == period.id, Assessment.unit_id == session.unit)
        ).one()
        unit = s.get(Unit, session.unit)
        assert assessment.id is not None and unit is not None and unit.id is not None
        reviewed = ReviewedUnit(
            unit.id,
            unit.name,
            assessment.id,
            AssessmentStatus(assessment.status),
            _answers(s, assessment.id, framework),
            appraisal.decisions(s, assessment.id),
            assessment.submitted_at,
        )
    period_view = PeriodView(
        period.id, period.name, framework, period.self_assessment_due, period.supplement_due
    )
    snap = Snapshot(channel, chat_id, session, view, period_view, review=Review(queue, reviewed))
    return Loaded(
        snap, version, view.id, view.unit_id, period.id, reviewed.assessment_id if reviewed else None
    )


def _audit(
    s: Session,
    now: dt.datetime,
    loaded: Loaded,
    action: str,
    entity: str,
    entity_id: str,
    old: object = None,
    new: object = None,
    *,
    member_id: int | None = None,
    unit_id: int | None = None,
    assessment_id: int | None = None,
) -> None:
    s.add(
        AuditLog(
            at=now,
            actor_member_id=member_id if member_id is not None else loaded.member_id,
            channel=loaded.snapshot.channel,
            action=action,
            entity=entity,
            entity_id=entity_id,
            unit_id=unit_id if unit_id is not None else loaded.unit_id,
            assessment_id=assessment_id if assessment_id is not None else loaded.assessment_id,
            old_json=json.dumps(old, ensure_ascii=False, default=str) if old is not None else None,
            new_json=json.dumps(new, ensure_ascii=False, default=str) if new is not None else None,
        )
    )


def _assessment(s: Session, loaded: Loaded) -> Assessment:
    assert loaded.period_id is not None and loaded.unit_id is not None
    row = s.exec(
        select(Assessment).where(
            Assessment.period_id == loaded.period_id, Assessment.unit_id == loaded.unit_id
        )
    ).first()
    if row is None:
        row = Assessment(period_id=loaded.period_id, unit_id=loaded.unit_id)
        s.add(row)
        s.flush()
    return row


def _answer_json(event: SaveAnswer) -> dict[str, object]:
    return {
        "value": encode_value(event.value) if event.value is not None else None,
        "not_applicable": event.not_applicable,
        "reason": event.reason,
    }


def _save_answer(s: Session, loaded: Loaded, event: SaveAnswer, now: dt.datetime) -> None:
    assessment = _assessment(s, loaded)
    assert assessment.id is not None
    previous = s.exec(
        select(AnswerRevision)
        .where(AnswerRevision.assessment_id == assessment.id, AnswerRevision.indicator_code == event.code)
        .order_by(col(AnswerRevision.revision).desc())
    ).first()
    row = AnswerRevision(
        assessment_id=assessment.id,
        indicator_code=event.code,
        revision=(previous.revision + 1) if previous else 1,
        value_json=json.dumps(encode_value(event.value)) if event.value is not None else None,
        not_applicable=event.not_applicable,
        reason=event.reason,
        author_member_id=loaded.member_id,
        channel=loaded.snapshot.channel,
        created_at=now,
        previous_id=previous.id if previous else None,
    )
    s.add(row)
    old = (
        {
            "value": json.loads(previous.value_json) if previous.value_json else None,
            "not_applicable": previous.not_applicable,
        }
        if previous
        else None
    )
    _audit(
        s,
        now,
        loaded,
        "answer.save",
        "indicator",
        event.code,
        old,
        _answer_json(event),
        assessment_id=assessment.id,
    )


def _add_evidence(s: Session, loaded: Loaded, event: AddEvidence, now: dt.datetime, late: bool) -> None:
    assessment = _assessment(s, loaded)
    assert assessment.id is not None
    row = Evidence(
        assessment_id=assessment.id,
        indicator_code=event.code,
        kind="file" if event.file else "citation" if event.citation else "link",
        uploader_member_id=loaded.member_id,
        channel=loaded.snapshot.channel,
        created_at=now,
        late=late,
    )
    if event.file is not None:
        row.sha256, row.size, row.mime, row.original_name = (
            event.file.sha256,
            event.file.size,
            event.file.mime,
            event.file.name,
        )
    if event.citation is not None:
        row.citation_number, row.citation_date, row.citation_summary = (
            event.citation.number,
            event.citation.date,
            event.citation.summary,
        )
    row.url = event.url
    s.add(row)
    s.flush()
    _audit(
        s,
        now,
        loaded,
        "evidence.add",
        "indicator",
        event.code,
        None,
        {
            "kind": row.kind,
            "sha256": row.sha256,
            "name": row.original_name,
            "citation": row.citation_number,
            "url": row.url,
            "late": late,
        },
        assessment_id=assessment.id,
    )


def _join(s: Session, loaded: Loaded, event: JoinUnit, now: dt.datetime) -> None:
    snap = loaded.snapshot
    invite = s.get(Invite, event.invite_code)
    if invite is None or invite.used_at is not None:
        raise InviteTaken(event.invite_code)
    member = Member(
        channel=snap.channel, chat_id=snap.chat_id, unit_id=invite.unit_id, role=invite.role, created_at=now
    )
    s.add(member)
    s.flush()
    assert member.id is not None
    claimed = s.execute(
        sa.update(Invite)
        .where(col(Invite.code) == invite.code, col(Invite.used_at).is_(None))
        .values(used_at=now, used_by_member_id=member.id)
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        raise InviteTaken(event.invite_code)
    s.add(JoinAttempt(channel=snap.channel, chat_id=snap.chat_id, at=now, ok=True))
    _audit(
        s,
        now,
        loaded,
        "member.join",
        "member",
        str(member.id),
        None,
        {"unit_id": invite.unit_id, "role": invite.role, "invite": invite.code},
        member_id=member.id,
        unit_id=invite.unit_id,
    )


def _set_status(s: Session, loaded: Loaded, status: AssessmentStatus, now: dt.datetime) -> None:
    assessment = _assessment(s, loaded)
    old = assessment.status
    assessment.status = status.value
    if status is AssessmentStatus.SUBMITTED:
        assessment.submitted_at, assessment.submitted_by_member_id = now, loaded.member_id
    else:
        assessment.requested_at, assessment.requested_by_member_id = now, loaded.member_id
    s.add(assessment)
    _audit(
        s,
        now,
        loaded,
        "assessment.status",
        "assessment",
        str(assessment.id),
        old,
        status.value,
        assessment_id=assessment.id,
    )


def evidence_is_late(loaded: Loaded, now: dt.datetime, code: str) -> bool:
    """After the supplement deadline — the reviewer's own one, for an indicator they returned."""
    decision = loaded.snapshot.decisions.get(code)
    due = decision.supplement_due if decision is not None and decision.decision == "return" else None
    period = loaded.snapshot.period
    if due is None and period is not None:
        due = period.supplement_due
    return due is not None and now > due


def _reviewed_assessment(s: Session, loaded: Loaded, assessment_id: int) -> Assessment:
    """An assessment the acting reviewer may decide on: the one open in their own scope, nothing else."""
    review = loaded.snapshot.review
    assessment = s.get(Assessment, assessment_id)
    if (
        assessment is None
        or review is None
        or review.unit is None
        or review.unit.assessment_id != assessment_id
    ):
        raise PermissionError(f"assessment {assessment_id} is not under this reviewer's review")
    return assessment


def _decide(s: Session, loaded: Loaded, event: Decide, now: dt.datetime) -> None:
    assessment = _reviewed_assessment(s, loaded, event.assessment_id)
    row = appraisal.decide(
        s,
        event.assessment_id,
        event.code,
        event.decision,
        points=event.points,
        self_points=event.self_points,
        comment=event.comment,
        supplement_due=event.supplement_due,
        expected_revision=event.expected_revision,
        reviewer_id=loaded.member_id,
        now=now,
    )
    _audit(
        s,
        now,
        loaded,
        "appraisal.decide",
        "indicator",
        event.code,
        None,
        json.loads(appraisal.decision_json(row)),
        unit_id=assessment.unit_id,
        assessment_id=assessment.id,
    )


def _set_assessment(
    s: Session, loaded: Loaded, assessment_id: int, status: AssessmentStatus, now: dt.datetime
) -> None:
    if loaded.snapshot.review is not None:
        assessment = _reviewed_assessment(s, loaded, assessment_id)
    else:
        own = s.get(Assessment, assessment_id)
        assert own is not None and own.id == loaded.assessment_id  # a member's own assessment only
        assessment = own
    old = assessment.status
    assessment.status = status.value
    if status is AssessmentStatus.APPRAISED:
        assessment.appraised_at, assessment.appraised_by_member_id = now, loaded.member_id
    if status is AssessmentStatus.SUBMITTED:
        assessment.submitted_at = now
    s.add(assessment)
    _audit(
        s,
        now,
        loaded,
        "assessment.status",
        "assessment",
        str(assessment.id),
        old,
        status.value,
        unit_id=assessment.unit_id,
        assessment_id=assessment.id,
    )


def apply(
    s: Session, loaded: Loaded, decision: Decision, now: dt.datetime, inbound_id: str | None
) -> int | None:
    """Record `decision`; returns the member id the chat is bound to afterwards."""
    snap = loaded.snapshot
    member_id = loaded.member_id
    for event in decision.events:
        if isinstance(event, SaveAnswer):
            _save_answer(s, loaded, event, now)
        elif isinstance(event, AddEvidence):
            _add_evidence(s, loaded, event, now, evidence_is_late(loaded, now, event.code))
        elif isinstance(event, JoinUnit):
            _join(s, loaded, event, now)
            member = s.exec(
                select(Member).where(Member.channel == snap.channel, Member.chat_id == snap.chat_id)
            ).one()
            member_id = member.id
        elif isinstance(event, JoinFailed):
            s.add(JoinAttempt(channel=snap.channel, chat_id=snap.chat_id, at=now, ok=False))
            _audit(
                s,
                now,
                loaded,
                "member.join_failed",
                "chat",
                f"{snap.channel}:{snap.chat_id}",
                None,
                {"reason": event.reason},
            )
        elif isinstance(event, RequestSubmission):
            _set_status(s, loaded, AssessmentStatus.AWAITING_LEADER, now)
        elif isinstance(event, Submit):
            _set_status(s, loaded, AssessmentStatus.SUBMITTED, now)
        elif isinstance(event, Decide):
            _decide(s, loaded, event, now)
        elif isinstance(event, SendReturns):
            _set_assessment(s, loaded, event.assessment_id, AssessmentStatus.RETURNED, now)
        elif isinstance(event, CloseAppraisal):
            _set_assessment(s, loaded, event.assessment_id, AssessmentStatus.APPRAISED, now)
        elif isinstance(event, Resubmit):
            assert loaded.assessment_id is not None
            _set_assessment(s, loaded, loaded.assessment_id, AssessmentStatus.SUBMITTED, now)
        elif isinstance(event, SetReminders):
            assert member_id is not None
            member_row = s.get(Member, member_id)
            assert member_row is not None
            member_row.paused_reminders = not event.enabled
            s.add(member_row)
            _audit(
                s, now, loaded, "member.reminders", "member", str(member_id), None, {"enabled": event.enabled}
            )
        elif isinstance(event, SetLanguage):
            assert member_id is not None
            member_row = s.get(Member, member_id)
            assert member_row is not None
            old_lang, member_row.language = member_row.language, event.language
            s.add(member_row)
            _audit(s, now, loaded, "member.language", "member", str(member_id), old_lang, event.language)
    _save_session(s, loaded, decision.session, member_id, now)
    if inbound_id is not None:
        s.add(ProcessedInbound(channel=snap.channel, inbound_id=inbound_id, processed_at=now))
    s.flush()
    return member_id


def _save_session(
    s: Session, loaded: Loaded, state: SessionState, member_id: int | None, now: dt.datetime
) -> None:
    snap = loaded.snapshot
    text = json.dumps(state.to_json())
    if loaded.version is None:
        s.add(
            Conversation(
                channel=snap.channel,
                chat_id=snap.chat_id,
                member_id=member_id,
                state_json=text,
                version=1,
                updated_at=now,
            )
        )
        return
    result = s.execute(
        sa.update(Conversation)
        .where(
            col(Conversation.channel) == snap.channel,
            col(Conversation.chat_id) == snap.chat_id,
            col(Conversation.version) == loaded.version,
        )
        .values(state_json=text, version=loaded.version + 1, member_id=member_id, updated_at=now)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise ConcurrentUpdate(f"{snap.channel}:{snap.chat_id}")


def unit_members(s: Session, unit_id: int, role: Role) -> list[Member]:
    return list(
        s.exec(
            select(Member)
            .where(Member.unit_id == unit_id, Member.role == role.value)
            .order_by(col(Member.id))
        )
    )


def enqueue(
    s: Session,
    channel: str,
    chat_id: str,
    member_id: int | None,
    payloads: Iterable[dict[str, object]],
    now: dt.datetime,
    priority: int = 0,
) -> list[Outbox]:
    rows = [
        Outbox(
            channel=channel,
            chat_id=chat_id,
            member_id=member_id,
            payload_json=json.dumps(p, ensure_ascii=False),
            priority=priority,
            created_at=now,
        )
        for p in payloads
    ]
    s.add_all(rows)
    s.flush()
    return rows
