"""Group commit: several chats' messages read, decided and written in ONE transaction.

On the deadline-day rush most messages are members answering the next indicator of their own unit's
assessment. Handled one by one, each costs about ten statements and a commit, and the per-statement
cost (driver, SQLAlchemy, round trip, the commit's flush to disk) dominates the bot. Here a batch of
such messages, all from different chats and different units, is read with a handful of `IN (...)`
queries and written with one multi-row statement per table, so that cost is paid once per batch.

Only the common cases are taken:
- a chat with a conversation, bound to a member of a unit (not a reviewer), answering or sending
  evidence: `fits` rejects decisions that need more than answers and evidence on the unit's assessment
  (created with its first answer, as `apply` does);
- a chat not yet bound to anyone, naming an unused invite that is not a reviewer's: `load_many` also
  reads what the chat will see once joined (`Loaded.joining`); if the engine accepts the code
  (`joins`), the service adds the member (`add_members`), asks the first question on that snapshot,
  and `write_many` records the join (invite claimed, attempt, audit) with the rest.
Each unit at most once per batch, and only while its assessment is not submitted. `load_many` answers
`None` for any other chat; the caller handles those one by one. Everything else matches
`load_snapshot` and `apply` exactly: the same snapshot, the same rows, the same exactly-once record,
and on PostgreSQL the same row locks. A stale conversation raises `ConcurrentUpdate`, an invite used
meanwhile `InviteTaken`; the caller then rolls the batch back and handles each message alone.
The rows go out through storage/pipeline.py: one psycopg pipeline on PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY
from sqlmodel import Session

from flows.model import (
    AddEvidence,
    Decision,
    InviteView,
    JoinUnit,
    MemberView,
    Role,
    SaveAnswer,
    SessionState,
    Snapshot,
)
from storage.conversations import (
    _ANSWER,
    _ASSESS,
    _AUDIT,
    _BINDS_CONV,
    _CLAIM_INVITE,
    _CONV,
    _EVIDENCE,
    _EVIDENCE_VIEWS,
    _EXT,
    _INVITE,
    _JOIN_ATTEMPT,
    _MEMBER,
    _MEMBER_ACTIVE,
    _MEMBER_COLUMNS,
    _OPEN_PERIODS,
    _PROCESSED,
    _QUEUE,
    _REVISIONS,
    _SAVE_SESSION,
    _UNIT,
    HOLD,
    JOIN_HISTORY,
    NEW_ASSESSMENTS,
    NO_ANSWERS,
    ConcurrentUpdate,
    FrameworkResolver,
    InviteTaken,
    Joining,
    Loaded,
    OpenPeriod,
    StoredAnswers,
    UnitInPeriod,
    answer_rows,
    answer_views,
    evidence_rows,
    hold_params,
    invite_claim,
    join_attempt_row,
    join_audit_row,
    member_loaded,
    new_member_row,
    period_for,
    periods_from,
    session_update,
)
from storage.in_list import in_list
from storage.pipeline import Query, Rows, read_all, write_all

_B = sa.bindparam
_CHATS = (
    sa.select(_CONV.c.channel, _CONV.c.chat_id, _CONV.c.state_json, _CONV.c.version, *_MEMBER_COLUMNS)
    .select_from(_CONV.outerjoin(_MEMBER, _BINDS_CONV).outerjoin(_UNIT, _UNIT.c.id == _MEMBER.c.unit_id))
    .where(_CONV.c.channel == _B("channel"), in_list(_CONV.c.chat_id, "chats"))
    .order_by(_CONV.c.chat_id)  # every process locks in the same order (channels in turn, sorted)
    .with_for_update(of=_CONV)
)
_SEEN = sa.select(_PROCESSED.c.channel, _PROCESSED.c.inbound_id).where(
    _PROCESSED.c.channel == _B("channel"), in_list(_PROCESSED.c.inbound_id, "inbound")
)
_ASSESSMENTS = sa.select(_ASSESS.c.unit_id, _ASSESS.c.id, _ASSESS.c.status, _ASSESS.c.submitted_at).where(
    _ASSESS.c.period_id == _B("period_id"), in_list(_ASSESS.c.unit_id, "units")
)
_EXTENSIONS = sa.select(_EXT.c.unit_id, _EXT.c.deadline, _EXT.c.due_at).where(
    _EXT.c.period_id == _B("period_id"), in_list(_EXT.c.unit_id, "units")
)
# The answer revisions and evidence (as `load_snapshot` reads them) of the units' assessments in a
# period that are not submitted, the assessment id last; by unit, so they go with `_ASSESSMENTS`.
_OPEN_ASSESSMENT = sa.and_(
    _ASSESS.c.period_id == _B("period_id"),
    in_list(_ASSESS.c.unit_id, "units"),
    _ASSESS.c.submitted_at.is_(None),
)
_REVISIONS_OF = (
    sa.select(*_REVISIONS.selected_columns, _ANSWER.c.assessment_id)
    .join(_ASSESS, _ASSESS.c.id == _ANSWER.c.assessment_id)
    .where(_OPEN_ASSESSMENT)
    .order_by(_ANSWER.c.revision)
)
_EVIDENCE_OF = (
    sa.select(*_EVIDENCE_VIEWS.selected_columns, _EVIDENCE.c.assessment_id)
    .join(_ASSESS, _ASSESS.c.id == _EVIDENCE.c.assessment_id)
    .where(_OPEN_ASSESSMENT)
    .order_by(_EVIDENCE.c.id)
)
# the batch's inserts, built once: storage/pipeline.py compiles each statement once per process
_NEW_ANSWER = _ANSWER.insert()
_NEW_EVIDENCE = _EVIDENCE.insert()
_NEW_AUDIT = _AUDIT.insert()
_NEW_PROCESSED = _PROCESSED.insert()


# Chats of the batch that have no conversation row yet but a member (bound without ever writing).
_BOUND = sa.select(_MEMBER.c.channel, _MEMBER.c.chat_id).where(
    _MEMBER.c.channel == _B("channel"), in_list(_MEMBER.c.chat_id, "chats"), _MEMBER_ACTIVE
)
# The invites named by joining chats, with their units (a revoked one is as unknown).
_INVITES = sa.select(
    _INVITE.c.id,
    _INVITE.c.code,
    _INVITE.c.role,
    _INVITE.c.expires_at,
    _INVITE.c.used_at,
    _UNIT.c.id.label("unit_id"),
    _UNIT.c.code.label("unit_code"),
    _UNIT.c.name,
    _UNIT.c.level,
).where(in_list(_INVITE.c.code, "codes"), _UNIT.c.id == _INVITE.c.unit_id, _INVITE.c.revoked_at.is_(None))
# Joining chats' recent failed attempts (as `_JOIN_FAILURES` reads them for one chat).
_FAILURES = sa.select(_JOIN_ATTEMPT.c.channel, _JOIN_ATTEMPT.c.chat_id, _JOIN_ATTEMPT.c.at).where(
    _JOIN_ATTEMPT.c.channel == _B("channel"),
    in_list(_JOIN_ATTEMPT.c.chat_id, "chats"),
    _JOIN_ATTEMPT.c.ok == sa.false(),
    _JOIN_ATTEMPT.c.at >= _B("since"),
)
_NEW_MEMBERS = _MEMBER.insert().returning(_MEMBER.c.id, sort_by_parameter_order=True)
_NEW_CHATS = _CONV.insert()
_NEW_JOIN_ATTEMPTS = _JOIN_ATTEMPT.insert()

# On PostgreSQL the reads also reserve the ids of the members and assessments the batch may create, so
# that these rows go out with the batch's other rows instead of each kind in a round trip of its own
# (an INSERT ... RETURNING the ids the later rows refer to). An id reserved and not used is a gap in its
# sequence, as a rolled-back insert leaves one.
_NAMING = sa.func.unnest(_B("chats", type_=ARRAY(sa.String))).table_valued("chat_id").render_derived(name="c")
_MEMBER_IDS = sa.select(  # the chats of one channel naming an invite that are not bound to a member
    _NAMING.c.chat_id, sa.func.nextval(sa.func.pg_get_serial_sequence(_MEMBER.name, "id")).label("id")
).where(
    ~sa.exists().where(
        _MEMBER.c.channel == _B("channel"), _MEMBER.c.chat_id == _NAMING.c.chat_id, _MEMBER_ACTIVE
    )
)
_ANSWERING = (
    sa.func.unnest(_B("units", type_=ARRAY(sa.Integer))).table_valued("unit_id").render_derived(name="u")
)
_ASSESSMENT_IDS = sa.select(  # the units that have no assessment in the period yet
    _ANSWERING.c.unit_id, sa.func.nextval(sa.func.pg_get_serial_sequence(_ASSESS.name, "id")).label("id")
).where(~sa.exists().where(_ASSESS.c.period_id == _B("period_id"), _ASSESS.c.unit_id == _ANSWERING.c.unit_id))
_NEW_MEMBERS_WITH_IDS = _MEMBER.insert()
_NEW_ASSESSMENTS_WITH_IDS = _ASSESS.insert()


@dataclass(frozen=True)
class Message:
    """One inbound message of the batch: the chat it came from, its id if the channel has one, and
    the invite code it names, if any (`flows.engine.join_code`)."""

    channel: str
    chat_id: str
    inbound_id: str | None
    invite_code: str | None = None


@dataclass(frozen=True)
class Joined:
    """A join to record with a write: the chat as it was before (`Loaded.joining` set) and the new
    member's id (from `add_members`)."""

    before: Loaded
    member_id: int


@dataclass(frozen=True)
class Write:
    """A decision to record for a message loaded by `load_many`, with the replies to queue. For a chat
    that joined in this batch, `loaded` is its snapshot once joined and `decision` what it was asked
    next; `joined` says what to record for the join itself."""

    loaded: Loaded
    decision: Decision
    inbound_id: str | None
    payloads: Sequence[dict[str, object]]
    joined: Joined | None = None


@dataclass
class _Pending:
    """A message that reads its unit's assessment: a member's, or a joining chat's (`invite` set)."""

    index: int
    session: SessionState
    version: int | None
    unit_id: int = 0
    level: str = ""
    member: MemberView | None = None
    invite: Any = None  # an `_INVITES` row
    failures: tuple[dt.datetime, ...] = ()
    member_id: int | None = None  # the id reserved for the joining chat's member


def load_many(
    s: Session, messages: Sequence[Message], resolve: FrameworkResolver, now: dt.datetime
) -> list[Loaded | None]:
    """Each message's snapshot as `load_snapshot` would load it (`Loaded.seen` for a message handled
    before), or None where the message is not for the batch. A chat not yet bound to a member that
    names an invite gets its snapshot for the join, with `Loaded.joining` read too. The chats must
    all be different. Two round trips (`read_all`): the chats, then their units' assessments; on
    PostgreSQL they also reserve the ids of the members and assessments the batch may create."""
    conn = s.connection()
    reserve = conn.dialect.name == "postgresql"
    keys = [(m.channel, m.chat_id) for m in messages]
    ids = [(m.channel, m.inbound_id) for m in messages if m.inbound_id is not None]
    naming = [(m.channel, m.chat_id) for m in messages if m.invite_code is not None]
    chat_queries = _by_channel(_CHATS, "chats", keys)
    seen_queries = _by_channel(_SEEN, "inbound", ids)
    join_queries: list[Query] = []
    if naming:  # whether these chats join is only known from the chats' rows: read for them anyway
        codes = sorted({m.invite_code for m in messages if m.invite_code is not None})
        join_queries = [
            *_by_channel(_BOUND, "chats", naming),
            Query(_INVITES, {"codes": codes}),
            *_by_channel(_FAILURES, "chats", naming, since=now - JOIN_HISTORY),
            *(_by_channel(_MEMBER_IDS, "chats", naming) if reserve else []),
        ]
    read = iter(read_all(conn, [*chat_queries, Query(_OPEN_PERIODS, {}), *seen_queries, *join_queries]))
    chats = {(row.channel, row.chat_id): row for _ in chat_queries for row in next(read)}
    periods = periods_from(next(read), resolve)
    seen = {(row.channel, row.inbound_id) for _ in seen_queries for row in next(read)}
    found: list[Loaded | None] = [None] * len(messages)
    pending: list[_Pending] = []
    joining: list[_Pending] = []
    for i, m in enumerate(messages):
        if (m.channel, m.inbound_id) in seen:
            found[i] = Loaded(
                Snapshot(m.channel, m.chat_id, SessionState()), None, None, None, None, None, seen=True
            )
            continue
        chat = chats.get((m.channel, m.chat_id))
        session = SessionState.from_json(json.loads(chat.state_json)) if chat is not None else SessionState()
        version = chat.version if chat is not None else None
        if chat is None or chat.member_id is None:
            if m.invite_code is not None:
                joining.append(_Pending(i, session, version))
            continue
        if chat.role == Role.REVIEWER.value:
            continue
        view = MemberView(chat.member_id, Role(chat.role), chat.unit_id, chat.code, chat.name, chat.language)
        pending.append(_Pending(i, session, version, chat.unit_id, chat.level, member=view))
    if joining:
        rest = list(read)
        reserved: dict[tuple[str, str], int] | None = None
        if reserve:  # the last queries, one per channel naming an invite (`_by_channel`'s order)
            channels = sorted({channel for channel, _ in naming})
            rows_by_channel = zip(channels, rest[len(rest) - len(channels) :], strict=True)
            reserved = {(channel, row.chat_id): row.id for channel, rows in rows_by_channel for row in rows}
            rest = rest[: len(rest) - len(channels)]
        pending += _joining(messages, joining, rest, reserved)
    by_period: dict[int, list[_Pending]] = defaultdict(list)
    units: set[int] = set()
    for p in sorted(pending, key=lambda p: p.index):  # the first chat of a unit takes it
        if p.unit_id in units:
            continue
        units.add(p.unit_id)
        period = period_for(periods, p.level)
        if period is None:
            found[p.index] = _loaded(
                messages[p.index], p, None, UnitInPeriod(None, None, None, None, None), NO_ANSWERS
            )
            continue
        by_period[period.id].append(p)
    reading = [period for period in periods if by_period.get(period.id)]
    statements = (
        _ASSESSMENTS,
        _EXTENSIONS,
        _REVISIONS_OF,
        _EVIDENCE_OF,
        *([_ASSESSMENT_IDS] if reserve else []),
    )
    second = [
        Query(
            statement,
            {
                "period_id": period.id,
                "units": [
                    p.unit_id for p in by_period[period.id] if statement is not _ASSESSMENT_IDS or p.member
                ],
            },
        )
        for period in reading
        for statement in statements
    ]
    rows_of = iter(read_all(conn, second) if second else [])
    for period in reading:
        assessments = {row.unit_id: row for row in next(rows_of)}
        extensions: dict[tuple[int, str], dt.datetime] = {
            (row.unit_id, row.deadline): row.due_at for row in next(rows_of)
        }
        revisions: dict[int, list[Sequence[Any]]] = defaultdict(list)
        evidence: dict[int, list[Sequence[Any]]] = defaultdict(list)
        for row in next(rows_of):
            revisions[row[-1]].append(row)
        for row in next(rows_of):
            evidence[row[-1]].append(row)
        new_ids: dict[int, int] = {row.unit_id: row.id for row in next(rows_of)} if reserve else {}
        for p in by_period[period.id]:
            unit_id = p.unit_id
            assessment = assessments.get(unit_id)
            if assessment is not None and assessment.submitted_at is not None:
                continue  # a submitted assessment carries the reviewers' decisions: one by one
            stored = NO_ANSWERS
            if assessment is not None:
                stored = answer_views(
                    period.framework,
                    (row[:-1] for row in revisions[assessment.id]),
                    (row[:-1] for row in evidence[assessment.id]),
                )
            own = UnitInPeriod(
                assessment.id if assessment is not None else None,
                assessment.status if assessment is not None else None,
                None,
                extensions.get((unit_id, "self_assessment_due")),
                extensions.get((unit_id, "supplement_due")),
            )
            loaded = _loaded(messages[p.index], p, period, own, stored)
            if assessment is None and p.member is not None:
                loaded = replace(loaded, new_assessment_id=new_ids.get(unit_id))
            found[p.index] = loaded
    return found


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


def _joining(
    messages: Sequence[Message],
    joining: list[_Pending],
    read: Sequence[list[Any]],
    reserved: dict[tuple[str, str], int] | None,
) -> list[_Pending]:
    """The joining chats that can join in the batch, with their invites and recent failed attempts:
    not already bound to a member, naming an invite that exists, is unused and is not a reviewer's.
    `read`: the rows of `_BOUND` (per channel), `_INVITES` and `_FAILURES` (per channel as well);
    `reserved`: the member ids reserved by chat (PostgreSQL), None where none are reserved."""
    channels = (len(read) - 1) // 2
    bound = {(row.channel, row.chat_id) for rows in read[:channels] for row in rows}
    invites = {row.code: row for row in read[channels]}
    failures: dict[tuple[str, str], list[dt.datetime]] = defaultdict(list)
    for rows in read[channels + 1 :]:
        for row in rows:
            failures[(row.channel, row.chat_id)].append(row.at)
    out: list[_Pending] = []
    for p in joining:
        chat = (messages[p.index].channel, messages[p.index].chat_id)
        invite = invites.get(messages[p.index].invite_code)
        if (
            chat in bound
            or invite is None
            or invite.used_at is not None
            or invite.role == Role.REVIEWER.value
        ):
            continue  # the engine refuses these, or a reviewer's view follows: one by one
        if reserved is not None:
            p.member_id = reserved.get(chat)
            if p.member_id is None:  # bound by another process between the two reads: one by one
                continue
        p.invite, p.unit_id, p.level = invite, invite.unit_id, invite.level
        p.failures = tuple(failures.get(chat, ()))
        out.append(p)
    return out


def _loaded(
    m: Message,
    p: _Pending,
    period: OpenPeriod | None,
    own: UnitInPeriod,
    stored: StoredAnswers,
) -> Loaded:
    if p.member is not None:
        return member_loaded(m.channel, m.chat_id, p.session, p.version, p.member, period, own, stored, {})
    row = p.invite
    invite = InviteView(row.code, row.name, Role(row.role), row.expires_at, False, row.unit_id, row.unit_code)
    snapshot = Snapshot(m.channel, m.chat_id, p.session, invite=invite, join_failures=p.failures)
    joining = Joining(
        row.code,
        row.id,
        Role(row.role),
        row.unit_id,
        row.unit_code,
        row.name,
        period,
        own,
        stored,
        p.member_id,
    )
    return Loaded(snapshot, p.version, None, None, None, None, joining=joining)


def joins(loaded: Loaded, decision: Decision) -> bool:
    """Whether `decision` is the successful join `loaded.joining` was read for, and nothing else."""
    return (
        loaded.joining is not None
        and not decision.notices
        and len(decision.events) == 1
        and isinstance(event := decision.events[0], JoinUnit)
        and event.invite_code == loaded.joining.invite_code
    )


def add_members(s: Session, joining: Sequence[Loaded], now: dt.datetime) -> list[int]:
    """The members of chats joining in the batch (as `apply` adds them); returns their ids in order.
    Where `load_many` reserved the ids (PostgreSQL), `write_many` inserts the members with the rest of
    the batch; elsewhere they are inserted now. Their invites are claimed by `write_many`, which fails
    if another chat was quicker."""
    reserved = [loaded.joining.member_id for loaded in joining if loaded.joining is not None]
    if len(reserved) == len(joining) and all(r is not None for r in reserved):
        return [r for r in reserved if r is not None]
    rows = []
    for loaded in joining:
        assert loaded.joining is not None
        snap, join = loaded.snapshot, loaded.joining
        rows.append(new_member_row(snap.channel, snap.chat_id, join.unit_id, join.role.value, now))
    return [int(i) for i in write_all(s.connection(), [Rows(_NEW_MEMBERS, rows)])[0].returned]


def fits(loaded: Loaded, decision: Decision) -> bool:
    """Whether `write_many` can record `decision`: only answers and evidence on the unit's assessment
    in an open period, each indicator saved at most once, with nothing to reload and no one else to
    notify."""
    if decision.then_resume or decision.notices or loaded.version is None:
        return False
    saved: set[str] = set()
    for event in decision.events:
        if isinstance(event, SaveAnswer):
            if event.code in saved:
                return False
            saved.add(event.code)
        elif not isinstance(event, AddEvidence):
            return False
    return not decision.events or (loaded.period_id is not None and loaded.latest is not None)


def _assessments_for(
    conn: sa.Connection, writes: Sequence[Write]
) -> tuple[list[int | None], list[dict[str, object]]]:
    """Each write's assessment id, creating the assessments of units that answer for the first time
    in the period (as `apply` does); None for writes with nothing to record on one. Also the rows of
    the new assessments whose ids `load_many` reserved, for `write_many` to insert with the rest."""
    ids = [w.loaded.assessment_id for w in writes]
    reserved: list[dict[str, object]] = []
    inserting: list[tuple[int, dict[str, object]]] = []
    for n, w in enumerate(writes):
        if ids[n] is not None or not w.decision.events:
            continue
        row: dict[str, object] = dict(period_id=w.loaded.period_id, unit_id=w.loaded.unit_id, status="draft")
        if w.loaded.new_assessment_id is not None:
            ids[n] = w.loaded.new_assessment_id
            reserved.append({**row, "id": w.loaded.new_assessment_id})
        else:
            inserting.append((n, row))
    if inserting:
        created = conn.execute(NEW_ASSESSMENTS, [row for _, row in inserting]).scalars()
        for (n, _), assessment_id in zip(inserting, created, strict=True):
            ids[n] = int(assessment_id)
    return ids, reserved


def write_many(s: Session, writes: Sequence[Write], now: dt.datetime) -> list[list[int]]:
    """Record every write as `apply` and `queue_replies` would; returns each one's outbox row ids."""
    answers: list[dict[str, object]] = []
    evidence: list[dict[str, object]] = []
    audits: list[dict[str, object]] = []
    sessions: list[dict[str, object]] = []
    processed: list[dict[str, object]] = []
    outbox: list[dict[str, object]] = []
    new_chats: list[dict[str, object]] = []
    claims: list[dict[str, object]] = []
    attempts: list[dict[str, object]] = []
    members: list[dict[str, object]] = []
    holds: list[dict[str, object]] = []
    conn = s.connection()
    assessments, new_assessments = _assessments_for(conn, writes)
    for w, assessment_id in zip(writes, assessments, strict=True):
        loaded = w.loaded
        snap = loaded.snapshot
        assert fits(loaded, w.decision)
        if w.joined is not None:
            before, member_id = w.joined.before, w.joined.member_id
            join = before.joining
            assert join is not None and loaded.version is not None
            claims.append(invite_claim(join.invite_code, member_id, now))
            if join.member_id is not None:  # reserved by `load_many`: the member goes in with the rest
                assert join.member_id == member_id
                row = new_member_row(snap.channel, snap.chat_id, join.unit_id, join.role.value, now)
                members.append({**row, "id": member_id})
            attempts.append(join_attempt_row(snap.channel, snap.chat_id, now, ok=True))
            audits.append(
                join_audit_row(
                    now, before, member_id, join.unit_id, join.role.value, join.invite_id, join.invite_code
                )
            )
        if w.decision.events and loaded.assessment_id is not None:
            holds.append(hold_params(loaded.assessment_id, snap.status))
        for event in w.decision.events:
            assert assessment_id is not None and loaded.latest is not None
            if isinstance(event, SaveAnswer):
                previous = loaded.latest.get(event.code)
                answer, audit = answer_rows(loaded, event, now, assessment_id, previous)
                answers.append(answer)
            else:
                assert isinstance(event, AddEvidence)
                row, audit = evidence_rows(loaded, event, now, assessment_id)
                evidence.append(row)
            audits.append(audit)
        session = session_update(loaded, w.decision.session, loaded.member_id, now)
        if w.joined is None:
            sessions.append(session)
        elif w.joined.before.version is not None:  # over the version before the join
            sessions.append({**session, "w_version": w.joined.before.version})
        else:  # the chat's first message: its conversation row, as the join and the question leave it
            row = {k: v for k, v in session.items() if not k.startswith("w_")}
            new_chats.append({**row, "channel": snap.channel, "chat_id": snap.chat_id})
        if w.inbound_id is not None:
            processed.append(dict(channel=loaded.snapshot.channel, inbound_id=w.inbound_id, processed_at=now))
        for payload in w.payloads:
            outbox.append(
                dict(
                    channel=loaded.snapshot.channel,
                    chat_id=loaded.snapshot.chat_id,
                    member_id=loaded.member_id,
                    payload_json=json.dumps(payload, ensure_ascii=False),
                    priority=0,
                    created_at=now,
                    dedupe_key=None,
                )
            )
    claiming, holding, saving, queueing = (
        Rows(_CLAIM_INVITE, claims),
        Rows(HOLD, holds),
        Rows(_SAVE_SESSION, sessions),
        Rows(_QUEUE, outbox),
    )
    work = [
        Rows(_NEW_MEMBERS_WITH_IDS, members),  # first: the rows below refer to them
        Rows(_NEW_ASSESSMENTS_WITH_IDS, new_assessments),
        Rows(_NEW_CHATS, new_chats),
        claiming,
        holding,
        Rows(_NEW_JOIN_ATTEMPTS, attempts),
        Rows(_NEW_ANSWER, answers),
        Rows(_NEW_EVIDENCE, evidence),
        Rows(_NEW_AUDIT, audits),
        saving,
        Rows(_NEW_PROCESSED, processed),
        queueing,
    ]
    written = dict(zip((id(w) for w in work), write_all(conn, work), strict=True))
    claimed = written[id(claiming)].rowcount
    if claimed != len(claims):
        raise InviteTaken(f"{len(claims) - claimed} of {len(claims)} invites used meanwhile")
    if written[id(holding)].rowcount != len(holds):
        raise ConcurrentUpdate("an assessment of the batch was submitted meanwhile")
    updated = written[id(saving)].rowcount
    if updated != len(sessions):
        raise ConcurrentUpdate(f"{len(sessions) - updated} of {len(sessions)} conversations changed")
    ids = [int(i) for i in written[id(queueing)].returned]
    queued = iter(ids)
    return [[next(queued) for _ in w.payloads] for w in writes]
