"""Reminders, derived from the database on every tick and queued exactly once.

A tick looks at every open period: each unit's work and deadlines (extensions applied), each member
who can be reached, the policy. For every reminder due by now it inserts the ledger row and, in the
same transaction, the outbox message — or records it as deferred when quiet hours or the weekend hold
it back; a later tick sends it then, with the counts of that moment. Who is reminded of what follows
the assessment's state (`flows.reminders.unit_task`): a returned unit by the reviewer's own deadline
for the returned indicators, an appraised one never. Reviewers get one digest of the units lagging for
a deadline a day before it, and reminders of the appraisals they have not closed.
`plan(..., write=False)` is the dry run: who would get what at a given time, without touching anything.

APScheduler 3 drives `tick` once a minute inside the bot process.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from apscheduler.schedulers.asyncio import AsyncIOScheduler  # type: ignore[import-untyped]
from sqlmodel import Session, select

from bot import catalog
from bot.service import render, utc_now
from flows.model import Reply, Role
from flows.reminders import (
    APPRAISAL,
    ESCALATION,
    RETURNED,
    SELF_ASSESSMENT,
    SUPPLEMENT,
    Due,
    Policy,
    Task,
    UnitWork,
    allowed_time,
    appraisal_reply,
    due_now,
    escalation_due,
    escalation_reply,
    reminder_reply,
    unit_task,
)
from storage.db import Database
from storage.models import OUTBOX_PRIORITY_REMINDER, Member, Period, Reminder
from storage.record import queue_replies
from storage.reminders import (
    audit_manual_reminder,
    insert_ledger,
    mark_reminder,
    open_periods,
    reachable_members,
    ready_deferred,
    reviewers_by_unit,
    set_outbox,
    supersede,
    unit_states,
)

log = logging.getLogger(__name__)
MANUAL = "manual"  # the ledger key of a reminder an operator sent at once


@dataclass(frozen=True)
class Planned:
    member_id: int
    channel: str
    chat_id: str
    unit: str
    deadline: str
    offset_key: str
    send_at: dt.datetime
    deferred: bool
    text: str


@dataclass
class _Context:
    """One period at one moment: each unit's work and each reviewer's units."""

    period: Period
    now: dt.datetime
    works: dict[int, UnitWork]
    scopes: dict[int, tuple[Member, list[UnitWork]]] = field(default_factory=dict)

    def reply_for(self, member: Member, deadline: str, offset_key: str) -> Reply | None:
        """What this member is told for this reminder now, or None when there is nothing left to do."""
        role = Role(member.role)
        if role is Role.REVIEWER:
            units = self.scopes.get(member.id or 0, (member, []))[1]
            if offset_key == ESCALATION:
                due_at = getattr(self.period, deadline)
                return escalation_reply(deadline, units, due_at, self.now) if due_at else None
            if deadline != APPRAISAL or self.period.appraisal_due is None:
                return None
            return appraisal_reply(units, self.period.appraisal_due, self.now)
        task = self.task_for(member, deadline)
        if task is None:
            return None
        return reminder_reply(role, task, self.works[member.unit_id], self.now, self.period.id or 0)

    def task_for(self, member: Member, deadline: str) -> Task | None:
        """A respondent's or leader's work for `deadline`: their unit's."""
        work = self.works.get(member.unit_id)
        if work is None or Role(member.role) not in (Role.RESPONDENT, Role.LEADER):
            return None
        return unit_task(deadline, work, self.now)


@dataclass
class ReminderScheduler:
    db: Database
    clock: Callable[[], dt.datetime] = utc_now
    escapes: dict[str, Callable[[str], str]] = field(default_factory=dict)
    on_queued: Callable[[], None] | None = None

    def tick(self, now: dt.datetime | None = None) -> list[Planned]:
        """Queue every reminder due by `now`; returns what it queued (and what it deferred)."""
        at = now or self.clock()
        with self.db.session() as s:
            planned = self.plan(s, at, write=True)
        if planned and self.on_queued is not None:
            self.on_queued()
        return planned

    def dry_run(self, now: dt.datetime | None = None) -> list[Planned]:
        at = now or self.clock()
        with self.db.session() as s:
            return self.plan(s, at, write=False)

    def remind_unit(
        self, unit_id: int, now: dt.datetime | None = None, operator: str | None = None
    ) -> list[Planned]:
        """Remind one unit's reachable respondents and leaders at once, on an operator's request
        rather than the policy's schedule (quiet hours are the operator's call): each is told what is
        left for the unit's most pressing deadline, as a scheduled reminder would tell it. Recorded in
        the ledger under its own key (`manual@<time>`), queued in the outbox, audited. Nothing is sent
        when the unit has nothing left to do."""
        at = now or self.clock()
        out: list[Planned] = []
        with self.db.session() as s:
            for period in open_periods(s):
                assert period.id is not None
                framework = catalog.framework(f"{period.framework_id}@{period.framework_version}")
                states = unit_states(s, period, framework)
                ctx = _Context(period, at, {st.unit.id: st.work for st in states.values() if st.unit.id})
                if unit_id not in ctx.works:
                    continue
                told: list[int] = []
                for member in reachable_members(s, [unit_id]):
                    assert member.id is not None
                    for deadline in (RETURNED, SUPPLEMENT, SELF_ASSESSMENT):
                        reply = ctx.reply_for(member, deadline, MANUAL)
                        if reply is None:
                            continue
                        due = Due(deadline, f"{MANUAL}@{at.isoformat()}", at, at)
                        ledger_id = insert_ledger(
                            s, member.id, period.id, deadline, due, "queued", at, operator
                        )
                        if ledger_id is not None:
                            self._queue(s, member, ledger_id, reply, at)
                            out.append(self._planned(member, ctx, deadline, due.offset_key, at, False, reply))
                            told.append(member.id)
                        break
                if told:
                    audit_manual_reminder(s, period.id, unit_id, told, at, operator)
        if out and self.on_queued is not None:
            self.on_queued()
        return out

    def plan(self, s: Session, now: dt.datetime, *, write: bool) -> list[Planned]:
        out: list[Planned] = []
        for period in open_periods(s):
            out += self._period(s, period, now, write)
        return out

    def _period(self, s: Session, period: Period, now: dt.datetime, write: bool) -> list[Planned]:
        assert period.id is not None
        framework = catalog.framework(f"{period.framework_id}@{period.framework_version}")
        policy = Policy.from_json(period.reminder_policy_json)
        states = unit_states(s, period, framework)
        ctx = _Context(period, now, {st.unit.id: st.work for st in states.values() if st.unit.id is not None})
        for unit_id, reviewers in reviewers_by_unit(s).items():
            if unit_id in ctx.works:
                for reviewer in reviewers:
                    if reviewer.id is not None and not reviewer.paused_reminders:
                        ctx.scopes.setdefault(reviewer.id, (reviewer, []))[1].append(ctx.works[unit_id])
        ledger = _ledger(s, period.id)
        out: list[Planned] = []
        for member, deadline, due in self._due(s, ctx, policy):
            if member.id is None:
                continue
            older = [o for o in due.superseded if _unsent(ledger, (member.id, deadline, o.offset_key))]
            key = (member.id, deadline, due.offset_key)
            if key in ledger and not older:
                continue
            reply = ctx.reply_for(member, deadline, due.offset_key)
            if reply is None:
                continue
            status = "deferred" if due.send_at > now else "queued"
            if write:
                if not self._supersede(s, member.id, period.id, deadline, older, due, ledger, now):
                    status = "superseded"  # an older one went out in this very moment: never both
                if key in ledger:
                    continue
                ledger_id = insert_ledger(s, member.id, period.id, deadline, due, status, now)
                if ledger_id is None:
                    continue  # another scheduler got there first
                ledger[key] = (ledger_id, status)
                if status == "queued":
                    self._queue(s, member, ledger_id, reply, now)
            elif key in ledger:
                continue
            if status != "superseded":
                deferred = status == "deferred"
                out.append(self._planned(member, ctx, deadline, due.offset_key, due.send_at, deferred, reply))
        if write and allowed_time(now, policy) == now:  # a held reminder waits out quiet hours, even late
            out += self._promote(s, ctx)
        return out

    def _supersede(
        self,
        s: Session,
        member_id: int,
        period_id: int,
        deadline: str,
        older: list[Due],
        by: Due,
        ledger: dict[tuple[int, str, str], tuple[int, str]],
        now: dt.datetime,
    ) -> bool:
        """Record the older reminders `by` replaces as superseded; False if one of them was sent meanwhile
        (by another scheduler, in this same moment)."""
        detail = f"superseded by {by.offset_key}"
        for old in older:
            key = (member_id, deadline, old.offset_key)
            if key in ledger:
                if not supersede(s, ledger[key][0], detail):
                    return False
                ledger[key] = (ledger[key][0], "superseded")
                continue
            ledger_id = insert_ledger(s, member_id, period_id, deadline, old, "superseded", now, detail)
            if ledger_id is not None:
                ledger[key] = (ledger_id, "superseded")
        return True

    def _due(self, s: Session, ctx: _Context, policy: Policy) -> list[tuple[Member, str, Due]]:
        """Every (member, deadline, reminder) the policy wants by now, before checking the ledger."""
        items: list[tuple[Member, str, Due]] = []
        for member in reachable_members(s, ctx.works):
            for deadline in (SELF_ASSESSMENT, SUPPLEMENT, RETURNED):
                task = ctx.task_for(member, deadline)
                due = due_now(deadline, task.due_at, policy, ctx.now, tag=task.tag) if task else None
                if due is not None:
                    items.append((member, deadline, due))
        for reviewer, _ in ctx.scopes.values():
            if ctx.period.appraisal_due is not None:
                due = due_now(APPRAISAL, ctx.period.appraisal_due, policy, ctx.now)
                if due is not None:
                    items.append((reviewer, APPRAISAL, due))
            for deadline in (SELF_ASSESSMENT, SUPPLEMENT):
                due_at = getattr(ctx.period, deadline)
                escalation = escalation_due(due_at, policy, ctx.now) if due_at is not None else None
                if escalation is not None:
                    items.append((reviewer, deadline, escalation))
        return items

    def _promote(self, s: Session, ctx: _Context) -> list[Planned]:
        """Deferred reminders whose time has come go out now, with the work as it stands now."""
        out: list[Planned] = []
        for r in ready_deferred(s, ctx.now):
            if r.period_id != ctx.period.id or r.id is None:
                continue
            member = s.get(Member, r.member_id)
            reply = ctx.reply_for(member, r.deadline, r.offset_key) if member is not None else None
            if member is None or reply is None:
                mark_reminder(s, r.id, "skipped", "nothing left to remind about")
                continue
            self._queue(s, member, r.id, reply, ctx.now)
            out.append(self._planned(member, ctx, r.deadline, r.offset_key, ctx.now, False, reply))
        return out

    def _planned(
        self,
        member: Member,
        ctx: _Context,
        deadline: str,
        offset: str,
        at: dt.datetime,
        deferred: bool,
        reply: Reply,
    ) -> Planned:
        assert member.id is not None
        text = render(reply, member.language, self.escapes.get(member.channel, str)).text
        unit = ctx.works[member.unit_id].unit_name if member.unit_id in ctx.works else ""
        return Planned(member.id, member.channel, member.chat_id, unit, deadline, offset, at, deferred, text)

    def _queue(self, s: Session, member: Member, ledger_id: int, reply: Reply, now: dt.datetime) -> None:
        rendered = render(reply, member.language, self.escapes.get(member.channel, str))
        payload = replace(rendered, reminder=True).to_json()
        (outbox_id,) = queue_replies(
            s,
            member.channel,
            member.chat_id,
            member.id,
            [payload],
            now,
            priority=OUTBOX_PRIORITY_REMINDER,
            dedupe_key=f"reminder:{ledger_id}",  # a second guard: one outbox row per ledger row
        )
        set_outbox(s, ledger_id, outbox_id)


def _unsent(ledger: dict[tuple[int, str, str], tuple[int, str]], key: tuple[int, str, str]) -> bool:
    """A reminder not recorded yet, or recorded and held back: one that a more recent one can replace."""
    return key not in ledger or ledger[key][1] == "deferred"


def _ledger(s: Session, period_id: int) -> dict[tuple[int, str, str], tuple[int, str]]:
    """(member, deadline, offset) → (ledger id, status) of the period's reminders so far."""
    return {
        (r.member_id, r.deadline, r.offset_key): (r.id or 0, r.status)
        for r in s.exec(select(Reminder).where(Reminder.period_id == period_id))
    }


def start(
    scheduler: ReminderScheduler, interval_seconds: int = 60, after: Callable[[], None] | None = None
) -> AsyncIOScheduler:
    """A running APScheduler job that ticks in a worker thread (the database calls block), then
    calls `after` on the event loop (to wake the outbox sender)."""
    aps = AsyncIOScheduler(timezone="Asia/Ho_Chi_Minh")

    async def job() -> None:
        try:
            queued = await asyncio.to_thread(scheduler.tick)
        except Exception:  # one bad tick must not stop the next
            log.exception("reminder tick failed")
            return
        if queued and after is not None:
            after()

    aps.add_job(
        job,
        "interval",
        seconds=interval_seconds,
        max_instances=1,
        coalesce=True,
        next_run_time=dt.datetime.now(dt.UTC),
    )
    aps.start()
    return aps
