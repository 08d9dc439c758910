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
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from flows.model import (
    AddEvidence,
    AnswerView,
    AssessmentStatus,
    Citation,
    CloseAppraisal,
    Decide,
    Decision,
    DecisionView,
    EvidenceView,
    IllegalTransition,
    InviteView,
    JoinFailed,
    JoinUnit,
    MemberView,
    Mode,
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
    StatusChange,
    Submit,
    can_move,
)
from scoring.answers import decode_value, encode_value
from scoring.model import AnswerValue, Framework, Indicator
from storage import appraisal
from storage.admin import masked_code
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
    Publication,
    Unit,
    table_of,
)

FrameworkResolver = Callable[[str, str], Framework]
JOIN_HISTORY = dt.timedelta(hours=1)


# The hot path (every answer a member types) runs as SQLAlchemy Core statements on the session's
# connection: a handful of plain-tuple reads and inserts instead of ORM loading and unit-of-work
# flushes, which cost several times more than the database itself. Rare paths stay on the ORM.
_CONV = table_of(Conversation)
_MEMBER = table_of(Member)
_UNIT = table_of(Unit)
_PERIOD = table_of(Period)
_EXT = table_of(Extension)
_ASSESS = table_of(Assessment)
_ANSWER = table_of(AnswerRevision)
_EVIDENCE = table_of(Evidence)
_AUDIT = table_of(AuditLog)
_OUTBOX = table_of(Outbox)
_PROCESSED = table_of(ProcessedInbound)
_INVITE = table_of(Invite)
_JOIN_ATTEMPT = table_of(JoinAttempt)
_PUBLICATION = table_of(Publication)

# the latest answer revision per indicator: code -> (row id, revision, value_json, not_applicable)
Latest = dict[str, tuple[int, int, str | None, bool]]

_B = sa.bindparam
_SEEN = (
    sa.select(sa.literal(1))
    .where(_PROCESSED.c.channel == _B("channel"), _PROCESSED.c.inbound_id == _B("inbound_id"))
    .scalar_subquery()
)
_MEMBER_COLUMNS = (
    _MEMBER.c.id.label("member_id"),
    _MEMBER.c.role,
    _MEMBER.c.language,
    _UNIT.c.id.label("unit_id"),
    _UNIT.c.code,
    _UNIT.c.name,
    _UNIT.c.level,
)
# The member a chat is bound to: an operator's removed member binds it no longer (storage/models.py).
_MEMBER_ACTIVE = _MEMBER.c.removed_at.is_(None)
# A chat of a messaging channel is its member's by (channel, chat id); a web chat ("web", "m<member id>",
# opened by `open_web_chat` at sign-in) is bound to its member by id: one member, any number of channels.
WEB = "web"
_BINDS_CONV = sa.and_(
    _MEMBER_ACTIVE,
    sa.or_(
        sa.and_(_MEMBER.c.channel == _CONV.c.channel, _MEMBER.c.chat_id == _CONV.c.chat_id),
        sa.and_(_CONV.c.channel == WEB, _MEMBER.c.id == _CONV.c.member_id),
    ),
)
# One round trip for an ongoing chat: has this message been handled, the dialogue state (row-locked on
# PostgreSQL, so processes handling the same chat take turns), and who the chat belongs to.
_CHAT = (
    sa.select(_CONV.c.state_json, _CONV.c.version, _SEEN.label("seen"), *_MEMBER_COLUMNS)
    .select_from(_CONV.outerjoin(_MEMBER, _BINDS_CONV).outerjoin(_UNIT, _UNIT.c.id == _MEMBER.c.unit_id))
    .where(_CONV.c.channel == _B("channel"), _CONV.c.chat_id == _B("chat_id"))
    .with_for_update(of=_CONV)
)
# The dialogue state, written only over the version it was loaded at (optimistic concurrency).
_SAVE_SESSION = _CONV.update().where(
    _CONV.c.channel == _B("w_channel"),
    _CONV.c.chat_id == _B("w_chat_id"),
    _CONV.c.version == _B("w_version"),
)
# A chat's first message (no dialogue state yet).
_NEW_CHAT = sa.select(_SEEN.label("seen"), *_MEMBER_COLUMNS).select_from(
    sa.select(sa.literal(1).label("here"))
    .subquery()
    .outerjoin(
        _MEMBER,
        sa.and_(_MEMBER.c.channel == _B("channel"), _MEMBER.c.chat_id == _B("chat_id"), _MEMBER_ACTIVE),
    )
    .outerjoin(_UNIT, _UNIT.c.id == _MEMBER.c.unit_id)
)
# An invite named in a chat's first message, and the unit it is for; a revoked one is as unknown.
_INVITE_VIEW = sa.select(
    _INVITE.c.code,
    _UNIT.c.name,
    _INVITE.c.role,
    _INVITE.c.expires_at,
    _INVITE.c.used_at,
    _UNIT.c.id.label("unit_id"),
    _UNIT.c.code.label("unit_code"),
).where(_INVITE.c.code == _B("code"), _UNIT.c.id == _INVITE.c.unit_id, _INVITE.c.revoked_at.is_(None))
# A chat's recent failed join attempts (the rate limit on guessing invite codes).
_JOIN_FAILURES = sa.select(_JOIN_ATTEMPT.c.at).where(
    _JOIN_ATTEMPT.c.channel == _B("channel"),
    _JOIN_ATTEMPT.c.chat_id == _B("chat_id"),
    _JOIN_ATTEMPT.c.ok == sa.false(),
    _JOIN_ATTEMPT.c.at >= _B("since"),
)
_OPEN_PERIODS = (
    sa.select(
        _PERIOD.c.id,
        _PERIOD.c.name,
        _PERIOD.c.framework_id,
        _PERIOD.c.framework_version,
        _PERIOD.c.self_assessment_due,
        _PERIOD.c.supplement_due,
        sa.select(sa.func.max(_PUBLICATION.c.published_at))
        .where(_PUBLICATION.c.period_id == _PERIOD.c.id)
        .scalar_subquery()
        .label("published_at"),
    )
    .where(_PERIOD.c.status == "open")
    .order_by(_PERIOD.c.opened_at.desc(), _PERIOD.c.id.desc())
)


def _of_unit(
    column: sa.Column[object], where: sa.ColumnElement[bool] | None = None
) -> sa.ScalarSelect[object]:
    table = column.table
    assert isinstance(table, sa.Table)
    query = sa.select(column).where(table.c.period_id == _B("period_id"), table.c.unit_id == _B("unit_id"))
    return (query.where(where) if where is not None else query).scalar_subquery()


# The unit's assessment in the period and its deadline extensions, in one round trip.
_UNIT_PERIOD = sa.select(
    _of_unit(_ASSESS.c.id).label("assessment_id"),
    _of_unit(_ASSESS.c.status).label("status"),
    _of_unit(_ASSESS.c.submitted_at).label("submitted_at"),
    _of_unit(_EXT.c.due_at, _EXT.c.deadline == "self_assessment_due").label("self_assessment_due"),
    _of_unit(_EXT.c.due_at, _EXT.c.deadline == "supplement_due").label("supplement_due"),
)
_REVISIONS = (
    sa.select(
        _ANSWER.c.indicator_code,
        _ANSWER.c.id,
        _ANSWER.c.revision,
        _ANSWER.c.value_json,
        _ANSWER.c.not_applicable,
        _ANSWER.c.reason,
    )
    .where(_ANSWER.c.assessment_id == _B("assessment_id"))
    .order_by(_ANSWER.c.revision)
)
_EVIDENCE_VIEWS = (
    sa.select(
        _EVIDENCE.c.indicator_code,
        _EVIDENCE.c.kind,
        _EVIDENCE.c.original_name,
        _EVIDENCE.c.citation_number,
        _EVIDENCE.c.url,
        _EVIDENCE.c.created_at,
        _EVIDENCE.c.late,
        _EVIDENCE.c.sha256,
        _EVIDENCE.c.citation_date,
        _EVIDENCE.c.citation_summary,
        _EVIDENCE.c.note,
    )
    .where(_EVIDENCE.c.assessment_id == _B("assessment_id"))
    .order_by(_EVIDENCE.c.id)
)


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
    latest: Latest | None = field(default=None, compare=False)  # None: not loaded (query when needed)
    seen: bool = False  # the inbound message was handled before: nothing to do
    # a chat naming an invite, read by group commit: what it will see once it has joined
    joining: Joining | None = field(default=None, compare=False)
    # no assessment yet: the id group commit reserved for it on PostgreSQL (created with the first answer)
    new_assessment_id: int | None = field(default=None, compare=False)


def already_processed(s: Session, channel: str, inbound_id: str) -> bool:
    found = s.connection().execute(
        sa.select(_PROCESSED.c.inbound_id).where(
            _PROCESSED.c.channel == channel, _PROCESSED.c.inbound_id == inbound_id
        )
    )
    return found.first() is not None


@dataclass(frozen=True)
class OpenPeriod:
    id: int
    name: str
    framework: Framework
    self_assessment_due: dt.datetime | None
    supplement_due: dt.datetime | None
    published_at: dt.datetime | None = None


def open_periods(s: Session, resolve: FrameworkResolver) -> list[OpenPeriod]:
    """Every open period, newest first."""
    return periods_from(s.connection().execute(_OPEN_PERIODS), resolve)


def periods_from(rows: Iterable[Sequence[Any]], resolve: FrameworkResolver) -> list[OpenPeriod]:
    """The open periods of `_OPEN_PERIODS` rows."""
    return [
        OpenPeriod(pid, name, resolve(fid, version), self_due, supplement_due, published)
        for pid, name, fid, version, self_due, supplement_due, published in rows
    ]


def period_for(periods: Iterable[OpenPeriod], level: str) -> OpenPeriod | None:
    """The newest of `periods` whose framework is written for units of `level`."""
    return next((p for p in periods if p.framework.level.value == level), None)


def open_period(s: Session, level: str, resolve: FrameworkResolver) -> OpenPeriod | None:
    """The newest open period whose framework is written for units of `level`."""
    return period_for(open_periods(s, resolve), level)


@dataclass(frozen=True)
class StoredAnswers:
    """An assessment's answers as the engine sees them, the latest revision rows behind them, and the
    assessment's revision (`Snapshot.revision`)."""

    views: dict[str, AnswerView]
    latest: Latest
    revision: int


NO_ANSWERS = StoredAnswers({}, {}, 0)


def _answers_and_latest(s: Session, assessment_id: int, framework: Framework) -> StoredAnswers:
    conn = s.connection()
    revisions = conn.execute(_REVISIONS, {"assessment_id": assessment_id}).all()
    evidence = conn.execute(_EVIDENCE_VIEWS, {"assessment_id": assessment_id}).all()
    return answer_views(framework, revisions, evidence)


# Decoded answer values by indicator code and stored JSON, oldest dropped first. A chat's every message
# reloads every answer of its unit (62 by the end of an assessment), so without this the same values
# are parsed again and again. An entry holds the indicator it was decoded for and is used only for
# that very indicator, so a framework changed under the same code can never get a stale value.
# 20 000 entries (a deadline day's 1 000 conversations under way, 20 answers each) take a few MB.
_DECODED: dict[tuple[str, str], tuple[Indicator, AnswerValue | None]] = {}
_DECODED_MAX = 20_000


def _decoded(indicator: Indicator, value_json: str) -> AnswerValue | None:
    """The stored value of `indicator` (None if it no longer fits)."""
    key = (indicator.code, value_json)
    hit = _DECODED.get(key)
    if hit is not None and hit[0] is indicator:
        return hit[1]
    value = decode_value(indicator, json.loads(value_json))
    if len(_DECODED) >= _DECODED_MAX:
        _DECODED.pop(next(iter(_DECODED)), None)
    _DECODED[key] = (indicator, value)
    return value


def answer_views(
    framework: Framework, revisions: Iterable[Sequence[Any]], evidence: Iterable[Sequence[Any]]
) -> StoredAnswers:
    """The engine's view of an assessment's answers from its revision rows (oldest first, as
    `_REVISIONS` selects them) and evidence rows (as `_EVIDENCE_VIEWS`), plus the latest revisions
    and the assessment's revision (`Snapshot.revision`: every row counts, as `_REVISION` counts)."""
    latest: Latest = {}
    reasons: dict[str, str | None] = {}
    rows = 0
    for code, rid, revision, value_json, not_applicable, reason in revisions:
        latest[code] = (rid, revision, value_json, bool(not_applicable))
        reasons[code] = reason
        rows += 1
    by_code: dict[str, list[EvidenceView]] = {}
    for code, kind, name, number, url, created_at, late, sha256, date, summary, note in evidence:
        cited = Citation(number, date, summary or "") if number is not None and date is not None else None
        view = EvidenceView(kind, name or number or url or "", created_at, bool(late), sha256, cited, note)
        by_code.setdefault(code, []).append(view)
        rows += 1
    views: dict[str, AnswerView] = {}
    for code, (_, revision, value_json, not_applicable) in latest.items():
        indicator = framework.indicator(code)
        if indicator is None:
            continue  # an indicator the pinned framework no longer has
        value = _decoded(indicator, value_json) if value_json is not None else None
        if value is None and not not_applicable:
            continue
        views[code] = AnswerView(value, not_applicable, reasons[code], revision, tuple(by_code.get(code, ())))
    return StoredAnswers(views, latest, rows)


def load_snapshot(
    s: Session,
    channel: str,
    chat_id: str,
    resolve: FrameworkResolver,
    now: dt.datetime,
    invite_code: str | None = None,
    inbound_id: str | None = None,
    focus: int | None = None,
) -> Loaded:
    """The chat's snapshot; `Loaded.seen` instead when `inbound_id` was handled before. `focus`: the
    unit a reviewer's message is about (a web form names it), else the one open in the chat."""
    conn = s.connection()
    params = {"channel": channel, "chat_id": chat_id, "inbound_id": inbound_id}
    conv = conn.execute(_CHAT, params).first()
    chat = conv if conv is not None else conn.execute(_NEW_CHAT, params).one()
    if chat.seen is not None:
        return Loaded(Snapshot(channel, chat_id, SessionState()), None, None, None, None, None, seen=True)
    session = SessionState.from_json(json.loads(conv.state_json)) if conv else SessionState()
    version = conv.version if conv else None
    member = chat if chat.member_id is not None else None
    if member is None:
        invite = None
        if invite_code:
            row = conn.execute(_INVITE_VIEW, {"code": invite_code}).first()
            if row is not None:
                invite = InviteView(
                    row.code,
                    row.name,
                    Role(row.role),
                    row.expires_at,
                    row.used_at is not None,
                    row.unit_id,
                    row.unit_code,
                )
        failures = conn.execute(_JOIN_FAILURES, {**params, "since": now - JOIN_HISTORY}).scalars().all()
        snap = Snapshot(channel, chat_id, session, invite=invite, join_failures=tuple(failures))
        return Loaded(snap, version, None, None, None, None)
    member_id: int = member.member_id
    view = MemberView(member_id, Role(member.role), member.unit_id, member.code, member.name, member.language)
    if view.role is Role.REVIEWER:
        return _reviewer_snapshot(s, channel, chat_id, session, view, version, resolve, focus)
    period = open_period(s, member.level, resolve)
    if period is None:
        return Loaded(
            Snapshot(channel, chat_id, session, view), version, member_id, member.unit_id, None, None
        )
    own = conn.execute(_UNIT_PERIOD, {"period_id": period.id, "unit_id": member.unit_id}).one()
    stored = NO_ANSWERS
    decisions = {}
    if own.assessment_id is not None:
        stored = _answers_and_latest(s, own.assessment_id, period.framework)
        if own.submitted_at is not None:  # reviewers decide only on submitted assessments
            decisions = appraisal.decisions(s, own.assessment_id)
    own_view = UnitInPeriod(
        own.assessment_id, own.status, own.submitted_at, own.self_assessment_due, own.supplement_due
    )
    return member_loaded(channel, chat_id, session, version, view, period, own_view, stored, decisions)


@dataclass(frozen=True)
class UnitInPeriod:
    """A unit's assessment in a period (if it has one yet) and its own deadline extensions."""

    assessment_id: int | None
    status: str | None
    submitted_at: dt.datetime | None
    self_assessment_due: dt.datetime | None
    supplement_due: dt.datetime | None


def member_loaded(
    channel: str,
    chat_id: str,
    session: SessionState,
    version: int | None,
    member: MemberView,
    period: OpenPeriod | None,
    own: UnitInPeriod,
    stored: StoredAnswers,
    decisions: Mapping[str, DecisionView],
) -> Loaded:
    """A unit member's snapshot in an open period, from what was read for it; with no open period
    for the unit's level, only the member (the rest is ignored)."""
    if period is None:
        return Loaded(
            Snapshot(channel, chat_id, session, member), version, member.id, member.unit_id, None, None
        )
    period_view = PeriodView(
        period.id,
        period.name,
        period.framework,
        own.self_assessment_due or period.self_assessment_due,  # a unit's extension wins
        own.supplement_due or period.supplement_due,
        period.published_at,
    )
    snap = Snapshot(
        channel,
        chat_id,
        session,
        member,
        period_view,
        AssessmentStatus(own.status) if own.status else AssessmentStatus.DRAFT,
        stored.views,
        submitted_at=own.submitted_at,
        decisions=decisions,
        revision=stored.revision,
    )
    return Loaded(snap, version, member.id, member.unit_id, period.id, own.assessment_id, stored.latest)


@dataclass(frozen=True)
class Joining:
    """The unit an invite is for and what a chat joining with it will see there, read before the join
    (storage/group_commit.py) so that the join and the first question share one transaction."""

    invite_code: str
    invite_id: int
    role: Role
    unit_id: int
    unit_code: str
    unit_name: str
    period: OpenPeriod | None
    own: UnitInPeriod
    stored: StoredAnswers
    member_id: int | None = None  # the new member's id, reserved by group commit on PostgreSQL

    def member(self, member_id: int) -> MemberView:
        """The new member as `load_snapshot` reads it back (a member starts in Vietnamese)."""
        return MemberView(member_id, self.role, self.unit_id, self.unit_code, self.unit_name, "vi")

    def loaded(
        self, channel: str, chat_id: str, session: SessionState, version: int, member_id: int
    ) -> Loaded:
        """The chat's snapshot once joined, as `load_snapshot` would read it after the join (the
        dialogue state the join left, as stored and read back)."""
        session = SessionState.from_json(json.loads(json.dumps(session.to_json())))
        view = self.member(member_id)
        return member_loaded(channel, chat_id, session, version, view, self.period, self.own, self.stored, {})


def _reviewer_snapshot(
    s: Session,
    channel: str,
    chat_id: str,
    session: SessionState,
    view: MemberView,
    version: int | None,
    resolve: FrameworkResolver,
    focus: int | None = None,
) -> Loaded:
    """A reviewer sees the newest open period of the units they review, their queue, and the unit
    they have open (or the message is about: `focus`) — only ever units of their own scope."""
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
    opened = focus if focus is not None else session.unit
    if opened is not None and any(q.unit_id == opened for q in queue):
        assessment = s.exec(
            select(Assessment).where(Assessment.period_id == period.id, Assessment.unit_id == opened)
        ).one()
        unit = s.get(Unit, opened)
        assert assessment.id is not None and unit is not None and unit.id is not None
        reviewed = ReviewedUnit(
            unit.id,
            unit.name,
            assessment.id,
            AssessmentStatus(assessment.status),
            _answers_and_latest(s, assessment.id, framework).views,
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


def audit_row(
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
) -> dict[str, object]:
    """One audit-trail row: who did what, on which unit and assessment, from what to what."""
    return dict(
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


def _audit(s: Session, row: dict[str, object]) -> None:
    s.connection().execute(_AUDIT.insert(), row)


@dataclass
class _Writing:
    """What `apply` learns while it writes: the assessment once it exists, the revisions it added."""

    assessment_id: int | None
    latest: Latest | None


def _assessment_id(s: Session, loaded: Loaded, writing: _Writing) -> int:
    """The unit's assessment in the period, created with its first answer or evidence. Created by
    another member since the snapshot was read, the insert fails and the service retries on fresh data."""
    if writing.assessment_id is None:
        row = dict(period_id=loaded.period_id, unit_id=loaded.unit_id, status="draft")
        writing.assessment_id = int(s.connection().execute(NEW_ASSESSMENTS, [row]).scalar_one())
    return writing.assessment_id


# New assessments (draft) of units answering for the first time in a period, their ids in order.
NEW_ASSESSMENTS = _ASSESS.insert().returning(_ASSESS.c.id, sort_by_parameter_order=True)


def _answer_json(event: SaveAnswer) -> dict[str, object]:
    return {
        "value": encode_value(event.value) if event.value is not None else None,
        "not_applicable": event.not_applicable,
        "reason": event.reason,
    }


def _previous(
    s: Session, assessment_id: int, code: str, writing: _Writing
) -> tuple[int, int, str | None, bool] | None:
    if writing.latest is not None:
        return writing.latest.get(code)
    row = (
        s.connection()
        .execute(
            sa.select(_ANSWER.c.id, _ANSWER.c.revision, _ANSWER.c.value_json, _ANSWER.c.not_applicable)
            .where(_ANSWER.c.assessment_id == assessment_id, _ANSWER.c.indicator_code == code)
            .order_by(_ANSWER.c.revision.desc())
            .limit(1)
        )
        .first()
    )
    return (row.id, row.revision, row.value_json, bool(row.not_applicable)) if row else None


def _value_json(event: SaveAnswer) -> str | None:
    return json.dumps(encode_value(event.value)) if event.value is not None else None


def _next_revision(previous: tuple[int, int, str | None, bool] | None) -> int:
    return previous[1] + 1 if previous else 1


def answer_rows(
    loaded: Loaded,
    event: SaveAnswer,
    now: dt.datetime,
    assessment_id: int,
    previous: tuple[int, int, str | None, bool] | None,
) -> tuple[dict[str, object], dict[str, object]]:
    """The new answer revision on top of `previous` (the latest one, if any) and its audit row."""
    answer = dict(
        assessment_id=assessment_id,
        indicator_code=event.code,
        revision=_next_revision(previous),
        value_json=_value_json(event),
        not_applicable=event.not_applicable,
        reason=event.reason,
        author_member_id=loaded.member_id,
        channel=loaded.snapshot.channel,
        created_at=now,
        previous_id=previous[0] if previous else None,
    )
    old = (
        {"value": json.loads(previous[2]) if previous[2] else None, "not_applicable": previous[3]}
        if previous
        else None
    )
    audit = audit_row(
        now,
        loaded,
        "answer.save",
        "indicator",
        event.code,
        old,
        _answer_json(event),
        assessment_id=assessment_id,
    )
    return answer, audit


def _save_answer(s: Session, loaded: Loaded, event: SaveAnswer, now: dt.datetime, writing: _Writing) -> None:
    assessment_id = _assessment_id(s, loaded, writing)
    previous = _previous(s, assessment_id, event.code, writing)
    answer, audit = answer_rows(loaded, event, now, assessment_id, previous)
    inserted = s.connection().execute(_ANSWER.insert(), answer)
    if writing.latest is not None:
        new_id = inserted.inserted_primary_key[0] if inserted.inserted_primary_key else None
        assert new_id is not None
        revision = _next_revision(previous)
        writing.latest[event.code] = (new_id, revision, _value_json(event), event.not_applicable)
    _audit(s, audit)


def evidence_rows(
    loaded: Loaded, event: AddEvidence, now: dt.datetime, assessment_id: int
) -> tuple[dict[str, object], dict[str, object]]:
    """The evidence row for `event` (a file, a citation or a link) and its audit row."""
    file, citation = event.file, event.citation
    kind = "file" if file else "citation" if citation else "link"
    evidence = dict(
        assessment_id=assessment_id,
        indicator_code=event.code,
        kind=kind,
        uploader_member_id=loaded.member_id,
        channel=loaded.snapshot.channel,
        created_at=now,
        late=event.late,
        sha256=file.sha256 if file else None,
        size=file.size if file else None,
        mime=file.mime if file else None,
        original_name=file.name if file else None,
        citation_number=citation.number if citation else None,
        citation_date=citation.date if citation else None,
        citation_summary=citation.summary if citation else None,
        url=event.url,
        note=event.note,
    )
    audit = audit_row(
        now,
        loaded,
        "evidence.add",
        "indicator",
        event.code,
        None,
        {
            "kind": kind,
            "sha256": file.sha256 if file else None,
            "name": file.name if file else None,
            "citation": citation.number if citation else None,
            "url": event.url,
            "note": event.note,
            "late": event.late,
        },
        assessment_id=assessment_id,
    )
    return evidence, audit


def _add_evidence(
    s: Session, loaded: Loaded, event: AddEvidence, now: dt.datetime, writing: _Writing
) -> None:
    evidence, audit = evidence_rows(loaded, event, now, _assessment_id(s, loaded, writing))
    s.connection().execute(_EVIDENCE.insert(), evidence)
    _audit(s, audit)


def _join(s: Session, loaded: Loaded, event: JoinUnit, now: dt.datetime) -> int:
    """Bind the chat to the invite's unit and role, using the invite up; returns the new member id."""
    snap = loaded.snapshot
    conn = s.connection()
    invite = conn.execute(
        sa.select(_INVITE.c.id, _INVITE.c.code, _INVITE.c.unit_id, _INVITE.c.role, _INVITE.c.used_at).where(
            _INVITE.c.code == event.invite_code, _INVITE.c.revoked_at.is_(None)
        )
    ).first()
    if invite is None or invite.used_at is not None:
        raise InviteTaken(event.invite_code)
    member_id: int = conn.execute(
        _MEMBER.insert().returning(_MEMBER.c.id),
        new_member_row(snap.channel, snap.chat_id, invite.unit_id, invite.role, now),
    ).scalar_one()
    claimed = conn.execute(_CLAIM_INVITE, invite_claim(invite.code, member_id, now))
    if claimed.rowcount != 1:
        raise InviteTaken(event.invite_code)
    conn.execute(_JOIN_ATTEMPT.insert(), join_attempt_row(snap.channel, snap.chat_id, now, ok=True))
    _audit(s, join_audit_row(now, loaded, member_id, invite.unit_id, invite.role, invite.id, invite.code))
    return member_id


# An invite used up by the member who joined with it, unless someone else was quicker (or an operator
# revoked it meanwhile).
_CLAIM_INVITE = (
    _INVITE.update()
    .where(_INVITE.c.code == _B("w_code"), _INVITE.c.used_at.is_(None), _INVITE.c.revoked_at.is_(None))
    .values(used_at=_B("used_at"), used_by_member_id=_B("used_by_member_id"))
)


def new_member_row(
    channel: str, chat_id: str, unit_id: int, role: str, now: dt.datetime
) -> dict[str, object]:
    """A member joining by invite: bound to the chat, starting in Vietnamese, reminders on."""
    return dict(
        channel=channel,
        chat_id=chat_id,
        unit_id=unit_id,
        role=role,
        language="vi",
        created_at=now,
        paused_reminders=False,
    )


def invite_claim(code: str, member_id: int, now: dt.datetime) -> dict[str, object]:
    """Parameters of `_CLAIM_INVITE`."""
    return {"w_code": code, "used_at": now, "used_by_member_id": member_id}


def join_attempt_row(channel: str, chat_id: str, now: dt.datetime, ok: bool) -> dict[str, object]:
    return dict(channel=channel, chat_id=chat_id, at=now, ok=ok)


def join_audit_row(
    now: dt.datetime, loaded: Loaded, member_id: int, unit_id: int, role: str, invite_id: int, code: str
) -> dict[str, object]:
    """The join as the audit trail keeps it: the invite by its id, its code masked (never usable)."""
    new = {"unit_id": unit_id, "role": role, "invite": invite_id, "code": masked_code(code)}
    return audit_row(
        now, loaded, "member.join", "member", str(member_id), None, new, member_id=member_id, unit_id=unit_id
    )


# An assessment moved to another state, only from the state the move was decided on (compare-and-set);
# the timestamps of the move are added per event.
_MOVE = _ASSESS.update().where(_ASSESS.c.id == _B("w_id"), _ASSESS.c.status == _B("w_status"))
# The same check without a move, for what is written on an assessment in a given state (answers,
# evidence, decisions): on PostgreSQL the row lock orders it against any move of the assessment, so an
# answer never lands on an assessment submitted meanwhile, nor a decision on a closed appraisal.
HOLD = _MOVE.values(status=_ASSESS.c.status)
# The assessment's revision, as `answer_views` counts it for `Snapshot.revision`.
_REVISION = sa.select(
    sa.select(sa.func.count())
    .select_from(_ANSWER)
    .where(_ANSWER.c.assessment_id == _B("id"))
    .scalar_subquery()
    + sa.select(sa.func.count())
    .select_from(_EVIDENCE)
    .where(_EVIDENCE.c.assessment_id == _B("id"))
    .scalar_subquery()
)
# How many decisions were recorded on the assessment (`ReviewedUnit.decided`).
_DECIDED = (
    sa.select(sa.func.count())
    .select_from(appraisal.DECISION)
    .where(appraisal.DECISION.c.assessment_id == _B("id"))
)


def hold_params(assessment_id: int, status: AssessmentStatus) -> dict[str, object]:
    """Parameters of `HOLD`: the assessment must still be in `status`."""
    return {"w_id": assessment_id, "w_status": status.value}


def _hold(s: Session, assessment_id: int, status: AssessmentStatus) -> None:
    if s.connection().execute(HOLD, hold_params(assessment_id, status)).rowcount != 1:
        raise ConcurrentUpdate(f"assessment {assessment_id} is no longer {status.value}")


def _move(s: Session, loaded: Loaded, event: StatusChange, now: dt.datetime, writing: _Writing) -> None:
    """Record a move of the assessment over the state, and the revision or decisions, it was decided on."""
    if not can_move(event.expected, event.to):
        raise IllegalTransition(event.expected, event.to)
    by = loaded.member_id
    values: dict[str, object] = {"status": event.to.value}
    if isinstance(event, SendReturns | CloseAppraisal):
        assessment_id, unit_id = event.assessment_id, _reviewed_unit(loaded, event.assessment_id)
        if isinstance(event, CloseAppraisal):
            values |= {"appraised_at": now, "appraised_by_member_id": by}
    else:
        assessment_id, unit_id = _assessment_id(s, loaded, writing), loaded.unit_id or 0
        if isinstance(event, RequestSubmission):
            values |= {"requested_at": now, "requested_by_member_id": by}
        elif isinstance(event, Submit):
            values |= {"submitted_at": now, "submitted_by_member_id": by}
        else:
            values |= {"submitted_at": now}
    conn = s.connection()
    if conn.execute(_MOVE.values(**values), hold_params(assessment_id, event.expected)).rowcount != 1:
        raise ConcurrentUpdate(f"assessment {assessment_id} is no longer {event.expected.value}")
    if isinstance(event, SendReturns | CloseAppraisal):
        if conn.execute(_DECIDED, {"id": assessment_id}).scalar_one() != event.decisions:
            raise ConcurrentUpdate(f"assessment {assessment_id}: decisions changed since shown")
    elif conn.execute(_REVISION, {"id": assessment_id}).scalar_one() != event.revision:
        raise ConcurrentUpdate(f"assessment {assessment_id} changed since its summary was shown")
    row = audit_row(
        now,
        loaded,
        "assessment.status",
        "assessment",
        str(assessment_id),
        event.expected.value,
        event.to.value,
        unit_id=unit_id,
        assessment_id=assessment_id,
    )
    _audit(s, row)


def _reviewed_unit(loaded: Loaded, assessment_id: int) -> int:
    """The unit of an assessment the acting reviewer may decide on: the one open in their own scope,
    nothing else."""
    review = loaded.snapshot.review
    if review is None or review.unit is None or review.unit.assessment_id != assessment_id:
        raise PermissionError(f"assessment {assessment_id} is not under this reviewer's review")
    return review.unit.unit_id


def _decide(s: Session, loaded: Loaded, event: Decide, now: dt.datetime) -> None:
    unit_id = _reviewed_unit(loaded, event.assessment_id)
    _hold(s, event.assessment_id, event.expected)
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
        audit_row(
            now,
            loaded,
            "appraisal.decide",
            "indicator",
            event.code,
            None,
            json.loads(appraisal.decision_json(row)),
            unit_id=unit_id,
            assessment_id=event.assessment_id,
        ),
    )


def apply(
    s: Session, loaded: Loaded, decision: Decision, now: dt.datetime, inbound_id: str | None
) -> int | None:
    """Record `decision`; returns the member id the chat is bound to afterwards."""
    snap = loaded.snapshot
    member_id = loaded.member_id
    writing = _Writing(loaded.assessment_id, dict(loaded.latest) if loaded.latest is not None else None)
    if loaded.assessment_id is not None and any(
        isinstance(e, SaveAnswer | AddEvidence) for e in decision.events
    ):
        _hold(s, loaded.assessment_id, snap.status)  # answered, and still answerable, in this state
    for event in decision.events:
        if isinstance(event, SaveAnswer):
            _save_answer(s, loaded, event, now, writing)
        elif isinstance(event, AddEvidence):
            _add_evidence(s, loaded, event, now, writing)
        elif isinstance(event, JoinUnit):
            member_id = _join(s, loaded, event, now)
        elif isinstance(event, JoinFailed):
            if event.reason != "rate_limited":  # only real guesses count towards the limit
                s.connection().execute(
                    _JOIN_ATTEMPT.insert(), join_attempt_row(snap.channel, snap.chat_id, now, ok=False)
                )
            _audit(
                s,
                audit_row(
                    now,
                    loaded,
                    "member.join_failed",
                    "chat",
                    f"{snap.channel}:{snap.chat_id}",
                    None,
                    {"reason": event.reason},
                ),
            )
        elif isinstance(event, RequestSubmission | Submit | SendReturns | CloseAppraisal | Resubmit):
            _move(s, loaded, event, now, writing)
        elif isinstance(event, Decide):
            _decide(s, loaded, event, now)
        elif isinstance(event, SetReminders):
            assert member_id is not None
            member_row = s.get(Member, member_id)
            assert member_row is not None
            member_row.paused_reminders = not event.enabled
            s.add(member_row)
            _audit(
                s,
                audit_row(
                    now,
                    loaded,
                    "member.reminders",
                    "member",
                    str(member_id),
                    None,
                    {"enabled": event.enabled},
                ),
            )
        elif isinstance(event, SetLanguage):
            assert member_id is not None
            member_row = s.get(Member, member_id)
            assert member_row is not None
            old_lang, member_row.language = member_row.language, event.language
            s.add(member_row)
            _audit(
                s,
                audit_row(now, loaded, "member.language", "member", str(member_id), old_lang, event.language),
            )
    s.flush()  # the rare ORM writes above, before the Core statements that may depend on them
    _save_session(s, loaded, decision.session, member_id, now)
    if inbound_id is not None:
        s.connection().execute(
            _PROCESSED.insert(), dict(channel=snap.channel, inbound_id=inbound_id, processed_at=now)
        )
    return member_id


def _save_session(
    s: Session, loaded: Loaded, state: SessionState, member_id: int | None, now: dt.datetime
) -> None:
    snap = loaded.snapshot
    text = json.dumps(state.to_json())
    if loaded.version is None:
        s.connection().execute(
            _CONV.insert(),
            dict(
                channel=snap.channel,
                chat_id=snap.chat_id,
                member_id=member_id,
                state_json=text,
                version=1,
                updated_at=now,
            ),
        )
        return
    result = s.connection().execute(_SAVE_SESSION, session_update(loaded, state, member_id, now))
    if result.rowcount != 1:
        raise ConcurrentUpdate(f"{snap.channel}:{snap.chat_id}")


def session_update(
    loaded: Loaded, state: SessionState, member_id: int | None, now: dt.datetime
) -> dict[str, object]:
    """Parameters of `_SAVE_SESSION` for a chat that has a conversation row (`loaded.version`)."""
    assert loaded.version is not None
    return {
        "w_channel": loaded.snapshot.channel,
        "w_chat_id": loaded.snapshot.chat_id,
        "w_version": loaded.version,
        "state_json": json.dumps(state.to_json()),
        "version": loaded.version + 1,
        "member_id": member_id,
        "updated_at": now,
    }


def web_chat_id(member_id: int) -> str:
    return f"m{member_id}"


def open_web_chat(s: Session, member_id: int, now: dt.datetime) -> str:
    """The member's web chat (created at their first sign-in), bound to them by id; its chat id."""
    chat_id = web_chat_id(member_id)
    found = s.connection().execute(
        sa.select(_CONV.c.member_id).where(_CONV.c.channel == WEB, _CONV.c.chat_id == chat_id)
    )
    if found.first() is None:
        row = dict(channel=WEB, chat_id=chat_id, member_id=member_id, version=1, updated_at=now)
        state = SessionState(mode=Mode.ASK)  # a member already: no joining, no welcome to wait for
        s.connection().execute(_CONV.insert(), {**row, "state_json": json.dumps(state.to_json())})
    return chat_id


def unit_members(s: Session, unit_id: int, role: Role) -> list[Member]:
    return list(
        s.exec(
            select(Member)
            .where(Member.unit_id == unit_id, Member.role == role.value, col(Member.removed_at).is_(None))
            .order_by(col(Member.id))
        )
    )


def queue_replies(
    s: Session,
    channel: str,
    chat_id: str,
    member_id: int | None,
    payloads: Iterable[dict[str, object]],
    now: dt.datetime,
    priority: int = 0,
    dedupe_key: str | None = None,
) -> list[int]:
    """Outbox rows for `payloads`, in order; returns their ids. A
    `dedupe_key` is for a single payload that must be queued at most once."""
    rows = [
        dict(
            channel=channel,
            chat_id=chat_id,
            member_id=member_id,
            payload_json=json.dumps(p, ensure_ascii=False),
            priority=priority,
            created_at=now,
            dedupe_key=dedupe_key,
        )
        for p in payloads
    ]
    assert dedupe_key is None or len(rows) == 1
    if not rows:
        return []
    inserted = s.connection().execute(_QUEUE, rows)
    return [int(i) for i in inserted.scalars()]


# Outbox rows in one statement (several rows on every backend), their ids in the rows' order.
_QUEUE = _OUTBOX.insert().returning(_OUTBOX.c.id, sort_by_parameter_order=True)
