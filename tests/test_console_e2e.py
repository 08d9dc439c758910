"""Whole self-assessments through the console channel, on SQLite and PostgreSQL.

A driver answers all 62 Tây Ninh indicators the way officials do — buttons and typed answers, with
and without diacritics, real files (some rejected), citations and links, going back to edit,
deferring and returning, "not applicable" with a reason, a preview — then submits; the leader
confirms. The stored answers and the score must equal what `dtibot score` computes for them.
"""

from __future__ import annotations

import io
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from bot.cli import main as cli_main
from flows.model import Inbound, InboundKind, Mode
from scoring.answers import Answer, Evidence, decode_value
from scoring.engine import score
from scoring.model import AnswerType, AnswerValue, Framework, Ratio
from storage.db import Database
from storage.models import Assessment, AuditLog, ProcessedInbound
from tests.conftest import D
from tests.e2e_support import Province, make_province

PERCENT_LINES: list[tuple[str, AnswerValue]] = [
    ("70,4", D("70.4")),
    ("12/30", Ratio(D(12), D(30))),
    ("55.5 %", D("55.5")),
    ("12 trên 40", Ratio(D(12), D(40))),
    ("100", D(100)),
    ("0", D(0)),
]
YES_NO_LINES: list[tuple[str, bool]] = [
    ("#1", True),
    ("khong", False),
    ("có", True),
    ("Không", False),
    ("co", True),
]
EVIDENCE_PLANS: list[list[str]] = [
    ["/file {files}/bao-cao.pdf", "#1"],
    ["123/QĐ-UBND - 15/03/2025 - Về việc ban hành kế hoạch chuyển đổi số", "xong"],
    ["#2"],
    ["/file {files}/anh-chup.png", "/file {files}/ke-hoach.docx", "#1"],
    ["https://anbinh.tayninh.gov.vn/bao-cao-cds", "#1"],
    ["/file {files}/virus.pdf", "/file {files}/rong.pdf", "để sau"],
]


class Driver:
    """Answers whatever the conversation is asking, records what it meant to store."""

    def __init__(self, province: Province, framework: Framework, chat_id: str) -> None:
        self.p = province
        self.fw = framework
        self.chat_id = chat_id
        self.channel, self.out = province.chat(chat_id)
        self.expected: dict[str, AnswerValue | None] = {}
        self.with_evidence: set[str] = set()
        self.na: set[str] = set()
        self.n = {"percent": 0, "yes_no": 0, "points": 0, "evidence": 0}
        self.pending_evidence: list[str] = []
        self.specials_done: set[str] = set()
        self.used: set[str] = set()

    def send(self, line: str) -> None:
        self.used.add(line)
        if self.channel.echo:
            print(f"> {line}", file=self.out)
        inbound = self.channel.inbound_for(line.format(files=self.p.files))
        assert inbound is not None, line
        self.channel.send(inbound)

    def answer_line(self, code: str) -> str:
        ind = self.fw.indicator(code)
        assert ind is not None
        kind = ind.answer.type
        if kind in (AnswerType.PERCENTAGE, AnswerType.RATIO):
            line, value = PERCENT_LINES[self.n["percent"] % len(PERCENT_LINES)]
            self.n["percent"] += 1
        elif kind is AnswerType.YES_NO:
            line, value = YES_NO_LINES[self.n["yes_no"] % len(YES_NO_LINES)]
            self.n["yes_no"] += 1
        else:
            options = [ind.max_points, ind.max_points / 2, Decimal("7.5")]
            value = options[self.n["points"] % 3]
            line = format(value.normalize(), "f").replace(".", ",")
            self.n["points"] += 1
        self.expected[code] = value
        self.na.discard(code)
        return line

    def step(self) -> bool:
        state = self.p.session_state(self.chat_id)
        code = state.current
        if state.mode is Mode.DONE:
            return False
        if state.mode is Mode.EVIDENCE:
            assert code is not None
            if not self.pending_evidence:
                plan = EVIDENCE_PLANS[self.n["evidence"] % len(EVIDENCE_PLANS)]
                self.n["evidence"] += 1
                self.pending_evidence = list(plan)
                if any(
                    x.startswith(("/file {files}/bao", "/file {files}/anh", "123/", "https")) for x in plan
                ):
                    self.with_evidence.add(code)
            self.send(self.pending_evidence.pop(0))
            return True
        if state.mode is Mode.NA_REASON:
            self.send("Xã không tự quản lý, vận hành hệ thống thông tin riêng")
            return True
        assert state.mode is Mode.ASK and code is not None
        special = {
            "1.1": ["nhiều lắm"],  # a wrong answer first: re-asked
            "1.3": ["để sau"],  # deferred, answered at the end
            "3.1": ["không áp dụng"],
            "2.3": ["quay lại", "15/25"],  # back to 2.2 and change it
            "4.5": ["xem điểm"],
            "5.1": ["câu 6.8"],  # jump ahead, then the walk continues from there
        }
        if code in special and code not in self.specials_done:
            self.specials_done.add(code)
            for line in special[code]:
                if line == "không áp dụng":
                    self.na.add(code)
                    self.expected[code] = None
                if line == "15/25":
                    self.expected["2.2"] = Ratio(D(15), D(25))
                self.send(line)
            return True
        self.send(self.answer_line(code))
        return True


def stored_answers_file(p: Province, fw: Framework, unit: str, path: Path) -> Path:
    latest: dict[str, Any] = {}
    for rev in p.revisions(unit):
        latest[rev.indicator_code] = rev
    evidence: dict[str, list[str]] = {}
    for ev in p.evidence(unit):
        evidence.setdefault(ev.indicator_code, []).append(
            ev.original_name or ev.citation_number or ev.url or ""
        )
    doc: dict[str, Any] = {"answers": {}}
    for code, rev in latest.items():
        entry: dict[str, Any] = {}
        if rev.not_applicable:
            entry["not_applicable"] = True
        else:
            ind = fw.indicator(code)
            assert ind is not None
            value = decode_value(ind, json.loads(rev.value_json))
            assert value is not None
            entry["value"] = (
                {"numerator": float(value.numerator), "denominator": float(value.denominator)}
                if isinstance(value, Ratio)
                else value
                if isinstance(value, bool)
                else float(value)  # type: ignore[arg-type]
            )
        if code in evidence:
            entry["evidence"] = evidence[code]
        doc["answers"][code] = entry
    path.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    return path


def test_full_assessment_through_the_console(db: Database, tmp_path: Path, tay_ninh: Framework) -> None:
    p = make_province(db, tmp_path)
    code = p.invite("25840", "respondent")
    driver = Driver(p, tay_ninh, "xa-an-binh")
    driver.channel.run([], join=code)
    leader, leader_out = p.chat("lanh-dao-an-binh")
    leader.run([], join=p.invite("25840", "leader"))
    for _ in range(400):
        if not driver.step():
            break
    transcript = driver.out.getvalue()
    assert "Đã liên kết với Xã An Bình" in transcript
    assert "Chưa đọc được tỷ lệ" in transcript  # the wrong answer was re-asked
    assert "Quay lại 1 chỉ tiêu bạn để sau." in transcript
    assert "nội dung không phải PDF" in transcript and "trống (0 byte)" in transcript
    assert "📊 Tổng điểm" in transcript
    assert "Đã trả lời đủ 62 chỉ tiêu" in transcript
    assert {
        "#1",
        "#2",
        "khong",
        "có",
        "Không",
        "co",
    } <= driver.used  # buttons and typed, with and without diacritics

    # every indicator stored, as meant; edits are new revisions, history kept
    revisions = p.revisions("25840")
    latest = {r.indicator_code: r for r in revisions}
    assert set(latest) == {i.code for i in tay_ninh.indicators}
    for c, value in driver.expected.items():
        ind = tay_ninh.indicator(c)
        assert ind is not None
        rev = latest[c]
        if c in driver.na:
            assert rev.not_applicable and rev.reason
        else:
            assert decode_value(ind, json.loads(rev.value_json)) == value, c
    history = [r for r in revisions if r.indicator_code == "2.2"]
    assert [r.revision for r in history] == [1, 2] and history[1].previous_id == history[0].id
    assert {e.indicator_code for e in p.evidence("25840") if e.kind == "file"} <= driver.with_evidence

    # the score the console shows equals `dtibot score` on the stored answers
    expected_answers = {
        c: Answer(
            None if c in driver.na else v,
            c in driver.na,
            (Evidence("x"),) if c in driver.with_evidence else (),
        )
        for c, v in driver.expected.items()
    }
    expected = score(tay_ninh, expected_answers)
    out, err = io.StringIO(), io.StringIO()
    path = stored_answers_file(p, tay_ninh, "25840", tmp_path / "answers.json")
    assert cli_main(["score", "tay-ninh-commune-2025", str(path), "--json"], out, err) == 0, err.getvalue()
    result = json.loads(out.getvalue())
    assert Decimal(str(result["total"])) == expected.total.quantize(Decimal("0.01"))
    driver.send("xem điểm")
    shown = driver.out.getvalue().rsplit("📊 Tổng điểm ", 1)[1].split("/")[0]
    assert shown == f"{expected.total.quantize(Decimal('0.01')).normalize():f}".replace(".", ",")

    # submission: the respondent asks, the leader is told and confirms
    driver.send("nộp")
    driver.send("#1")
    leader.run(["nộp", "#1"])
    assert "đề nghị lãnh đạo xác nhận nộp" in leader_out.getvalue()  # the respondent's request
    assert "đang chờ bạn xác nhận" in leader_out.getvalue()  # and the leader's welcome says so too
    assert "Đã nộp bản tự đánh giá của Xã An Bình" in leader_out.getvalue()
    with db.session() as s:
        assessment = s.exec(select(Assessment)).one()
        assert assessment.status == "submitted" and assessment.submitted_by_member_id is not None
        actions = {a.action for a in s.exec(select(AuditLog))}
    assert {"member.join", "answer.save", "evidence.add", "assessment.status"} <= actions
    driver.send("câu 1.1")
    driver.send("50")
    assert "không sửa được" in driver.out.getvalue().rsplit("> 50", 1)[1]


def test_a_repeated_inbound_id_is_processed_once(db: Database, tmp_path: Path) -> None:
    p = make_province(db, tmp_path)
    svc = p.service()
    code = p.invite("25840", "respondent")
    svc.handle("console", "c1", "u1", Inbound(InboundKind.TEXT, text=f"/start {code}"))
    first = svc.handle("console", "c1", "u2", Inbound(InboundKind.TEXT, text="70,4"))
    again = svc.handle("console", "c1", "u2", Inbound(InboundKind.TEXT, text="70,4"))
    assert first and again == []
    assert len(p.revisions("25840")) == 1
    with db.session() as s:
        assert len(s.exec(select(ProcessedInbound)).all()) == 2


def test_two_messages_at_once_are_handled_one_after_the_other(db: Database, tmp_path: Path) -> None:
    import threading

    p = make_province(db, tmp_path)
    svc = p.service()
    code = p.invite("25840", "respondent")
    svc.handle("console", "c1", None, Inbound(InboundKind.TEXT, text=f"/start {code}"))
    svc.handle("console", "c1", None, Inbound(InboundKind.TEXT, text="câu 3.5"))
    barrier = threading.Barrier(2)

    def send(text: str, inbound_id: str) -> None:
        barrier.wait()
        svc.handle("console", "c1", inbound_id, Inbound(InboundKind.TEXT, text=text))

    threads = [
        threading.Thread(target=send, args=("không", "a")),
        threading.Thread(target=send, args=("không", "b")),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # one answered 3.5, the next answered 3.6: never two writers on one state
    assert {r.indicator_code for r in p.revisions("25840")} == {"3.5", "3.6"}


def test_a_member_cannot_see_or_change_another_units_assessment(db: Database, tmp_path: Path) -> None:
    p = make_province(db, tmp_path)
    a_chat, _ = p.chat("a")
    a_chat.run(["70,4", "#1", "câu 3.5", "có"], join=p.invite("25840", "respondent"))
    b_chat, b_out = p.chat("b")
    b_chat.run(["xem điểm", "còn thiếu", "câu 1.1"], join=p.invite("25843", "respondent"))
    text = b_out.getvalue()
    assert "Xã Hòa Thành" in text and "Xã An Bình" not in text
    assert "Tổng điểm 0/960" in text and "62 chỉ tiêu chưa trả lời" in text
    assert "Đã trả lời:" not in text.rsplit("> câu 1.1", 1)[1]
    # B pressing A's buttons (forged from A's transcript) changes nothing anywhere
    a_keyboard = a_chat.keyboard
    for button in a_keyboard:
        b_chat.send(Inbound(InboundKind.BUTTON, payload=button.payload))
    assert p.revisions("25843") == []
    assert len(p.revisions("25840")) == 2


def test_an_unmigrated_database_is_refused_with_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DTI_DATABASE_URL", f"sqlite:///{tmp_path / 'empty.db'}")
    out, err = io.StringIO(), io.StringIO()
    assert cli_main(["chat"], out, err) == 2
    assert "dtibot db upgrade" in err.getvalue() and out.getvalue() == ""
    assert cli_main(["db", "upgrade"], out, err) == 0
    assert cli_main(["status"], out, err) == 2  # migrated, but no period yet
    assert "kỳ đánh giá" in err.getvalue()
