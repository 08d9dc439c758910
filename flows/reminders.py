"""Reminders as a pure function of deadlines, progress, policy and the time.

For each deadline of a period the policy names offsets (7, 3 and 1 days before, and the morning of
the day); a reminder's planned time is that day at the send hour, moved forward out of quiet hours
(21:00–07:00) and weekends — never dropped. Only the most recent due offset is sent: after a day of
downtime a member gets one reminder, not three. Who has work, and what the message says, come from
the unit's progress: "Còn 12 chỉ tiêu chưa trả lời, 5 chỉ tiêu thiếu minh chứng, hạn nộp 15/01/2027 —
còn 3 ngày", with a button to the first missing indicator.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from flows.intents import payload
from flows.model import Button, Reply, Role, msg
from scoring.answers import VIETNAM_TZ
from scoring.messages import N_

SELF_ASSESSMENT = "self_assessment_due"
SUPPLEMENT = "supplement_due"
APPRAISAL = "appraisal_due"
DEADLINES = (SELF_ASSESSMENT, SUPPLEMENT, APPRAISAL)
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

    @property
    def deferred(self) -> bool:
        return self.send_at > self.planned_at


def due_now(deadline_name: str, due_at: dt.datetime, policy: Policy, now: dt.datetime) -> Due | None:
    """The one reminder the policy wants for this deadline by `now`: the latest offset already reached."""
    if now >= due_at:
        return None
    reached = [
        (days, planned_time(due_at, days, policy))
        for days in sorted(policy.offsets_days)
        if planned_time(due_at, days, policy) <= now
    ]
    if not reached:
        return None
    days, planned = reached[0]
    send_at = allowed_time(planned, policy)
    if send_at >= due_at:
        send_at = planned  # a deadline inside quiet hours: better a late-evening message than none
    return Due(deadline_name, f"{days}d", planned, send_at)


def escalation_due(due_at: dt.datetime, policy: Policy, now: dt.datetime) -> Due | None:
    planned = planned_time(due_at, policy.escalation_days, policy)
    if now >= due_at or planned > now:
        return None
    send_at = allowed_time(planned, policy)
    return Due("", ESCALATION, planned, planned if send_at >= due_at else send_at)


# -- who has work, and what to tell them ---------------------------------------------------------


@dataclass(frozen=True)
class UnitWork:
    unit_name: str
    status: str  # draft | awaiting_leader | submitted
    unanswered: tuple[str, ...] = ()
    evidence_missing: tuple[str, ...] = ()
    deadlines: Mapping[str, dt.datetime] = field(default_factory=dict)  # the unit's own, extensions applied


def has_work(role: Role, deadline: str, work: UnitWork, pending_appraisals: int = 0) -> bool:
    if deadline == SELF_ASSESSMENT:
        if role is Role.RESPONDENT:
            return work.status != "submitted"
        if role is Role.LEADER:
            return work.status != "submitted"
        return False
    if deadline == SUPPLEMENT:
        return role in (Role.RESPONDENT, Role.LEADER) and bool(work.evidence_missing)
    if deadline == APPRAISAL:
        return role is Role.REVIEWER and pending_appraisals > 0
    return False


def days_left(due_at: dt.datetime, now: dt.datetime) -> int:
    return (due_at.astimezone(VIETNAM_TZ).date() - now.astimezone(VIETNAM_TZ).date()).days


def reminder_reply(
    role: Role,
    deadline: str,
    work: UnitWork,
    due_at: dt.datetime,
    now: dt.datetime,
    period_id: int,
    pending_appraisals: int = 0,
) -> Reply:
    left = days_left(due_at, now)
    common: dict[str, Any] = {"deadline": due_at, "days": left}
    when = msg(N_("remind.today"), deadline=due_at) if left <= 0 else msg(N_("remind.days_left"), **common)
    buttons: Sequence[Button] = ()
    first = (work.unanswered or work.evidence_missing or ("",))[0]
    if first:
        buttons = (Button(msg(N_("button.go_first_missing"), code=first), payload("go", period_id, first)),)
    if deadline == APPRAISAL:
        return Reply((msg(N_("remind.appraisal"), count=pending_appraisals, when=when),))
    if deadline == SUPPLEMENT:
        return Reply(
            (
                msg(
                    N_("remind.supplement"),
                    unit=work.unit_name,
                    evidence=len(work.evidence_missing),
                    when=when,
                ),
            ),
            tuple(buttons),
        )
    if role is Role.LEADER and work.status == "awaiting_leader":
        return Reply((msg(N_("remind.leader_confirm"), unit=work.unit_name, when=when),))
    if not work.unanswered and not work.evidence_missing:
        return Reply((msg(N_("remind.submit"), unit=work.unit_name, when=when),))
    return Reply(
        (
            msg(
                N_("remind.self_assessment"),
                unit=work.unit_name,
                unanswered=len(work.unanswered),
                evidence=len(work.evidence_missing),
                when=when,
            ),
        ),
        tuple(buttons),
    )


def escalation_reply(deadline: str, lagging: Sequence[UnitWork], due_at: dt.datetime) -> Reply:
    items = tuple(
        msg(
            N_("remind.escalation_item"),
            unit=w.unit_name,
            unanswered=len(w.unanswered),
            evidence=len(w.evidence_missing),
        )
        for w in lagging
    )
    key = {
        SELF_ASSESSMENT: N_("deadline.self_assessment_due"),
        SUPPLEMENT: N_("deadline.supplement_due"),
    }.get(deadline, N_("deadline.appraisal_due"))
    return Reply(
        (msg(N_("remind.escalation"), count=len(lagging), deadline=msg(key), at=due_at, units=items),)
    )
