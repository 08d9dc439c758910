"""Arbitrary input in every mode and role of both shipped frameworks (issue 20): the engine never
raises, answers every message, and a message it did not understand changes nothing."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.i18n import Translator
from bot.render.reply import ReplyRenderer
from flows import step
from flows.model import (
    AnswerView,
    AssessmentStatus,
    Decision,
    DecisionView,
    EvidenceView,
    Inbound,
    InboundKind,
    InviteView,
    JoinFailed,
    MemberView,
    Mode,
    PeriodView,
    QueueItem,
    Review,
    ReviewedUnit,
    Role,
    SessionState,
    Snapshot,
    Verdict,
)
from scoring.answers import VIETNAM_TZ
from scoring.model import AnswerType, Framework

NOW = dt.datetime(2026, 12, 4, 9, 0, tzinfo=VIETNAM_TZ)
PERIOD = 7
# Replies that say the message was not understood (or not allowed): after one, nothing may change.
NOT_UNDERSTOOD = (
    "ask.bad.",
    "evidence.bad",
    "button.stale",
    "join.ask_code",
    "review.bad_",
    "late.",
    "ask.code_or_answer",
)
MEMBER_MODES = [Mode.ASK, Mode.EVIDENCE, Mode.NA_REASON, Mode.CONFIRM_SUBMIT, Mode.DONE, Mode.JOIN]
REVIEW_MODES = [Mode.REVIEW, Mode.REVIEW_POINTS, Mode.REVIEW_COMMENT, Mode.REVIEW_RETURN, Mode.REVIEW_DUE]

DIGITS = st.sampled_from(["1", "2", "12", "0", "²", "①", "³", "٣", "-1", "99999999999999999999", "1.1"])
WORDS = st.sampled_from(
    [
        "ans",
        "ev",
        "sub",
        "go",
        "lang",
        "nav",
        "rv",
        "open:",
        "accept:",
        "adjust:",
        "return:",
        "due:default",
        "-",
    ]
)
PAYLOADS = st.one_of(
    st.text(max_size=80),
    st.builds(
        lambda a, p, c, arg: f"{a}|{p}|{c}|{arg}",
        WORDS,
        DIGITS,
        st.one_of(DIGITS, st.just("-"), st.text(max_size=6)),
        st.one_of(WORDS, DIGITS, st.builds(lambda w, d: w + d, WORDS, DIGITS), st.text(max_size=10)),
    ),
)
TEXTS = st.one_of(
    st.text(max_size=300),
    st.builds(lambda d: "#" + d, DIGITS),  # a Zalo button typed by number
    st.builds(lambda d, e: d * e, DIGITS, st.integers(1, 150)),  # very long numbers
    st.sampled_from(
        ["có", "ko ạ", "xong", "nộp", "câu 1.1", "1.1", "70,4", "12/30", "/start AB12CD34", "18/12"]
    ),
)
INBOUNDS = st.one_of(
    st.builds(lambda t: Inbound(InboundKind.TEXT, text=t), TEXTS),
    st.builds(lambda p: Inbound(InboundKind.BUTTON, payload=p), PAYLOADS),
    st.builds(lambda t, s: Inbound(InboundKind.TEXT, text=t, seq=s), TEXTS, st.integers(0, 20)),
)


def snapshot(
    fw: Framework, role: Role | None, mode: Mode, status: AssessmentStatus, code_index: int, published: bool
) -> Snapshot:
    code = fw.indicators[code_index % len(fw.indicators)].code
    answers = {
        i.code: AnswerView(
            True if i.answer.type is AnswerType.YES_NO else None,
            not_applicable=i.answer.type is not AnswerType.YES_NO,
            reason="không có",
            evidence=(EvidenceView("file", "bc.pdf", NOW, sha256="ab" * 32),),
        )
        for i in fw.indicators[::3]
    }
    decisions = {
        c: DecisionView(Verdict.RETURN, None, "thiếu", 1, NOW + dt.timedelta(days=3), NOW)
        for c in list(answers)[:2]
    }
    period = PeriodView(
        PERIOD,
        "Kỳ 2025",
        fw,
        NOW + dt.timedelta(days=5),
        NOW + dt.timedelta(days=9),
        NOW if published else None,
    )
    session = SessionState(mode=mode, current=code, unit=10, draft="5", seen=1, seq=10)
    if role is None:
        invite = InviteView("AB12CD34", "Xã An Bình", Role.RESPONDENT, NOW + dt.timedelta(days=1), False)
        return Snapshot("console", "c1", SessionState(seq=10), invite=invite)  # not a member: joining
    member = MemberView(1, role, 10 if role is not Role.REVIEWER else 2, "25840", "Xã An Bình")
    if role is Role.REVIEWER:
        unit = ReviewedUnit(10, "Xã An Bình", 99, status, answers, decisions, NOW)
        review = Review((QueueItem(10, "Xã An Bình", status, NOW, 0, 2),), unit)
        return Snapshot("console", "c1", session, member, period, review=review)
    return Snapshot(
        "console",
        "c1",
        session,
        member,
        period,
        status,
        answers,
        submitted_at=NOW,
        decisions=decisions,
        revision=5,
    )


def check(snap: Snapshot, inbound: Inbound) -> Decision:
    decision = step(snap, inbound, NOW)
    assert decision.replies, "every message gets a reply"
    renderer = ReplyRenderer(Translator("vi"))
    for reply in decision.replies:
        assert renderer.reply(reply).text.strip()
    first = decision.replies[0].lines[0].key if decision.replies[0].lines else ""
    if first.startswith(NOT_UNDERSTOOD):
        assert all(isinstance(e, JoinFailed) for e in decision.events), (first, decision.events)
        before, after = snap.session, decision.session
        if before.mode is Mode.JOIN:  # a member's first message after joining opens the walk
            return decision
        assert (after.mode, after.current, after.unit, after.skipped) == (
            before.mode,
            before.current,
            before.unit,
            before.skipped,
        )
    return decision


@pytest.mark.parametrize("framework", ["tay_ninh", "maturity"])
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    role=st.sampled_from([Role.RESPONDENT, Role.LEADER, None]),
    mode=st.sampled_from(MEMBER_MODES),
    status=st.sampled_from(list(AssessmentStatus)),
    code_index=st.integers(0, 80),
    published=st.booleans(),
    inbound=INBOUNDS,
)
def test_members_in_every_mode(
    request: pytest.FixtureRequest,
    framework: str,
    role: Role | None,
    mode: Mode,
    status: AssessmentStatus,
    code_index: int,
    published: bool,
    inbound: Inbound,
) -> None:
    fw: Framework = request.getfixturevalue(framework)
    check(snapshot(fw, role, mode, status, code_index, published), inbound)


@pytest.mark.parametrize("framework", ["tay_ninh", "maturity"])
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    mode=st.sampled_from(REVIEW_MODES),
    status=st.sampled_from(list(AssessmentStatus)),
    code_index=st.integers(0, 80),
    inbound=INBOUNDS,
)
def test_reviewers_in_every_mode(
    request: pytest.FixtureRequest,
    framework: str,
    mode: Mode,
    status: AssessmentStatus,
    code_index: int,
    inbound: Inbound,
) -> None:
    fw: Framework = request.getfixturevalue(framework)
    check(snapshot(fw, Role.REVIEWER, mode, status, code_index, False), inbound)


def test_a_refused_decision_on_a_closed_appraisal_is_not_understood_as_a_change(tay_ninh: Framework) -> None:
    """The property's own check can fail: a decision event after a reply saying nothing was understood."""
    snap = snapshot(tay_ninh, Role.REVIEWER, Mode.REVIEW_POINTS, AssessmentStatus.SUBMITTED, 0, False)
    decision = check(snap, Inbound(InboundKind.TEXT, text="abc"))
    assert decision.replies[0].lines[0].key == "review.bad_points" and decision.events == ()
    assert Decimal(snap.session.draft or "0") == 5
