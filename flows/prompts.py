"""Every reply the engine gives, built as message keys with parameters and buttons.

Kept apart from the decisions in `flows.engine` so that what is said and when it is said can be read
(and changed) separately. Nothing here formats text: numbers stay Decimal, dates stay dates, and
framework texts travel as parameters for the renderer to escape.
"""

from __future__ import annotations

from decimal import Decimal

from flows.intents import payload
from flows.model import (
    AnswerView,
    AssessmentStatus,
    Button,
    Chart,
    ChartBar,
    Citation,
    EvidenceView,
    Fixed,
    Msg,
    Param,
    Reply,
    Role,
    Snapshot,
    Verdict,
    msg,
)
from flows.parse import example_points
from scoring.answers import Answer, Evidence
from scoring.engine import Report, Rules, Status, score
from scoring.messages import N_
from scoring.model import AnswerType, AnswerValue, Framework, Indicator, Ratio
from scoring.numbers import ZERO, total

MAX_LISTED = 12  # codes listed inline before "…"


def framework_of(snap: Snapshot) -> Framework:
    assert snap.period is not None
    return snap.period.framework


def scoring_answers(snap: Snapshot) -> dict[str, Answer]:
    out: dict[str, Answer] = {}
    for code, a in snap.answers.items():
        evidence = tuple(Evidence(e.label, e.at) for e in a.evidence if not e.late)
        out[code] = Answer(a.value, a.not_applicable, evidence, None, a.reason)
    return out


def provisional(snap: Snapshot) -> Report:
    """The score if every claimed point gets its evidence: what the running total shows."""
    return score(framework_of(snap), scoring_answers(snap), Rules(require_evidence=False))


def strict(snap: Snapshot) -> Report:
    """The score under the decisions' rules: missing evidence scores 0."""
    return score(framework_of(snap), scoring_answers(snap), Rules(require_evidence=True))


def codes_list(codes: list[str]) -> str:
    shown = ", ".join(codes[:MAX_LISTED])
    return shown + (f", … (+{len(codes) - MAX_LISTED})" if len(codes) > MAX_LISTED else "")


def button(key: str, data: str, **params: str) -> Button:
    return Button(msg(key, **params), data)


# -- values --------------------------------------------------------------------------------------


def value_msg(ind: Indicator, value: AnswerValue | None, answer: AnswerView | None = None) -> Msg:
    if answer is not None and answer.not_applicable:
        return msg(N_("value.not_applicable"), reason=answer.reason or "")
    if value is None:
        return msg(N_("value.none"))
    if isinstance(value, bool):
        return msg(N_("value.yes") if value else N_("value.no"))
    if isinstance(value, Ratio):
        return msg(
            N_("value.ratio"), numerator=value.numerator, denominator=value.denominator, percent=value.percent
        )
    if isinstance(value, frozenset):
        labels = [o.label for o in ind.answer.options if o.key in value]
        return msg(N_("value.text"), text="; ".join(labels)) if labels else msg(N_("value.parts_none"))
    if isinstance(value, str):
        opt = ind.answer.option(value)
        return msg(N_("value.text"), text=opt.label if opt else value)
    kind = ind.answer.type
    if kind is AnswerType.PERCENTAGE or kind is AnswerType.RATIO:
        return msg(N_("value.percent"), value=value)
    if kind is AnswerType.COUNT:
        return msg(N_("value.count"), value=value, unit=ind.answer.unit or "")
    if kind is AnswerType.AMOUNT:
        return msg(N_("value.amount"), value=value)
    return msg(N_("value.points"), value=value)


# -- questions -----------------------------------------------------------------------------------

_HOW: dict[AnswerType, str] = {
    AnswerType.YES_NO: N_("ask.how.yes_no"),
    AnswerType.PERCENTAGE: N_("ask.how.percentage"),
    AnswerType.RATIO: N_("ask.how.ratio"),
    AnswerType.COUNT: N_("ask.how.count"),
    AnswerType.AMOUNT: N_("ask.how.amount"),
    AnswerType.CHOICE: N_("ask.how.choice"),
    AnswerType.PARTS: N_("ask.how.parts"),
    AnswerType.POINTS: N_("ask.how.points"),
}


def how_to_answer(ind: Indicator) -> Msg:
    spec = ind.answer
    options = "\n".join(f"{i}. {o.label}" for i, o in enumerate(spec.options, 1))
    return msg(
        _HOW[spec.type],
        max=ind.max_points,
        example=example_points(ind.max_points),
        unit=spec.unit or "",
        numerator=spec.numerator_label or "",
        denominator=spec.denominator_label or "",
        options=options,
    )


def rule_lines(ind: Indicator) -> tuple[Msg, ...]:
    """The annex's own rule, shown with the question when the official enters the points themselves
    (the rule was not read into a guided question), so they and the reviewer score by it."""
    if ind.answer.type is AnswerType.POINTS and ind.method_text:
        return (msg(N_("ask.rule"), text=ind.method_text),)
    return ()


def question(
    snap: Snapshot,
    code: str,
    *,
    intro: tuple[Msg, ...] = (),
    lock: tuple[Msg, ...] = (),
    evidence_open: bool = True,
) -> Reply:
    """The indicator and how to answer it; with `lock` (why its answer cannot change now) it is shown
    read-only, saying whether evidence can still be added."""
    assert snap.period is not None
    fw = snap.period.framework
    ind = fw.indicator(code)
    assert ind is not None
    group = fw.group(ind.group_id)
    assert group is not None
    lines = [
        *intro,
        msg(
            N_("ask.header"),
            position=fw.position(code),
            total=len(fw.indicators),
            group=group.id,
            group_name=group.name,
        ),
        msg(N_("ask.question"), code=code, text=ind.text),
        *rule_lines(ind),
    ]
    answer = snap.answers.get(code)
    pid = snap.period.id
    buttons: list[Button] = []
    if lock:
        value = value_msg(ind, answer.value, answer) if answer is not None else msg(N_("value.none"))
        lines += [msg(N_("ask.answer_locked"), value=value), *lock]
        if answer is not None and evidence_open:
            lines.append(msg(N_("ask.evidence_open")))
        if ind.guidance or ind.method_text or ind.evidence.description:
            buttons.append(button(N_("button.guidance"), payload("nav", pid, code, "guidance")))
        return Reply(tuple(lines), tuple(buttons))
    lines.append(how_to_answer(ind))
    if answer is not None:
        lines.append(msg(N_("ask.current_answer"), value=value_msg(ind, answer.value, answer)))
    decision = snap.decisions.get(code)
    if (
        decision is not None
        and decision.decision is Verdict.RETURN
        and snap.status is AssessmentStatus.RETURNED
    ):
        due = decision.supplement_due or msg(N_("welcome.no_deadline"))
        lines.append(msg(N_("review.returned_line"), comment=decision.comment or "", due=due))
    if ind.evidence.required:
        lines.append(msg(N_("ask.evidence_needed")))
    if ind.answer.type is AnswerType.YES_NO:
        buttons += [
            button(N_("button.yes"), payload("ans", pid, code, "yes")),
            button(N_("button.no"), payload("ans", pid, code, "no")),
        ]
    elif ind.answer.type is AnswerType.CHOICE:
        buttons += [
            Button(msg(N_("button.option"), text=o.label), payload("ans", pid, code, o.key))
            for o in ind.answer.options
        ]
    buttons.append(button(N_("button.skip"), payload("nav", pid, code, "skip")))
    if ind.allows_not_applicable:
        buttons.append(button(N_("button.not_applicable"), payload("nav", pid, code, "na")))
    if ind.guidance or ind.method_text or ind.evidence.description:
        buttons.append(button(N_("button.guidance"), payload("nav", pid, code, "guidance")))
    return Reply(tuple(lines), tuple(buttons))


def guidance(snap: Snapshot, code: str) -> Reply:
    fw = framework_of(snap)
    ind = fw.indicator(code)
    assert ind is not None
    lines = [msg(N_("guidance.title"), code=code, max=ind.max_points)]
    if ind.guidance:
        lines.append(msg(N_("guidance.text"), text=ind.guidance))
    if ind.method_text:
        lines.append(msg(N_("guidance.method"), text=ind.method_text))
    lines.append(how_to_answer(ind))
    if ind.evidence.required:
        lines.append(msg(N_("guidance.evidence"), text=ind.evidence.description or ""))
    if ind.allows_not_applicable:
        lines.append(msg(N_("guidance.na_allowed")))
    return Reply(tuple(lines))


def problem_reply(snap: Snapshot, code: str, problem: Msg, misses: int) -> Reply:
    ind = framework_of(snap).indicator(code)
    assert ind is not None and snap.period is not None
    lines = [problem, how_to_answer(ind)]
    buttons: list[Button] = []
    if misses >= 3:
        lines.append(msg(N_("ask.offer_help")))
        buttons = [
            button(N_("button.guidance"), payload("nav", snap.period.id, code, "guidance")),
            button(N_("button.skip"), payload("nav", snap.period.id, code, "skip")),
            button(N_("button.help"), payload("nav", snap.period.id, code, "help")),
        ]
    elif ind.answer.type is AnswerType.YES_NO:
        pid = snap.period.id
        buttons = [
            button(N_("button.yes"), payload("ans", pid, code, "yes")),
            button(N_("button.no"), payload("ans", pid, code, "no")),
        ]
    return Reply(tuple(lines), tuple(buttons))


def ack(snap: Snapshot, code: str) -> Msg:
    """The line after an answer is recorded: "Câu 12/62 · 7,04/10 điểm · Tổng 412,5/960 (43%)". The
    total is the one `xem điểm` shows (missing evidence scores 0), with what that holds back."""
    fw = framework_of(snap)
    report = strict(snap)
    r = report.indicator(code)
    common: dict[str, Param] = {
        "position": fw.position(code),
        "total": len(fw.indicators),
        "sum": report.total,
        "max": report.max,
        "percent": Fixed(report.percent, 0),
    }
    if r.status is Status.NOT_APPLICABLE:
        line = msg(N_("ack.not_applicable"), **common)
    else:
        claimed = r.claimed if r.claimed is not None else r.score
        line = msg(N_("ack.answer"), points=claimed, indicator_max=r.full_max, **common)
    if report.band is not None:
        line = msg(N_("ack.with_band"), line=line, band=report.band.label)
    held = total(i.claimed or ZERO for i in report.indicators if i.status in _HELD)
    if held > ZERO:
        return msg(N_("ack.with_held"), line=line, points=held)
    return line


_HELD = (Status.EVIDENCE_MISSING, Status.EVIDENCE_LATE)


def evidence_lines(ev: EvidenceView) -> tuple[Msg, ...]:
    """One evidence item as the reviewer sees it: the file, document or link, when it came, and the
    document a file is or the note it came with."""
    at: Param = ev.at or msg(N_("welcome.no_deadline"))
    if ev.kind == "citation" and ev.citation is not None:
        return (msg(N_("review.evidence_citation"), label=citation_msg(ev.citation), at=at),)
    if ev.kind != "file":
        return (msg(N_("review.evidence_link"), label=ev.label, at=at),)
    lines = [msg(N_("review.evidence_file"), label=ev.label, at=at)]
    if ev.citation is not None:
        lines.append(msg(N_("review.evidence_file_citation"), citation=citation_msg(ev.citation)))
    if ev.note:
        lines.append(msg(N_("review.evidence_note"), note=ev.note))
    return tuple(lines)


def citation_msg(citation: Citation) -> Msg:
    """A cited document as the member and the reviewer read it: number, date and summary."""
    if citation.summary:
        return msg(
            N_("evidence.what.citation_summary"),
            number=citation.number,
            date=citation.date,
            summary=citation.summary,
        )
    return msg(N_("evidence.what.citation"), number=citation.number, date=citation.date)


# -- evidence ------------------------------------------------------------------------------------


def evidence_prompt(snap: Snapshot, code: str) -> Reply:
    ind = framework_of(snap).indicator(code)
    assert ind is not None and snap.period is not None
    pid = snap.period.id
    return Reply(
        (msg(N_("evidence.ask"), code=code, description=ind.evidence.description or ""),),
        (
            button(N_("button.done"), payload("ev", pid, code, "done")),
            button(N_("button.later"), payload("ev", pid, code, "later")),
        ),
    )


def evidence_received(snap: Snapshot, code: str, what: Msg, count: int) -> Reply:
    assert snap.period is not None
    pid = snap.period.id
    return Reply(
        (msg(N_("evidence.received"), what=what, count=count, code=code),),
        (
            button(N_("button.done"), payload("ev", pid, code, "done")),
            button(N_("button.later"), payload("ev", pid, code, "later")),
        ),
    )


# -- overviews -----------------------------------------------------------------------------------


def at_risk(snap: Snapshot) -> tuple[Decimal, list[str]]:
    """Points claimed but scoring 0 for lack of evidence, and the indicators concerned."""
    report = strict(snap)
    codes = [r.code for r in report.indicators if r.status in _HELD]
    return total(r.claimed or ZERO for r in report.indicators if r.code in codes), codes


def unanswered(snap: Snapshot) -> list[str]:
    return [i.code for i in framework_of(snap).indicators if i.code not in snap.answers]


def preview(snap: Snapshot) -> Reply:
    report = strict(snap)
    lines = [
        msg(
            N_("preview.total"),
            sum=report.total,
            max=report.max,
            index=Fixed(report.index, 4),
            percent=report.percent,
        )
    ]
    if report.band is not None:
        lines.append(msg(N_("preview.band"), band=report.band.label))
    if report.level is not None or framework_of(snap).levels:
        lines.append(
            msg(N_("preview.level"), level=report.level.name if report.level else msg(N_("preview.no_level")))
        )
    lines += [msg(N_("preview.group"), id=g.id, name=g.name, sum=g.score, max=g.max) for g in report.groups]
    risk, codes = at_risk(snap)
    if codes:
        lines.append(msg(N_("preview.at_risk"), points=risk, count=len(codes), codes=codes_list(codes)))
    pending = [r.code for r in report.indicators if r.reason == "score.reason.peer_pending"]
    if pending:
        lines.append(msg(N_("preview.peer_pending"), codes=codes_list(pending)))
    gains = report.top_gains(3)
    if gains:
        items = tuple(msg(N_("preview.gain_item"), code=g.code, points=g.points) for g in gains)
        lines.append(msg(N_("preview.top_gains"), indicators=items))
    if report.next_band is not None:
        lines.append(
            msg(
                N_("preview.next_band"),
                band=report.next_band.band.label,
                points=report.next_band.points_needed,
            )
        )
    assert snap.period is not None
    return Reply(tuple(lines), (button(N_("button.chart"), payload("nav", snap.period.id, None, "chart")),))


def chart(snap: Snapshot) -> Reply:
    """The preview as a picture: points by group against the max; total, index and band in the title."""
    assert snap.member is not None
    report = strict(snap)
    params: dict[str, Param] = {
        "unit": snap.member.unit_name,
        "sum": report.total,
        "max": report.max,
        "index": Fixed(report.index, 4),
    }
    title = (
        msg(N_("chart.title_band"), band=report.band.label, **params)
        if report.band is not None
        else msg(N_("chart.title"), **params)
    )
    bars = tuple(ChartBar(f"{g.id}. {g.name}", g.score, g.max) for g in report.groups)
    return Reply((title,), chart=Chart(title, bars))


def progress(snap: Snapshot) -> Reply:
    fw = framework_of(snap)
    done = sum(1 for i in fw.indicators if i.code in snap.answers)
    lines = [msg(N_("progress.total"), answered=done, total=len(fw.indicators))]
    for g in fw.groups:
        answered = sum(1 for c in g.indicator_codes if c in snap.answers)
        lines.append(
            msg(N_("progress.group"), id=g.id, name=g.name, answered=answered, total=len(g.indicator_codes))
        )
    return Reply(tuple(lines))


def missing(snap: Snapshot) -> Reply:
    assert snap.period is not None
    open_codes = unanswered(snap)
    _, no_evidence = at_risk(snap)
    if not open_codes and not no_evidence:
        return Reply((msg(N_("missing.none")),))
    lines = []
    if open_codes:
        lines.append(msg(N_("missing.unanswered"), count=len(open_codes), codes=codes_list(open_codes)))
    if no_evidence:
        lines.append(msg(N_("missing.evidence"), count=len(no_evidence), codes=codes_list(no_evidence)))
    first = (open_codes or no_evidence)[0]
    return Reply(
        tuple(lines),
        (button(N_("button.go_first_missing"), payload("go", snap.period.id, first), code=first),),
    )


def help_reply() -> Reply:
    return Reply((msg(N_("help.text")),))


def welcome(snap: Snapshot) -> Msg:
    assert snap.member is not None and snap.period is not None
    fw = snap.period.framework
    due = snap.period.self_assessment_due
    return msg(
        N_("welcome.text"),
        unit=snap.member.unit_name,
        period=snap.period.name,
        deadline=due if due is not None else msg(N_("welcome.no_deadline")),
        answered=sum(1 for i in fw.indicators if i.code in snap.answers),
        total=len(fw.indicators),
    )


def greeting(snap: Snapshot) -> tuple[Msg, ...]:
    """The welcome, plus what awaits this member: a leader is told a submission waits for them."""
    assert snap.member is not None
    lines = [welcome(snap)]
    if snap.status is AssessmentStatus.RETURNED:
        items = tuple(
            msg(
                N_("review.returned_item"),
                code=c,
                comment=d.comment or "",
                due=d.supplement_due or msg(N_("welcome.no_deadline")),
            )
            for c, d in sorted(snap.decisions.items())
            if d.decision is Verdict.RETURN
        )
        lines.append(msg(N_("review.returned_notice"), count=len(items), items=items))
    elif snap.status is AssessmentStatus.AWAITING_LEADER and snap.member.role is Role.LEADER:
        lines.append(msg(N_("submit.pending_for_leader")))
    return tuple(lines)


def submit_summary(snap: Snapshot, *, leader: bool) -> Reply:
    assert snap.period is not None
    report = strict(snap)
    open_codes = unanswered(snap)
    risk, no_evidence = at_risk(snap)
    lines = [
        msg(
            N_("submit.summary"),
            sum=report.total,
            max=report.max,
            answered=len(snap.answers),
            total=len(report.indicators),
        )
    ]
    if open_codes:
        lines.append(msg(N_("missing.unanswered"), count=len(open_codes), codes=codes_list(open_codes)))
    if no_evidence:
        lines.append(
            msg(
                N_("submit.evidence_missing"),
                count=len(no_evidence),
                points=risk,
                codes=codes_list(no_evidence),
            )
        )
    lines.append(msg(N_("submit.confirm_leader") if leader else N_("submit.confirm_respondent")))
    pid = snap.period.id
    return Reply(
        tuple(lines),
        (
            button(N_("button.confirm_submit"), payload("sub", pid, None, "confirm")),
            button(N_("button.cancel"), payload("sub", pid, None, "cancel")),
        ),
    )


def na_prompt(snap: Snapshot, code: str) -> Reply:
    assert snap.period is not None
    return Reply(
        (msg(N_("na.ask_reason"), code=code),),
        (button(N_("button.cancel"), payload("nav", snap.period.id, code, "cancel")),),
    )


def language_buttons(snap: Snapshot) -> tuple[Button, ...]:
    pid = snap.period.id if snap.period is not None else 0
    return (
        button(N_("button.lang_vi"), payload("lang", pid, None, "vi")),
        button(N_("button.lang_en"), payload("lang", pid, None, "en")),
    )
