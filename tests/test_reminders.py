"""Periods, deadlines and reminders with a fake clock, on SQLite and PostgreSQL.

The period of the test: self-assessment due Friday 15/01/2027 17:00, evidence supplement due
Wednesday 20/01/2027 17:00, appraisal due Monday 25/01/2027 17:00 (Vietnam time). The scheduler
ticks every hour from 01/01 to publication; every reminder that goes out is checked: to whom, with
which text, at which time.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import threading
from pathlib import Path

import pytest
from sqlmodel import col, select

from bot.channels.console import ConsoleChannel
from bot.results import compute, publish_results
from bot.scheduler import Planned, ReminderScheduler
from flows.model import AssessmentStatus, Inbound, InboundKind, Mode, Role
from flows.reminders import (
    Due,
    Policy,
    Task,
    UnitWork,
    allowed_time,
    appraisal_reply,
    due_now,
    escalation_due,
    escalation_reply,
    planned_time,
    reminder_reply,
    unit_task,
)
from scoring.answers import VIETNAM_TZ
from storage.admin import UnitRow, extend_deadline, import_units, open_period, period_by_ref
from storage.db import Database
from storage.evidence import EvidenceStore
from storage.models import Assessment, Member, Outbox, Period, Reminder
from tests.e2e_support import NOW, Province, make_province, pdf_bytes


def local(day: int, month: int, hour: int, minute: int = 0, year: int = 2027) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, tzinfo=VIETNAM_TZ)


SELF_DUE = local(15, 1, 17)
SUPPLEMENT_DUE = local(20, 1, 17)
APPRAISAL_DUE = local(25, 1, 17)


def setup_period(p: Province, policy: Policy | None = None) -> None:
    with p.db.session() as s:
        period = period_by_ref(s, None)
        period.self_assessment_due, period.supplement_due, period.appraisal_due = (
            SELF_DUE,
            SUPPLEMENT_DUE,
            APPRAISAL_DUE,
        )
        period.publication_due = local(31, 1, 17)
        if policy is not None:
            period.reminder_policy_json = json.dumps(policy.to_json())
        s.add(period)


def join(p: Province, chat: str, unit: str, role: str) -> None:
    p.service().handle(
        "console", chat, None, Inbound(InboundKind.TEXT, text=f"/start {p.invite(unit, role)}")
    )


def say(p: Province, chat: str, *texts: str) -> None:
    svc = p.service()
    for text in texts:
        svc.handle("console", chat, None, Inbound(InboundKind.TEXT, text=text))


def walk(
    p: Province, start: dt.datetime, end: dt.datetime, hook: dict[dt.datetime, object] | None = None
) -> list[tuple[dt.datetime, Planned]]:
    hours = int((end - start).total_seconds() // 3600)
    return ticks(p, [start + dt.timedelta(hours=h) for h in range(hours + 1)], hook)


def ticks(
    p: Province, times: list[dt.datetime], hook: dict[dt.datetime, object] | None = None
) -> list[tuple[dt.datetime, Planned]]:
    """The scheduler ticking at `times`: what went out (not what was deferred), when."""
    scheduler = ReminderScheduler(p.db)
    sent: list[tuple[dt.datetime, Planned]] = []
    for at in times:
        if hook and at in hook:
            action = hook[at]
            assert callable(action)
            action()
        sent += [(at, item) for item in scheduler.tick(at) if not item.deferred]
    return sent


def mornings_and_evenings(first: dt.datetime, last: dt.datetime) -> list[dt.datetime]:
    """07:00, 08:00 and 22:00 of every day from `first` to `last` (enough to see every reminder)."""
    days = (last.date() - first.date()).days
    return [
        local(day.day, day.month, hour, year=day.year)
        for day in (first.date() + dt.timedelta(days=n) for n in range(days + 1))
        for hour in (7, 8, 22)
    ]


def by_chat(sent: list[tuple[dt.datetime, Planned]]) -> dict[str, list[tuple[str, str, dt.datetime]]]:
    out: dict[str, list[tuple[str, str, dt.datetime]]] = {}
    for at, item in sent:
        out.setdefault(item.chat_id, []).append((item.deadline, item.offset_key, at.astimezone(VIETNAM_TZ)))
    return out


def test_policy_times() -> None:
    policy = Policy()
    assert planned_time(SELF_DUE, 7, policy) == local(8, 1, 8)
    assert allowed_time(local(17, 1, 8), policy) == local(18, 1, 7)  # Sunday → Monday 07:00
    assert allowed_time(local(12, 1, 22, 30), policy) == local(13, 1, 7)  # quiet hours → next morning
    assert allowed_time(local(13, 1, 6, 59), policy) == local(13, 1, 7)
    assert allowed_time(local(13, 1, 7), policy) == local(13, 1, 7)
    # the most recent offset only: a day of downtime yields one reminder, not two
    due = due_now("self_assessment_due", SELF_DUE, policy, local(13, 1, 9))
    assert due is not None and due.offset_key == "3d"
    assert due_now("self_assessment_due", SELF_DUE, policy, local(15, 1, 17, 1)) is None


def test_a_missed_reminder_keeps_quiet_hours_and_gives_way_to_a_more_recent_one() -> None:
    policy, sa = Policy(), "self_assessment_due"

    def when(due: Due | None) -> tuple[str, dt.datetime, dt.datetime, list[str]] | None:
        if due is None:
            return None
        return due.offset_key, due.planned_at, due.send_at, [d.offset_key for d in due.superseded]

    # 3d (Tuesday 12/01 08:00) missed while the bot was down: caught up at once in the afternoon, but
    # not at 22:00 — then at the next allowed moment; the 7d one it replaces is never sent
    assert when(due_now(sa, SELF_DUE, policy, local(12, 1, 15))) == (
        "3d",
        local(12, 1, 8),
        local(12, 1, 15),
        ["7d"],
    )
    assert when(due_now(sa, SELF_DUE, policy, local(12, 1, 22))) == (
        "3d",
        local(12, 1, 8),
        local(13, 1, 7),
        ["7d"],
    )
    # a deadline at 23:59 whose morning reminder was missed: no allowed moment is left, nothing at 22:00
    assert due_now(sa, local(15, 1, 23, 59), policy, local(15, 1, 22)) is None
    # a deadline inside quiet hours: its own reminder goes at the planned time rather than never
    assert when(due_now(sa, local(13, 1, 6), policy, local(13, 1, 5))) == (
        "0d",
        local(13, 1, 5),
        local(13, 1, 5),
        ["1d", "3d", "7d"],
    )
    # Tuesday's deadline: Saturday's 3d reminder, held to Monday, gives way to Monday's own 1d at 08:00
    tuesday = local(19, 1, 17)
    assert when(due_now(sa, tuesday, policy, local(16, 1, 8))) == (
        "1d",
        local(18, 1, 8),
        local(18, 1, 8),
        ["3d", "7d"],
    )
    # a missed reminder caught up at 07:00 waits for the more recent one planned at 08:00 the same day
    assert when(due_now(sa, tuesday, policy, local(18, 1, 7))) == (
        "1d",
        local(18, 1, 8),
        local(18, 1, 8),
        ["3d", "7d"],
    )
    assert when(due_now(sa, tuesday, policy, local(18, 1, 8))) == (
        "1d",
        local(18, 1, 8),
        local(18, 1, 8),
        ["3d", "7d"],
    )
    # the digest a day before: the same rules
    assert escalation_due(local(15, 1, 23, 59), policy, local(14, 1, 23)) is not None
    escalation = escalation_due(SELF_DUE, policy, local(14, 1, 22))
    assert escalation is not None and escalation.send_at == local(15, 1, 7)


def test_several_offsets_due_at_once_send_only_the_most_recent(db: Database, tmp_path: Path) -> None:
    p = make_province(db, tmp_path)
    setup_period(p)
    join(p, "b", "25843", "respondent")
    say(p, "b", "câu 3.5", "có", "để sau")  # evidence missing: reminders before the supplement deadline
    scheduler = ReminderScheduler(p.db)
    sup = "supplement_due"

    def tick(at: dt.datetime) -> list[tuple[str, bool, dt.datetime]]:
        return [
            (item.offset_key, item.deferred, item.send_at.astimezone(VIETNAM_TZ))
            for item in scheduler.tick(at)
            if item.deadline == sup
        ]

    # the bot was down from 12/01 to Sunday 17/01: 3d is due (held to Monday 07:00), 7d is superseded
    assert tick(local(17, 1, 8)) == [("3d", True, local(18, 1, 7))]
    # down again all Monday: at 22:00 the held 3d could only arrive on Tuesday morning, an hour before
    # Tuesday's own 1d — so it gives way to it
    assert tick(local(18, 1, 22)) == [("1d", True, local(19, 1, 8))]
    assert tick(local(19, 1, 7)) == []
    assert tick(local(19, 1, 8)) == [("1d", False, local(19, 1, 8))]
    assert tick(local(20, 1, 8)) == [("0d", False, local(20, 1, 8))]
    with db.session() as s:
        ledger = {r.offset_key: r.status for r in s.exec(select(Reminder).where(Reminder.deadline == sup))}
        outbox = s.exec(select(Outbox).where(Outbox.chat_id == "b", Outbox.priority == 10)).all()
    assert ledger == {"7d": "superseded", "3d": "superseded", "1d": "queued", "0d": "queued"}
    assert len(outbox) == 2  # never both


def test_each_state_has_work_only_for_the_deadlines_it_can_still_meet() -> None:
    """The rule, as a table: (state, deadline) → what is left, at a fixed moment before every deadline."""
    now = local(12, 1, 9)
    deadlines = {"self_assessment_due": SELF_DUE, "supplement_due": SUPPLEMENT_DUE}
    returned = {"1.1": local(22, 1, 17), "2.1": local(11, 1, 17)}  # 2.1's deadline has passed

    def work(status: str, unanswered: tuple[str, ...] = ("2.1",)) -> UnitWork:
        return UnitWork("Xã A", status, unanswered, ("1.2",), deadlines, returned)

    def left(status: str, deadline: str) -> tuple[tuple[str, ...], tuple[str, ...], bool] | None:
        task = unit_task(deadline, work(status), now)
        return None if task is None else (task.unanswered, task.evidence, task.confirm)

    sa, sup, ret = "self_assessment_due", "supplement_due", "returned_due"
    assert {(st, d): left(st, d) for st in AssessmentStatus for d in (sa, sup, ret)} == {
        ("draft", sa): (("2.1",), ("1.2",), False),
        ("draft", sup): ((), ("1.2",), False),
        ("draft", ret): None,
        ("awaiting_leader", sa): (("2.1",), ("1.2",), True),
        ("awaiting_leader", sup): ((), ("1.2",), False),
        ("awaiting_leader", ret): None,
        ("submitted", sa): None,  # answers are closed once submitted…
        ("submitted", sup): ((), ("1.2",), False),  # …evidence is not, until the supplement deadline
        ("submitted", ret): None,
        ("returned", sa): None,
        ("returned", sup): None,  # a returned unit works on what was returned, by the reviewer's deadline
        ("returned", ret): ((), ("1.1",), False),
        ("appraised", sa): None,
        ("appraised", sup): None,
        ("appraised", ret): None,
    }
    assert unit_task(ret, work("returned"), now) == Task(ret, local(22, 1, 17), (), ("1.1",))
    assert unit_task(sa, work("draft"), SELF_DUE) is None  # nothing is left once the deadline is reached
    assert unit_task(sup, UnitWork("Xã A", "submitted", (), (), deadlines), now) is None  # nothing missing

    # what each is told, and the button to the first thing they can still do
    def said(role: Role, status: str, deadline: str, unanswered: tuple[str, ...] = ("2.1",)) -> list[str]:
        w = work(status, unanswered)
        task = unit_task(deadline, w, now)
        assert task is not None
        reply = reminder_reply(role, task, w, now, 7)
        return [m.key for m in reply.lines] + [f"{b.label.key} {b.payload}" for b in reply.buttons]

    assert said(Role.RESPONDENT, "draft", sa) == [
        "remind.self_assessment",
        "button.go_first_missing go|7|2.1|",
    ]
    assert said(Role.LEADER, "draft", sa, ()) == ["remind.submit", "button.send_evidence go|7|1.2|"]
    assert said(Role.LEADER, "awaiting_leader", sa) == ["remind.leader_confirm"]
    assert said(Role.RESPONDENT, "awaiting_leader", sa) == ["remind.awaiting_leader"]
    assert said(Role.RESPONDENT, "submitted", sup) == [
        "remind.supplement_submitted",
        "button.send_evidence go|7|1.2|",
    ]
    assert said(Role.RESPONDENT, "draft", sup) == ["remind.supplement", "button.send_evidence go|7|1.2|"]
    assert said(Role.LEADER, "returned", ret) == ["remind.returned", "button.send_evidence go|7|1.1|"]

    # the reviewer: appraisals not closed; digests list only the units late for that deadline
    units = [work(st) for st in AssessmentStatus]
    appraisal = appraisal_reply(units, APPRAISAL_DUE, now)
    assert appraisal is not None and [(m.key, m.params["count"]) for m in appraisal.lines] == [
        ("remind.appraisal_open", 2)
    ]
    assert appraisal_reply([work("appraised"), work("draft")], APPRAISAL_DUE, now) is None
    digest = escalation_reply(sa, units, SELF_DUE, now)
    assert digest is not None and [m.key for m in digest.lines] == [
        "remind.escalation",
        "remind.escalation_item",
        "remind.escalation_item_confirm",
    ]
    extended = UnitWork("Xã B", "draft", ("2.1",), (), {**deadlines, sa: local(22, 1, 17)})
    assert escalation_reply(sa, [extended, work("appraised")], SELF_DUE, now) is None


def test_a_period_from_opening_to_publication(db: Database, tmp_path: Path) -> None:
    p = make_province(db, tmp_path)
    setup_period(p)
    join(p, "a", "25840", "respondent")
    join(p, "la", "25840", "leader")
    join(p, "b", "25843", "respondent")
    join(p, "r", "70000", "reviewer")
    say(p, "b", "câu 3.5", "có", "để sau")  # B claims 10 points without evidence

    def a_submits() -> None:
        say(p, "a", "nộp", "#1")  # respondent asks…
        say(p, "la", "nộp", "xác nhận")  # …the leader confirms

    def b_pauses() -> None:
        say(p, "b", "tạm dừng nhắc")

    hooks = {local(13, 1, 10): a_submits, local(19, 1, 12): b_pauses}
    sent = walk(p, local(1, 1, 0), local(31, 1, 18), hooks)
    got = by_chat(sent)
    sa, sup = "self_assessment_due", "supplement_due"
    assert got["a"] == [(sa, "7d", local(8, 1, 8)), (sa, "3d", local(12, 1, 8))]  # submitted on 13/01
    assert got["la"] == [(sa, "7d", local(8, 1, 8)), (sa, "3d", local(12, 1, 8))]
    assert got["b"] == [
        (sa, "7d", local(8, 1, 8)),
        (sa, "3d", local(12, 1, 8)),
        (sup, "7d", local(13, 1, 8)),
        (sa, "1d", local(14, 1, 8)),
        (sa, "0d", local(15, 1, 8)),
        (sup, "3d", local(18, 1, 7)),  # Sunday 17/01 moved to Monday 07:00, not dropped
        (sup, "1d", local(19, 1, 8)),
    ]  # B paused reminders at noon on 19/01: nothing on the day itself
    ap = "appraisal_due"
    assert got["r"] == [
        (sa, "escalation", local(14, 1, 8)),  # one digest of lagging units, a day before
        (ap, "7d", local(18, 1, 8)),  # A's submission waits for appraisal
        (sup, "escalation", local(19, 1, 8)),
        (ap, "3d", local(22, 1, 8)),
        (ap, "0d", local(25, 1, 8)),  # Sunday's 1d, held to Monday, gave way to Monday's own
    ]

    texts = {(item.chat_id, item.deadline, item.offset_key): item.text for _, item in sent}
    assert texts[("b", sa, "3d")] == (
        "⏰ Xã Hòa Thành: còn 61 chỉ tiêu chưa trả lời, 1 chỉ tiêu thiếu minh chứng,"
        " hạn 15/01/2027 17:00 — còn 3 ngày."
    )
    assert texts[("b", sa, "0d")].endswith("hạn là hôm nay 15/01/2027 17:00.")
    assert "Xã Hòa Thành: 61 chưa trả lời, 1 thiếu minh chứng" in texts[("r", sa, "escalation")]
    assert "Xã An Bình" not in texts[("r", sa, "escalation")]  # it had submitted
    with db.session() as s:
        rows = list(s.exec(select(Outbox).where(Outbox.priority == 10).order_by(col(Outbox.id))))
        reminders = list(s.exec(select(Reminder)))
    assert len(rows) == len(sent) and len({r.dedupe_key for r in rows}) == len(rows)
    payload = json.loads(next(r.payload_json for r in rows if r.chat_id == "b"))
    assert payload["buttons"][0]["payload"].startswith("go|") and payload["buttons"][0]["payload"].endswith(
        "|1.1|"
    )
    assert {(r.deadline, r.offset_key) for r in reminders if r.status != "queued"} == {(ap, "1d")}
    assert next(r for r in reminders if r.offset_key == "1d" and r.deadline == ap).status == "superseded"


def test_quiet_hours_defer_and_never_drop(db: Database, tmp_path: Path) -> None:
    p = make_province(db, tmp_path)
    setup_period(p, Policy(offsets_days=(3,), send_hour=22))
    join(p, "a", "25840", "respondent")
    scheduler = ReminderScheduler(p.db)
    deferred = scheduler.tick(local(12, 1, 22, 5))
    assert [(d.chat_id, d.deferred, d.send_at.astimezone(VIETNAM_TZ)) for d in deferred] == [
        ("a", True, local(13, 1, 7))
    ]
    assert scheduler.tick(local(13, 1, 6)) == []
    out = scheduler.tick(local(13, 1, 7))
    assert [(d.chat_id, d.deferred) for d in out] == [("a", False)]
    assert scheduler.tick(local(13, 1, 8)) == []


def test_schedulers_catching_up_at_once_send_one_reminder(db: Database, tmp_path: Path) -> None:
    p = make_province(db, tmp_path)
    setup_period(p)
    join(p, "b", "25843", "respondent")
    say(p, "b", "câu 3.5", "có", "để sau")
    ReminderScheduler(p.db).tick(local(17, 1, 8))  # 3d held to Monday 07:00; then down until Tuesday
    barrier = threading.Barrier(3)

    def run() -> None:
        barrier.wait()
        ReminderScheduler(p.db).tick(local(19, 1, 9))  # three processes: the held 3d and Tuesday's 1d

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with db.session() as s:
        member = s.exec(select(Member).where(Member.chat_id == "b")).one()
        ledger = {
            r.offset_key: r.status for r in s.exec(select(Reminder).where(Reminder.member_id == member.id))
        }
        outbox = s.exec(select(Outbox).where(Outbox.chat_id == "b", Outbox.priority == 10)).all()
    assert len(outbox) == 1 and ledger["1d"] == "queued" and ledger["3d"] == "superseded"


def test_a_held_reminder_missed_at_its_time_waits_out_quiet_hours(db: Database, tmp_path: Path) -> None:
    p = make_province(db, tmp_path)
    setup_period(p, Policy(offsets_days=(3, 0)))
    join(p, "b", "25843", "respondent")
    say(p, "b", "câu 3.5", "có", "để sau")
    scheduler = ReminderScheduler(p.db)

    def tick(at: dt.datetime) -> list[tuple[str, bool, dt.datetime]]:
        return [
            (item.offset_key, item.deferred, item.send_at.astimezone(VIETNAM_TZ))
            for item in scheduler.tick(at)
            if item.deadline == "supplement_due"
        ]

    assert tick(local(17, 1, 8)) == [("3d", True, local(18, 1, 7))]  # Sunday → Monday 07:00
    assert tick(local(18, 1, 22)) == []  # the bot was down all Monday: not at 22:00…
    assert tick(local(19, 1, 6, 59)) == []
    assert tick(local(19, 1, 7)) == [("3d", False, local(19, 1, 7))]  # …but first thing on Tuesday
    assert tick(local(20, 1, 8)) == [("0d", False, local(20, 1, 8))]


def test_restarts_and_concurrent_schedulers_send_nothing_twice(db: Database, tmp_path: Path) -> None:
    p = make_province(db, tmp_path)
    setup_period(p)
    for i in range(6):
        join(p, f"m{i}", "25840" if i % 2 else "25843", "respondent")
    at = local(8, 1, 8)
    barrier = threading.Barrier(3)
    results: list[list[Planned]] = []

    def run() -> None:
        barrier.wait()
        results.append(ReminderScheduler(p.db).tick(at))  # three processes ticking at once

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ReminderScheduler(p.db).tick(at)  # and a restart ticking again
    with db.session() as s:
        outbox = s.exec(select(Outbox).where(Outbox.priority == 10)).all()
        ledger = s.exec(select(Reminder)).all()
    assert len(ledger) == 6 and len(outbox) == 6
    assert sum(len(r) for r in results) == 6


def test_a_unit_extension_moves_its_reminders_and_its_lock(db: Database, tmp_path: Path) -> None:
    p = make_province(db, tmp_path)
    setup_period(p)
    join(p, "a", "25840", "respondent")
    join(p, "b", "25843", "respondent")
    with db.session() as s:
        period = period_by_ref(s, None)
        extend_deadline(
            s,
            period,
            "self_assessment_due",
            local(22, 1, 17),
            "Lũ lụt, mất điện 5 ngày",
            local(10, 1, 9),
            "25843",
            "so-khcn",
        )
    sent = by_chat(walk(p, local(14, 1, 0), local(23, 1, 0)))
    assert ("self_assessment_due", "1d", local(21, 1, 8)) in sent["b"]
    assert ("self_assessment_due", "0d", local(15, 1, 8)) in sent["a"]
    # after its own deadline A is locked; B, extended, can still answer
    svc = p.service()
    svc.clock = lambda: local(16, 1, 9).astimezone(dt.UTC)
    svc.handle("console", "a", None, Inbound(InboundKind.TEXT, text="70"))
    svc.handle("console", "b", None, Inbound(InboundKind.TEXT, text="70"))
    assert p.revisions("25840") == [] and len(p.revisions("25843")) == 1
    with db.session() as s:
        text = json.loads(
            s.exec(select(Outbox).where(Outbox.chat_id == "a").order_by(col(Outbox.id).desc()))
            .first()
            .payload_json
        )["text"]  # type: ignore[union-attr]
    assert "Đã hết hạn tự đánh giá (15/01/2027 17:00)" in text


def test_late_evidence_is_kept_flagged_and_explained(db: Database, tmp_path: Path) -> None:
    p = make_province(db, tmp_path)
    setup_period(p)
    join(p, "a", "25840", "respondent")
    say(p, "a", "100")
    svc = p.service()
    svc.clock = lambda: local(21, 1, 9).astimezone(dt.UTC)
    chat, out = p.chat("a")
    chat.service = svc
    chat.send(chat.inbound_for(f"/file {p.files}/bao-cao.pdf"))  # type: ignore[arg-type]
    assert "Đã quá hạn bổ sung minh chứng (20/01/2027 17:00)" in out.getvalue()
    [evidence] = p.evidence("25840")
    assert evidence.late


def test_blocked_and_paused_members_are_not_reminded(db: Database, tmp_path: Path) -> None:
    p = make_province(db, tmp_path)
    setup_period(p)
    join(p, "a", "25840", "respondent")
    join(p, "b", "25843", "respondent")
    say(p, "a", "tạm dừng nhắc")
    with db.session() as s:
        member = s.exec(select(Member).where(Member.chat_id == "b")).one()
        member.blocked_at = local(2, 1, 9)
        s.add(member)
    assert ReminderScheduler(p.db).tick(local(8, 1, 8)) == []
    say(p, "a", "bật nhắc")
    assert [i.chat_id for i in ReminderScheduler(p.db).tick(local(8, 1, 9))] == ["a"]


def test_dry_run_and_status(db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    from bot.cli import main

    p = make_province(db, tmp_path)
    setup_period(p)
    join(p, "a", "25840", "respondent")
    monkeypatch.setenv("DTI_DATABASE_URL", db.url)
    out, err = io.StringIO(), io.StringIO()
    assert main(["remind", "--dry-run", "--at", "12/01/2027 08:30"], out, err) == 0, err.getvalue()
    text = out.getvalue()
    assert "console:a [Xã An Bình] self_assessment_due/3d gửi ngay" in text
    assert "còn 62 chỉ tiêu chưa trả lời" in text and "xem trước, chưa gửi" in text
    with db.session() as s:
        assert s.exec(select(Reminder)).all() == []  # the dry run wrote nothing
    assert main(["remind", "--at", "12/01/2027 08:30"], out, err) == 0
    out.truncate(0)
    assert main(["status"], out, err) == 0
    row = next(line for line in out.getvalue().splitlines() if line.startswith("25840"))
    assert row.endswith("0/1/0/0")  # one reminder queued, not yet sent
    out.truncate(0)
    assert (
        main(
            [
                "period",
                "extend",
                "--unit",
                "25840",
                "--deadline",
                "self_assessment_due",
                "--to",
                "22/01/2027",
                "--reason",
                "Mất điện",
            ],
            out,
            err,
        )
        == 0
    )
    assert "15/01/2027 17:00 → 22/01/2027 23:59" in out.getvalue()
    out.truncate(0)
    assert main(["period", "show"], out, err) == 0
    assert "Gia hạn: 25840" in out.getvalue() and "Mất điện" in out.getvalue()
    with db.session() as s:
        assert s.exec(select(Period)).one().self_assessment_due == SELF_DUE  # the period itself is unchanged


# -- who has work: the assessment's state and the deadline the reminder is about ------------------

DATA = Path(__file__).resolve().parent / "data"
RETURN_DUE = local(22, 1, 17)  # the reviewer's own supplement deadline for the returned indicator


class Chat:
    """A console chat that can press its buttons by label."""

    def __init__(self, p: Province, chat_id: str, unit: str, role: str) -> None:
        self.p, self.id, self.out = p, chat_id, io.StringIO()
        self.console = ConsoleChannel(p.service(), p.store, chat_id, self.out, echo=True)
        self.console.run([], join=p.invite(unit, role))

    def say(self, *lines: str) -> None:
        for line in lines:
            inbound = self.console.inbound_for(line)
            assert inbound is not None, line
            self.console.send(inbound)

    def press(self, label: str) -> None:
        labels = [b.label for b in self.console.keyboard]
        assert label in labels, (label, labels, self.out.getvalue()[-1000:])
        self.say(f"#{labels.index(label) + 1}")

    def review(self, unit: str, returns: dict[str, tuple[str, str]], finish: str) -> None:
        """Open `unit`, accept every indicator but the returned ones, then send the returns or close."""
        self.say("danh sách")
        self.press(unit)
        for _ in range(10):
            state = self.p.session_state(self.id)
            if state.mode is not Mode.REVIEW or state.current is None:
                break
            if state.current in returns:
                self.press("↩ Yêu cầu bổ sung")
                self.say(*returns[state.current])
            else:
                self.press("✔ Chấp nhận")
        self.press(finish)


def province_in_every_state(db: Database, tmp: Path, monkeypatch: pytest.MonkeyPatch) -> Province:
    """District 701 of the five-indicator framework, one commune in each state, its reviewer `rv`:
    70101 draft (1.1 claimed without evidence) · 70102 awaiting its leader · 70103 submitted without the
    evidence of 1.2 · 70104 returned (1.1, due 22/01/2027 17:00) · 70105 appraised and published."""
    monkeypatch.setenv("DTI_FRAMEWORKS_DIR", str(DATA))
    with db.session() as s:
        import_units(
            s,
            [UnitRow("70", "Tỉnh Thử", "province", None), UnitRow("701", "Huyện 701", "district", "70")]
            + [UnitRow(f"7010{i}", f"Xã 7010{i}", "commune", "701") for i in range(1, 6)],
            NOW,
        )
        open_period(
            s,
            name="DTI thử 2026",
            year=2026,
            framework_id="e2e-commune",
            framework_version="1",
            now=NOW,
            self_assessment_due=SELF_DUE,
            supplement_due=SUPPLEMENT_DUE,
            appraisal_due=APPRAISAL_DUE,
            publication_due=local(31, 1, 17),
        )
    files = tmp / "files"
    files.mkdir()
    (files / "bc.pdf").write_bytes(pdf_bytes("bao cao"))
    p = Province(db, EvidenceStore(tmp / "evidence"), files)
    pdf = f"/file {files}/bc.pdf"
    Chat(p, "r1", "70101", "respondent").say("100", "#2")  # 1.1: 30 points claimed, evidence later
    Chat(p, "l2", "70102", "leader")
    Chat(p, "r2", "70102", "respondent").say("100", pdf, "#1", "nộp", "#1")  # asks the leader to confirm
    l3 = Chat(p, "l3", "70103", "leader")
    l3.say("100", pdf, "#1", "có", "#2", "nộp", "#1")  # 1.2 claimed, its evidence later; submitted
    Chat(p, "l4", "70104", "leader").say("100", pdf, "#1", "nộp", "#1")
    Chat(p, "l5", "70105", "leader").say("100", "#2", "nộp", "#1")  # 1.1 without evidence
    rv = Chat(p, "rv", "701", "reviewer")
    rv.review("Xã 70104", {"1.1": ("Cần báo cáo số liệu của VNPT", "22/01/2027")}, "📨 Gửi yêu cầu bổ sung")
    rv.review("Xã 70105", {}, "🔒 Kết thúc thẩm định")
    with db.session() as s:
        period = period_by_ref(s, None)
        statuses = {a.unit_id: a.status for a in s.exec(select(Assessment))}
    assert sorted(statuses.values()) == ["appraised", "awaiting_leader", "draft", "returned", "submitted"]
    compute(db, period, NOW)
    publish_results(db, period, "so-khcn", NOW)
    return p


def outbox_payloads(db: Database, chat_id: str) -> list[dict[str, object]]:
    with db.session() as s:
        rows = s.exec(
            select(Outbox).where(Outbox.chat_id == chat_id, Outbox.priority == 10).order_by(col(Outbox.id))
        ).all()
    return [json.loads(r.payload_json) for r in rows]


def test_who_is_reminded_follows_the_state_and_the_deadline(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = province_in_every_state(db, tmp_path, monkeypatch)
    sent = ticks(p, mornings_and_evenings(local(6, 1, 0), local(26, 1, 0)))
    got = by_chat(sent)
    sa, sup, ret, ap = "self_assessment_due", "supplement_due", "returned_due", "appraisal_due"
    # the appraised (and published) unit has nothing left to do: not one reminder
    assert "l5" not in got
    # draft: answers until its self-assessment deadline, evidence until the supplement deadline
    assert got["r1"] == [
        (sa, "7d", local(8, 1, 8)),
        (sa, "3d", local(12, 1, 8)),
        (sup, "7d", local(13, 1, 8)),
        (sa, "1d", local(14, 1, 8)),
        (sa, "0d", local(15, 1, 8)),
        (sup, "3d", local(18, 1, 7)),
        (sup, "1d", local(19, 1, 8)),
        (sup, "0d", local(20, 1, 8)),
    ]
    # awaiting the leader: the leader is asked to confirm, the respondent told who it waits for
    sa_offsets = [(sa, "7d", local(8, 1, 8)), (sa, "3d", local(12, 1, 8))]
    sa_offsets += [(sa, "1d", local(14, 1, 8)), (sa, "0d", local(15, 1, 8))]
    assert got["l2"] == got["r2"] == sa_offsets
    # submitted: no self-assessment reminder, but the missing evidence may still be supplemented
    assert got["l3"] == [
        (sup, "7d", local(13, 1, 8)),
        (sup, "3d", local(18, 1, 7)),
        (sup, "1d", local(19, 1, 8)),
        (sup, "0d", local(20, 1, 8)),
    ]
    # returned: the returned indicator, by the reviewer's own deadline (Friday 22/01 17:00)
    tag = "@2027-01-22T17:00"
    assert got["l4"] == [
        (ret, f"7d{tag}", local(15, 1, 8)),
        (ret, f"3d{tag}", local(19, 1, 8)),
        (ret, f"1d{tag}", local(21, 1, 8)),
        (ret, f"0d{tag}", local(22, 1, 8)),
    ]
    # the reviewer: digests of the units lagging for each deadline, and the appraisals not closed
    assert got["rv"] == [
        (sa, "escalation", local(14, 1, 8)),
        (ap, "7d", local(18, 1, 8)),
        (sup, "escalation", local(19, 1, 8)),
        (ap, "3d", local(22, 1, 8)),
        (ap, "0d", local(25, 1, 8)),  # Sunday's 1d, held to Monday, gave way to Monday's own
    ]

    texts = {(item.chat_id, item.deadline, item.offset_key): item.text for _, item in sent}
    assert texts[("r2", sa, "3d")] == (
        "⏰ Bản tự đánh giá của Xã 70102 đang chờ lãnh đạo xác nhận nộp, hạn 15/01/2027 17:00 — còn 3 ngày."
    )
    assert texts[("l2", sa, "3d")].startswith("⏰ Bản tự đánh giá của Xã 70102 đang chờ bạn xác nhận nộp")
    assert texts[("l4", ret, f"3d{tag}")] == (
        "⏰ Xã 70104: 1 chỉ tiêu được trả lại cần bổ sung minh chứng (1.1),"
        " hạn 22/01/2027 17:00 — còn 3 ngày."
        ' Bổ sung xong gõ "nộp" để gửi lại; minh chứng nộp sau hạn được 0 điểm.'
    )
    assert texts[("rv", sa, "escalation")] == (
        "📋 2 đơn vị chưa hoàn thành trước hạn tự đánh giá (15/01/2027 17:00):\n"
        "• Xã 70101: 4 chưa trả lời, 1 thiếu minh chứng\n"
        "• Xã 70102: chờ lãnh đạo xác nhận nộp"
    )
    assert texts[("rv", sup, "escalation")] == (
        "📋 2 đơn vị chưa hoàn thành trước hạn bổ sung minh chứng (20/01/2027 17:00):\n"
        "• Xã 70101: 1 thiếu minh chứng\n"
        "• Xã 70103: 1 thiếu minh chứng"
    )
    assert texts[("rv", ap, "3d")] == (
        "⏰ Còn 2 đơn vị chưa kết thúc thẩm định: 1 bản chờ bạn thẩm định, 1 đơn vị đang bổ sung minh chứng"
        " theo yêu cầu của bạn; hạn 25/01/2027 17:00 — còn 3 ngày."
    )
    # submitted: told that the evidence (not the answers) can still be supplemented, and where
    assert texts[("l3", sup, "3d")] == (
        "⏰ Xã 70103 đã nộp bản tự đánh giá; vẫn bổ sung được minh chứng cho 1 chỉ tiêu còn thiếu (1.2),"
        " hạn 20/01/2027 17:00 — còn 2 ngày. Minh chứng nộp sau hạn được 0 điểm."
    )
    assert {str(payload["buttons"]) for payload in outbox_payloads(db, "l3")} == {
        str([{"label": "Gửi minh chứng câu 1.2", "payload": "go|1|1.2|"}])
    }
    # every button leads to something its member can still do
    answer, evidence = "Trả lời câu 1.2", "Gửi minh chứng câu 1.1"  # the draft: answers, then evidence only
    assert [payload["buttons"][0]["label"] for payload in outbox_payloads(db, "r1")] == [  # type: ignore[index]
        answer,
        answer,
        evidence,
        answer,
        answer,
        evidence,
        evidence,
        evidence,
    ]
    [l4_first, *_] = outbox_payloads(db, "l4")
    assert l4_first["buttons"] == [{"label": "Gửi minh chứng câu 1.1", "payload": "go|1|1.1|"}]
    waiting = outbox_payloads(db, "r2") + outbox_payloads(db, "l2")
    assert waiting and all(not payload.get("buttons") for payload in waiting)
