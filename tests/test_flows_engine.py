"""Whole conversations on the pure engine (events applied in memory, replies rendered in Vietnamese)."""

from __future__ import annotations

import datetime as dt
import unicodedata

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flows.intents import payload
from flows.model import (
    AssessmentStatus,
    FileInfo,
    Inbound,
    InboundKind,
    InviteView,
    Mode,
    Rejected,
    Role,
    SaveAnswer,
)
from scoring.model import Framework, Ratio
from tests.conftest import D
from tests.flows_harness import T0, Chat


def invite(**kw: object) -> InviteView:
    base = {
        "code": "AB12CD34",
        "unit_name": "Xã An Bình",
        "role": Role.RESPONDENT,
        "expires_at": T0 + dt.timedelta(days=2),
        "used": False,
    }
    base.update(kw)
    return InviteView(**base)  # type: ignore[arg-type]


def test_join_asks_for_a_code_then_binds_and_starts(tay_ninh: Framework) -> None:
    chat = Chat(tay_ninh, joined=False, invite=invite())
    assert "mã mời" in chat.text("xin chào")
    out = chat.text("/start ab12cd34")
    assert "Đã liên kết với Xã An Bình" in out and "Câu 1/62" in out and "1.1." in out
    assert chat.session.mode is Mode.ASK and chat.session.current == "1.1"


def test_code_typed_alone_joins(tay_ninh: Framework) -> None:
    chat = Chat(tay_ninh, joined=False, invite=invite())
    assert "Đã liên kết" in chat.text("AB12-CD34")


def test_wrong_expired_and_used_codes_and_rate_limit(tay_ninh: Framework) -> None:
    chat = Chat(tay_ninh, joined=False, invite=None)
    assert "không đúng" in chat.text("/start XXXXXXXX")
    for _ in range(4):
        chat.text("/start XXXXXXXX")
    blocked = chat.text("/start XXXXXXXX")
    assert "quá nhiều lần" in blocked
    assert chat.snap.member is None
    expired = Chat(tay_ninh, joined=False, invite=invite(expires_at=T0 - dt.timedelta(minutes=1)))
    assert "hết hạn" in expired.text("/start AB12CD34")
    used = Chat(tay_ninh, joined=False, invite=invite(used=True))
    assert "đã được dùng" in used.text("/start AB12CD34")
    assert expired.snap.member is None and used.snap.member is None


def test_rate_limit_window_passes(tay_ninh: Framework) -> None:
    chat = Chat(tay_ninh, joined=False, invite=invite())
    for _ in range(5):
        chat.text("/start WRONG000")
    assert "quá nhiều lần" in chat.text("/start AB12CD34")
    chat.now += dt.timedelta(minutes=16)
    assert "Đã liên kết" in chat.text("/start AB12CD34")


def test_answer_ack_line_and_evidence_step(tay_ninh: Framework) -> None:
    chat = Chat(tay_ninh)
    chat.send(Inbound(InboundKind.RESUME))
    out = chat.text("70,4")
    assert "Câu 1/62 · 7,04/10 điểm · Tổng 0/960 (0%) · 7,04 điểm chờ minh chứng" in out
    assert chat.session.mode is Mode.EVIDENCE
    assert "Đã nhận tệp bao-cao.pdf" in chat.file("bao-cao.pdf", size=1_200_000)
    assert "văn bản 12/BC-UBND ngày 05/01/2026" in chat.text("12/BC-UBND - 05/01/2026 - Báo cáo hạ tầng")
    assert "(3 minh chứng)" in chat.text("https://xa.tayninh.gov.vn/so-lieu")
    out = chat.press("Xong")
    assert chat.session.current == "1.2" and "1.2." in out
    assert len(chat.snap.answers["1.1"].evidence) == 3


def test_evidence_later_marks_points_at_risk(tay_ninh: Framework) -> None:
    chat = Chat(tay_ninh)
    chat.send(Inbound(InboundKind.RESUME))
    chat.text("100")
    out = chat.press("Để sau")
    assert "10 điểm sẽ bị tính 0" in out
    preview = chat.text("xem điểm")
    assert "10 điểm đang bị tính 0 vì thiếu minh chứng (1 chỉ tiêu: 1.1)" in preview
    assert "Tổng điểm 0/960" in preview


def test_rejected_files_get_specific_messages(tay_ninh: Framework) -> None:
    chat = Chat(tay_ninh)
    chat.send(Inbound(InboundKind.RESUME))
    chat.text("50")
    big = chat.send(Inbound(InboundKind.FILE, rejected=(Rejected("ban-do.tif", "too_large"),)))[0].text
    assert "lớn hơn 20 MB" in big and "ban-do.tif" in big
    exe = chat.send(Inbound(InboundKind.FILE, rejected=(Rejected("virus.pdf", "unsupported_type"),)))[0].text
    assert "không phải PDF" in exe
    assert chat.snap.answers["1.1"].evidence == ()


def test_typed_and_button_answers_with_and_without_diacritics(tay_ninh: Framework) -> None:
    chat = Chat(tay_ninh)
    chat.send(Inbound(InboundKind.RESUME))
    chat.text("cau 3.5")
    chat.press("Có")
    assert chat.snap.answers["3.5"].value is True
    chat.press("Để sau")  # evidence later
    assert chat.session.current == "3.6"
    chat.text("khong")
    assert chat.snap.answers["3.6"].value is False
    assert chat.session.mode is Mode.ASK  # a "no" claims nothing, so no evidence is asked


def test_three_misses_offer_help_and_skip(tay_ninh: Framework) -> None:
    chat = Chat(tay_ninh)
    chat.send(Inbound(InboundKind.RESUME))
    chat.text("nhiều lắm")
    chat.text("??? ")
    third = chat.send(Inbound(InboundKind.TEXT, "không biết"))[0]
    assert "khó trả lời" in third.text
    assert {b.label for b in third.buttons} == {"Hướng dẫn", "Để sau", "Trợ giúp"}
    assert "ℹ Hướng dẫn chỉ tiêu 1.1" in chat.press("Hướng dẫn")


def test_skip_and_come_back_at_the_end(tay_ninh: Framework) -> None:
    chat = Chat(tay_ninh)
    chat.send(Inbound(InboundKind.RESUME))
    chat.text("để sau")
    assert chat.session.current == "1.2" and chat.session.skipped == ("1.1",)
    chat.text("câu 6.8")
    chat.press("Có")
    out = chat.press("Để sau")
    # after the last indicator the walk wraps to the first open one that was not deferred
    assert chat.session.current == "1.2"
    assert "Câu 2/62" in out


def test_back_and_edit_keep_history(tay_ninh: Framework) -> None:
    chat = Chat(tay_ninh)
    chat.send(Inbound(InboundKind.RESUME))
    chat.text("50")
    chat.press("Để sau")
    out = chat.text("quay lại")
    assert chat.session.current == "1.1" and "Đã trả lời: 50%" in out
    chat.text("12/30")
    assert chat.snap.answers["1.1"].value == Ratio(D(12), D(30))
    assert chat.snap.answers["1.1"].revision == 2
    saves = [e for d in chat.decisions for e in d.events if isinstance(e, SaveAnswer)]
    assert [s.value for s in saves] == [D(50), Ratio(D(12), D(30))]


def test_not_applicable_with_reason_only_where_allowed(tay_ninh: Framework) -> None:
    chat = Chat(tay_ninh)
    chat.send(Inbound(InboundKind.RESUME))
    assert "không cho phép" in chat.text("không áp dụng")
    chat.text("câu 3.1")
    chat.press("Không áp dụng")
    assert chat.session.mode is Mode.NA_REASON
    out = chat.text("Xã không tự vận hành hệ thống riêng")
    assert "không áp dụng" in out and chat.session.current == "3.2"
    a = chat.snap.answers["3.1"]
    assert a.not_applicable and a.reason == "Xã không tự vận hành hệ thống riêng"


def test_stale_and_forged_buttons_change_nothing(tay_ninh: Framework) -> None:
    chat = Chat(tay_ninh)
    chat.send(Inbound(InboundKind.RESUME))
    old = payload("ans", 7, "1.1", "yes")
    chat.text("câu 3.5")
    for forged in (
        payload("ans", 999, "3.5", "yes"),
        payload("ans", 7, "3.6", "yes"),
        old,
        payload("ans", 7, "3.5", "maybe"),
        "x|y",
    ):
        out = chat.send(Inbound(InboundKind.BUTTON, payload=forged))
        assert "Nút này đã cũ" in out[0].text
    assert chat.snap.answers == {}
    assert chat.session.current == "3.5"


def test_progress_missing_preview(tay_ninh: Framework) -> None:
    chat = Chat(tay_ninh)
    chat.send(Inbound(InboundKind.RESUME))
    chat.text("100")
    chat.file("bc.pdf")
    chat.press("Xong")
    assert "Đã trả lời 1/62 chỉ tiêu." in chat.text("tiến độ")
    missing = chat.send(Inbound(InboundKind.TEXT, "còn thiếu"))[0]
    assert "61 chỉ tiêu chưa trả lời" in missing.text
    assert [b.label for b in missing.buttons] == ["Trả lời câu 1.2"]
    out = chat.text("xem điểm")
    assert "Tổng điểm 10/960 · Chỉ số 0,0104 (1,04%)" in out
    assert "Có thể thêm nhiều điểm nhất ở: 2.1 (+30), 4.22.10 (+30), 1.4 (+20)" in out


def test_submission_needs_the_leader(tay_ninh: Framework) -> None:
    chat = Chat(tay_ninh)
    chat.send(Inbound(InboundKind.RESUME))
    out = chat.text("nộp")
    assert "62 chỉ tiêu chưa trả lời" in out and "lãnh đạo" in out
    decision_before = len(chat.decisions)
    chat.press("Xác nhận nộp")
    d = chat.decisions[decision_before]
    assert chat.snap.status is AssessmentStatus.AWAITING_LEADER
    assert [n.role for n in d.notices] == [Role.LEADER]
    assert "chờ lãnh đạo" in chat.text("nộp")

    leader = Chat(tay_ninh, role=Role.LEADER)
    leader.send(Inbound(InboundKind.RESUME))
    leader.text("nộp")
    assert "Đã nộp" in leader.press("Xác nhận nộp")
    assert leader.snap.status is AssessmentStatus.SUBMITTED
    assert "Câu 1/62" in leader.text("câu 1.1")  # still viewable
    assert "không sửa được" in leader.text("50")
    assert "1.1" not in leader.snap.answers


def test_cancel_submission(tay_ninh: Framework) -> None:
    chat = Chat(tay_ninh, role=Role.LEADER)
    chat.send(Inbound(InboundKind.RESUME))
    chat.text("nộp")
    chat.press("Hủy")
    assert chat.snap.status is AssessmentStatus.DRAFT and chat.session.mode is Mode.ASK


def test_language_switch(tay_ninh: Framework) -> None:
    chat = Chat(tay_ninh)
    chat.send(Inbound(InboundKind.RESUME))
    assert "Switched to English" in chat.text("english")
    assert "Question 1/62" in chat.text("tiếp tục")
    assert "Đã chuyển sang tiếng Việt" in chat.text("tiếng việt")


def test_reviewers_get_their_queue_and_admins_have_no_self_assessment(tay_ninh: Framework) -> None:
    assert "Chưa có bản tự đánh giá nào chờ thẩm định" in Chat(tay_ninh, role=Role.REVIEWER).text("xin chào")
    assert "không có bản tự đánh giá" in Chat(tay_ninh, role=Role.ADMIN).text("xin chào")


def test_maturity_framework_choice_and_parts(maturity: Framework) -> None:
    chat = Chat(maturity)
    chat.send(Inbound(InboundKind.RESUME))
    first = chat.transcript[-1]
    assert [b.label for b in first.buttons][:3] == [
        "Chủ tịch UBND xã",
        "Phó Chủ tịch UBND xã",
        "Chưa thành lập",
    ]
    chat.press("Phó Chủ tịch UBND xã")
    assert chat.snap.answers["1.1"].value == "pho_chu_tich"
    chat.press("Để sau")
    chat.text("câu 3.4")
    chat.text("1 và 2")
    assert chat.snap.answers["3.4"].value == frozenset({"to_chuc", "bao_cao"})
    assert "Mức độ: chưa đạt mức nào" in chat.text("xem điểm")


HOSTILE_TEXT = st.one_of(
    st.text(max_size=300),
    st.text(alphabet=st.characters(categories=["Cc", "Cf", "Zs", "Mn", "So", "Nd"]), max_size=200),
    st.text(max_size=50).map(lambda s: unicodedata.normalize("NFD", s)),
    st.sampled_from(
        ["x" * 100_000, "/start " + "A" * 5000, "câu 99.99", "nhóm 0", "\x00", "#1", "|||", "ans|7|1.1|yes"]
    ),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.sampled_from(["text", "button", "file"]), HOSTILE_TEXT), min_size=1, max_size=8))
def test_nothing_a_user_sends_crashes_the_engine(
    tay_ninh: Framework, messages: list[tuple[str, str]]
) -> None:
    chat = Chat(tay_ninh)
    chat.send(Inbound(InboundKind.RESUME))
    for kind, text in messages:
        if kind == "text":
            out = chat.send(Inbound(InboundKind.TEXT, text))
        elif kind == "button":
            out = chat.send(Inbound(InboundKind.BUTTON, payload=text))
        else:
            out = chat.send(Inbound(InboundKind.FILE, rejected=(Rejected(text[:50], "unsupported_type"),)))
        assert out and all(r.text.strip() for r in out)
        assert all(len(r.text) < 8000 for r in out)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(HOSTILE_TEXT)
def test_an_unknown_chat_gets_a_join_prompt_whatever_it_sends(tay_ninh: Framework, text: str) -> None:
    chat = Chat(tay_ninh, joined=False)
    out = chat.send(Inbound(InboundKind.TEXT, text))
    assert out and chat.snap.member is None


def test_an_album_is_one_submission(tay_ninh: Framework) -> None:
    chat = Chat(tay_ninh)
    chat.send(Inbound(InboundKind.RESUME))
    chat.text("80")
    files = tuple(FileInfo(f"{i:x}" * 64, 2048, "image/jpeg", f"anh-{i}.jpg") for i in range(1, 4))
    album = Inbound(
        InboundKind.FILE, files=files, rejected=(Rejected("phim.mp4", "unsupported_type"),), caption=""
    )
    out = chat.send(album)
    assert len(out) == 1
    assert (
        "phim.mp4" in out[0].text
        and "3 tệp (anh-1.jpg, anh-2.jpg, anh-3.jpg)" in out[0].text
        and "(3 minh chứng)" in out[0].text
    )
    assert len(chat.snap.answers["1.1"].evidence) == 3


def test_unsupported_content_gets_a_short_reply(tay_ninh: Framework) -> None:
    for joined in (True, False):
        chat = Chat(tay_ninh, joined=joined)
        out = chat.send(Inbound(InboundKind.UNSUPPORTED))
        assert "chỉ đọc được chữ, nút bấm và tệp" in out[0].text


def test_the_preview_as_a_chart(tay_ninh: Framework) -> None:
    chat = Chat(tay_ninh)
    chat.send(Inbound(InboundKind.RESUME))
    chat.text("100")
    chat.file("bc.pdf")
    preview = chat.send(Inbound(InboundKind.TEXT, "xem điểm"))[0]
    assert "📈 Biểu đồ" in [b.label for b in preview.buttons]
    chart = chat.press("📈 Biểu đồ")
    rendered = chat.transcript[-1]
    assert "Xã An Bình · Tổng 10/960 · Chỉ số 0,0104" in chart
    assert (
        rendered.image is not None and rendered.image.startswith(b"\x89PNG") and len(rendered.image) > 10_000
    )
