"""The one writer: the engine's decisions for a batch of messages, recorded in one transaction.

Each event type has one row builder here, and every write goes out as one statement per kind of row
for the whole batch (storage/pipeline.py: one psycopg pipeline on PostgreSQL, SQLAlchemy elsewhere);
a single message is a batch of one. What is recorded: answers as new revisions (never updates),
evidence, joins (member, invite claimed, attempt), the assessment's moves and decisions, member
settings, the audit trail, the dialogue state over the version it was read at, the inbound id that
makes handling exactly-once, and the outbox rows (replies and notices).

Storage records what it is told: lateness, what follows a join and which move a confirmation makes
are the engine's. It enforces what a write relies on, against the rows themselves: a dialogue state
changed meanwhile, an assessment that left the state (or revision, or decisions) a write was decided
on, an invite used meanwhile — each raises, and the caller handles the messages again on fresh data.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal

import sqlalchemy as sa
from sqlmodel import Session

from flows.model import (
    AddEvidence,
    CloseAppraisal,
    Decide,
    Decision,
    Event,
    IllegalTransition,
    IssueWebLink,
    JoinFailed,
    JoinFailure,
    JoinUnit,
    RequestSubmission,
    Resubmit,
    SaveAnswer,
    SendReturns,
    SetLanguage,
    SetReminders,
    StatusChange,
    Submit,
    can_move,
)
from scoring.answers import encode_value
from storage.admin import masked_code
from storage.load import Latest, Loaded
from storage.pipeline import Rows, write_all
from storage.tables import (
    ANSWER,
    ASSESSMENT,
    AUDIT,
    CONV,
    DECISION,
    EVIDENCE,
    INVITE,
    JOIN_ATTEMPT,
    MEMBER,
    OUTBOX,
    PROCESSED,
    B,
)
from storage.web import NEW_WEB_LINK, link_row


class ConcurrentUpdate(RuntimeError):
    """Another transaction changed what a write was decided on (a dialogue state, an assessment's
    state, revision or decisions, an indicator's decision): handle the message again on fresh data."""


class InviteTaken(ConcurrentUpdate):
    """The invite was used (or revoked) by someone else between reading and writing."""


@dataclass(frozen=True)
class Outgoing:
    """A message to queue: to the chat it answers, or a notice to another member."""

    channel: str
    chat_id: str
    member_id: int | None
    payload: Mapping[str, object]
    priority: int = 0
    dedupe_key: str | None = None


@dataclass(frozen=True)
class Write:
    """A message's decision to record, with what it sends."""

    loaded: Loaded
    decision: Decision
    inbound_id: str | None
    outgoing: Sequence[Outgoing] = ()


# -- statements, in the order they go out (later ones refer to rows of earlier ones) ---------------------

NEW_MEMBER = MEMBER.insert().returning(MEMBER.c.id, sort_by_parameter_order=True)
_NEW_MEMBER_WITH_ID = MEMBER.insert()
NEW_ASSESSMENT = ASSESSMENT.insert().returning(ASSESSMENT.c.id, sort_by_parameter_order=True)
_NEW_ASSESSMENT_WITH_ID = ASSESSMENT.insert()
_NEW_CHAT = CONV.insert()
# An invite used up by the member who joined with it, unless someone else was quicker (or an operator
# revoked it meanwhile).
_CLAIM_INVITE = (
    INVITE.update()
    .where(INVITE.c.code == B("w_code"), INVITE.c.used_at.is_(None), INVITE.c.revoked_at.is_(None))
    .values(used_at=B("used_at"), used_by_member_id=B("used_by_member_id"))
)
# What is written on an assessment is written only over the state it was decided in; the counters it
# bumps (answer revisions and evidence; decisions) are what a confirmation is later bound to. On
# PostgreSQL the row lock orders these against any move of the assessment, and a move re-checks its
# conditions on the newest version of the row.
_IN_STATE = sa.and_(ASSESSMENT.c.id == B("w_id"), ASSESSMENT.c.status == B("w_status"))
_ADD_CONTENT = ASSESSMENT.update().where(_IN_STATE).values(revision=ASSESSMENT.c.revision + B("added"))
_ADD_DECISION = ASSESSMENT.update().where(_IN_STATE).values(decided=ASSESSMENT.c.decided + B("added"))
_AT_REVISION = sa.and_(_IN_STATE, ASSESSMENT.c.revision == B("w_revision"))
_AT_DECIDED = sa.and_(_IN_STATE, ASSESSMENT.c.decided == B("w_decided"))
_MOVES: dict[type[StatusChange], sa.Update] = {
    RequestSubmission: ASSESSMENT.update()
    .where(_AT_REVISION)
    .values(status=B("status"), requested_at=B("at"), requested_by_member_id=B("by")),
    Submit: ASSESSMENT.update()
    .where(_AT_REVISION)
    .values(status=B("status"), submitted_at=B("at"), submitted_by_member_id=B("by")),
    Resubmit: ASSESSMENT.update().where(_AT_REVISION).values(status=B("status"), submitted_at=B("at")),
    SendReturns: ASSESSMENT.update().where(_AT_DECIDED).values(status=B("status")),
    CloseAppraisal: ASSESSMENT.update()
    .where(_AT_DECIDED)
    .values(status=B("status"), appraised_at=B("at"), appraised_by_member_id=B("by")),
}
_NEW_ATTEMPT = JOIN_ATTEMPT.insert()
_NEW_ANSWER = ANSWER.insert()
_NEW_EVIDENCE = EVIDENCE.insert()
_NEW_DECISION = DECISION.insert()
_SET_LANGUAGE = MEMBER.update().where(MEMBER.c.id == B("w_id")).values(language=B("language"))
_SET_REMINDERS = MEMBER.update().where(MEMBER.c.id == B("w_id")).values(paused_reminders=B("paused"))
_NEW_AUDIT = AUDIT.insert()
# The dialogue state, written only over the version it was read at (optimistic concurrency).
_SAVE_SESSION = CONV.update().where(
    CONV.c.channel == B("w_channel"), CONV.c.chat_id == B("w_chat_id"), CONV.c.version == B("w_version")
)
_NEW_PROCESSED = PROCESSED.insert()
QUEUE = OUTBOX.insert().returning(OUTBOX.c.id, sort_by_parameter_order=True)

_CHECKED: dict[sa.Update, type[ConcurrentUpdate]] = {
    _CLAIM_INVITE: InviteTaken,
    _ADD_CONTENT: ConcurrentUpdate,
    _ADD_DECISION: ConcurrentUpdate,
    **{move: ConcurrentUpdate for move in _MOVES.values()},
    _SAVE_SESSION: ConcurrentUpdate,
}
_ORDER: tuple[sa.Insert | sa.Update, ...] = (
    _NEW_MEMBER_WITH_ID,
    _NEW_ASSESSMENT_WITH_ID,
    _NEW_CHAT,
    _CLAIM_INVITE,
    _ADD_CONTENT,
    _ADD_DECISION,
    *_MOVES.values(),
    _NEW_ATTEMPT,
    _NEW_ANSWER,
    _NEW_EVIDENCE,
    _NEW_DECISION,
    _SET_LANGUAGE,
    _SET_REMINDERS,
    NEW_WEB_LINK,
    _NEW_AUDIT,
    _SAVE_SESSION,
    _NEW_PROCESSED,
)


# -- one row builder per event ----------------------------------------------------------------------


@dataclass
class _Context:
    """Who writes, on what: the message's loaded state, with the ids the batch assigned."""

    loaded: Loaded
    now: dt.datetime
    member_id: int | None
    assessment_id: int | None
    latest: Latest
    rows: dict[sa.Insert | sa.Update, list[dict[str, object]]] = field(default_factory=dict)

    def add(self, statement: sa.Insert | sa.Update, row: dict[str, object]) -> None:
        self.rows.setdefault(statement, []).append(row)

    def audit(
        self,
        action: str,
        entity: str,
        entity_id: str,
        old: object = None,
        new: object = None,
        *,
        unit_id: int | None = None,
        assessment_id: int | None = None,
    ) -> None:
        """One audit-trail row: who did what, on which unit and assessment, from what to what."""
        self.add(
            _NEW_AUDIT,
            dict(
                at=self.now,
                actor_member_id=self.member_id,
                channel=self.loaded.snapshot.channel,
                action=action,
                entity=entity,
                entity_id=entity_id,
                unit_id=unit_id if unit_id is not None else self.loaded.unit_id,
                assessment_id=assessment_id if assessment_id is not None else self.assessment_id,
                old_json=_json(old),
                new_json=_json(new),
                operator=None,
            ),
        )


def _json(value: object) -> str | None:
    return json.dumps(value, ensure_ascii=False, default=str) if value is not None else None


def _value_json(event: SaveAnswer) -> str | None:
    return json.dumps(encode_value(event.value)) if event.value is not None else None


def _answer(c: _Context, event: SaveAnswer) -> None:
    """A new revision on top of the latest, never an update."""
    assert c.assessment_id is not None
    previous = c.latest.get(event.code)
    revision = previous[1] + 1 if previous else 1
    c.add(
        _NEW_ANSWER,
        dict(
            assessment_id=c.assessment_id,
            indicator_code=event.code,
            revision=revision,
            value_json=_value_json(event),
            not_applicable=event.not_applicable,
            reason=event.reason,
            author_member_id=c.member_id,
            channel=c.loaded.snapshot.channel,
            created_at=c.now,
            previous_id=previous[0] if previous else None,
        ),
    )
    c.latest[event.code] = (0, revision, _value_json(event), event.not_applicable)
    old = (
        {"value": json.loads(previous[2]) if previous[2] else None, "not_applicable": previous[3]}
        if previous
        else None
    )
    new = {
        "value": encode_value(event.value) if event.value is not None else None,
        "not_applicable": event.not_applicable,
        "reason": event.reason,
    }
    c.audit("answer.save", "indicator", event.code, old, new)


def _evidence(c: _Context, event: AddEvidence) -> None:
    assert c.assessment_id is not None
    file, citation = event.file, event.citation
    kind = "file" if file else "citation" if citation else "link"
    c.add(
        _NEW_EVIDENCE,
        dict(
            assessment_id=c.assessment_id,
            indicator_code=event.code,
            kind=kind,
            uploader_member_id=c.member_id,
            channel=c.loaded.snapshot.channel,
            created_at=c.now,
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
        ),
    )
    new = {
        "kind": kind,
        "sha256": file.sha256 if file else None,
        "name": file.name if file else None,
        "citation": citation.number if citation else None,
        "url": event.url,
        "note": event.note,
        "late": event.late,
    }
    c.audit("evidence.add", "indicator", event.code, None, new)


def _move(c: _Context, event: StatusChange) -> None:
    """A move of the assessment over the state, and the revision or decisions, it was decided on."""
    if not can_move(event.expected, event.to):
        raise IllegalTransition(event.expected, event.to)
    if isinstance(event, SendReturns | CloseAppraisal):
        assessment_id, unit_id = event.assessment_id, _reviewed_unit(c.loaded, event.assessment_id)
        bound: dict[str, object] = {"w_decided": event.decisions}
    else:
        assert c.assessment_id is not None
        assessment_id, unit_id = c.assessment_id, c.loaded.unit_id or 0
        bound = {"w_revision": event.revision}
    row = {"w_id": assessment_id, "w_status": event.expected.value, **bound, "status": event.to.value}
    if not isinstance(event, SendReturns):
        row["at"] = c.now
    if not isinstance(event, SendReturns | Resubmit):
        row["by"] = c.member_id
    c.add(_MOVES[type(event)], row)
    c.audit(
        "assessment.status",
        "assessment",
        str(assessment_id),
        event.expected.value,
        event.to.value,
        unit_id=unit_id,
        assessment_id=assessment_id,
    )


def _reviewed_unit(loaded: Loaded, assessment_id: int) -> int:
    """The unit of an assessment the acting reviewer may decide on: the one open in their own scope,
    nothing else."""
    review = loaded.snapshot.review
    if review is None or review.unit is None or review.unit.assessment_id != assessment_id:
        raise PermissionError(f"assessment {assessment_id} is not under this reviewer's review")
    return review.unit.unit_id


def points_text(value: Decimal | None) -> str | None:
    """Points as stored: exact, without trailing zeros ("6.5", "10")."""
    if value is None:
        return None
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def _decide(c: _Context, event: Decide) -> None:
    """Revision `expected_revision + 1` of the indicator's decision: the unique key refuses it when
    someone decided in between (handled as a conflict); only while the assessment is in the state the
    reviewer saw."""
    unit_id = _reviewed_unit(c.loaded, event.assessment_id)
    c.add(_ADD_DECISION, {"w_id": event.assessment_id, "w_status": event.expected.value, "added": 1})
    previous = c.loaded.decision_ids.get(event.code)
    shown = c.loaded.snapshot.review
    seen = shown.unit.decisions.get(event.code) if shown is not None and shown.unit is not None else None
    row = dict(
        assessment_id=event.assessment_id,
        indicator_code=event.code,
        revision=event.expected_revision + 1,
        decision=event.decision,
        self_points=points_text(event.self_points),
        appraised_points=points_text(event.points),
        comment=event.comment,
        supplement_due=event.supplement_due,
        reviewer_member_id=c.member_id,
        previous_id=previous if seen is not None and seen.revision == event.expected_revision else None,
        created_at=c.now,
    )
    c.add(_NEW_DECISION, row)
    new = {
        "decision": event.decision,
        "self_points": row["self_points"],
        "appraised_points": row["appraised_points"],
        "comment": event.comment,
        "supplement_due": event.supplement_due.isoformat() if event.supplement_due else None,
        "revision": row["revision"],
    }
    c.audit(
        "appraisal.decide",
        "indicator",
        event.code,
        None,
        new,
        unit_id=unit_id,
        assessment_id=event.assessment_id,
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


def _join(c: _Context, event: JoinUnit) -> None:
    joining = c.loaded.joining
    assert joining is not None and joining.invite_code == event.invite_code and c.member_id is not None
    snap = c.loaded.snapshot
    c.add(_CLAIM_INVITE, {"w_code": joining.invite_code, "used_at": c.now, "used_by_member_id": c.member_id})
    c.add(_NEW_ATTEMPT, dict(channel=snap.channel, chat_id=snap.chat_id, at=c.now, ok=True))
    new = {
        "unit_id": joining.unit_id,
        "role": joining.role.value,
        "invite": joining.invite_id,
        "code": masked_code(joining.invite_code),
    }
    c.audit("member.join", "member", str(c.member_id), None, new, unit_id=joining.unit_id)


def _join_failed(c: _Context, event: JoinFailed) -> None:
    snap = c.loaded.snapshot
    if event.reason is not JoinFailure.RATE_LIMITED:  # only real guesses count towards the limit
        c.add(_NEW_ATTEMPT, dict(channel=snap.channel, chat_id=snap.chat_id, at=c.now, ok=False))
    c.audit("member.join_failed", "chat", f"{snap.channel}:{snap.chat_id}", None, {"reason": event.reason})


def _language(c: _Context, event: SetLanguage) -> None:
    assert c.member_id is not None and c.loaded.snapshot.member is not None
    c.add(_SET_LANGUAGE, {"w_id": c.member_id, "language": event.language})
    old = c.loaded.snapshot.member.language
    c.audit("member.language", "member", str(c.member_id), old, event.language)


def _reminders(c: _Context, event: SetReminders) -> None:
    assert c.member_id is not None
    c.add(_SET_REMINDERS, {"w_id": c.member_id, "paused": not event.enabled})
    c.audit("member.reminders", "member", str(c.member_id), None, {"enabled": event.enabled})


def _web_link(c: _Context, event: IssueWebLink) -> None:
    assert c.member_id is not None
    channel = c.loaded.snapshot.channel
    if event.token_sha256 is None:
        c.audit("web.link_refused", "member", str(c.member_id), None, {"reason": "rate_limited"})
        return
    c.add(NEW_WEB_LINK, link_row(event.token_sha256, c.member_id, channel, c.now, event.expires_at))
    c.audit("web.link_issued", "member", str(c.member_id), None, {"expires_at": event.expires_at.isoformat()})


def _event(c: _Context, event: Event) -> None:
    if isinstance(event, SaveAnswer):
        _answer(c, event)
    elif isinstance(event, AddEvidence):
        _evidence(c, event)
    elif isinstance(event, RequestSubmission | Submit | Resubmit | SendReturns | CloseAppraisal):
        _move(c, event)
    elif isinstance(event, Decide):
        _decide(c, event)
    elif isinstance(event, JoinUnit):
        _join(c, event)
    elif isinstance(event, JoinFailed):
        _join_failed(c, event)
    elif isinstance(event, SetLanguage):
        _language(c, event)
    elif isinstance(event, IssueWebLink):
        _web_link(c, event)
    else:
        _reminders(c, event)


# -- the batch --------------------------------------------------------------------------------------

_CONTENT = (SaveAnswer, AddEvidence)
_OWN_MOVES = (RequestSubmission, Submit, Resubmit)


def _needs_assessment(decision: Decision) -> bool:
    """Whether the decision writes on the member's own assessment (created with its first write)."""
    return any(isinstance(e, _CONTENT + _OWN_MOVES) for e in decision.events)


def write(s: Session, writes: Sequence[Write], now: dt.datetime) -> list[list[int]]:
    """Record every write; returns each one's outbox row ids, in order."""
    conn = s.connection()
    members = _member_ids(conn, writes, now)
    assessments = _assessment_ids(conn, writes)
    contexts: list[_Context] = []
    rows: dict[sa.Insert | sa.Update, list[dict[str, object]]] = {}
    outbox: list[dict[str, object]] = []
    for w, member_id, (assessment_id, created) in zip(writes, members, assessments, strict=True):
        loaded = w.loaded
        snap = loaded.snapshot
        joining = loaded.joining if any(isinstance(e, JoinUnit) for e in w.decision.events) else None
        if joining is not None and member_id is not None and joining.member_id is not None:
            row = new_member_row(snap.channel, snap.chat_id, joining.unit_id, joining.role.value, now)
            rows.setdefault(_NEW_MEMBER_WITH_ID, []).append({**row, "id": member_id})
        acting = loaded if joining is None else joining.after
        c = _Context(loaded, now, member_id, assessment_id, dict(acting.latest), rows)
        content = sum(1 for e in w.decision.events if isinstance(e, _CONTENT))
        if created:
            assert assessment_id is not None
            row = dict(period_id=acting.period_id, unit_id=acting.unit_id, status="draft", revision=content)
            rows.setdefault(_NEW_ASSESSMENT_WITH_ID, []).append({**row, "id": assessment_id})
        elif content:
            assert assessment_id is not None
            c.add(_ADD_CONTENT, {"w_id": assessment_id, "w_status": snap.status.value, "added": content})
        for event in w.decision.events:
            _event(c, event)
        _session(c, w, member_id)
        if w.inbound_id is not None:
            c.add(_NEW_PROCESSED, dict(channel=snap.channel, inbound_id=w.inbound_id, processed_at=now))
        own = (snap.channel, snap.chat_id)
        outbox += [
            _outbox_row(replace(o, member_id=member_id) if (o.channel, o.chat_id) == own else o, now)
            for o in w.outgoing
        ]
        contexts.append(c)
    work = [Rows(statement, rows[statement]) for statement in _ORDER if rows.get(statement)]
    queueing = Rows(QUEUE, outbox)
    written = write_all(conn, [*work, queueing])
    for rows_, done in zip(work, written, strict=False):
        error = _CHECKED.get(rows_.statement)  # type: ignore[arg-type]
        if error is not None and done.rowcount != len(rows_.rows):
            raise error(f"{len(rows_.rows) - done.rowcount} of {len(rows_.rows)} rows changed meanwhile")
    queued = iter(int(i) for i in written[-1].returned)
    return [[next(queued) for _ in w.outgoing] for w in writes]


def _session(c: _Context, w: Write, member_id: int | None) -> None:
    loaded, snap = c.loaded, c.loaded.snapshot
    state = json.dumps(w.decision.session.to_json())
    if loaded.version is None:
        row = dict(
            channel=snap.channel, chat_id=snap.chat_id, member_id=member_id, state_json=state, version=1
        )
        c.add(_NEW_CHAT, {**row, "updated_at": c.now})
        return
    c.add(
        _SAVE_SESSION,
        {
            "w_channel": snap.channel,
            "w_chat_id": snap.chat_id,
            "w_version": loaded.version,
            "state_json": state,
            "version": loaded.version + 1,
            "member_id": member_id,
            "updated_at": c.now,
        },
    )


def _outbox_row(o: Outgoing, now: dt.datetime) -> dict[str, object]:
    return dict(
        channel=o.channel,
        chat_id=o.chat_id,
        member_id=o.member_id,
        payload_json=json.dumps(o.payload, ensure_ascii=False),
        priority=o.priority,
        created_at=now,
        dedupe_key=o.dedupe_key,
    )


def _member_ids(conn: sa.Connection, writes: Sequence[Write], now: dt.datetime) -> list[int | None]:
    """Each write's acting member: the chat's, or the one joining now — its id reserved by the loader
    (PostgreSQL; inserted with the batch's other rows) or, elsewhere, inserted first."""
    ids: list[int | None] = []
    inserting: list[tuple[int, dict[str, object]]] = []
    for n, w in enumerate(writes):
        joining = w.loaded.joining
        if joining is None or not any(isinstance(e, JoinUnit) for e in w.decision.events):
            ids.append(w.loaded.member_id)
            continue
        ids.append(joining.member_id)
        if joining.member_id is None:
            snap = w.loaded.snapshot
            inserting.append(
                (n, new_member_row(snap.channel, snap.chat_id, joining.unit_id, joining.role.value, now))
            )
    if inserting:
        created = write_all(conn, [Rows(NEW_MEMBER, [row for _, row in inserting])])[0].returned
        for (n, _), member_id in zip(inserting, created, strict=True):
            ids[n] = int(member_id)
    return ids


def _assessment_ids(conn: sa.Connection, writes: Sequence[Write]) -> list[tuple[int | None, bool]]:
    """Each write's assessment and whether the write creates it: a unit's assessment is created with its
    first answer, evidence or move — with the id the loader reserved (PostgreSQL), or inserted first
    (then the write only bumps it). Created by another member since it was read, the insert fails and
    the message is handled again on fresh data."""
    out: list[tuple[int | None, bool]] = []
    inserting: list[tuple[int, dict[str, object]]] = []
    for n, w in enumerate(writes):
        acting = w.loaded.joining.after if w.loaded.joining is not None else w.loaded
        if acting.assessment_id is not None or not _needs_assessment(w.decision):
            out.append((acting.assessment_id, False))
            continue
        if acting.new_assessment_id is not None:
            out.append((acting.new_assessment_id, True))
            continue
        out.append((None, False))
        inserting.append(
            (n, dict(period_id=acting.period_id, unit_id=acting.unit_id, status="draft", revision=0))
        )
    if inserting:
        created = write_all(conn, [Rows(NEW_ASSESSMENT, [row for _, row in inserting])])[0].returned
        for (n, _), assessment_id in zip(inserting, created, strict=True):
            out[n] = (int(assessment_id), False)
    return out


def queue_replies(
    s: Session,
    channel: str,
    chat_id: str,
    member_id: int | None,
    payloads: Iterable[Mapping[str, object]],
    now: dt.datetime,
    priority: int = 0,
    dedupe_key: str | None = None,
) -> list[int]:
    """Outbox rows for messages not answering an inbound one (reminders, results, notices from the
    command line), in order; returns their ids. A `dedupe_key` is for a single payload that must be
    queued at most once."""
    rows = [
        _outbox_row(Outgoing(channel, chat_id, member_id, p, priority, dedupe_key), now) for p in payloads
    ]
    assert dedupe_key is None or len(rows) <= 1
    if not rows:
        return []
    return [int(i) for i in write_all(s.connection(), [Rows(QUEUE, rows)])[0].returned]
