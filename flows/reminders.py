"""Reminders as a pure function of deadlines, progress, policy and the time.

For each deadline of a period the policy names offsets (7, 3 and 1 days before, and the morning of
the day); a reminder's planned time is that day at the send hour, moved forward out of quiet hours
(21:00–07:00) and weekends — a reminder missed while the bot was down too. Only the most recent due
offset is sent, the older ones are superseded: after a day of downtime a member gets one reminder, not
three, and one held over a weekend gives way to the next one planned on the day it would arrive.

Who has work follows from the assessment's state and the deadline the reminder is about (`unit_task`):
answers until the unit submits (self-assessment deadline), evidence until the supplement deadline even
once submitted, a returned unit's returned indicators until the reviewer's own deadline, nothing once
appraised. The message says what is left for that deadline — "Còn 12 chỉ tiêu chưa trả lời, 5 chỉ tiêu
thiếu minh chứng, hạn 15/01/2027 17:00 — còn 3 ngày" — with a button to the first thing the member can
still do.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from flows.intents import payload
from flows.model import AssessmentStatus, Button, Msg, Reply, Role, msg
from scoring.answers import VIETNAM_TZ
from scoring.messages import N_

SELF_ASSESSMENT = "self_assessment_due"
SUPPLEMENT = "supplement_due"
APPRAISAL = "appraisal_due"
DEADLINES = (SELF_ASSESSMENT, SUPPLEMENT, APPRAISAL)
RETURNED = "returned_due"  # not a period deadline: the reviewer's own one for the indicators it returned
ESCALATION = "escalation"


@dataclass(frozen=True)
class Policy:
    offsets_days: tuple[int, ...] = (7, 3, 1, 0)
    send_hour: int = 8  # local time of a reminder on its day
    quiet_start: dt.time = dt.time(21, 0)
    quiet_end: dt.time = dt.time(7, 0)
    skip_weekends: bool = True
    escalation_days: int = 1  # reviewers get a digest of lagging units this many days before

    def to_json(self) -> dict[str, Any]:
        return {
            "offsets_days": list(self.offsets_days),
            "send_hour": self.send_hour,
            "quiet_start": self.quiet_start.strftime("%H:%M"),
            "quiet_end": self.quiet_end.strftime("%H:%M"),
            "skip_weekends": self.skip_weekends,
            "escalation_days": self.escalation_days,
        }

    @classmethod
    def from_json(cls, text: str | None) -> Policy:
        if not text:
            return cls()
        data = json.loads(text)
        base = cls()
        return replace(
            base,
            offsets_days=tuple(int(d) for d in data.get("offsets_days", base.offsets_days)),
            send_hour=int(data.get("send_hour", base.send_hour)),
            quiet_start=dt.time.fromisoformat(data.get("quiet_start", "21:00")),
            quiet_end=dt.time.fromisoformat(data.get("quiet_end", "07:00")),
            skip_weekends=bool(data.get("skip_weekends", base.skip_weekends)),
            escalation_days=int(data.get("escalation_days", base.escalation_days)),
        )


def _quiet(policy: Policy, t: dt.time) -> bool:
    if policy.quiet_start > policy.quiet_end:  # spans midnight, as 21:00–07:00 does
        return t >= policy.quiet_start or t < policy.quiet_end
    return policy.quiet_start <= t < policy.quiet_end


def allowed_time(at: dt.datetime, policy: Policy) -> dt.datetime:
    """`at`, or the first moment after it outside quiet hours and (if the policy says so) weekends."""
    local = at.astimezone(VIETNAM_TZ)
    for _ in range(16):
        if policy.skip_weekends and local.weekday() >= 5:
            days = 7 - local.weekday()
            local = dt.datetime.combine(local.date() + dt.timedelta(days=days), policy.quiet_end, VIETNAM_TZ)
            continue
        if _quiet(policy, local.time()):
            day = local.date() if local.time() < policy.quiet_end else local.date() + dt.timedelta(days=1)
            local = dt.datetime.combine(day, policy.quiet_end, VIETNAM_TZ)
            continue
        break
    return local


def planned_time(deadline: dt.datetime, days: int, policy: Policy) -> dt.datetime:
    """The send hour, `days` local days before the deadline (never at or after the deadline itself)."""
    day = deadline.astimezone(VIETNAM_TZ).date() - dt.timedelta(days=days)
    at = dt.datetime.combine(day, dt.time(policy.send_hour), VIETNAM_TZ)
    return min(at, deadline - dt.timedelta(hours=1))


@dataclass(frozen=True)
class Due:
    deadline: str
    offset_key: str
    planned_at: dt.datetime
    send_at: dt.datetime
    superseded: tuple[Due, ...] = ()  # older offsets this one replaces: recorded, never sent


def _send_time(
    planned: dt.datetime, due_at: dt.datetime, policy: Policy, now: dt.datetime
) -> dt.datetime | None:
    """When a reminder planned at `planned` may go, seen at `now`: at once, or the next moment outside
    quiet hours and weekends — a missed one is caught up there too, never at 22:00. None when no such
    moment is left before the deadline, unless the policy itself planned the reminder inside quiet hours
    (a deadline inside them): then better a late-evening message than none."""
    send_at = allowed_time(max(planned, now), policy)
    if send_at < due_at:
        return send_at
    if allowed_time(planned, policy) > planned:
        return max(planned, now)
    return None


def _day(at: dt.datetime) -> dt.date:
    return at.astimezone(VIETNAM_TZ).date()


def due_now(
    deadline_name: str, due_at: dt.datetime, policy: Policy, now: dt.datetime, *, tag: str = ""
) -> Due | None:
    """The one reminder the policy wants for this deadline by `now` (its ledger key the offset, "3d",
    followed by `tag`): the most recent offset reached, the older ones superseded. A reminder that would
    arrive on the day a more recent offset is planned — Saturday's held to Monday, a missed one caught up
    at 07:00 — gives way to that one, so a member never gets two for one deadline in a morning."""
    if now >= due_at:
        return None
    planned = {days: planned_time(due_at, days, policy) for days in set(policy.offsets_days)}
    reached = sorted(days for days, at in planned.items() if at <= now)
    if not reached:
        return None
    days = reached[0]
    send_at = _send_time(planned[days], due_at, policy, now)
    while send_at is not None:
        newer = [d for d in planned if d < days and _day(planned[d]) <= _day(send_at)]
        if not newer:
            break
        days = min(newer)
        send_at = _send_time(planned[days], due_at, policy, now)
    if send_at is None:
        return None
    older = tuple(
        Due(deadline_name, f"{d}d{tag}", planned[d], planned[d])
        for d in sorted(planned)
        if d > days and planned[d] <= now
    )
    return Due(deadline_name, f"{days}d{tag}", planned[days], send_at, older)


def escalation_due(due_at: dt.datetime, policy: Policy, now: dt.datetime) -> Due | None:
    planned = planned_time(due_at, policy.escalation_days, policy)
    if now >= due_at or planned > now:
        return None
    send_at = _send_time(planned, due_at, policy, now)
    return None if send_at is None else Due("", ESCALATION, planned, send_at)


# -- who has work, and what to tell them ---------------------------------------------------------

# What a unit may still do, by the assessment's state: answers only until it is submitted (and its own
# self-assessment deadline), evidence until the supplement deadline even once submitted, a returned
# unit the returned indicators until the reviewer's deadline for them, an appraised one nothing.
_ANSWERING = (AssessmentStatus.DRAFT, AssessmentStatus.AWAITING_LEADER)
_SUPPLEMENTING = (*_ANSWERING, AssessmentStatus.SUBMITTED)


@dataclass(frozen=True)
class UnitWork:
    unit_name: str
    status: str  # an AssessmentStatus value
    unanswered: tuple[str, ...] = ()
    evidence_missing: tuple[str, ...] = ()  # points claimed without the required evidence
    deadlines: Mapping[str, dt.datetime] = field(default_factory=dict)  # the unit's own, extensions applied
    returned: Mapping[str, dt.datetime] = field(default_factory=dict)  # indicator → the reviewer's deadline


@dataclass(frozen=True)
class Task:
    """What a unit has left to do for one deadline: the indicators to answer, the indicators whose
    evidence it can still send, or (awaiting the leader) only the leader's confirmation."""

    deadline: str
    due_at: dt.datetime
    unanswered: tuple[str, ...] = ()
    evidence: tuple[str, ...] = ()
    confirm: bool = False

    @property
    def tag(self) -> str:
        """Part of the ledger key: each reviewer deadline of a returned unit gets its own reminders."""
        return f"@{self.due_at.astimezone(VIETNAM_TZ):%Y-%m-%dT%H:%M}" if self.deadline == RETURNED else ""


def unit_task(deadline: str, work: UnitWork, now: dt.datetime) -> Task | None:
    """What the unit still has to do for `deadline` at `now`, or None when it has nothing to do."""
    status = AssessmentStatus(work.status)
    if deadline == RETURNED:
        open_ = {code: due for code, due in work.returned.items() if now < due}
        if status is not AssessmentStatus.RETURNED or not open_:
            return None
        return Task(RETURNED, min(open_.values()), evidence=tuple(open_))
    due_at = work.deadlines.get(deadline)
    if due_at is None or now >= due_at:
        return None
    if deadline == SELF_ASSESSMENT and status in _ANSWERING:
        confirm = status is AssessmentStatus.AWAITING_LEADER
        return Task(deadline, due_at, work.unanswered, work.evidence_missing, confirm=confirm)
    if deadline == SUPPLEMENT and status in _SUPPLEMENTING and work.evidence_missing:
        return Task(deadline, due_at, evidence=work.evidence_missing)
    return None


def days_left(due_at: dt.datetime, now: dt.datetime) -> int:
    return (due_at.astimezone(VIETNAM_TZ).date() - now.astimezone(VIETNAM_TZ).date()).days


def _when(due_at: dt.datetime, now: dt.datetime) -> Msg:
    left = days_left(due_at, now)
    if left <= 0:
        return msg(N_("remind.today"), deadline=due_at)
    return msg(N_("remind.days_left"), deadline=due_at, days=left)


def reminder_reply(role: Role, task: Task, work: UnitWork, now: dt.datetime, period_id: int) -> Reply:
    """The reminder a respondent or leader gets: what is left for this deadline, and a button to the
    first thing they can still do (an answer only while answers may change)."""
    when = _when(task.due_at, now)
    if task.confirm:
        key = N_("remind.leader_confirm") if role is Role.LEADER else N_("remind.awaiting_leader")
        return Reply((msg(key, unit=work.unit_name, when=when),))
    button: tuple[Button, ...] = ()
    if task.unanswered:
        code = task.unanswered[0]
        button = (Button(msg(N_("button.go_first_missing"), code=code), payload("go", period_id, code)),)
    elif task.evidence:
        code = task.evidence[0]
        button = (Button(msg(N_("button.send_evidence"), code=code), payload("go", period_id, code)),)
    if task.deadline == RETURNED:
        text = msg(
            N_("remind.returned"),
            unit=work.unit_name,
            count=len(task.evidence),
            codes=", ".join(task.evidence),
            when=when,
        )
    elif task.deadline == SUPPLEMENT and work.status == AssessmentStatus.SUBMITTED:
        # submitted answers are final, its evidence is not (until this deadline): say so, or it looks done
        text = msg(
            N_("remind.supplement_submitted"),
            unit=work.unit_name,
            evidence=len(task.evidence),
            codes=", ".join(task.evidence),
            when=when,
        )
    elif task.deadline == SUPPLEMENT:
        text = msg(N_("remind.supplement"), unit=work.unit_name, evidence=len(task.evidence), when=when)
    elif task.unanswered:
        text = msg(
            N_("remind.self_assessment"),
            unit=work.unit_name,
            unanswered=len(task.unanswered),
            evidence=len(task.evidence),
            when=when,
        )
    else:
        text = msg(N_("remind.submit"), unit=work.unit_name, when=when)
    return Reply((text,), button)


def appraisal_reply(units: Sequence[UnitWork], due_at: dt.datetime, now: dt.datetime) -> Reply | None:
    """A reviewer's reminder of the appraisals not closed: submitted units waiting for them, returned
    units supplementing; None when every unit in their scope is closed or still self-assessing."""
    waiting = sum(1 for w in units if w.status == AssessmentStatus.SUBMITTED)
    returned = sum(1 for w in units if w.status == AssessmentStatus.RETURNED)
    when = _when(due_at, now)
    if not returned:
        return Reply((msg(N_("remind.appraisal"), count=waiting, when=when),)) if waiting else None
    return Reply(
        (
            msg(
                N_("remind.appraisal_open"),
                count=waiting + returned,
                waiting=waiting,
                returned=returned,
                when=when,
            ),
        )
    )


def _lagging_item(work: UnitWork, task: Task) -> Msg:
    if task.confirm:
        return msg(N_("remind.escalation_item_confirm"), unit=work.unit_name)
    if task.deadline == SUPPLEMENT:
        return msg(N_("remind.escalation_item_evidence"), unit=work.unit_name, evidence=len(task.evidence))
    if not task.unanswered:
        return msg(N_("remind.escalation_item_submit"), unit=work.unit_name)
    return msg(
        N_("remind.escalation_item"),
        unit=work.unit_name,
        unanswered=len(task.unanswered),
        evidence=len(task.evidence),
    )


def escalation_reply(
    deadline: str, units: Sequence[UnitWork], due_at: dt.datetime, now: dt.datetime
) -> Reply | None:
    """The reviewer's digest before `deadline`: only the units that still have work for it by then
    (a unit whose own deadline was extended past it is not late); None when no unit lags."""
    lagging = [
        (w, task)
        for w in units
        if (task := unit_task(deadline, w, now)) is not None and task.due_at <= due_at
    ]
    if not lagging:
        return None
    key = {
        SELF_ASSESSMENT: N_("deadline.self_assessment_due"),
        SUPPLEMENT: N_("deadline.supplement_due"),
    }.get(deadline, N_("deadline.appraisal_due"))
    header = msg(N_("remind.escalation"), count=len(lagging), deadline=msg(key), at=due_at)
    return Reply((header, *(_lagging_item(w, task) for w, task in lagging)))  # a line per unit
