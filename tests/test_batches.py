"""Batches of many against batches of one (`Service.handle_batch`, storage/load.py, storage/record.py).

The same scripted conversations run twice in one database, on two disjoint sets of units: once message
by message through `Service.handle` (each a batch of one), once through `handle_async` with many chats
at a time, so that messages queue up and share transactions. Everything the bot stores and says must
be the same: the answers and their revisions, the evidence, the audit trail, the dialogue states, the
replies in order, the exactly-once records. Then the batch's failure paths: a conversation changed by
another process, a message whose handling raises, and the database refusing a batch.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import OperationalError
from sqlmodel import col, select

import bot.service as service_module
from bot.service import Item, Service, Unavailable, resolve_framework
from flows.model import FileInfo, Inbound, InboundKind
from storage.admin import UnitRow, create_invite
from storage.db import Database
from storage.load import Message, load
from storage.models import (
    AnswerRevision,
    Assessment,
    AuditLog,
    Conversation,
    Evidence,
    Invite,
    JoinAttempt,
    Member,
    Outbox,
    ProcessedInbound,
    Unit,
)
from tests.e2e_support import NOW, answer_for, open_province

pytest_plugins = ["tests.storage_fixtures"]

UNITS_PER_RUN = 6
FRAMEWORK = resolve_framework("tay-ninh-commune-2025", "2025.1")


def clock() -> dt.datetime:
    return NOW


def build(db: Database) -> dict[str, list[str]]:
    """Two identical sets of communes (prefix `A`: one by one, `B`: group commit), each commune with a
    respondent invite and the first one with a leader invite too; returns the invite codes per run."""
    rows = [UnitRow("70000", "Tỉnh Tây Ninh", "province", None)]
    for run in "AB":
        rows += [UnitRow(f"{run}{n}", f"Xã số {n}", "commune", "70000") for n in range(UNITS_PER_RUN)]
    codes: dict[str, list[str]] = {}
    open_province(db, rows, NOW + dt.timedelta(days=3))
    with db.session() as s:
        for run in "AB":
            codes[run] = [create_invite(s, f"{run}{n}", "respondent", NOW).code for n in range(UNITS_PER_RUN)]
            codes[run].append(create_invite(s, f"{run}0", "leader", NOW).code)  # a second member of unit 0
    return codes


def pdf(n: int) -> FileInfo:
    return FileInfo(f"{n:064x}", 1000 + n, "application/pdf", f"bao-cao-{n}.pdf")


def scripts(codes: list[str]) -> list[list[Inbound]]:
    """What each chat sends: joining, answers, evidence (a file or `để sau`), a question, a typo."""
    out = []
    for n, code in enumerate(codes):
        steps = [Inbound(InboundKind.TEXT, text=f"/start {code}")]
        if n == 2:  # a mistyped code first: refused, counted and logged
            steps.insert(0, Inbound(InboundKind.TEXT, text="/start ZZZZ9999"))
        for k, indicator in enumerate(FRAMEWORK.indicators[:5]):
            steps.append(Inbound(InboundKind.TEXT, text=answer_for(FRAMEWORK, indicator.code)[0]))
            if (n + k) % 3 == 0:
                steps.append(Inbound(InboundKind.FILE, files=(pdf(n * 10 + k),)))
            steps.append(Inbound(InboundKind.TEXT, text="để sau"))
        steps += [Inbound(InboundKind.TEXT, text="tiến độ"), Inbound(InboundKind.TEXT, text="xyz ???")]
        out.append(steps)
    return out


def items(run: str, codes: list[str], round_: int) -> list[Item]:
    """Every chat's message of one round; chat 1 also gets its previous message again (a redelivery)."""
    out: list[Item] = []
    everyone = scripts(codes)
    # chat 1 first: it goes alone to the idle worker, so unit 0's two members (chats 0 and the last)
    # queue into the same batch, where the second must wait for the first's commit
    for n in [1, *(n for n in range(len(everyone)) if n != 1)]:
        steps = everyone[n]
        if round_ < len(steps):
            out.append(("telegram", f"{run}{n}", f"{run}{n}-{round_}", steps[round_], ()))
        if n == 1 and 0 < round_ <= len(steps):
            out.append(("telegram", f"{run}{n}", f"{run}{n}-{round_ - 1}", steps[round_ - 1], ()))
    return out


def rounds(codes: list[str]) -> int:
    return max(len(s) for s in scripts(codes)) + 1


def one_by_one(db: Database, codes: list[str]) -> None:
    svc = Service(db, clock=clock, group_commit=False)
    for r in range(rounds(codes)):
        for item in items("A", codes, r):
            svc.handle(*item)


def together(
    db: Database,
    codes: list[str],
    batches: list[list[list[int] | None]],
    statements: list[str] | None = None,
) -> None:
    """The same rounds through `handle_async`, every message of a round at once, one worker (so the
    first message starts a batch alone and the rest queue behind it); records each batch's outcomes
    and the statements the batches sent through SQLAlchemy (storage/pipeline.py's go around it)."""
    svc = Service(db, clock=clock, workers=1)
    once = svc._once
    inside = threading.local()

    def spy(batch: Sequence[Item], keep: Any) -> list[Any]:
        inside.batch = True
        try:
            outcomes = once(batch, keep)
        finally:
            inside.batch = False
        batches.append([o if isinstance(o, list) else None for o in outcomes])
        return outcomes

    def executed(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if statements is not None and getattr(inside, "batch", False):
            statements.append(statement)

    svc._once = spy  # type: ignore[method-assign]
    sa.event.listen(db.engine, "before_cursor_execute", executed)

    async def go() -> None:
        for r in range(rounds(codes)):
            await asyncio.gather(*(svc.handle_async(*item) for item in items("B", codes, r)))

    try:
        asyncio.run(go())
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", executed)


def stored(db: Database, run: str) -> dict[str, Any]:
    """Everything the run stored and queued, without the ids, unit codes and invite codes that differ."""

    out: dict[str, Any] = {}
    with db.session() as s:
        units = {u.id: u.code for u in s.exec(select(Unit).where(col(Unit.code).startswith(run)))}
        by_assessment = {
            a.id: (units[a.unit_id], a.status)
            for a in s.exec(select(Assessment).where(col(Assessment.unit_id).in_(units)))
        }
        answers = list(
            s.exec(
                select(AnswerRevision)
                .where(col(AnswerRevision.assessment_id).in_(by_assessment))
                .order_by(col(AnswerRevision.id))
            )
        )
        revision_of = {a.id: (a.indicator_code, a.revision) for a in answers}
        out["assessments"] = sorted((code[1:], status) for code, status in by_assessment.values())
        out["answers"] = [
            (
                by_assessment[a.assessment_id][0][1:],
                a.indicator_code,
                a.revision,
                a.value_json,
                a.not_applicable,
                a.reason,
                a.channel,
                revision_of.get(a.previous_id) if a.previous_id else None,
            )
            for a in answers
        ]
        out["answers"].sort(key=repr)
        out["evidence"] = sorted(
            (
                by_assessment[e.assessment_id][0][1:],
                e.indicator_code,
                e.kind,
                e.sha256,
                e.original_name,
                e.late,
            )
            for e in s.exec(select(Evidence).where(col(Evidence.assessment_id).in_(by_assessment)))
        )
        members = {m.id: m for m in s.exec(select(Member).where(col(Member.chat_id).startswith(run))).all()}
        chat_of = {m.id: m.chat_id[1:] for m in members.values()}
        out["members"] = sorted(
            (
                m.chat_id[1:],
                m.channel,
                units[m.unit_id][1:],
                m.role,
                m.language,
                m.created_at,
                m.paused_reminders,
            )
            for m in members.values()
        )
        out["invites"] = sorted(
            (units[i.unit_id][1:], i.role, i.used_at, chat_of.get(i.used_by_member_id or 0))
            for i in s.exec(select(Invite).where(col(Invite.unit_id).in_(units)))
        )
        out["join_attempts"] = sorted(
            (j.chat_id[1:], j.at, j.ok)
            for j in s.exec(select(JoinAttempt).where(col(JoinAttempt.chat_id).startswith(run)))
        )
        assert [j for j in out["join_attempts"] if not j[2]]  # the mistyped code

        def joined(a: AuditLog) -> tuple[str | None, str | None]:  # member ids and invite codes differ
            new = json.loads(a.new_json or "null")
            if a.entity == "invite":
                return "", ""
            if a.entity == "unit":  # unit.create: A0 and B0
                return a.entity_id[1:], a.new_json
            if a.entity == "chat":  # telegram:A2
                return a.entity_id.split(":")[1][1:], a.new_json
            if a.action != "member.join":
                return a.entity_id, a.new_json
            ids = {"unit_id": None, "invite": None, "code": None}
            return chat_of[int(a.entity_id)], json.dumps({**new, **ids})

        out["audit"] = [
            (
                units.get(a.unit_id or 0, "?")[1:],
                chat_of.get(a.actor_member_id or 0),
                a.action,
                a.entity,
                *joined(a),
                a.old_json,
                a.at,
            )
            for a in s.exec(
                select(AuditLog).where(
                    col(AuditLog.unit_id).in_(units) | col(AuditLog.entity_id).startswith(f"telegram:{run}")
                )
            )
        ]
        assert [a for a in out["audit"] if a[2] == "member.join_failed"]
        out["audit"].sort(key=repr)
        outbox_members = {
            (o.chat_id[1:], chat_of.get(o.member_id or 0))
            for o in s.exec(select(Outbox).where(col(Outbox.chat_id).startswith(run)))
        }
        out["outbox_members"] = sorted(outbox_members, key=repr)
        chats = list(s.exec(select(Conversation).where(col(Conversation.chat_id).startswith(run))))
        out["conversations"] = sorted((c.chat_id[1:], c.state_json, c.version) for c in chats)
        outbox = s.exec(
            select(Outbox).where(col(Outbox.chat_id).startswith(run)).order_by(col(Outbox.id))
        ).all()
        replies: dict[str, list[object]] = {}
        for row in outbox:
            replies.setdefault(row.chat_id[1:], []).append(json.loads(row.payload_json))
        out["replies"] = replies
        out["processed"] = sorted(
            p.inbound_id[1:]
            for p in s.exec(select(ProcessedInbound).where(col(ProcessedInbound.inbound_id).startswith(run)))
        )
    return out


def test_batches_store_and_say_exactly_what_one_by_one_does(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    codes = build(db)
    one_by_one(db, codes["A"])
    batches: list[list[list[int] | None]] = []
    statements: list[str] = []
    with caplog.at_level(logging.DEBUG, logger="bot.service"):
        together(db, codes["B"], batches, statements)
    assert not [r for r in caplog.records if "rolled back" in r.getMessage()]  # no batch fell back
    if db.engine.dialect.name == "postgresql":
        # the joins' members and the first answers' assessments got ids reserved in the batch's reads
        # and went out with its other rows: no INSERT ... RETURNING in a round trip of its own
        assert statements == []

    expected, got = stored(db, "A"), stored(db, "B")
    assert expected["answers"] and expected["evidence"] and expected["replies"]
    assert [k for k in expected["answers"] if k[0] == "0" and k[2] == 2]  # unit 0's two members
    for key in expected:
        assert got[key] == expected[key], key
    # messages really shared transactions, and most were written by the batch itself
    written = [o for batch in batches for o in batch if o]
    assert max(sum(1 for o in batch if o) for batch in batches) >= UNITS_PER_RUN - 1
    assert len(written) > sum(len(b) for b in batches) // 2
    # The first message goes alone to the idle worker. The next batch is every other chat's first
    # message, the mistyped code included, but unit 0's second member: that one goes in the batch
    # after, as it must see what the first member of its unit wrote.
    assert len(batches[0]) == 1 and batches[0][0]
    assert sum(1 for o in batches[1] if o) == UNITS_PER_RUN - 1 and batches[1].count(None) == 1


def test_a_conversation_changed_by_another_process_rolls_the_batch_back_and_loses_nothing(
    db: Database, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Another process moved one chat on between the batch's read and its write: the whole batch is
    rolled back and every message handled alone, on fresh data, once."""
    codes = build(db)["B"][:3]
    svc = Service(db, clock=clock, group_commit=False)
    for n, code in enumerate(codes):
        svc.handle("telegram", f"B{n}", f"join-{n}", Inbound(InboundKind.TEXT, text=f"/start {code}"))
    raced: list[str] = []

    def load_then_race(s: Any, messages: Sequence[Message], resolve: Any, now: dt.datetime) -> list[Any]:
        loaded = load(s, messages, resolve, now)
        if raced:
            return loaded
        raced.append("B1")  # read before the other process's write: one version behind
        return [
            x if x is None or x.snapshot.chat_id != "B1" else replace(x, version=x.version - 1)
            for x in loaded
        ]

    monkeypatch.setattr(service_module, "load", load_then_race)
    text = answer_for(FRAMEWORK, FRAMEWORK.indicators[0].code)[0]
    batch: list[Item] = [
        ("telegram", f"B{n}", f"answer-{n}", Inbound(InboundKind.TEXT, text=text), ()) for n in range(3)
    ]
    with caplog.at_level(logging.DEBUG, logger="bot.service"):
        outcomes = svc.handle_batch(batch)
    assert all(isinstance(o, list) and o for o in outcomes), outcomes
    assert [r for r in caplog.records if "rolled back" in r.getMessage()]
    again = svc.handle_batch(batch)  # redelivered: nothing new
    assert again == [[], [], []]
    with db.session() as s:
        states = {(c.state_json, c.version) for c in s.exec(select(Conversation))}
        assert len(states) == 1  # all three moved on alike, the raced one on its second try
        answers = s.exec(select(AnswerRevision.indicator_code, AnswerRevision.revision)).all()
        assert sorted(answers) == [(FRAMEWORK.indicators[0].code, 1)] * 3
        assert len(s.exec(select(ProcessedInbound)).all()) == 6


@pytest.mark.unexpected_errors
def test_one_message_failing_does_not_fail_the_others(
    db: Database, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    codes = build(db)["B"][:3]
    svc = Service(db, clock=clock, group_commit=False)
    for n, code in enumerate(codes):
        svc.handle("telegram", f"B{n}", f"join-{n}", Inbound(InboundKind.TEXT, text=f"/start {code}"))
    real_step: Callable[..., Any] = service_module.step

    def step(snapshot: Any, inbound: Inbound, now: dt.datetime) -> Any:
        if snapshot.chat_id == "B1":
            raise RuntimeError("a bug in one conversation")
        return real_step(snapshot, inbound, now)

    monkeypatch.setattr(service_module, "step", step)
    text = answer_for(FRAMEWORK, FRAMEWORK.indicators[0].code)[0]
    outcomes = svc.handle_batch(
        [("telegram", f"B{n}", f"answer-{n}", Inbound(InboundKind.TEXT, text=text), ()) for n in range(3)]
    )
    assert isinstance(outcomes[1], RuntimeError)
    assert isinstance(outcomes[0], list) and outcomes[0] and isinstance(outcomes[2], list) and outcomes[2]
    errors = [
        r
        for r in caplog.records
        if r.levelno == logging.ERROR and "a bug in one conversation" in r.getMessage()
    ]
    assert errors and "telegram:B1:answer-1" in errors[-1].getMessage()  # logged with the batch's ids
    with db.session() as s:
        stored_for = {p.inbound_id for p in s.exec(select(ProcessedInbound))}
    assert {"answer-0", "answer-2"} <= stored_for and "answer-1" not in stored_for


def test_a_database_that_stays_unreachable_makes_every_message_of_the_batch_unavailable(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    codes = build(db)["B"][:2]
    svc = Service(db, clock=clock, group_commit=False, backoff=(0.0,))
    for n, code in enumerate(codes):
        svc.handle("telegram", f"B{n}", f"join-{n}", Inbound(InboundKind.TEXT, text=f"/start {code}"))
    tries: list[int] = []

    def unreachable(s: Any, messages: Any, resolve: Any, now: dt.datetime) -> Any:
        tries.append(1)
        raise OperationalError("SELECT", {}, Exception("server closed the connection"))

    monkeypatch.setattr(service_module, "load", unreachable)
    monkeypatch.setattr(service_module.Service, "handle", lambda *a: pytest.fail("not one by one"))
    text = answer_for(FRAMEWORK, FRAMEWORK.indicators[0].code)[0]
    outcomes = svc.handle_batch(
        [("telegram", f"B{n}", f"answer-{n}", Inbound(InboundKind.TEXT, text=text), ()) for n in range(2)]
    )
    assert all(isinstance(o, Unavailable) for o in outcomes) and len(tries) == svc.attempts


def test_an_invite_used_meanwhile_is_refused_and_the_other_chats_still_join(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process uses chat B1's invite after the batch read it: B1 is told the code is used, the
    others join, and nothing of B1's attempt is stored as a member."""
    codes = build(db)["B"][:3]
    svc = Service(db, clock=clock, group_commit=False, backoff=(0.0,))
    raced: list[str] = []

    def load_then_race(s: Any, messages: Sequence[Message], resolve: Any, now: dt.datetime) -> list[Any]:
        loaded = load(s, messages, resolve, now)
        if not raced:
            raced.append(codes[1])
            with db.engine.begin() as other:
                other.execute(sa.update(Invite).where(col(Invite.code) == codes[1]).values(used_at=NOW))
        return loaded

    monkeypatch.setattr(service_module, "load", load_then_race)
    outcomes = svc.handle_batch(
        [
            ("telegram", f"B{n}", f"join-{n}", Inbound(InboundKind.TEXT, text=f"/start {code}"), ())
            for n, code in enumerate(codes)
        ]
    )
    assert raced and all(isinstance(o, list) and o for o in outcomes), outcomes
    with db.session() as s:
        members = {m.chat_id: m.id for m in s.exec(select(Member))}
        told = [
            json.loads(o.payload_json)["text"] for o in s.exec(select(Outbox).where(Outbox.chat_id == "B1"))
        ]
        conversations = {c.chat_id: c.member_id for c in s.exec(select(Conversation))}
    assert sorted(members) == ["B0", "B2"]
    assert told == ["Mã mời này đã được dùng. Mỗi mã chỉ dùng một lần; xin mã mới nếu cần."]
    assert conversations == {"B0": members["B0"], "B1": None, "B2": members["B2"]}
