"""Appraisal (thẩm định) in the chat: the reviewer's side of the conversation, pure like the rest.

A reviewer sees the units of their scope that have submitted, opens one and walks its indicators —
those with evidence or a large claim first — seeing the answer, the claimed points and the evidence
(files sent again from the evidence store, citations and links shown). Per indicator they accept,
set the appraised points with a reason, or return it asking for more evidence with a deadline. Each
decision is made against the revision the reviewer was shown: if another reviewer decided in between,
nothing is overwritten and the new state is shown instead. Returns go to the unit's members in one
message; the loop repeats until every indicator has a final decision and the reviewer closes it.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import replace
from decimal import Decimal

from flows import prompts as p
from flows.apply import apply
from flows.intents import Intent, Press, detect, payload, read_payload
from flows.model import (
    FINAL,
    AnswerView,
    AssessmentStatus,
    Attachment,
    Button,
    CloseAppraisal,
    Decide,
    Decision,
    Inbound,
    InboundKind,
    Mode,
    Msg,
    Notice,
    Param,
    Reply,
    ReviewedUnit,
    Role,
    SendReturns,
    SessionState,
    Snapshot,
    Verdict,
    msg,
)
from flows.parse import ascii_int, clean, example_points, folded, parse_number
from scoring.answers import VIETNAM_TZ
from scoring.messages import N_
from scoring.model import Framework, Indicator
from scoring.numbers import ZERO

_DECISION_KEYS = {
    Verdict.ACCEPT: N_("review.decision.accept"),
    Verdict.ADJUST: N_("review.decision.adjust"),
    Verdict.RETURN: N_("review.decision.return"),
}
_STATUS_KEYS = {
    AssessmentStatus.SUBMITTED: N_("review.status.submitted"),
    AssessmentStatus.RETURNED: N_("review.status.returned"),
    AssessmentStatus.APPRAISED: N_("review.status.appraised"),
}
_DATE = re.compile(r"^([0-9]{1,2})/([0-9]{1,2})(?:/([0-9]{4}))?(?:\s+([0-9]{1,2})[:h]([0-9]{2}))?$")
_OPEN = (AssessmentStatus.SUBMITTED, AssessmentStatus.RETURNED)  # a reviewer can still decide
# What a reviewer may type instead of pressing the item's buttons (folded).
_TYPED: dict[str, Verdict | str] = {
    "chap nhan": Verdict.ACCEPT,
    "dong y": Verdict.ACCEPT,
    "dat": Verdict.ACCEPT,
    "ok": Verdict.ACCEPT,
    "accept": Verdict.ACCEPT,
    "dieu chinh": Verdict.ADJUST,
    "dieu chinh diem": Verdict.ADJUST,
    "sua diem": Verdict.ADJUST,
    "adjust": Verdict.ADJUST,
    "yeu cau bo sung": Verdict.RETURN,
    "bo sung": Verdict.RETURN,
    "tra lai": Verdict.RETURN,
    "return": Verdict.RETURN,
    "de sau": "next",
    "tiep": "next",
    "bo qua": "next",
    "next": "next",
    "ket thuc": "close",
    "ket thuc tham dinh": "close",
    "dong tham dinh": "close",
    "gui yeu cau bo sung": "send",
    "gui yeu cau": "send",
}


def _say(
    session: SessionState,
    *replies: Reply,
    events: tuple[Decide | SendReturns | CloseAppraisal, ...] = (),
    notices: tuple[Notice, ...] = (),
) -> Decision:
    return Decision(session, events, replies, notices)


def _line(key: str, /, **params: Param) -> Reply:
    return Reply((msg(key, **params),))


def claimed(ind: Indicator, answer: AnswerView | None) -> Decimal | None:
    """The points the unit claims on an indicator (None when not applicable or unanswered)."""
    if answer is None or answer.not_applicable or answer.value is None:
        return None
    return ind.points(answer.value)


def order(fw: Framework, unit: ReviewedUnit) -> list[str]:
    """Indicators with evidence or a claim of at least half the max first, then the rest, each in order."""

    def weight(ind: Indicator) -> int:
        answer = unit.answers.get(ind.code)
        points = claimed(ind, answer)
        heavy = answer is not None and (
            bool(answer.evidence) or (points is not None and points * 2 >= ind.max_points)
        )
        return 0 if heavy else 1

    return [i.code for i in sorted(fw.indicators, key=weight)]


def _open(unit: ReviewedUnit, code: str) -> bool:
    """Still needs a decision: none yet, or returned and the unit has resubmitted since."""
    d = unit.decisions.get(code)
    if d is None:
        return True
    if d.decision is not Verdict.RETURN or unit.status is not AssessmentStatus.SUBMITTED:
        return False
    return d.at is not None and unit.submitted_at is not None and unit.submitted_at > d.at


def next_open(fw: Framework, unit: ReviewedUnit, after: str | None = None) -> str | None:
    codes = order(fw, unit)
    start = codes.index(after) + 1 if after in codes else 0
    for code in codes[start:] + codes[:start]:
        if _open(unit, code):
            return code
    return None


def _pid(snap: Snapshot) -> int:
    return snap.period.id if snap.period is not None else 0


def queue(snap: Snapshot, session: SessionState, intro: tuple[Msg, ...] = ()) -> Decision:
    review = snap.review
    items = review.queue if review is not None else ()
    if not items:
        return _say(
            replace(session, mode=Mode.REVIEW, unit=None, current=None),
            Reply((*intro, msg(N_("review.queue_empty")))),
        )
    lines = [*intro, msg(N_("review.queue_title"), count=len(items))]
    buttons = []
    for q in items:
        lines.append(
            msg(
                N_("review.queue_item"),
                unit=q.unit_name,
                status=msg(_STATUS_KEYS.get(q.status, N_("review.status.submitted"))),
                decided=q.decided,
                returned=q.returned,
                at=q.submitted_at or msg(N_("welcome.no_deadline")),
            )
        )
        buttons.append(
            Button(
                msg(N_("button.option"), text=q.unit_name),
                payload("rv", _pid(snap), None, f"open:{q.unit_id}"),
            )
        )
    return _say(
        replace(session, mode=Mode.REVIEW, unit=None, current=None), Reply(tuple(lines), tuple(buttons))
    )


def item(snap: Snapshot, session: SessionState, code: str, intro: tuple[Msg, ...] = ()) -> Decision:
    assert snap.period is not None and snap.review is not None and snap.review.unit is not None
    fw = snap.period.framework
    unit = snap.review.unit
    ind = fw.indicator(code)
    assert ind is not None
    answer = unit.answers.get(code)
    decision = unit.decisions.get(code)
    points = claimed(ind, answer)
    lines = [
        *intro,
        msg(
            N_("review.item_header"),
            unit=unit.unit_name,
            position=order(fw, unit).index(code) + 1,
            total=len(fw.indicators),
        ),
        msg(N_("ask.question"), code=code, text=ind.text),
        *p.rule_lines(ind),
        msg(N_("review.answer"), value=p.value_msg(ind, answer.value if answer else None, answer)),
        msg(N_("review.claimed"), points=points if points is not None else ZERO, max=ind.max_points),
    ]
    files: list[Attachment] = []
    if answer is not None and answer.evidence:
        for ev in answer.evidence:
            lines += p.evidence_lines(ev)
            if ev.sha256:
                files.append(Attachment(ev.sha256, ev.label))
    elif ind.evidence.required:
        lines.append(msg(N_("review.no_evidence")))
    if decision is not None:
        lines.append(
            msg(
                N_("review.previous"),
                decision=msg(_DECISION_KEYS[decision.decision]),
                points=decision.points if decision.points is not None else msg(N_("value.none")),
                comment=decision.comment or "",
            )
        )
    rev = decision.revision if decision is not None else 0
    pid = _pid(snap)
    buttons = (
        Button(msg(N_("button.review_accept")), payload("rv", pid, code, f"accept:{rev}")),
        Button(msg(N_("button.review_adjust")), payload("rv", pid, code, f"adjust:{rev}")),
        Button(msg(N_("button.review_return")), payload("rv", pid, code, f"return:{rev}")),
        Button(msg(N_("button.review_next")), payload("rv", pid, code, "next")),
        Button(msg(N_("button.review_queue")), payload("rv", pid, None, "queue")),
    )
    state = replace(session, mode=Mode.REVIEW, current=code, draft=None, seen=rev, misses=0)
    return _say(state, Reply(tuple(lines), buttons, files=tuple(files)))


def summary(snap: Snapshot, session: SessionState, intro: tuple[Msg, ...] = ()) -> Decision:
    assert snap.review is not None and snap.review.unit is not None and snap.period is not None
    unit = snap.review.unit
    total = len(snap.period.framework.indicators)
    counts = {k: sum(1 for d in unit.decisions.values() if d.decision == k) for k in _DECISION_KEYS}
    lines = [
        *intro,
        msg(N_("review.summary"), unit=unit.unit_name, decided=sum(counts.values()), total=total, **counts),
    ]
    pid = _pid(snap)
    buttons: list[Button] = []
    if counts[Verdict.RETURN] and unit.status is not AssessmentStatus.RETURNED:
        buttons.append(Button(msg(N_("button.review_send_returns")), payload("rv", pid, None, "send")))
    if counts[Verdict.RETURN] and unit.status is AssessmentStatus.RETURNED:
        lines.append(msg(N_("review.waiting_supplement")))
    if sum(counts[k] for k in FINAL) == total and unit.status is not AssessmentStatus.APPRAISED:
        buttons.append(Button(msg(N_("button.review_close")), payload("rv", pid, None, "close")))
    buttons.append(Button(msg(N_("button.review_queue")), payload("rv", pid, None, "queue")))
    return _say(
        replace(session, mode=Mode.REVIEW, current=None, draft=None), Reply(tuple(lines), tuple(buttons))
    )


def _continue(
    snap: Snapshot, session: SessionState, after: str | None, intro: tuple[Msg, ...] = ()
) -> Decision:
    assert snap.period is not None and snap.review is not None and snap.review.unit is not None
    code = next_open(snap.period.framework, snap.review.unit, after)
    if code is None:
        return summary(snap, session, intro)
    return item(snap, session, code, intro)


def _decide(
    snap: Snapshot,
    session: SessionState,
    code: str,
    decision: Verdict,
    expected: int,
    *,
    points: Decimal | None = None,
    comment: str | None = None,
    due: dt.datetime | None = None,
    now: dt.datetime,
) -> Decision:
    assert snap.period is not None and snap.review is not None and snap.review.unit is not None
    unit = snap.review.unit
    if unit.status not in _OPEN:
        return summary(snap, session, intro=(msg(N_("review.already_closed"), unit=unit.unit_name),))
    current = unit.decisions.get(code)
    if (current.revision if current else 0) != expected:
        return item(snap, session, code, intro=(msg(N_("review.conflict"), code=code),))
    ind = snap.period.framework.indicator(code)
    assert ind is not None
    self_points = claimed(ind, unit.answers.get(code))
    if decision is Verdict.ACCEPT:
        points = self_points if self_points is not None else ZERO
    event = Decide(
        unit.assessment_id, code, decision, points, self_points, comment, due, expected, unit.status
    )
    shown = points if points is not None else msg(N_("value.none"))
    ack = msg(N_("review.decided"), code=code, decision=msg(_DECISION_KEYS[decision]), points=shown)
    after = apply(snap, (event,), now)
    result = _continue(after, session, code, intro=(ack,))
    return replace(result, events=(event,))


def _default_due(now: dt.datetime) -> dt.datetime:
    day = now.astimezone(VIETNAM_TZ).date() + dt.timedelta(days=7)
    return dt.datetime.combine(day, dt.time(17, 0), VIETNAM_TZ)


def parse_due(text: str, now: dt.datetime) -> dt.datetime | None:
    """A supplement deadline after `now`: "25/01/2027", "25/01/2027 17:00"; without a year ("18/12"),
    the next such date. 17:00 Vietnam time unless a time is given."""
    m = _DATE.match(clean(text))
    if m is None:
        return None
    day, month, year, hour, minute = m.groups()
    today = now.astimezone(VIETNAM_TZ).year
    for y in [int(year)] if year else [today, today + 1]:
        try:
            due = dt.datetime(y, int(month), int(day), int(hour or 17), int(minute or 0), tzinfo=VIETNAM_TZ)
        except ValueError:
            continue
        if due > now:
            return due
    return None


def _send_returns(snap: Snapshot, session: SessionState, now: dt.datetime) -> Decision:
    assert snap.review is not None and snap.review.unit is not None and snap.period is not None
    unit = snap.review.unit
    returned = [(c, d) for c, d in unit.decisions.items() if d.decision is Verdict.RETURN]
    if not returned or unit.status is not AssessmentStatus.SUBMITTED:
        return summary(snap, session)
    items = tuple(
        msg(
            N_("review.returned_item"),
            code=c,
            comment=d.comment or "",
            due=d.supplement_due or msg(N_("welcome.no_deadline")),
        )
        for c, d in sorted(returned)
    )
    notice_reply = Reply((msg(N_("review.returned_notice"), count=len(returned), items=items),))
    notices = tuple(
        Notice(role, notice_reply, unit_id=unit.unit_id) for role in (Role.RESPONDENT, Role.LEADER)
    )
    event = SendReturns(unit.assessment_id, unit.status, unit.decided)
    after = apply(snap, (event,), now)
    result = summary(
        after, session, intro=(msg(N_("review.returns_sent"), unit=unit.unit_name, count=len(returned)),)
    )
    return replace(result, events=(event,), notices=notices)


def _close(snap: Snapshot, session: SessionState) -> Decision:
    assert snap.review is not None and snap.review.unit is not None and snap.period is not None
    unit = snap.review.unit
    total = len(snap.period.framework.indicators)
    if unit.status not in _OPEN:
        return summary(snap, session)
    if sum(1 for d in unit.decisions.values() if d.decision in FINAL) != total:
        return summary(snap, session, intro=(msg(N_("review.cannot_close")),))
    notice_reply = Reply((msg(N_("review.closed_notice"), unit=unit.unit_name),))
    notices = tuple(
        Notice(role, notice_reply, unit_id=unit.unit_id) for role in (Role.RESPONDENT, Role.LEADER)
    )
    result = queue(snap, session, intro=(msg(N_("review.closed"), unit=unit.unit_name),))
    event = CloseAppraisal(unit.assessment_id, unit.status, unit.decided)
    return replace(result, events=(event,), notices=notices)


def _stale(snap: Snapshot, session: SessionState, now: dt.datetime) -> Decision:
    """A button that no longer applies: the reviewer stays where they were, told so."""
    intro = (msg(N_("button.stale")),)
    review = snap.review
    if review is None or review.unit is None or session.unit != review.unit.unit_id:
        return queue(snap, session, intro=intro)
    code = session.current
    if code is None or snap.period is None or snap.period.framework.indicator(code) is None:
        return summary(snap, session, intro=intro)
    if session.mode is Mode.REVIEW:
        return item(snap, session, code, intro=intro)
    prompt = _prompt(snap, code, session.mode, now)
    return _say(session, Reply((*intro, *prompt.lines), prompt.buttons))


def _prompt(snap: Snapshot, code: str, mode: Mode, now: dt.datetime) -> Reply:
    """What a reviewer composing a decision on `code` is asked in `mode`."""
    assert snap.period is not None
    if mode is Mode.REVIEW_POINTS:
        ind = snap.period.framework.indicator(code)
        assert ind is not None
        return _line(N_("review.ask_points"), code=code, max=ind.max_points)
    if mode is Mode.REVIEW_COMMENT:
        return _line(N_("review.ask_comment"), code=code)
    if mode is Mode.REVIEW_RETURN:
        return _line(N_("review.ask_return"), code=code)
    default = _default_due(now)
    button = Button(
        msg(N_("button.review_default_due"), at=default), payload("rv", _pid(snap), code, "due:default")
    )
    return Reply((msg(N_("review.ask_due"), code=code),), (button,))


def _press(snap: Snapshot, session: SessionState, press: Press, now: dt.datetime) -> Decision:
    stale = _stale(snap, session, now)
    if snap.period is None or press.period_id != snap.period.id or press.action != "rv":
        return stale
    arg = press.arg
    if arg == "queue":
        return queue(snap, session)
    if arg.startswith("open:"):
        unit_id = ascii_int(arg.split(":", 1)[1])
        if snap.review is None or not any(q.unit_id == unit_id for q in snap.review.queue):
            return stale  # not a unit of this reviewer's scope
        opened = replace(session, unit=unit_id, mode=Mode.REVIEW, current=None)
        if snap.review.unit is None or snap.review.unit.unit_id != unit_id:
            return queue(snap, session, intro=(msg(N_("button.stale")),))  # not read for this message
        return _continue(snap, opened, None)
    review = snap.review
    if review is None or review.unit is None or review.unit.unit_id != session.unit:
        return stale
    if arg == "send":
        return _send_returns(snap, session, now)
    if arg == "close":
        return _close(snap, session)
    code = press.code
    if code != session.current or snap.period.framework.indicator(code) is None:
        return stale
    if arg == "next":
        return _continue(snap, session, code)
    if arg == "due:default":
        if session.mode is not Mode.REVIEW_DUE:
            return stale
        due = _default_due(now)
        return _decide(
            snap, session, code, Verdict.RETURN, session.seen, comment=session.draft, due=due, now=now
        )
    action, _, rev = arg.partition(":")
    expected = ascii_int(rev)
    if expected is None:
        return stale
    return _act(snap, session, code, action, expected, now) or stale


def _act(
    snap: Snapshot, session: SessionState, code: str, action: str, expected: int, now: dt.datetime
) -> Decision | None:
    """Accept, or start an adjustment or a return of `code`, as decided on revision `expected`."""
    assert snap.period is not None and snap.review is not None and snap.review.unit is not None
    unit = snap.review.unit
    if unit.status not in _OPEN:
        return summary(snap, session, intro=(msg(N_("review.already_closed"), unit=unit.unit_name),))
    if action == "accept":
        return _decide(snap, session, code, Verdict.ACCEPT, expected, now=now)
    if action == "adjust":
        ind = snap.period.framework.indicator(code)
        assert ind is not None
        state = replace(session, mode=Mode.REVIEW_POINTS, seen=expected, draft=None)
        return _say(state, _line(N_("review.ask_points"), code=code, max=ind.max_points))
    if action == "return":
        state = replace(session, mode=Mode.REVIEW_RETURN, seen=expected, draft=None)
        return _say(state, _line(N_("review.ask_return"), code=code))
    return None


def _form(snap: Snapshot, session: SessionState, inbound: Inbound, now: dt.datetime) -> Decision:
    """A decision made in the web workspace: the same checks and events as the chat's buttons and
    typed steps, with everything given at once (the unit, points and reason, what is asked and by
    when)."""
    press = read_payload(inbound.payload)
    unit_id = ascii_int(inbound.field("unit"))
    review = snap.review
    if (
        press is None
        or press.action != "rv"
        or snap.period is None
        or press.period_id != snap.period.id
        or review is None
        or review.unit is None
        or review.unit.unit_id != unit_id
    ):
        return queue(snap, session, intro=(msg(N_("button.stale")),))
    session = replace(session, unit=unit_id, mode=Mode.REVIEW, current=press.code or None, draft=None)
    if press.arg == "send":
        return _send_returns(snap, session, now)
    if press.arg == "close":
        return _close(snap, session)
    code = press.code
    ind = snap.period.framework.indicator(code)
    action, _, rev = press.arg.partition(":")
    expected = ascii_int(rev)
    if ind is None or expected is None or action not in _DECISION_KEYS:
        return queue(snap, session, intro=(msg(N_("button.stale")),))
    if action == "accept":
        return _decide(snap, session, code, Verdict.ACCEPT, expected, now=now)
    comment = clean(inbound.field("comment"))[:1000]
    if action == "adjust":
        points = parse_number(inbound.field("points"))
        if points is None or points < ZERO or points > ind.max_points:
            example = example_points(ind.max_points)
            return _say(session, _line(N_("review.bad_points"), max=ind.max_points, example=example))
        if not comment:
            return _say(session, _line(N_("review.ask_comment"), code=code))
        return _decide(snap, session, code, Verdict.ADJUST, expected, points=points, comment=comment, now=now)
    if not comment:
        return _say(session, _line(N_("review.ask_return"), code=code))
    typed = inbound.field("due").strip()
    due = parse_due(typed, now) if typed else _default_due(now)
    if due is None:
        return _say(session, _line(N_("review.bad_due")))
    return _decide(snap, session, code, Verdict.RETURN, expected, comment=comment, due=due, now=now)


def focus(inbound: Inbound) -> int | None:
    """The unit a reviewer's message is about, which storage reads with it: the unit a button opens
    or a web form decides on."""
    if inbound.kind is InboundKind.FORM:
        return ascii_int(inbound.field("unit"))
    if inbound.kind is InboundKind.BUTTON:
        press = read_payload(inbound.payload)
        if press is not None and press.action == "rv" and press.arg.startswith("open:"):
            return ascii_int(press.arg.split(":", 1)[1])
    return None


def review_step(snap: Snapshot, inbound: Inbound, now: dt.datetime) -> Decision:
    """A reviewer's message: the queue, a unit's indicators, and the decisions on them."""
    session = snap.session
    review = snap.review
    if (
        review is not None
        and session.unit is not None
        and (review.unit is None or review.unit.unit_id != session.unit)
    ):
        session = replace(session, unit=None, mode=Mode.REVIEW, current=None)  # the unit left the queue
    if inbound.kind is InboundKind.BUTTON:
        press = read_payload(inbound.payload)
        if press is None:
            return _stale(snap, session, now)
        return _press(snap, session, press, now)
    if inbound.kind is InboundKind.FORM:
        return _form(snap, session, inbound, now)
    if inbound.kind is not InboundKind.TEXT or review is None or review.unit is None or session.unit is None:
        if (
            inbound.kind is InboundKind.RESUME
            and review is not None
            and review.unit is not None
            and session.unit is not None
        ):
            return (
                _continue(snap, session, None)
                if session.current is None
                else item(snap, session, session.current)
            )
        return queue(snap, session)
    text = clean(inbound.text)
    parsed = detect(text, codes=frozenset(), expects_number=True)
    if parsed is not None and parsed.intent in (Intent.CANCEL,):
        return item(snap, session, session.current) if session.current else summary(snap, session)
    if (
        parsed is not None and parsed.intent in (Intent.HELP, Intent.RESUME, Intent.START)
    ) or text.lower() in ("/thamdinh", "danh sách", "danh sach"):
        return queue(snap, session)
    code = session.current
    assert snap.period is not None
    if session.mode is Mode.REVIEW_POINTS and code is not None:
        ind = snap.period.framework.indicator(code)
        assert ind is not None
        value = parse_number(text)
        if value is None or value < ZERO or value > ind.max_points:
            example = example_points(ind.max_points)
            return _say(session, _line(N_("review.bad_points"), max=ind.max_points, example=example))
        state = replace(session, mode=Mode.REVIEW_COMMENT, draft=str(value))
        return _say(state, _line(N_("review.ask_comment"), code=code))
    if session.mode is Mode.REVIEW_COMMENT and code is not None and session.draft is not None:
        if not text:
            return _say(session, _line(N_("review.ask_comment"), code=code))
        points = Decimal(session.draft)
        return _decide(
            snap, session, code, Verdict.ADJUST, session.seen, points=points, comment=text[:1000], now=now
        )
    if session.mode is Mode.REVIEW_RETURN and code is not None:
        if not text:
            return _say(session, _line(N_("review.ask_return"), code=code))
        state = replace(session, mode=Mode.REVIEW_DUE, draft=text[:1000])
        return _say(state, _prompt(snap, code, Mode.REVIEW_DUE, now))
    if session.mode is Mode.REVIEW_DUE and code is not None:
        due = parse_due(text, now)
        if due is None:
            return _say(session, _line(N_("review.bad_due")))
        return _decide(
            snap, session, code, Verdict.RETURN, session.seen, comment=session.draft, due=due, now=now
        )
    typed = _TYPED.get(folded(text)) if session.mode is Mode.REVIEW else None
    if typed == "send":
        return _send_returns(snap, session, now)
    if typed == "close":
        return _close(snap, session)
    if typed is not None and code is not None:
        if typed == "next":
            return _continue(snap, session, code)
        acted = _act(snap, session, code, typed, session.seen, now)
        if acted is not None:
            return acted
    return item(snap, session, code) if code else _continue(snap, session, None)
