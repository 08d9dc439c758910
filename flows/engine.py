"""step(snapshot, inbound, now) → Decision: the guided self-assessment as a pure state machine.

Joining by invite code; then the walk: each indicator in order, a forgiving parse of the answer, the
evidence step, navigation (next, back, skip, jump, group), not applicable with a reason, guidance,
progress, what is missing, the score preview, and submission confirmed by the unit leader. The
engine only decides; storage records the events and the session in one transaction, and the
renderer turns the replies into text for the member's language and channel.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from decimal import Decimal

from flows import prompts as p
from flows.apply import apply
from flows.appraise import review_step
from flows.intents import Intent, Parsed, Press, detect, is_code, payload, read_payload
from flows.model import (
    FINAL,
    AddEvidence,
    AssessmentStatus,
    Button,
    Decision,
    Event,
    FileInfo,
    Inbound,
    InboundKind,
    JoinFailed,
    JoinFailure,
    JoinUnit,
    Mode,
    Msg,
    Notice,
    Param,
    Reply,
    RequestSubmission,
    Resubmit,
    Role,
    SaveAnswer,
    SessionState,
    SetLanguage,
    SetReminders,
    Snapshot,
    StatusChange,
    Submit,
    Verdict,
    can_move,
    msg,
)
from flows.parse import (
    MAX_NOTE_CHARS,
    Problem,
    clean,
    folded,
    parse_answer,
    parse_citation,
    parse_link,
    parse_number,
    parse_ratio,
    parse_yes_no,
)
from flows.web import asks_for_web_link, web_link
from scoring.messages import N_
from scoring.model import AnswerType, AnswerValue, Framework, Indicator
from scoring.numbers import plain

JOIN_WINDOW = dt.timedelta(minutes=15)
JOIN_MAX_FAILURES = 5
_ANSWERING_ROLES = (Role.RESPONDENT, Role.LEADER)
_NUMERIC = (AnswerType.PERCENTAGE, AnswerType.RATIO, AnswerType.COUNT, AnswerType.AMOUNT, AnswerType.POINTS)


def _say(
    session: SessionState, *replies: Reply, events: tuple[Event, ...] = (), notices: tuple[Notice, ...] = ()
) -> Decision:
    return Decision(session, events, replies, notices)


def _line(key: str, /, **params: Param) -> Reply:
    return Reply((msg(key, **params),))


# -- joining -------------------------------------------------------------------------------------


def join_code(text: str) -> str | None:
    """The invite code a message carries ("/start AB12CD34" or the code alone), normalised."""
    t = clean(text)
    parsed = detect(t, codes=frozenset(), expects_number=False)
    candidate = parsed.arg if parsed is not None and parsed.intent is Intent.START else t
    candidate = candidate.strip().upper()
    if 6 <= len(candidate) <= 16 and candidate.isascii() and candidate.replace("-", "").isalnum():
        return candidate.replace("-", "")
    return None


def _join(snap: Snapshot, inbound: Inbound, now: dt.datetime) -> Decision:
    session = SessionState(mode=Mode.JOIN)
    code = join_code(inbound.text) if inbound.kind is InboundKind.TEXT else None
    if code is None:
        return _say(session, _line(N_("join.ask_code")))
    recent = [t for t in snap.join_failures if now - t < JOIN_WINDOW]
    if len(recent) >= JOIN_MAX_FAILURES:
        retry = min(recent) + JOIN_WINDOW
        # logged, but not counted as a failure: retrying early must not push the wait further out
        return _say(
            session, _line(N_("join.rate_limited"), at=retry), events=(JoinFailed(JoinFailure.RATE_LIMITED),)
        )
    invite = snap.invite
    left = JOIN_MAX_FAILURES - len(recent) - 1
    if invite is None or invite.code != code:
        return _say(
            session,
            _line(N_("join.unknown"), code=code, left=left),
            events=(JoinFailed(JoinFailure.UNKNOWN),),
        )
    if invite.used:
        return _say(session, _line(N_("join.used")), events=(JoinFailed(JoinFailure.USED),))
    if now >= invite.expires_at:
        return _say(
            session,
            _line(N_("join.expired"), at=invite.expires_at),
            events=(JoinFailed(JoinFailure.EXPIRED),),
        )
    role_key = {
        Role.RESPONDENT: N_("role.respondent"),
        Role.LEADER: N_("role.leader"),
        Role.REVIEWER: N_("role.reviewer"),
        Role.ADMIN: N_("role.admin"),
    }[invite.role]
    joined = snap.joined if snap.joined is not None else apply(snap, (JoinUnit(code),), now)
    first = _step(replace(joined, session=SessionState(mode=Mode.ASK)), Inbound(InboundKind.RESUME), now)
    return Decision(
        first.session,
        (JoinUnit(code), *first.events),
        (_line(N_("join.ok"), unit=invite.unit_name, role=msg(role_key)), *first.replies),
        first.notices,
    )


# -- the walk ------------------------------------------------------------------------------------


def _fw(snap: Snapshot) -> Framework:
    assert snap.period is not None
    return snap.period.framework


def _next_open(snap: Snapshot, after: str | None, skipped: tuple[str, ...]) -> str | None:
    """The next unanswered, not deferred indicator after `after`, wrapping around."""
    codes = [i.code for i in _fw(snap).indicators]
    start = codes.index(after) + 1 if after in codes else 0
    for code in codes[start:] + codes[:start]:
        if code not in snap.answers and code not in skipped:
            return code
    return None


def _question(snap: Snapshot, code: str, now: dt.datetime, intro: tuple[Msg, ...] = ()) -> Reply:
    """The indicator, saying what can be done with it in the assessment's present state."""
    lock = _answer_lock(snap, now, code)
    closed = _evidence_lock(snap, code) is not None
    return p.question(snap, code, intro=intro, lock=lock.lines if lock else (), evidence_open=not closed)


def _advance(
    snap: Snapshot, session: SessionState, after: str | None, now: dt.datetime, intro: tuple[Msg, ...] = ()
) -> Decision:
    """Move to the next indicator that can still be answered; come back to deferred ones at the end;
    done when none is left, saying what the present state still allows."""
    if snap.status is AssessmentStatus.RETURNED:
        returned = _returned(snap)
        codes = [i.code for i in _fw(snap).indicators]
        start = codes.index(after) + 1 if after in codes else 0
        following = [c for c in codes[start:] if c in returned]
        if following:
            return _say(session.at(Mode.ASK, following[0]), _question(snap, following[0], now, intro))
        return _finished(snap, replace(session, skipped=()), now, intro)
    if _unit_lock(snap, now) is not None:
        return _finished(snap, replace(session, skipped=()), now, intro)
    code = _next_open(snap, after, session.skipped)
    if code is not None:
        return _say(session.at(Mode.ASK, code), _question(snap, code, now, intro))
    deferred = [c for c in session.skipped if c not in snap.answers]
    if deferred:
        back = replace(session, skipped=())
        return _say(
            back.at(Mode.ASK, deferred[0]),
            _question(
                snap, deferred[0], now, (*intro, msg(N_("walk.back_to_deferred"), count=len(deferred)))
            ),
        )
    return _finished(snap, replace(session, skipped=()), now, intro)


def _finished(snap: Snapshot, session: SessionState, now: dt.datetime, intro: tuple[Msg, ...]) -> Decision:
    """Nothing left to ask: what the member can still do in the assessment's present state."""
    done = session.at(Mode.DONE, None)
    risk, no_evidence = p.at_risk(snap)
    unit_lock = _unit_lock(snap, now)
    if snap.status is AssessmentStatus.RETURNED:
        lines = (*intro, msg(N_("resubmit.hint"), codes=", ".join(_returned(snap))))
        return _say(done, Reply(lines))
    if unit_lock is None:
        lines = (*intro, msg(N_("walk.all_answered"), total=len(_fw(snap).indicators)))
        if no_evidence:
            lines = (*lines, msg(N_("walk.evidence_reminder"), count=len(no_evidence), points=risk))
        return _say(done, Reply((*lines, msg(N_("walk.submit_hint")))))
    lines = (*intro, *unit_lock.lines)
    open_codes = [c for c in no_evidence if _evidence_lock(snap, c) is None]
    if open_codes and snap.period is not None:
        lines = (
            *lines,
            msg(N_("missing.evidence"), count=len(open_codes), codes=p.codes_list(open_codes)),
        )
        first = open_codes[0]
        go = p.button(N_("button.go_first_missing"), payload("go", snap.period.id, first), code=first)
        return _say(done, Reply(lines, (go,)))
    return _say(done, Reply(lines))


def _ask_again(
    snap: Snapshot, session: SessionState, now: dt.datetime, intro: tuple[Msg, ...] = ()
) -> Decision:
    returned = _returned(snap) if snap.status is AssessmentStatus.RETURNED else []
    if returned and session.current not in returned:
        return _say(session.at(Mode.ASK, returned[0]), _question(snap, returned[0], now, intro))
    if session.mode is Mode.DONE or session.current is None or _unit_lock(snap, now) is not None:
        return _advance(snap, session, None, now, intro)
    if session.mode is Mode.EVIDENCE and _evidence_lock(snap, session.current) is None:
        return _say(session, *((Reply(intro),) if intro else ()), p.evidence_prompt(snap, session.current))
    return _say(session.at(Mode.ASK, session.current), _question(snap, session.current, now, intro))


def _returned(snap: Snapshot) -> list[str]:
    return sorted(c for c, d in snap.decisions.items() if d.decision is Verdict.RETURN)


def _closed(snap: Snapshot) -> Reply | None:
    """The assessment is over: appraised, or the period's results published."""
    assert snap.period is not None
    if snap.period.published_at is not None:
        return _line(N_("locked.published"), at=snap.period.published_at)
    if snap.status is AssessmentStatus.APPRAISED:
        return _line(N_("locked.appraised"))
    return None


def _unit_lock(snap: Snapshot, now: dt.datetime) -> Reply | None:
    """Why no answer of the unit can change now (None: answers can change, all or the returned ones).
    Answers change until the assessment is submitted and not after the unit's own deadline."""
    assert snap.period is not None
    closed = _closed(snap)
    if closed is not None:
        return closed
    due = snap.period.supplement_due
    until = msg(N_("locked.evidence_until"), at=due) if due is not None else msg(N_("locked.evidence_open"))
    if snap.status in (AssessmentStatus.SUBMITTED, AssessmentStatus.APPRAISED):
        at = snap.submitted_at or msg(N_("welcome.no_deadline"))
        return _line(N_("locked.submitted"), at=at, evidence=until)
    if snap.status is AssessmentStatus.RETURNED:
        return None
    self_due = snap.period.self_assessment_due
    if self_due is not None and now > self_due:
        return _line(N_("locked.deadline"), at=self_due, evidence=until)
    return None


def _answer_lock(snap: Snapshot, now: dt.datetime, code: str) -> Reply | None:
    """Why the answer to `code` cannot change now: the unit's answers are locked, or it was returned
    but not this indicator. A returned indicator stays open after the deadline."""
    locked = _unit_lock(snap, now)
    if locked is not None or snap.status is not AssessmentStatus.RETURNED:
        return locked
    if code in _returned(snap):
        return None
    return _line(N_("locked.returned_only"), codes=", ".join(_returned(snap)))


def _evidence_lock(snap: Snapshot, code: str) -> Reply | None:
    """Why no evidence can be added to `code` now. Evidence may be supplemented after submission
    (sent after its deadline it is kept and scores 0), except on an indicator the reviewer has already
    accepted or adjusted, or one not returned while the unit supplements what was; nothing once the
    appraisal is closed or the results are published."""
    closed = _closed(snap)
    if closed is not None:
        return closed
    if snap.status is AssessmentStatus.RETURNED and code not in _returned(snap):
        return _line(N_("locked.returned_only"), codes=", ".join(_returned(snap)))
    decision = snap.decisions.get(code)
    if decision is not None and decision.decision in FINAL:
        return _line(N_("locked.decided"), code=code)
    return None


def _late_note(snap: Snapshot, now: dt.datetime, code: str) -> tuple[Msg, ...]:
    """Evidence after its deadline (the reviewer's, for a returned indicator) is kept, and the user is
    told it scores 0."""
    if evidence_late(snap, now, code):
        return (msg(N_("evidence.late_note"), at=_evidence_due(snap, code) or now),)
    return ()


def _evidence_due(snap: Snapshot, code: str) -> dt.datetime | None:
    decision = snap.decisions.get(code)
    due = decision.supplement_due if decision is not None and decision.decision is Verdict.RETURN else None
    if due is None and snap.period is not None:
        due = snap.period.supplement_due
    return due


def evidence_late(snap: Snapshot, now: dt.datetime, code: str) -> bool:
    """After the supplement deadline — the reviewer's own one, for an indicator they returned."""
    due = _evidence_due(snap, code)
    return due is not None and now > due


def _needs_evidence(ind: Indicator, value: AnswerValue) -> bool:
    return ind.evidence.required and ind.points(value) > 0


def _record(
    snap: Snapshot, session: SessionState, code: str, value: AnswerValue, now: dt.datetime
) -> Decision:
    locked = _answer_lock(snap, now, code)
    if locked is not None:
        return _say(session.at(Mode.DONE, None), locked)
    ind = _fw(snap).indicator(code)
    assert ind is not None
    event = SaveAnswer(code, value)
    after = apply(snap, (event,), now)
    line = p.ack(after, code)
    if _needs_evidence(ind, value) and not (snap.answers.get(code) and snap.answers[code].evidence):
        return _say(
            session.at(Mode.EVIDENCE, code), Reply((line,)), p.evidence_prompt(after, code), events=(event,)
        )
    decision = _advance(after, session, code, now, intro=(line,))
    return replace(decision, events=(event,))


def _answer_text(snap: Snapshot, session: SessionState, text: str, now: dt.datetime) -> Decision:
    code = session.current
    assert code is not None
    ind = _fw(snap).indicator(code)
    assert ind is not None
    number = _ratio_number(ind, text)
    a = _ratio_a(session, code)
    if number is not None and a is None:
        reply = Reply((msg(N_("ask.ratio_b"), a=number, denominator=ind.answer.denominator_label or ""),))
        return _say(replace(session, draft=f"{code}={plain(number)}", misses=0), reply)
    if number is not None and a is not None:
        parsed = parse_answer(ind, f"{a.replace('.', ',')}/{plain(number).replace('.', ',')}")
    else:
        parsed = parse_answer(ind, text)
    if isinstance(parsed, Problem):
        misses = session.misses + 1
        problem = Msg(parsed.key, parsed.params)
        return _say(replace(session, misses=misses), p.problem_reply(snap, code, problem, misses))
    return _record(snap, session, code, parsed, now)


def _ratio_number(ind: Indicator, text: str) -> Decimal | None:
    """A number alone given to a ratio whose terms are defined (a = …, b = …): one of its terms, asked
    one after the other. None: not such a ratio, or the text is read as usual ("3/4", "75%")."""
    spec = ind.answer
    if spec.type is not AnswerType.RATIO or not (spec.numerator_label and spec.denominator_label):
        return None
    if "%" in text or parse_ratio(text) is not None:
        return None
    value = parse_number(text)
    return value if value is not None and value >= 0 else None


def _ratio_a(session: SessionState, code: str) -> str | None:
    """The a already given for the ratio `code`, waiting for its b."""
    prefix = f"{code}="
    if session.draft is None or not session.draft.startswith(prefix):
        return None
    return session.draft[len(prefix) :]


def _file_outside_evidence(
    snap: Snapshot, session: SessionState, inbound: Inbound, now: dt.datetime
) -> Decision:
    """Evidence sent while a question is open goes to that question if it is answered."""
    code = session.current
    closed = _closed(snap)
    if closed is not None:
        return _say(session, closed)
    if code is None:
        return _say(session, _line(N_("evidence.pick_indicator")))
    if code in snap.answers:
        return _evidence(snap, session.at(Mode.EVIDENCE, code), inbound, now)
    return _say(session, _line(N_("evidence.answer_first")), _question(snap, code, now))


def _evidence(snap: Snapshot, session: SessionState, inbound: Inbound, now: dt.datetime) -> Decision:
    code = session.current
    assert code is not None
    locked = _evidence_lock(snap, code)
    if locked is not None:
        return _say(session.at(Mode.DONE, None), locked)
    if inbound.kind is InboundKind.FILE:
        return _files(snap, session, code, inbound, now)
    text = clean(inbound.text)
    citation = parse_citation(text)
    link = parse_link(text) if citation is None else None
    late = evidence_late(snap, now, code)
    if citation is not None:
        what = p.citation_msg(citation)
        event = AddEvidence(code, citation=citation, late=late)
    elif link is not None:
        what = msg(N_("evidence.what.link"), url=link)
        event = AddEvidence(code, url=link, late=late)
    else:
        return _say(session, _line(N_("evidence.bad")), p.evidence_prompt(snap, code))
    received = p.evidence_received(snap, code, what, _evidence_count(snap, code) + 1)
    return _say(
        replace(session, evidence_added=session.evidence_added + 1),
        Reply((*_late_note(snap, now, code), *received.lines), received.buttons),
        events=(event,),
    )


def _evidence_count(snap: Snapshot, code: str) -> int:
    answer = snap.answers.get(code)
    return len(answer.evidence) if answer is not None else 0


_REJECTED = {
    "too_large": N_("evidence.rejected.too_large"),
    "empty": N_("evidence.rejected.empty"),
    "name_mismatch": N_("evidence.rejected.name_mismatch"),
    "download_failed": N_("evidence.rejected.download_failed"),
}


def _files(snap: Snapshot, session: SessionState, code: str, inbound: Inbound, now: dt.datetime) -> Decision:
    """One file or an album: each new accepted file is evidence, each refused one is explained, one
    already attached to the indicator is not counted twice. The caption describes the files: a
    document citation where it reads as one, otherwise a note the reviewer sees."""
    lines = [
        msg(_REJECTED.get(r.reason, N_("evidence.rejected.unsupported_type")), name=r.name, max=20)
        for r in inbound.rejected
    ]
    answer = snap.answers.get(code)
    have = {e.sha256 for e in answer.evidence if e.sha256} if answer is not None else set()
    files: list[FileInfo] = []
    for f in inbound.files:
        if f.sha256 in have:
            lines.append(msg(N_("evidence.duplicate"), name=f.name, code=code))
            continue
        have.add(f.sha256)
        files.append(f)
    caption = clean(inbound.caption)
    citation = parse_citation(caption) if caption else None
    note = caption[:MAX_NOTE_CHARS] if caption and citation is None else None
    late = evidence_late(snap, now, code)
    events = tuple(AddEvidence(code, file=f, citation=citation, note=note, late=late) for f in files)
    if not events:
        return _say(
            session, Reply(tuple(lines) or (msg(N_("evidence.rejected.unsupported_type"), name="-", max=20),))
        )
    if len(files) == 1:
        what = msg(N_("evidence.what.file"), name=files[0].name, size=_size_kb(files[0].size))
    else:
        what = msg(N_("evidence.what.files"), count=len(files), names=", ".join(f.name for f in files))
    if citation is not None:
        lines.append(msg(N_("evidence.understood_citation"), citation=p.citation_msg(citation)))
    elif note is not None:
        lines.append(msg(N_("evidence.understood_note"), note=note))
    received = p.evidence_received(snap, code, what, _evidence_count(snap, code) + len(events))
    return _say(
        replace(session, evidence_added=session.evidence_added + len(events)),
        Reply((*lines, *_late_note(snap, now, code), *received.lines), received.buttons),
        events=events,
    )


def _size_kb(size: int) -> int:
    return max(1, (size + 1023) // 1024)


def _evidence_done(snap: Snapshot, session: SessionState, now: dt.datetime) -> Decision:
    """The member is done with the evidence step (now, or for later): warned only if the indicator
    still has none."""
    code = session.current
    assert code is not None
    answer = snap.answers.get(code)
    intro: tuple[Msg, ...] = ()
    if session.evidence_added == 0 and not (answer and answer.evidence):
        ind = _fw(snap).indicator(code)
        assert ind is not None
        claimed = ind.points(answer.value) if answer is not None and answer.value is not None else 0
        intro = (msg(N_("evidence.later"), code=code, points=claimed),)
    return _advance(snap, session.at(Mode.ASK, code), code, now, intro)


# -- submission ----------------------------------------------------------------------------------


def _submission(snap: Snapshot) -> type[StatusChange] | None:
    """What `nộp` moves the assessment to for this member from its present state, if anything: a
    respondent asks the leader, the leader submits, a returned assessment goes back to the reviewers."""
    assert snap.member is not None
    if snap.status is AssessmentStatus.RETURNED:
        return Resubmit
    if snap.member.role is Role.LEADER:
        return Submit if can_move(snap.status, AssessmentStatus.SUBMITTED) else None
    return RequestSubmission if snap.status is AssessmentStatus.DRAFT else None


def _submit(snap: Snapshot, session: SessionState, intro: tuple[Msg, ...] = ()) -> Decision:
    """The summary to confirm, bound to the assessment's revision; or why there is nothing to submit."""
    assert snap.member is not None and snap.period is not None
    move = _submission(snap)
    confirming = replace(session, mode=Mode.CONFIRM_SUBMIT, seen=snap.revision)
    if move is Resubmit:
        pid = snap.period.id
        buttons = (
            p.button(N_("button.confirm_submit"), payload("sub", pid, None, "confirm")),
            p.button(N_("button.cancel"), payload("sub", pid, None, "cancel")),
        )
        lines = (
            *intro,
            msg(N_("resubmit.summary"), codes=", ".join(_returned(snap))),
            msg(N_("resubmit.confirm")),
        )
        return _say(confirming, Reply(lines, buttons))
    if move is None:
        back = replace(session, mode=Mode.ASK if session.current else Mode.DONE)
        closed = _closed(snap)
        if closed is not None:
            return _say(back, closed)
        if snap.status is AssessmentStatus.AWAITING_LEADER:
            return _say(back, _line(N_("submit.waiting_leader")))
        return _say(back, _line(N_("submit.already"), at=snap.submitted_at or msg(N_("welcome.no_deadline"))))
    summary = p.submit_summary(snap, leader=move is Submit)
    return _say(confirming, Reply((*intro, *summary.lines), summary.buttons))


def _confirm(snap: Snapshot, session: SessionState) -> Decision:
    """`có` to the summary: recorded only if the assessment is still in the state, and at the
    revision, the member was shown; otherwise they are told what changed and asked again."""
    assert snap.member is not None
    move = _submission(snap)
    if move is None:
        return _submit(snap, session)  # moved on meanwhile (submitted, or sent to the leader)
    if snap.revision != session.seen:
        return _submit(snap, session, intro=(msg(N_("submit.changed")),))
    back = replace(session, mode=Mode.ASK if session.current else Mode.DONE)
    status, revision = snap.status, snap.revision
    if move is Resubmit:
        notice = Notice(
            Role.REVIEWER,
            Reply(
                (
                    msg(
                        N_("resubmit.reviewer_notice"),
                        unit=snap.member.unit_name,
                        codes=", ".join(_returned(snap)),
                    ),
                )
            ),
            reviewers=True,
        )
        return _say(
            back.at(Mode.DONE, None),
            _line(N_("resubmit.done")),
            events=(Resubmit(status, revision),),
            notices=(notice,),
        )
    if move is Submit:
        reviewers = Notice(
            Role.REVIEWER,
            Reply((msg(N_("submit.reviewer_notice"), unit=snap.member.unit_name),)),
            reviewers=True,
        )
        return _say(
            back.at(Mode.DONE, None),
            _line(N_("submit.done"), unit=snap.member.unit_name),
            events=(Submit(status, revision),),
            notices=(reviewers,),
        )
    report = p.strict(snap)
    _, no_evidence = p.at_risk(snap)
    notice = Notice(
        Role.LEADER,
        Reply(
            (
                msg(
                    N_("submit.leader_notice"),
                    unit=snap.member.unit_name,
                    answered=sum(1 for i in _fw(snap).indicators if i.code in snap.answers),
                    total=len(_fw(snap).indicators),
                    no_evidence=len(no_evidence),
                    sum=report.total,
                    max=report.max,
                ),
            ),
        ),
    )
    return _say(
        back,
        _line(N_("submit.requested")),
        events=(RequestSubmission(status, revision),),
        notices=(notice,),
    )


# -- dispatch ------------------------------------------------------------------------------------


def _intent(snap: Snapshot, session: SessionState, parsed: Parsed, now: dt.datetime) -> Decision | None:
    """Handle a navigation or overview request; None when the intent means nothing in this mode."""
    i = parsed.intent
    fw = _fw(snap)
    code = session.current
    if i is Intent.HELP:
        return _say(session, p.help_reply())
    if i is Intent.PREVIEW:
        return _say(session, p.preview(snap))
    if i is Intent.CHART:
        return _say(session, p.chart(snap))
    if i is Intent.PAUSE:
        return _say(session, _line(N_("reminders.paused")), events=(SetReminders(False),))
    if i is Intent.UNPAUSE:
        return _say(session, _line(N_("reminders.resumed")), events=(SetReminders(True),))
    if i is Intent.PROGRESS:
        return _say(session, p.progress(snap))
    if i is Intent.MISSING:
        return _say(session, p.missing(snap))
    if i is Intent.LANGUAGE:
        if parsed.arg in ("vi", "en"):
            return _say(session, _line(N_("language.set")), events=(SetLanguage(parsed.arg),))
        return _say(session, Reply((msg(N_("language.choose")),), p.language_buttons(snap)))
    if i is Intent.START and parsed.arg and join_code(parsed.arg) is not None:
        return _already_joined(snap, session, now)
    if i in (Intent.RESUME, Intent.START):
        return _ask_again(snap, session, now, intro=p.greeting(snap))
    if i is Intent.SUBMIT:
        return _submit(snap, session)
    if i is Intent.JUMP:
        if fw.indicator(parsed.arg) is None:
            return _say(session, _line(N_("jump.unknown"), code=parsed.arg))
        return _say(session.at(Mode.ASK, parsed.arg), _question(snap, parsed.arg, now))
    if i is Intent.GROUP:
        group = fw.group(parsed.arg)
        if group is None:
            return _say(
                session,
                _line(N_("jump.unknown_group"), group=parsed.arg, groups=", ".join(g.id for g in fw.groups)),
            )
        target = next((c for c in group.indicator_codes if c not in snap.answers), group.indicator_codes[0])
        return _say(session.at(Mode.ASK, target), _question(snap, target, now))
    if i is Intent.BACK:
        codes = [ind.code for ind in fw.indicators]
        target = codes[max(codes.index(code) - 1, 0)] if code in codes else codes[-1]
        return _say(session.at(Mode.ASK, target), _question(snap, target, now))
    if i is Intent.GUIDANCE and code is not None:
        return _say(session, p.guidance(snap, code))
    if session.mode is Mode.EVIDENCE and i in (Intent.DONE, Intent.SKIP, Intent.NEXT):
        return _evidence_done(snap, session, now)
    if i in (Intent.SKIP, Intent.NEXT) and session.mode in (Mode.ASK, Mode.NA_REASON, Mode.CONFIRM_SUBMIT):
        skipped = session.skipped
        if code is not None and code not in snap.answers and code not in skipped:
            skipped = (*skipped, code)
        return _advance(snap, replace(session, skipped=skipped), code, now)
    if i is Intent.NOT_APPLICABLE and code is not None and session.mode in (Mode.ASK, Mode.EVIDENCE):
        ind = fw.indicator(code)
        assert ind is not None
        if not ind.allows_not_applicable:
            return _say(session, _line(N_("na.not_allowed"), code=code))
        locked = _answer_lock(snap, now, code)
        if locked is not None:
            return _say(session, locked)
        return _say(session.at(Mode.NA_REASON, code), p.na_prompt(snap, code))
    if i is Intent.CANCEL:
        return _ask_again(
            snap, replace(session, mode=Mode.ASK) if session.mode is not Mode.DONE else session, now
        )
    if i is Intent.CONFIRM and session.mode is Mode.CONFIRM_SUBMIT:
        return _confirm(snap, session)
    return None


def _already_joined(snap: Snapshot, session: SessionState, now: dt.datetime) -> Decision:
    """An invite code from a chat already linked to a unit: joining another unit is a separate step."""
    assert snap.member is not None
    told = _line(N_("join.already_member"), unit=snap.member.unit_name)
    return _say(session, told, *_ask_again(snap, session, now).replies)


def _press(snap: Snapshot, session: SessionState, press: Press, now: dt.datetime) -> Decision:
    assert snap.period is not None
    stale = _say(session, _line(N_("button.stale")), *_ask_again(snap, session, now).replies)
    if press.period_id != snap.period.id:
        return stale
    if press.action == "ans":
        if session.mode is not Mode.ASK or press.code != session.current:
            return stale
        ind = _fw(snap).indicator(press.code)
        assert ind is not None
        value: AnswerValue | Problem
        if ind.answer.type is AnswerType.YES_NO and press.arg in ("yes", "no"):
            value = press.arg == "yes"
        elif ind.answer.type is AnswerType.CHOICE and ind.answer.option(press.arg) is not None:
            value = press.arg
        elif press.arg.startswith(_TYPED) and ind.answer.type in _NUMERIC:
            value = parse_answer(ind, press.arg[len(_TYPED) :])
        else:
            return stale
        if isinstance(value, Problem):
            return stale
        return _record(snap, session, press.code, value, now)
    if press.action == "ev":
        if (
            session.mode is not Mode.EVIDENCE
            or press.code != session.current
            or press.arg not in ("done", "later")
        ):
            return stale
        return _evidence_done(snap, session, now)
    if press.action == "sub":
        if session.mode is not Mode.CONFIRM_SUBMIT:
            return stale
        if press.arg == "confirm":
            return _confirm(snap, session)
        return _ask_again(snap, replace(session, mode=Mode.ASK), now)
    if press.action == "go":
        if _fw(snap).indicator(press.code) is None:
            return stale
        return _say(session.at(Mode.ASK, press.code), _question(snap, press.code, now))
    if press.action == "lang" and press.arg in ("vi", "en"):
        return _say(session, _line(N_("language.set")), events=(SetLanguage(press.arg),))
    if press.action == "nav":
        if press.code and press.code != session.current:
            return stale
        intents = {
            "skip": Intent.SKIP,
            "na": Intent.NOT_APPLICABLE,
            "guidance": Intent.GUIDANCE,
            "help": Intent.HELP,
            "preview": Intent.PREVIEW,
            "chart": Intent.CHART,
            "missing": Intent.MISSING,
            "progress": Intent.PROGRESS,
            "submit": Intent.SUBMIT,
            "cancel": Intent.CANCEL,
        }
        intent = intents.get(press.arg)
        if intent is not None:
            result = _intent(snap, session, Parsed(intent), now)
            if result is not None:
                return result
    return stale


_TYPED = "n:"  # a button that answers with what the member typed (an answer that was also a code)


def _code_or_answer(snap: Snapshot, session: SessionState, text: str, now: dt.datetime) -> Decision | None:
    """A message that is both an answer to the open question and an indicator code ("1.1" at a
    percentage) is not guessed at: the member picks one of two buttons, and nothing is recorded."""
    code = session.current
    target = folded(text)
    if session.mode is not Mode.ASK or code is None or not is_code(target) or target not in _fw(snap).codes:
        return None
    ind = _fw(snap).indicator(code)
    assert ind is not None and snap.period is not None
    value = parse_answer(ind, text)
    if isinstance(value, Problem):
        return None
    pid = snap.period.id
    buttons = (
        Button(
            msg(N_("button.answer_value"), value=p.value_msg(ind, value)),
            payload("ans", pid, code, _TYPED + target),
        ),
        p.button(N_("button.go_to"), payload("go", pid, target), code=target),
    )
    return _say(session, Reply((msg(N_("ask.code_or_answer"), text=text, code=target),), buttons))


def _walk(snap: Snapshot, inbound: Inbound, now: dt.datetime) -> Decision:
    assert snap.member is not None and snap.period is not None
    session = snap.session
    fw = snap.period.framework
    if session.current is not None and fw.indicator(session.current) is None:
        session = SessionState(mode=Mode.ASK, seq=session.seq)  # the period's framework changed
    if session.mode is Mode.JOIN:
        session = session.at(Mode.ASK, None)
        if inbound.kind is not InboundKind.BUTTON:
            return _advance(snap, session, None, now, intro=p.greeting(snap))
    if inbound.kind is InboundKind.RESUME:
        return _ask_again(snap, session, now, intro=p.greeting(snap))
    if inbound.kind is InboundKind.BUTTON:
        press = read_payload(inbound.payload)
        if press is None:
            return _say(session, _line(N_("button.stale")), *_ask_again(snap, session, now).replies)
        return _press(snap, session, press, now)
    if inbound.kind is InboundKind.FILE:
        named = inbound.field("code")  # uploaded for a given indicator (the web workspace)
        if named:
            if fw.indicator(named) is None:
                return _say(session, _line(N_("jump.unknown"), code=named))
            return _file_outside_evidence(snap, session.at(Mode.ASK, named), inbound, now)
        if session.mode is Mode.EVIDENCE:
            return _evidence(snap, session, inbound, now)
        return _file_outside_evidence(snap, session, inbound, now)
    if inbound.kind is InboundKind.FORM:
        return _say(session, _line(N_("button.stale")))
    text = clean(inbound.text)
    if not text:
        return _ask_again(snap, session, now)
    current = fw.indicator(session.current) if session.current else None
    expects_number = session.mode is Mode.ASK and current is not None and current.answer.type in _NUMERIC
    parsed = detect(text, codes=fw.codes, expects_number=expects_number)
    if parsed is not None:
        handled = _intent(snap, session, parsed, now)
        if handled is not None:
            return handled
    if session.mode is Mode.NA_REASON and session.current is not None:
        locked = _answer_lock(snap, now, session.current)
        if locked is not None:
            return _say(session.at(Mode.DONE, None), locked)
        code = session.current
        event = SaveAnswer(code, None, not_applicable=True, reason=text[:500])
        after = apply(snap, (event,), now)
        decision = _advance(after, session, code, now, intro=(p.ack(after, code),))
        return replace(decision, events=(event,))
    if session.mode is Mode.EVIDENCE:
        return _evidence(snap, session, inbound, now)
    if session.mode is Mode.CONFIRM_SUBMIT:
        yes = parse_yes_no(text)
        if yes is True:
            return _confirm(snap, session)
        if yes is False:
            return _ask_again(snap, replace(session, mode=Mode.ASK), now)
        return _submit(snap, session)
    if session.mode is Mode.DONE or session.current is None:
        return _say(session, _line(N_("walk.done_hint")))
    if parse_citation(text) is not None or parse_link(text) is not None:
        return _file_outside_evidence(
            snap, session, inbound, now
        )  # evidence typed while the question is open
    ambiguous = _code_or_answer(snap, session, text, now)
    if ambiguous is not None:
        return ambiguous
    return _answer_text(snap, session, text, now)


def _late(snap: Snapshot, inbound: Inbound) -> Decision | None:
    """A text or file that reached the engine after newer messages of the chat (held while the
    database was down, replayed later) was meant for the question open when it was sent, which is
    no longer known: it is not applied to another one, and the member is asked to send it again."""
    if inbound.seq is None or inbound.seq >= snap.session.seq:
        return None
    if inbound.kind is InboundKind.FILE:
        names = ", ".join(f.name for f in inbound.files) or "-"
        return _say(snap.session, _line(N_("late.file"), names=names))
    if inbound.kind is InboundKind.TEXT:
        return _say(snap.session, _line(N_("late.text"), text=clean(inbound.text)[:80]))
    return None


def step(snapshot: Snapshot, inbound: Inbound, now: dt.datetime) -> Decision:
    """Decide what to record and what to reply; never raises on anything a user can send."""
    late = _late(snapshot, inbound)
    if late is not None:
        return late
    decision = _step(snapshot, inbound, now)
    if inbound.seq is not None and inbound.seq > decision.session.seq:
        return replace(decision, session=replace(decision.session, seq=inbound.seq))
    return decision


def _step(snapshot: Snapshot, inbound: Inbound, now: dt.datetime) -> Decision:
    if inbound.kind is InboundKind.UNSUPPORTED:
        return _say(snapshot.session, _line(N_("unsupported.content")))
    if inbound.kind is InboundKind.EDITED:
        return _say(snapshot.session, _line(N_("unsupported.edited")))
    if snapshot.member is None:
        return _join(snapshot, inbound, now)
    if asks_for_web_link(inbound):
        return web_link(snapshot, now)
    if snapshot.member.role is Role.REVIEWER:
        return review_step(snapshot, inbound, now)
    if snapshot.member.role not in _ANSWERING_ROLES:
        return _say(snapshot.session, _line(N_("role.no_assessment"), unit=snapshot.member.unit_name))
    if snapshot.period is None:
        return _say(snapshot.session, _line(N_("walk.no_period"), unit=snapshot.member.unit_name))
    return _walk(snapshot, inbound, now)
