"""The engine's rules for what can change in which state, and the inputs it must not misread (issues
20 and 21): on the pure engine with events applied in memory (tests/flows_harness.py)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal

import pytest

from bot.i18n import Translator
from flows.appraise import parse_due
from flows.intents import payload
from flows.model import (
    AddEvidence,
    AnswerView,
    AssessmentStatus,
    CloseAppraisal,
    Decide,
    DecisionView,
    FileInfo,
    Inbound,
    InboundKind,
    Mode,
    QueueItem,
    RequestSubmission,
    Review,
    ReviewedUnit,
    Role,
    SaveAnswer,
    SendReturns,
    SessionState,
    Submit,
    Verdict,
)
from flows.parse import MAX_COUNT, Problem, parse_answer, parse_citation, parse_yes_no
from scoring.answers import VIETNAM_TZ
from scoring.model import Framework
from tests.flows_harness import T0, Chat


def answered(chat: Chat, *lines: str) -> Chat:
    chat.send(Inbound(InboundKind.RESUME))
    for line in lines:
        chat.text(line)
    return chat


def with_status(chat: Chat, status: AssessmentStatus, **changes: object) -> None:
    chat.snap = dataclasses.replace(chat.snap, status=status, submitted_at=T0, **changes)  # type: ignore[arg-type]


# -- issue 20 · 1 and 3: a confirmation is bound to the state and the revision it was shown ---------


def test_a_stale_confirmation_after_the_leader_submitted_changes_nothing(tay_ninh: Framework) -> None:
    respondent = answered(Chat(tay_ninh), "70,4", "để sau")
    respondent.text("nộp")
    assert respondent.session.mode is Mode.CONFIRM_SUBMIT
    with_status(respondent, AssessmentStatus.SUBMITTED)  # the leader submitted meanwhile
    out = respondent.text("có")
    assert respondent.decisions[-1].events == ()
    assert "đã được nộp" in out
    assert respondent.snap.status is AssessmentStatus.SUBMITTED
    # or the appraisal even closed while the confirmation was open
    with_status(respondent, AssessmentStatus.APPRAISED)
    confirming = dataclasses.replace(respondent.session, mode=Mode.CONFIRM_SUBMIT)
    respondent.snap = dataclasses.replace(respondent.snap, session=confirming)
    out = respondent.send(Inbound(InboundKind.BUTTON, payload=payload("sub", 7, None, "confirm")))
    assert respondent.decisions[-1].events == () and "thẩm định xong" in out[0].text


def test_a_second_respondent_confirming_after_the_first_asked_the_leader_is_told(tay_ninh: Framework) -> None:
    chat = answered(Chat(tay_ninh), "70,4", "để sau")
    chat.text("nộp")
    with_status(chat, AssessmentStatus.AWAITING_LEADER)
    assert "chờ lãnh đạo" in chat.text("có") and chat.decisions[-1].events == ()


def test_the_leader_confirms_only_the_revision_shown(tay_ninh: Framework) -> None:
    leader = answered(Chat(tay_ninh, role=Role.LEADER), "70,4", "để sau")
    leader.text("nộp")
    shown = leader.session.seen
    assert shown == leader.snap.revision
    # a respondent changes an answer after the summary was shown
    answers = dict(leader.snap.answers)
    answers["1.2"] = AnswerView(True, revision=1)
    leader.snap = dataclasses.replace(leader.snap, answers=answers, revision=leader.snap.revision + 1)
    out = leader.text("có")
    assert leader.decisions[-1].events == ()
    assert "đã thay đổi sau khi bạn xem" in out and "2/62 chỉ tiêu đã trả lời" in out
    assert leader.session.mode is Mode.CONFIRM_SUBMIT and leader.session.seen == leader.snap.revision
    leader.text("có")
    (event,) = leader.decisions[-1].events
    assert event == Submit(AssessmentStatus.DRAFT, leader.snap.revision)


def test_submission_events_carry_the_state_and_revision_decided_on(tay_ninh: Framework) -> None:
    chat = answered(Chat(tay_ninh), "70,4", "để sau")
    chat.text("nộp")
    chat.text("có")
    (event,) = chat.decisions[-1].events
    assert event == RequestSubmission(AssessmentStatus.DRAFT, 1)  # one answer revision, no evidence


# -- issue 20 · 2: a closed appraisal stays closed --------------------------------------------------


def review_chat(fw: Framework, status: AssessmentStatus) -> Chat:
    chat = Chat(fw, role=Role.REVIEWER)
    answers = {"1.1": AnswerView(Decimal(50))}
    decisions = {"1.1": DecisionView(Verdict.ACCEPT, Decimal(5), None, 1, None, T0)}
    unit = ReviewedUnit(10, "Xã An Bình", 99, status, answers, decisions, T0)
    queue = (QueueItem(10, "Xã An Bình", status, T0, 1, 0),)
    chat.snap = dataclasses.replace(
        chat.snap,
        session=SessionState(mode=Mode.REVIEW, current="1.1", unit=10, seen=1),
        review=Review(queue, unit),
    )
    return chat


@pytest.mark.parametrize("button", ["accept:1", "adjust:1", "return:1"])
def test_a_decision_on_a_closed_appraisal_is_refused(tay_ninh: Framework, button: str) -> None:
    chat = review_chat(tay_ninh, AssessmentStatus.APPRAISED)
    out = chat.send(Inbound(InboundKind.BUTTON, payload=payload("rv", 7, "1.1", button)))
    assert chat.decisions[-1].events == ()
    assert "đã được kết thúc thẩm định" in "\n".join(r.text for r in out)
    assert chat.session.mode is Mode.REVIEW


def test_sending_returns_or_closing_again_is_refused_and_events_carry_what_was_seen(
    tay_ninh: Framework,
) -> None:
    closed = review_chat(tay_ninh, AssessmentStatus.APPRAISED)
    for arg in ("send", "close"):
        closed.send(Inbound(InboundKind.BUTTON, payload=payload("rv", 7, None, arg)))
        assert closed.decisions[-1].events == ()
    open_ = review_chat(tay_ninh, AssessmentStatus.SUBMITTED)
    open_.send(Inbound(InboundKind.BUTTON, payload=payload("rv", 7, "1.1", "return:1")))
    open_.text("Thiếu báo cáo")
    open_.text("20/12/2026")
    (decide,) = open_.decisions[-1].events
    assert isinstance(decide, Decide) and decide.expected is AssessmentStatus.SUBMITTED
    assert decide.expected_revision == 1


def test_send_and_close_events_are_bound_to_the_decisions_seen() -> None:
    assert SendReturns(1, AssessmentStatus.SUBMITTED, 3).to is AssessmentStatus.RETURNED
    assert CloseAppraisal(1, AssessmentStatus.RETURNED, 3).to is AssessmentStatus.APPRAISED


# -- issue 20 · 4: a message that comes after newer ones is not filed under another question --------


def test_a_late_file_or_text_is_refused_and_changes_nothing(tay_ninh: Framework) -> None:
    chat = Chat(tay_ninh)
    chat.send(Inbound(InboundKind.RESUME, seq=10))
    chat.send(Inbound(InboundKind.TEXT, text="70,4", seq=12))  # now at 1.1's evidence step
    assert chat.session.seq == 12
    pdf = FileInfo("cd" * 32, 2000, "application/pdf", "bao-cao-1.1.pdf")
    late = chat.send(Inbound(InboundKind.FILE, files=(pdf,), seq=11))
    assert chat.decisions[-1].events == () and chat.session.seq == 12
    assert "đến chậm" in late[0].text and "bao-cao-1.1.pdf" in late[0].text
    chat.send(Inbound(InboundKind.TEXT, text="không", seq=9))
    assert chat.decisions[-1].events == ()
    chat.send(Inbound(InboundKind.FILE, files=(pdf,), seq=13))  # in order: applied
    assert isinstance(chat.decisions[-1].events[0], AddEvidence)


# -- issue 20 · 5 and 6: only ASCII digits are numbers; numbers are bounded -------------------------


@pytest.mark.parametrize("digits", ["²", "①", "³", "٣", "²³"])
def test_unicode_digits_are_re_asked_never_a_crash(
    maturity: Framework, tay_ninh: Framework, digits: str
) -> None:
    chat = Chat(maturity)
    chat.send(Inbound(InboundKind.RESUME))
    for _ in range(6):
        chat.text(digits)
        assert chat.decisions[-1].events == ()
        chat.text("tiếp")
    forged = [
        payload("ans", 7, "1.1", digits),
        f"ans|{digits}|1.1|yes",
        f"rv|{digits}|-|open:1",
    ]
    for data in forged:
        chat.send(Inbound(InboundKind.BUTTON, payload=data))
        assert chat.decisions[-1].events == ()
    reviewer = review_chat(tay_ninh, AssessmentStatus.SUBMITTED)
    for data in (payload("rv", 7, None, f"open:{digits}"), payload("rv", 7, "1.1", f"accept:{digits}")):
        reviewer.send(Inbound(InboundKind.BUTTON, payload=data))
        assert reviewer.decisions[-1].events == ()


def test_huge_numbers_get_a_clear_message_and_are_never_stored(
    tay_ninh: Framework, maturity: Framework
) -> None:
    count = next(i for i in maturity.indicators if i.answer.type == "count")
    problem = parse_answer(count, "9" * 250)
    assert isinstance(problem, Problem) and problem.key == "ask.bad.too_large"
    assert isinstance(parse_answer(count, str(MAX_COUNT + 1)), Problem)
    assert parse_answer(count, str(MAX_COUNT)) == MAX_COUNT
    chat = Chat(maturity)
    chat.send(Inbound(InboundKind.RESUME))
    chat.send(Inbound(InboundKind.BUTTON, payload=payload("go", 7, count.code)))
    out = chat.text("1" * 199)
    assert "Số quá lớn" in out and chat.decisions[-1].events == ()
    assert Translator("vi").number(Decimal("9" * 300)) == f"{int('9' * 300):,}".replace(",", ".")


# -- issue 20 · 14: an answer that is also an indicator code is asked about --------------------------


def test_a_code_typed_at_a_number_question_is_asked_about(tay_ninh: Framework) -> None:
    chat = answered(Chat(tay_ninh))
    out = chat.text("1.2")
    assert chat.decisions[-1].events == () and chat.session.current == "1.1"
    assert "vừa là một câu trả lời vừa là mã chỉ tiêu 1.2" in out
    labels = [b.label for b in chat.transcript[-1].buttons]
    assert labels == ["Trả lời 1,2%", "Đến câu 1.2"]
    chat.press("Trả lời 1,2%")
    (event,) = chat.decisions[-1].events
    assert event == SaveAnswer("1.1", Decimal("1.2"))
    chat.text("quay lại")
    chat.text("1.2")
    chat.press("Đến câu 1.2")
    assert chat.session.current == "1.2" and chat.decisions[-1].events == ()
    chat.text("quay lại")
    chat.text("1,2")
    assert chat.decisions[-1].events == (SaveAnswer("1.1", Decimal("1.2")),)
    chat.text("câu 1.1")
    assert chat.session.current == "1.1" and chat.decisions[-1].events == ()


# -- issue 21 · 3 and 6: what can be done after submission, appraisal and publication ---------------


def test_after_submission_evidence_may_be_added_and_answers_may_not(tay_ninh: Framework) -> None:
    chat = answered(Chat(tay_ninh), "70,4", "để sau")
    with_status(chat, AssessmentStatus.SUBMITTED)
    out = chat.send(Inbound(InboundKind.BUTTON, payload=payload("go", 7, "1.1")))[0].text
    assert "Gửi giá trị mới để sửa" not in out and "Vẫn có thể gửi thêm minh chứng" in out
    assert chat.transcript[-1].buttons == () or all(
        "Bỏ qua" not in b.label for b in chat.transcript[-1].buttons
    )
    assert "không sửa được nữa" in chat.text("80")
    assert chat.decisions[-1].events == ()
    chat.send(Inbound(InboundKind.BUTTON, payload=payload("go", 7, "1.1")))
    chat.file("bao-cao.pdf")
    (event,) = chat.decisions[-1].events
    assert isinstance(event, AddEvidence) and event.code == "1.1" and not event.late
    # after the supplement deadline it is kept and flagged late
    period = dataclasses.replace(chat.snap.period, supplement_due=T0 - dt.timedelta(days=1))  # type: ignore[type-var]
    chat.snap = dataclasses.replace(chat.snap, period=period)
    chat.send(Inbound(InboundKind.BUTTON, payload=payload("go", 7, "1.1")))
    out = chat.file("khac.pdf")
    assert chat.decisions[-1].events == () or chat.decisions[-1].events[0].late  # type: ignore[union-attr]


def test_accepted_indicators_take_no_more_evidence(tay_ninh: Framework) -> None:
    chat = answered(Chat(tay_ninh), "70,4", "để sau")
    with_status(
        chat, AssessmentStatus.SUBMITTED, decisions={"1.1": DecisionView(Verdict.ACCEPT, Decimal(7), None, 1)}
    )
    chat.send(Inbound(InboundKind.BUTTON, payload=payload("go", 7, "1.1")))
    out = chat.file("bao-cao.pdf")
    assert "đã được đơn vị thẩm định chấp nhận" in out and chat.decisions[-1].events == ()


@pytest.mark.parametrize("published", [False, True])
def test_start_after_appraisal_or_publication_asks_nothing(tay_ninh: Framework, published: bool) -> None:
    chat = answered(Chat(tay_ninh), "70,4", "để sau")
    with_status(chat, AssessmentStatus.APPRAISED)
    if published:
        period = dataclasses.replace(chat.snap.period, published_at=T0)  # type: ignore[type-var]
        chat.snap = dataclasses.replace(chat.snap, period=period)
    out = chat.text("/start")
    assert chat.session.mode is Mode.DONE and "Câu 2/62" not in out
    assert ("đã được công bố" if published else "đã được thẩm định xong") in out
    assert chat.transcript[-1].buttons == ()
    assert "không thay đổi được" in chat.file("x.pdf") and chat.decisions[-1].events == ()


# -- issue 21 · 4, 5, 7, 8: warnings, notices, totals and examples that are true ---------------------


def test_later_after_a_file_gives_no_false_warning_and_a_file_counts_once(tay_ninh: Framework) -> None:
    chat = answered(Chat(tay_ninh), "70,4")
    assert "(1 minh chứng)" in chat.file("bao-cao.pdf")
    out = chat.file("bao-cao.pdf")  # the same file (the harness gives every file the same content)
    assert "đã có trong minh chứng của 1.1" in out and chat.decisions[-1].events == ()
    assert "chưa có minh chứng" not in chat.text("để sau")


def test_the_leader_is_told_what_is_answered(tay_ninh: Framework) -> None:
    chat = answered(Chat(tay_ninh), "70,4", "để sau")
    chat.text("nộp")
    chat.text("có")
    (notice,) = chat.decisions[-1].notices
    text = Translator("vi")(
        notice.reply.lines[0].key, **{k: str(v) for k, v in notice.reply.lines[0].params.items()}
    )
    assert "hoàn thành" not in text and "1/62" in text


def test_one_total_and_what_missing_evidence_holds_back(tay_ninh: Framework) -> None:
    chat = answered(Chat(tay_ninh))
    ack = chat.text("70,4")
    preview_total = "Tổng 0/960"
    assert preview_total in ack and "7,04 điểm chờ minh chứng" in ack
    chat.file("bao-cao.pdf")
    assert "Tổng điểm 7,04/960" in chat.text("xem điểm")


def test_examples_stay_within_the_indicator_range(make_framework: object) -> None:
    fw = make_framework()  # type: ignore[operator]
    chat = Chat(fw)
    chat.send(Inbound(InboundKind.BUTTON, payload=payload("go", 7, "2.2")))
    out = chat.transcript[-1].text
    assert "Tối đa 30 điểm" in out and "ví dụ 22,5" in out
    assert "ví dụ 22,5" in chat.text("abc")


# -- issue 21 · 10: a caption is a citation or a note, never dropped --------------------------------


@pytest.mark.parametrize(
    ("caption", "number", "date", "summary"),
    [
        (
            "Báo cáo số 15/BC-VNPT ngày 10/10/2025 về hạ tầng băng rộng",
            "15/BC-VNPT",
            (2025, 10, 10),
            "Báo cáo về hạ tầng băng rộng",
        ),
        ("QĐ 45/QĐ-UBND ngày 12/3/2025", "45/QĐ-UBND", (2025, 3, 12), "QĐ"),
        (
            "12/KH-UBND - 05/02/2025 - Kế hoạch chuyển đổi số",
            "12/KH-UBND",
            (2025, 2, 5),
            "Kế hoạch chuyển đổi số",
        ),
        ("ngày 5/2/2025, Kế hoạch 12/KH-UBND", "12/KH-UBND", (2025, 2, 5), "Kế hoạch"),
    ],
)
def test_natural_citations(caption: str, number: str, date: tuple[int, int, int], summary: str) -> None:
    citation = parse_citation(caption)
    assert citation is not None
    assert (citation.number, citation.date, citation.summary) == (number, dt.date(*date), summary)


def test_a_caption_is_kept_as_citation_or_note(tay_ninh: Framework) -> None:
    chat = answered(Chat(tay_ninh), "70,4")
    out = chat.file("bc.pdf", caption="Báo cáo số 15/BC-VNPT ngày 10/10/2025 về hạ tầng băng rộng")
    (event,) = chat.decisions[-1].events
    assert isinstance(event, AddEvidence) and event.citation is not None and event.note is None
    assert "15/BC-VNPT ngày 10/10/2025" in out
    chat.snap = dataclasses.replace(chat.snap, answers={**chat.snap.answers, "1.1": AnswerView(Decimal(70))})
    out = chat.file("anh.png", mime="image/png", caption="Ảnh chụp cổng dịch vụ công")
    (event,) = chat.decisions[-1].events
    assert event.note == "Ảnh chụp cổng dịch vụ công" and event.citation is None  # type: ignore[union-attr]
    assert "ghi chú" in out


# -- issue 21 · 11 and 12: invites from a linked chat, everyday replies -----------------------------


def test_an_invite_from_a_linked_chat_says_which_unit(tay_ninh: Framework) -> None:
    chat = answered(Chat(tay_ninh))
    out = chat.text("/start ZX98YW76")
    assert "đang liên kết với Xã An Bình" in out and chat.decisions[-1].events == ()


@pytest.mark.parametrize("text", ["ko ạ", "ko a", "dạ không", "khôg", "không nhé"])
def test_everyday_no(text: str) -> None:
    assert parse_yes_no(text) is False


def test_everyday_done_and_ok(tay_ninh: Framework) -> None:
    chat = answered(Chat(tay_ninh), "70,4")
    chat.file("bc.pdf")
    chat.text("xong rồi")
    assert chat.session.current == "1.2" and chat.session.mode is Mode.ASK
    chat.text("câu 1.6")
    chat.text("ok")  # a yes/no question: yes
    assert chat.decisions[-1].events[0] == SaveAnswer("1.6", True)


def test_typed_accept_in_the_reviewer_flow(tay_ninh: Framework) -> None:
    chat = review_chat(tay_ninh, AssessmentStatus.SUBMITTED)
    chat.text("chấp nhận")
    (event,) = chat.decisions[-1].events
    assert isinstance(event, Decide) and event.decision == "accept" and event.expected_revision == 1


def test_a_deadline_without_a_year_is_the_next_such_date() -> None:
    now = dt.datetime(2026, 12, 4, 10, 0, tzinfo=VIETNAM_TZ)
    assert parse_due("18/12", now) == dt.datetime(2026, 12, 18, 17, 0, tzinfo=VIETNAM_TZ)
    assert parse_due("05/01", now) == dt.datetime(2027, 1, 5, 17, 0, tzinfo=VIETNAM_TZ)
    assert parse_due("18/12 9:30", now) == dt.datetime(2026, 12, 18, 9, 30, tzinfo=VIETNAM_TZ)
    assert parse_due("31/02", now) is None
