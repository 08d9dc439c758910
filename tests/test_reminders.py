"""Periods, deadlines and reminders with a fake clock, on SQLite and PostgreSQL.

The period of the test: self-assessment due Friday 15/01/2027 17:00, evidence supplement due
Wednesday 20/01/2027 17:00, appraisal due Monday 25/01/2027 17:00 (Vietnam time). The scheduler
ticks every hour from 01/01 to publication; every reminder that goes out is checked: to whom, with
which text, at which time.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from pathlib import Path

import pytest
from sqlmodel import col, select

from bot.scheduler import Planned, ReminderScheduler
from flows.model import Inbound, InboundKind
from flows.reminders import Policy, allowed_time, due_now, planned_time
from scoring.answers import VIETNAM_TZ
from storage.admin import extend_deadline, period_by_ref
from storage.db import Database
from storage.models import Member, Outbox, Period, Reminder
from tests.e2e_support import Province, make_province


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
    scheduler = ReminderScheduler(p.db)
    sent: list[tuple[dt.datetime, Planned]] = []
    at = start
    while at <= end:
        if hook and at in hook:
            action = hook[at]
            assert callable(action)
            action()
        sent += [(at, item) for item in scheduler.tick(at) if not item.deferred]
        at += dt.timedelta(hours=1)
    return sent


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
        (ap, "1d", local(25, 1, 7)),  # Sunday 24/01 → Monday 07:00
        (ap, "0d", local(25, 1, 8)),
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
    assert {r.status for r in reminders} == {"queued"}


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
