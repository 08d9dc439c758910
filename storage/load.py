"""The one loader: what the engine may see for each message of a batch, read together.

A single message is a batch of one. For each message: whether it was handled before (its inbound id),
the chat's dialogue state (row-locked on PostgreSQL, in the same order in every process) and who it
belongs to; for a unit member, the newest open period for the unit's level, the unit's assessment,
answers, evidence, deadline extensions and — once submitted — the reviewers' decisions; for a chat
naming an invite, the invite and what the chat will see once joined (`Snapshot.joined`); for a
reviewer, the queue of their scope and the unit they have open or the message is about. A member only
ever sees their own unit; a reviewer only units of their scope.

Reads go in two round trips (`storage.pipeline.read_all`): the chats, then their units. On PostgreSQL
they also reserve the ids of the members and assessments the batch may create, so that the writer sends
those rows with the others. Each unit is read for one message of a batch at most: `load` answers None
for a later message of the same unit, which the caller handles in a batch after this one (it must see
what the earlier one wrote). Reviewers are rare: theirs is read chat by chat.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY
from sqlmodel import Session, col, select

from flows.model import (
    AnswerView,
    AssessmentStatus,
    Citation,
    DecisionView,
    EvidenceView,
    InviteView,
    MemberView,
    Notice,
    PeriodView,
    Review,
    ReviewedUnit,
    Role,
    SessionState,
    Snapshot,
)
from scoring.answers import decode_value
from scoring.model import AnswerValue, Framework, Indicator
from storage import appraisal
from storage.appraisal import DECISION, DECISION_COLUMNS, DECISIONS, decision_views
from storage.in_list import in_list
from storage.models import Member, Unit
from storage.pipeline import Query, read_all
from storage.tables import (
    ANSWER,
    ASSESSMENT,
    BINDS_CONV,
    CONV,
    EVIDENCE,
    EXTENSION,
    INVITE,
    JOIN_ATTEMPT,
    MEMBER,
    MEMBER_ACTIVE,
    PERIOD,
    PROCESSED,
    PUBLICATION,
    UNIT,
    B,
)

FrameworkResolver = Callable[[str, str], Framework]
JOIN_HISTORY = dt.timedelta(hours=1)  # failed join attempts looked at (the engine's rate limit)

# the latest answer revision per indicator: code -> (row id, revision, value_json, not_applicable)
Latest = dict[str, tuple[int, int, str | None, bool]]


@dataclass(frozen=True)
class Message:
    """One message of a batch: its chat, its inbound id if the channel has one, the invite code it
    names (`flows.engine.join_code`) and the unit it is about (`flows.appraise.focus`)."""

    channel: str
    chat_id: str
    inbound_id: str | None
    invite_code: str | None = None
    focus: int | None = None


@dataclass(frozen=True)
class Joining:
    """What recording a join needs: the invite, the unit and role it binds to, the new member's id when
    reserved (PostgreSQL), and the chat's state once joined (for what the engine does next)."""

    invite_id: int
    invite_code: str
    role: Role
    unit_id: int
    member_id: int | None
    after: Loaded


@dataclass(frozen=True)
class Loaded:
    """A snapshot and the database identities behind it (kept out of the pure engine)."""

    snapshot: Snapshot
    version: int | None  # None: no conversation row yet
    member_id: int | None = None
    unit_id: int | None = None
    period_id: int | None = None
    assessment_id: int | None = None  # the member's assessment, or the one a reviewer has open
    latest: Latest = field(default_factory=dict, compare=False)
    decision_ids: Mapping[str, int] = field(default_factory=dict, compare=False)  # latest decision rows
    seen: bool = False  # the inbound message was handled before: nothing to do
    joining: Joining | None = field(default=None, compare=False)
    new_assessment_id: int | None = None  # no assessment yet: the id reserved for it (PostgreSQL)


@dataclass(frozen=True)
class OpenPeriod:
    id: int
    name: str
    framework: Framework
    self_assessment_due: dt.datetime | None
    supplement_due: dt.datetime | None
    published_at: dt.datetime | None = None


@dataclass(frozen=True)
class StoredAnswers:
    """An assessment's answers as the engine sees them and the latest revision rows behind them."""

    views: dict[str, AnswerView]
    latest: Latest


NO_ANSWERS = StoredAnswers({}, {})

_MEMBER_COLUMNS = (
    MEMBER.c.id.label("member_id"),
    MEMBER.c.role,
    MEMBER.c.language,
    UNIT.c.id.label("unit_id"),
    UNIT.c.code,
    UNIT.c.name,
    UNIT.c.level,
)
_CHATS = (
    sa.select(CONV.c.channel, CONV.c.chat_id, CONV.c.state_json, CONV.c.version, *_MEMBER_COLUMNS)
    .select_from(CONV.outerjoin(MEMBER, BINDS_CONV).outerjoin(UNIT, UNIT.c.id == MEMBER.c.unit_id))
    .where(CONV.c.channel == B("channel"), in_list(CONV.c.chat_id, "chats"))
    .order_by(CONV.c.chat_id)  # every process locks in the same order (channels in turn, sorted)
    .with_for_update(of=CONV)
)
# Chats that are a member's without a conversation row yet (joined and never written since).
_BOUND = (
    sa.select(MEMBER.c.channel, MEMBER.c.chat_id, *_MEMBER_COLUMNS)
    .select_from(MEMBER.join(UNIT, UNIT.c.id == MEMBER.c.unit_id))
    .where(MEMBER.c.channel == B("channel"), in_list(MEMBER.c.chat_id, "chats"), MEMBER_ACTIVE)
)
_SEEN = sa.select(PROCESSED.c.channel, PROCESSED.c.inbound_id).where(
    PROCESSED.c.channel == B("channel"), in_list(PROCESSED.c.inbound_id, "inbound")
)
# Every period as `read_periods` reads it, newest first; the open ones are what a message is answered in.
PERIODS = sa.select(
    PERIOD.c.id,
    PERIOD.c.name,
    PERIOD.c.framework_id,
    PERIOD.c.framework_version,
    PERIOD.c.self_assessment_due,
    PERIOD.c.supplement_due,
    sa.select(sa.func.max(PUBLICATION.c.published_at))
    .where(PUBLICATION.c.period_id == PERIOD.c.id)
    .scalar_subquery()
    .label("published_at"),
).order_by(PERIOD.c.opened_at.desc(), PERIOD.c.id.desc())
OPEN_PERIODS = PERIODS.where(PERIOD.c.status == "open")
# The invites messages name (a revoked one is as unknown), with their units.
_INVITES = sa.select(
    INVITE.c.id,
    INVITE.c.code,
    INVITE.c.role,
    INVITE.c.expires_at,
    INVITE.c.used_at,
    UNIT.c.id.label("unit_id"),
    UNIT.c.code.label("unit_code"),
    UNIT.c.name,
    UNIT.c.level,
).where(in_list(INVITE.c.code, "codes"), UNIT.c.id == INVITE.c.unit_id, INVITE.c.revoked_at.is_(None))
# Recent failed join attempts of chats naming an invite (the engine's rate limit on guessing).
_FAILURES = sa.select(JOIN_ATTEMPT.c.channel, JOIN_ATTEMPT.c.chat_id, JOIN_ATTEMPT.c.at).where(
    JOIN_ATTEMPT.c.channel == B("channel"),
    in_list(JOIN_ATTEMPT.c.chat_id, "chats"),
    JOIN_ATTEMPT.c.ok == sa.false(),
    JOIN_ATTEMPT.c.at >= B("since"),
)
_ASSESSMENTS = sa.select(
    ASSESSMENT.c.unit_id,
    ASSESSMENT.c.id,
    ASSESSMENT.c.status,
    ASSESSMENT.c.submitted_at,
    ASSESSMENT.c.revision,
).where(ASSESSMENT.c.period_id == B("period_id"), in_list(ASSESSMENT.c.unit_id, "units"))
_EXTENSIONS = sa.select(EXTENSION.c.unit_id, EXTENSION.c.deadline, EXTENSION.c.due_at).where(
    EXTENSION.c.period_id == B("period_id"), in_list(EXTENSION.c.unit_id, "units")
)
_OF_UNITS = sa.and_(ASSESSMENT.c.period_id == B("period_id"), in_list(ASSESSMENT.c.unit_id, "units"))
_REVISION_COLUMNS = (
    ANSWER.c.indicator_code,
    ANSWER.c.id,
    ANSWER.c.revision,
    ANSWER.c.value_json,
    ANSWER.c.not_applicable,
    ANSWER.c.reason,
)
_EVIDENCE_COLUMNS = (
    EVIDENCE.c.indicator_code,
    EVIDENCE.c.kind,
    EVIDENCE.c.original_name,
    EVIDENCE.c.citation_number,
    EVIDENCE.c.url,
    EVIDENCE.c.created_at,
    EVIDENCE.c.late,
    EVIDENCE.c.sha256,
    EVIDENCE.c.citation_date,
    EVIDENCE.c.citation_summary,
    EVIDENCE.c.note,
)
# Each unit's answer revisions (oldest first), evidence and decisions, the assessment id last.
_REVISIONS_OF = (
    sa.select(*_REVISION_COLUMNS, ANSWER.c.assessment_id)
    .join(ASSESSMENT, ASSESSMENT.c.id == ANSWER.c.assessment_id)
    .where(_OF_UNITS)
    .order_by(ANSWER.c.revision)
)
_EVIDENCE_OF = (
    sa.select(*_EVIDENCE_COLUMNS, EVIDENCE.c.assessment_id)
    .join(ASSESSMENT, ASSESSMENT.c.id == EVIDENCE.c.assessment_id)
    .where(_OF_UNITS)
    .order_by(EVIDENCE.c.id)
)
_DECISIONS_OF = (
    sa.select(*DECISION_COLUMNS, DECISION.c.assessment_id)
    .join(ASSESSMENT, ASSESSMENT.c.id == DECISION.c.assessment_id)
    .where(_OF_UNITS, ASSESSMENT.c.submitted_at.is_not(None))
    .order_by(DECISION.c.revision)
)
# One assessment's rows, for the unit a reviewer has open.
_REVISIONS = (
    sa.select(*_REVISION_COLUMNS).where(ANSWER.c.assessment_id == B("id")).order_by(ANSWER.c.revision)
)
_EVIDENCE = sa.select(*_EVIDENCE_COLUMNS).where(EVIDENCE.c.assessment_id == B("id")).order_by(EVIDENCE.c.id)
# PostgreSQL: ids reserved for the members and assessments the batch may create (an id reserved and not
# used is a gap in its sequence, as a rolled-back insert leaves one).
_NAMING = sa.func.unnest(B("chats", type_=ARRAY(sa.String))).table_valued("chat_id").render_derived(name="c")
_MEMBER_IDS = sa.select(
    _NAMING.c.chat_id, sa.func.nextval(sa.func.pg_get_serial_sequence(MEMBER.name, "id")).label("id")
).where(
    ~sa.exists().where(MEMBER.c.channel == B("channel"), MEMBER.c.chat_id == _NAMING.c.chat_id, MEMBER_ACTIVE)
)
_ANSWERING = (
    sa.func.unnest(B("units", type_=ARRAY(sa.Integer))).table_valued("unit_id").render_derived(name="u")
)
_ASSESSMENT_IDS = sa.select(
    _ANSWERING.c.unit_id, sa.func.nextval(sa.func.pg_get_serial_sequence(ASSESSMENT.name, "id")).label("id")
).where(
    ~sa.exists().where(ASSESSMENT.c.period_id == B("period_id"), ASSESSMENT.c.unit_id == _ANSWERING.c.unit_id)
)


def open_periods(s: Session, resolve: FrameworkResolver) -> list[OpenPeriod]:
    """Every open period, newest first."""
    return read_periods(s.connection().execute(OPEN_PERIODS), resolve)


def read_periods(rows: Iterable[Sequence[Any]], resolve: FrameworkResolver) -> list[OpenPeriod]:
    """Periods from rows as `PERIODS` selects them, each with its pinned framework."""
    return [
        OpenPeriod(pid, name, resolve(fid, version), self_due, supplement_due, published)
        for pid, name, fid, version, self_due, supplement_due, published in rows
    ]


def period_for(periods: Iterable[OpenPeriod], level: str) -> OpenPeriod | None:
    """The newest of `periods` whose framework is written for units of `level`."""
    return next((p for p in periods if p.framework.level.value == level), None)


# Decoded answer values by indicator code and stored JSON, oldest dropped first. A chat's every message
# reloads every answer of its unit (62 by the end of an assessment), so without this the same values
# are parsed again and again. An entry holds the indicator it was decoded for and is used only for
# that very indicator, so a framework changed under the same code can never get a stale value.
# 20 000 entries (a deadline day's 1 000 conversations under way, 20 answers each) take a few MB.
_DECODED: dict[tuple[str, str], tuple[Indicator, AnswerValue | None]] = {}
_DECODED_MAX = 20_000


def decoded_value(indicator: Indicator, value_json: str) -> AnswerValue | None:
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
    """The engine's view of an assessment's answers from its revision rows (oldest first) and evidence
    rows, as `_REVISION_COLUMNS` and `_EVIDENCE_COLUMNS` select them, plus the latest revisions."""
    latest: Latest = {}
    reasons: dict[str, str | None] = {}
    for code, rid, revision, value_json, not_applicable, reason in revisions:
        latest[code] = (rid, revision, value_json, bool(not_applicable))
        reasons[code] = reason
    by_code: dict[str, list[EvidenceView]] = {}
    for code, kind, name, number, url, created_at, late, sha256, date, summary, note in evidence:
        cited = Citation(number, date, summary or "") if number is not None and date is not None else None
        view = EvidenceView(kind, name or number or url or "", created_at, bool(late), sha256, cited, note)
        by_code.setdefault(code, []).append(view)
    views: dict[str, AnswerView] = {}
    for code, (_, revision, value_json, not_applicable) in latest.items():
        indicator = framework.indicator(code)
        if indicator is None:
            continue  # an indicator the pinned framework no longer has
        value = decoded_value(indicator, value_json) if value_json is not None else None
        if value is None and not not_applicable:
            continue
        views[code] = AnswerView(value, not_applicable, reasons[code], revision, tuple(by_code.get(code, ())))
    return StoredAnswers(views, latest)


@dataclass
class _Pending:
    """A message that reads its unit in the second round trip."""

    index: int
    session: SessionState
    version: int | None
    unit_id: int
    level: str
    member: MemberView | None = None  # a member's message
    invite: Any = None  # a joining chat's `_INVITES` row
    failures: tuple[dt.datetime, ...] = ()
    member_id: int | None = None  # the id reserved for the joining chat's member


def load(
    s: Session, messages: Sequence[Message], resolve: FrameworkResolver, now: dt.datetime
) -> list[Loaded | None]:
    """Each message's snapshot (`Loaded.seen` for a message handled before), or None for a message of
    a unit an earlier message of the batch reads. The chats must all be different."""
    conn = s.connection()
    reserve = conn.dialect.name == "postgresql"
    keys = [(m.channel, m.chat_id) for m in messages]
    ids = [(m.channel, m.inbound_id) for m in messages if m.inbound_id is not None]
    naming = [(m.channel, m.chat_id) for m in messages if m.invite_code is not None]
    codes = sorted({m.invite_code for m in messages if m.invite_code is not None})
    chat_queries = _by_channel(_CHATS, "chats", keys)
    bound_queries = _by_channel(_BOUND, "chats", keys)
    seen_queries = _by_channel(_SEEN, "inbound", ids)
    failure_queries = _by_channel(_FAILURES, "chats", naming, since=now - JOIN_HISTORY)
    reserving = sorted({channel for channel, _ in naming}) if reserve else []
    join_queries = [
        *([Query(_INVITES, {"codes": codes})] if codes else []),
        *failure_queries,
        *_by_channel(_MEMBER_IDS, "chats", naming if reserve else []),
    ]
    read = iter(
        read_all(conn, [*chat_queries, *bound_queries, Query(OPEN_PERIODS, {}), *seen_queries, *join_queries])
    )
    chats = {(row.channel, row.chat_id): row for _ in chat_queries for row in next(read)}
    bound = {(row.channel, row.chat_id): row for _ in bound_queries for row in next(read)}
    periods = read_periods(next(read), resolve)
    seen = {(row.channel, row.inbound_id) for _ in seen_queries for row in next(read)}
    invites = {row.code: row for row in next(read)} if codes else {}
    failures: dict[tuple[str, str], list[dt.datetime]] = defaultdict(list)
    for _ in failure_queries:
        for row in next(read):
            failures[(row.channel, row.chat_id)].append(row.at)
    reserved = {(channel, row.chat_id): row.id for channel in reserving for row in next(read)}

    found: list[Loaded | None] = [None] * len(messages)
    pending: list[_Pending] = []
    reviewers: list[tuple[int, SessionState, int | None, MemberView]] = []
    joining: list[tuple[int, Any, int | None]] = []  # reviewers joining: message, invite, reserved id
    taken: set[int] = set()
    for i, m in enumerate(messages):
        if (m.channel, m.inbound_id) in seen:
            found[i] = Loaded(Snapshot(m.channel, m.chat_id, SessionState()), None, seen=True)
            continue
        chat = chats.get((m.channel, m.chat_id))
        session = SessionState.from_json(json.loads(chat.state_json)) if chat is not None else SessionState()
        version = chat.version if chat is not None else None
        who = chat if chat is not None and chat.member_id is not None else bound.get((m.channel, m.chat_id))
        if who is not None:
            view = MemberView(who.member_id, Role(who.role), who.unit_id, who.code, who.name, who.language)
            if view.role is Role.REVIEWER:
                reviewers.append((i, session, version, view))
                continue
            if who.unit_id in taken:
                continue
            taken.add(who.unit_id)
            pending.append(_Pending(i, session, version, who.unit_id, who.level, member=view))
            continue
        invite = invites.get(m.invite_code) if m.invite_code is not None else None
        chat_failures = tuple(failures.get((m.channel, m.chat_id), ()))
        found[i] = _unbound(m, session, version, invite, chat_failures)
        if invite is None or invite.used_at is not None or now >= invite.expires_at:
            continue  # the engine refuses it
        member_id = reserved.get((m.channel, m.chat_id))
        if reserve and member_id is None:  # bound by another process between the reads: next batch
            found[i] = None
            continue
        if invite.role == Role.REVIEWER.value:  # a reviewer joining: their queue, as a reviewer's
            joining.append((i, invite, member_id))
            continue
        if invite.unit_id in taken:
            found[i] = None
            continue
        taken.add(invite.unit_id)
        pending.append(
            _Pending(
                i, session, version, invite.unit_id, invite.level, None, invite, chat_failures, member_id
            )
        )
    _read_units(conn, messages, pending, periods, found, reserve)
    for i, session, version, view in reviewers:
        found[i] = _reviewer(s, messages[i], session, version, view, resolve, taken)
    for i, invite, member_id in joining:
        before = found[i]
        assert before is not None
        view = _joining_member(invite)
        after = _reviewer(s, messages[i], before.snapshot.session, before.version, view, resolve, taken)
        found[i] = _with_join(before, after, view, member_id, invite.id) if after is not None else None
    return found


def _joining_member(invite: Any) -> MemberView:
    return MemberView(0, Role(invite.role), invite.unit_id, invite.unit_code, invite.name)


def _unbound(
    m: Message, session: SessionState, version: int | None, invite: Any, failures: tuple[dt.datetime, ...]
) -> Loaded:
    view = None
    if invite is not None:
        view = InviteView(
            invite.code,
            invite.name,
            Role(invite.role),
            invite.expires_at,
            invite.used_at is not None,
            invite.unit_id,
            invite.unit_code,
        )
    snapshot = Snapshot(m.channel, m.chat_id, session, invite=view, join_failures=failures)
    return Loaded(snapshot, version)


def _with_join(
    before: Loaded, after: Loaded, view: MemberView, member_id: int | None, invite_id: int
) -> Loaded:
    """The chat before joining, with what recording the join needs and the snapshot once joined."""
    invite = before.snapshot.invite
    assert invite is not None
    joining = Joining(invite_id, invite.code, view.role, view.unit_id, member_id, after)
    snapshot = replace(before.snapshot, joined=after.snapshot)
    return replace(before, snapshot=snapshot, joining=joining)


def _read_units(
    conn: sa.Connection,
    messages: Sequence[Message],
    pending: list[_Pending],
    periods: list[OpenPeriod],
    found: list[Loaded | None],
    reserve: bool,
) -> None:
    """The second round trip: the pending messages' units in their periods."""
    by_period: dict[int, list[_Pending]] = defaultdict(list)
    for p in pending:
        period = period_for(periods, p.level)
        if period is None:
            found[p.index] = _loaded(messages[p.index], p, None, None, NO_ANSWERS, {}, {})
            continue
        by_period[period.id].append(p)
    reading = [period for period in periods if by_period.get(period.id)]
    statements = (_ASSESSMENTS, _EXTENSIONS, _REVISIONS_OF, _EVIDENCE_OF, _DECISIONS_OF)
    queries = [
        Query(statement, {"period_id": period.id, "units": [p.unit_id for p in by_period[period.id]]})
        for period in reading
        for statement in (*statements, *((_ASSESSMENT_IDS,) if reserve else ()))
    ]
    rows = iter(read_all(conn, queries) if queries else [])
    for period in reading:
        assessments = {row.unit_id: row for row in next(rows)}
        extensions = {(row.unit_id, row.deadline): row.due_at for row in next(rows)}
        revisions: dict[int, list[Sequence[Any]]] = defaultdict(list)
        evidence: dict[int, list[Sequence[Any]]] = defaultdict(list)
        decisions: dict[int, list[Sequence[Any]]] = defaultdict(list)
        for target in (revisions, evidence, decisions):
            for row in next(rows):
                target[row[-1]].append(row[:-1])
        new_ids = {row.unit_id: row.id for row in next(rows)} if reserve else {}
        for p in by_period[period.id]:
            assessment = assessments.get(p.unit_id)
            stored = NO_ANSWERS
            views: dict[str, DecisionView] = {}
            ids: dict[str, int] = {}
            if assessment is not None:
                stored = answer_views(period.framework, revisions[assessment.id], evidence[assessment.id])
                views, ids = decision_views(decisions[assessment.id])
            loaded = _loaded(messages[p.index], p, period, assessment, stored, views, ids, extensions)
            if assessment is None:
                loaded = replace(loaded, new_assessment_id=new_ids.get(p.unit_id))
            found[p.index] = loaded


def _loaded(
    m: Message,
    p: _Pending,
    period: OpenPeriod | None,
    assessment: Any,
    stored: StoredAnswers,
    decisions: dict[str, DecisionView],
    decision_ids: dict[str, int],
    extensions: Mapping[tuple[int, str], dt.datetime] | None = None,
) -> Loaded:
    """A member's (or a joining chat's, once joined) snapshot from what was read for its unit."""
    member = p.member or _joining_member(p.invite)
    snapshot = Snapshot(m.channel, m.chat_id, p.session, member)
    loaded = Loaded(snapshot, p.version, member.id or None, member.unit_id)
    if period is not None:
        ext = extensions or {}
        period_view = PeriodView(
            period.id,
            period.name,
            period.framework,
            ext.get((p.unit_id, "self_assessment_due")) or period.self_assessment_due,  # an extension wins
            ext.get((p.unit_id, "supplement_due")) or period.supplement_due,
            period.published_at,
        )
        snapshot = Snapshot(
            m.channel,
            m.chat_id,
            p.session,
            member,
            period_view,
            AssessmentStatus(assessment.status) if assessment is not None else AssessmentStatus.DRAFT,
            stored.views,
            submitted_at=assessment.submitted_at if assessment is not None else None,
            decisions=decisions,
            revision=assessment.revision if assessment is not None else 0,
        )
        loaded = Loaded(
            snapshot,
            p.version,
            member.id or None,
            member.unit_id,
            period.id,
            assessment.id if assessment is not None else None,
            stored.latest,
            decision_ids,
        )
    if p.invite is None:
        return loaded
    before = _unbound(m, p.session, p.version, p.invite, p.failures)
    return _with_join(before, loaded, member, p.member_id, p.invite.id)


def _reviewer(
    s: Session,
    m: Message,
    session: SessionState,
    version: int | None,
    view: MemberView,
    resolve: FrameworkResolver,
    taken: set[int],
) -> Loaded | None:
    """A reviewer sees the newest open period of the units they review, their queue, and the unit they
    have open or the message is about (`Message.focus`) — only ever units of their own scope. None when
    that unit is read for an earlier message of the batch."""
    units = appraisal.scope(s, view.unit_id, joining=view.id == 0)
    levels = {u.level for u in s.exec(select(Unit).where(col(Unit.id).in_(units)))} if units else set()
    period = next((p for p in open_periods(s, resolve) if p.framework.level.value in levels), None)
    if period is None:
        snapshot = Snapshot(m.channel, m.chat_id, session, view, review=Review())
        return Loaded(snapshot, version, view.id or None, view.unit_id)
    queue = tuple(appraisal.queue(s, period.id, units))
    opened = m.focus if m.focus is not None else session.unit
    reviewed: ReviewedUnit | None = None
    decision_ids: dict[str, int] = {}
    latest: Latest = {}
    if opened is not None and any(q.unit_id == opened for q in queue):
        if opened in taken:
            return None
        taken.add(opened)
        conn = s.connection()
        assessment = conn.execute(
            sa.select(ASSESSMENT.c.id, ASSESSMENT.c.status, ASSESSMENT.c.submitted_at).where(
                ASSESSMENT.c.period_id == period.id, ASSESSMENT.c.unit_id == opened
            )
        ).one()
        name = conn.execute(sa.select(UNIT.c.name).where(UNIT.c.id == opened)).scalar_one()
        revisions, evidence, decisions = read_all(
            conn,
            [Query(q, {"id": assessment.id}) for q in (_REVISIONS, _EVIDENCE, DECISIONS)],
        )
        stored = answer_views(period.framework, revisions, evidence)
        views, decision_ids = decision_views(decisions)
        latest = stored.latest
        reviewed = ReviewedUnit(
            opened,
            name,
            assessment.id,
            AssessmentStatus(assessment.status),
            stored.views,
            views,
            assessment.submitted_at,
        )
    period_view = PeriodView(
        period.id,
        period.name,
        period.framework,
        period.self_assessment_due,
        period.supplement_due,
        period.published_at,
    )
    snapshot = Snapshot(m.channel, m.chat_id, session, view, period_view, review=Review(queue, reviewed))
    assessment_id = reviewed.assessment_id if reviewed is not None else None
    return Loaded(
        snapshot, version, view.id or None, view.unit_id, period.id, assessment_id, latest, decision_ids
    )


def _by_channel(
    statement: sa.Select[Any], name: str, keys: Sequence[tuple[str, str]], **params: Any
) -> list[Query]:
    """`statement` for `keys` (channel, id): one query per channel, in channel order, so that the ids
    are one list (`storage.in_list`: one array parameter on PostgreSQL, one prepared statement for any
    number of chats), which a row-value `IN` of pairs cannot be."""
    ids: dict[str, list[str]] = defaultdict(list)
    for channel, key in keys:
        ids[channel].append(key)
    return [Query(statement, {"channel": channel, name: ids[channel], **params}) for channel in sorted(ids)]


@dataclass(frozen=True)
class Recipient:
    """A member a notice goes to, in their own chat and language."""

    member_id: int
    channel: str
    chat_id: str
    language: str


def recipients(s: Session, loaded: Loaded, notice: Notice) -> list[Recipient]:
    """Who gets a notice from this chat: the reviewers over the sender's unit, or the members holding
    the notice's role in its unit (the sender's own by default), not the sender."""
    members: list[Member]
    if notice.reviewers:
        members = appraisal.reviewers_of(s, loaded.unit_id) if loaded.unit_id is not None else []
    else:
        unit_id = notice.unit_id if notice.unit_id is not None else loaded.unit_id
        members = (
            list(
                s.exec(
                    select(Member)
                    .where(
                        Member.unit_id == unit_id,
                        Member.role == notice.role.value,
                        col(Member.removed_at).is_(None),
                    )
                    .order_by(col(Member.id))
                )
            )
            if unit_id is not None
            else []
        )
    return [
        Recipient(m.id, m.channel, m.chat_id, m.language)
        for m in members
        if m.id is not None and m.id != loaded.member_id
    ]
