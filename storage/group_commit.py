"""Group commit: several chats' messages read, decided and written in ONE transaction.

On the deadline-day rush most messages are members answering the next indicator of their own unit's
assessment. Handled one by one, each costs about ten statements and a commit, and the per-statement
cost (driver, SQLAlchemy, round trip, the commit's flush to disk) dominates the bot. Here a batch of
such messages, all from different chats and different units, is read with a handful of `IN (...)`
queries and written with one multi-row statement per table, so that cost is paid once per batch.

Only the common case is taken: a chat with a conversation, bound to a member of a unit (not a
reviewer), whose unit is not already in the batch and whose assessment, if it has one, is not
submitted. `load_many` answers `None` for any other chat, and `fits` rejects decisions that need more
than answers and evidence on the unit's assessment (created with its first answer, as `apply` does);
the caller handles those one by one. Everything
else matches `load_snapshot` and `apply` exactly: the same snapshot, the same rows, the same
exactly-once record, and on PostgreSQL the same row locks. A stale conversation raises
`ConcurrentUpdate`, after which the caller rolls the batch back and handles each message alone.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from flows.model import (
    AddEvidence,
    AnswerView,
    Decision,
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
    _CONV,
    _EVIDENCE,
    _EVIDENCE_VIEWS,
    _EXT,
    _MEMBER,
    _MEMBER_COLUMNS,
    _PROCESSED,
    _QUEUE,
    _REVISIONS,
    _SAVE_SESSION,
    _UNIT,
    NEW_ASSESSMENTS,
    ConcurrentUpdate,
    FrameworkResolver,
    Latest,
    Loaded,
    UnitInPeriod,
    answer_rows,
    answer_views,
    evidence_is_late,
    evidence_rows,
    member_loaded,
    open_periods,
    period_for,
    session_update,
)

_B = sa.bindparam
_CHATS = (
    sa.select(_CONV.c.channel, _CONV.c.chat_id, _CONV.c.state_json, _CONV.c.version, *_MEMBER_COLUMNS)
    .select_from(
        _CONV.outerjoin(
            _MEMBER, sa.and_(_MEMBER.c.channel == _CONV.c.channel, _MEMBER.c.chat_id == _CONV.c.chat_id)
        ).outerjoin(_UNIT, _UNIT.c.id == _MEMBER.c.unit_id)
    )
    .where(sa.tuple_(_CONV.c.channel, _CONV.c.chat_id).in_(_B("chats", expanding=True)))
    .order_by(_CONV.c.channel, _CONV.c.chat_id)  # every process locks in the same order
    .with_for_update(of=_CONV)
)
_SEEN = sa.select(_PROCESSED.c.channel, _PROCESSED.c.inbound_id).where(
    sa.tuple_(_PROCESSED.c.channel, _PROCESSED.c.inbound_id).in_(_B("inbound", expanding=True))
)
_ASSESSMENTS = sa.select(_ASSESS.c.unit_id, _ASSESS.c.id, _ASSESS.c.status, _ASSESS.c.submitted_at).where(
    _ASSESS.c.period_id == _B("period_id"), _ASSESS.c.unit_id.in_(_B("units", expanding=True))
)
_EXTENSIONS = sa.select(_EXT.c.unit_id, _EXT.c.deadline, _EXT.c.due_at).where(
    _EXT.c.period_id == _B("period_id"), _EXT.c.unit_id.in_(_B("units", expanding=True))
)
# An assessment's answer revisions and evidence (as `load_snapshot` reads them) for several
# assessments at once, the assessment id last.
_REVISIONS_OF = (
    sa.select(*_REVISIONS.selected_columns, _ANSWER.c.assessment_id)
    .where(_ANSWER.c.assessment_id.in_(_B("assessments", expanding=True)))
    .order_by(_ANSWER.c.revision)
)
_EVIDENCE_OF = (
    sa.select(*_EVIDENCE_VIEWS.selected_columns, _EVIDENCE.c.assessment_id)
    .where(_EVIDENCE.c.assessment_id.in_(_B("assessments", expanding=True)))
    .order_by(_EVIDENCE.c.id)
)


@dataclass(frozen=True)
class Message:
    """One inbound message of the batch: the chat it came from and its id, if the channel has one."""

    channel: str
    chat_id: str
    inbound_id: str | None


@dataclass(frozen=True)
class Write:
    """A decision to record for a message loaded by `load_many`, with the replies to queue."""

    loaded: Loaded
    decision: Decision
    inbound_id: str | None
    payloads: Sequence[dict[str, object]]


def load_many(s: Session, messages: Sequence[Message], resolve: FrameworkResolver) -> list[Loaded | None]:
    """Each message's snapshot as `load_snapshot` would load it (`Loaded.seen` for a message handled
    before), or None where the message is not for the batch. The chats must all be different."""
    conn = s.connection()
    chats = {
        (row.channel, row.chat_id): row
        for row in conn.execute(_CHATS, {"chats": [(m.channel, m.chat_id) for m in messages]})
    }
    ids = [(m.channel, m.inbound_id) for m in messages if m.inbound_id is not None]
    seen = {tuple(row) for row in conn.execute(_SEEN, {"inbound": ids})} if ids else set()
    periods = open_periods(s, resolve)
    found: list[Loaded | None] = [None] * len(messages)
    by_period: dict[int, list[tuple[int, MemberView, SessionState]]] = defaultdict(list)
    units: set[int] = set()
    for i, m in enumerate(messages):
        if (m.channel, m.inbound_id) in seen:
            found[i] = Loaded(
                Snapshot(m.channel, m.chat_id, SessionState()), None, None, None, None, None, seen=True
            )
            continue
        chat = chats.get((m.channel, m.chat_id))
        if (
            chat is None
            or chat.member_id is None
            or chat.role == Role.REVIEWER.value
            or chat.unit_id in units
        ):
            continue
        units.add(chat.unit_id)
        view = MemberView(chat.member_id, Role(chat.role), chat.unit_id, chat.code, chat.name, chat.language)
        session = SessionState.from_json(json.loads(chat.state_json))
        period = period_for(periods, chat.level)
        if period is None:
            found[i] = Loaded(
                Snapshot(m.channel, m.chat_id, session, view), chat.version, view.id, view.unit_id, None, None
            )
            continue
        by_period[period.id].append((i, view, session))
    for period in periods:
        members = by_period.get(period.id)
        if not members:
            continue
        unit_ids = [view.unit_id for _, view, _ in members]
        params = {"period_id": period.id, "units": unit_ids}
        assessments = {row.unit_id: row for row in conn.execute(_ASSESSMENTS, params)}
        extensions: dict[tuple[int, str], dt.datetime] = {
            (row.unit_id, row.deadline): row.due_at for row in conn.execute(_EXTENSIONS, params)
        }
        open_ids = [a.id for a in assessments.values() if a.submitted_at is None]
        revisions: dict[int, list[Sequence[Any]]] = defaultdict(list)
        evidence: dict[int, list[Sequence[Any]]] = defaultdict(list)
        if open_ids:
            for row in conn.execute(_REVISIONS_OF, {"assessments": open_ids}):
                revisions[row[-1]].append(row)
            for row in conn.execute(_EVIDENCE_OF, {"assessments": open_ids}):
                evidence[row[-1]].append(row)
        for i, view, session in members:
            m = messages[i]
            chat = chats[(m.channel, m.chat_id)]
            assessment = assessments.get(view.unit_id)
            if assessment is not None and assessment.submitted_at is not None:
                continue  # a submitted assessment carries the reviewers' decisions: one by one
            answers: dict[str, AnswerView] = {}
            latest: Latest = {}
            if assessment is not None:
                answers, latest = answer_views(
                    period.framework,
                    (row[:-1] for row in revisions[assessment.id]),
                    (row[:-1] for row in evidence[assessment.id]),
                )
            own = UnitInPeriod(
                assessment.id if assessment is not None else None,
                assessment.status if assessment is not None else None,
                None,
                extensions.get((view.unit_id, "self_assessment_due")),
                extensions.get((view.unit_id, "supplement_due")),
            )
            found[i] = member_loaded(
                m.channel, m.chat_id, session, chat.version, view, period, own, answers, latest, {}
            )
    return found


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


def _assessments_for(conn: sa.Connection, writes: Sequence[Write]) -> list[int | None]:
    """Each write's assessment id, creating the assessments of units that answer for the first time
    in the period (as `apply` does); None for writes with nothing to record on one."""
    ids = [w.loaded.assessment_id for w in writes]
    new = [n for n, w in enumerate(writes) if ids[n] is None and w.decision.events]
    if new:
        rows = [
            dict(period_id=writes[n].loaded.period_id, unit_id=writes[n].loaded.unit_id, status="draft")
            for n in new
        ]
        for n, assessment_id in zip(new, conn.execute(NEW_ASSESSMENTS, rows).scalars(), strict=True):
            ids[n] = int(assessment_id)
    return ids


def write_many(s: Session, writes: Sequence[Write], now: dt.datetime) -> list[list[int]]:
    """Record every write as `apply` and `queue_replies` would; returns each one's outbox row ids."""
    answers: list[dict[str, object]] = []
    evidence: list[dict[str, object]] = []
    audits: list[dict[str, object]] = []
    sessions: list[dict[str, object]] = []
    processed: list[dict[str, object]] = []
    outbox: list[dict[str, object]] = []
    conn = s.connection()
    assessments = _assessments_for(conn, writes)
    for w, assessment_id in zip(writes, assessments, strict=True):
        loaded = w.loaded
        assert fits(loaded, w.decision)
        for event in w.decision.events:
            assert assessment_id is not None and loaded.latest is not None
            if isinstance(event, SaveAnswer):
                previous = loaded.latest.get(event.code)
                answer, audit = answer_rows(loaded, event, now, assessment_id, previous)
                answers.append(answer)
            else:
                assert isinstance(event, AddEvidence)
                late = evidence_is_late(loaded, now, event.code)
                row, audit = evidence_rows(loaded, event, now, late, assessment_id)
                evidence.append(row)
            audits.append(audit)
        sessions.append(session_update(loaded, w.decision.session, loaded.member_id, now))
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
    if answers:
        conn.execute(_ANSWER.insert(), answers)
    if evidence:
        conn.execute(_EVIDENCE.insert(), evidence)
    if audits:
        conn.execute(_AUDIT.insert(), audits)
    if sessions:
        updated = conn.execute(_SAVE_SESSION, sessions).rowcount
        if updated != len(sessions):
            raise ConcurrentUpdate(f"{len(sessions) - updated} of {len(sessions)} conversations changed")
    if processed:
        conn.execute(_PROCESSED.insert(), processed)
    ids: list[int] = []
    if outbox:
        inserted = conn.execute(_QUEUE, outbox)
        ids = [int(i) for i in inserted.scalars()]
    queued = iter(ids)
    return [[next(queued) for _ in w.payloads] for w in writes]
