"""An annex imported from each layout drives the conversation: every understood rule is asked as the
right kind of question (options as buttons, a count, a and b by their definitions, a rate, a
checklist, yes/no), the self-assessed one shows its rule to the official and the reviewer, and the
scores of a sample answer file match the rule texts worked out by hand."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import json
from decimal import Decimal
from pathlib import Path

import pytest

from bot import catalog
from bot.annex_files import import_annex_file
from bot.cli import main
from bot.i18n import Translator
from bot.render.reply import ReplyRenderer
from flows.appraise import item
from flows.model import (
    AnswerView,
    AssessmentStatus,
    Inbound,
    InboundKind,
    Mode,
    QueueItem,
    ReviewedUnit,
    Role,
    SessionState,
)
from flows.model import Review as ReviewView
from scoring.answers import decode_value
from scoring.model import Framework, Ratio
from storage.admin import import_units, open_period
from storage.db import Database
from storage.evidence import EvidenceStore
from tests.e2e_support import NOW, UNITS, Province
from tests.flows_harness import T0, Chat

DATA = Path(__file__).parent / "data"
LAYOUTS = ("annex-merged-header.xlsx", "annex-nested-header.docx", "annex.csv", "annex.tsv")


def imported(name: str) -> Framework:
    fw = import_annex_file(DATA / name, name, framework_id="phu-luc", title="Phụ lục").framework
    assert fw is not None
    return fw


@pytest.mark.parametrize("name", LAYOUTS)
def test_the_conversation_asks_each_rule_its_own_way_and_scores_by_it(name: str) -> None:
    chat = Chat(imported(name))
    first = chat.send(Inbound(InboundKind.RESUME))[-1]
    # 1.1 choice: "Chủ tịch: Điểm tối đa; Phó Chủ tịch: 1/2*Điểm tối đa; Chưa thành lập: 0"
    assert "1.1. Ban Chỉ đạo chuyển đổi số của xã" in first.text and "Chọn một" in first.text
    assert [b.label for b in first.buttons][:3] == [
        "Trưởng ban là Chủ tịch UBND",
        "Trưởng ban là Phó Chủ tịch",
        "Chưa thành lập",
    ]
    out = chat.press("Trưởng ban là Phó Chủ tịch")
    assert "Câu 1/7 · 5/10 điểm" in out  # ½ × 10
    # 1.2 tiers on a count: "từ 6 lớp trở lên: 15; từ 3 đến 5 lớp: 10; 1-2 lớp: 5"
    assert "Nhập số lượng lớp" in out
    out = chat.text("4")
    assert "Câu 2/7 · 10/15 điểm" in out  # 4 classes: the 3-5 tier
    # 1.3 ratio: a and b asked by their definitions, "3/4" accepted
    assert "a = Số văn bản đi được ký số" in out and "b = Tổng số văn bản đi của UBND xã" in out
    out = chat.text("3/4")
    assert "Câu 3/7 · 15/20 điểm" in out  # 3/4 × 20
    # 2.1 rate bands: "≥ 90%: 10; 70–<90%: 7; < 70%: 0"
    assert "Nhập tỷ lệ %" in out
    out = chat.text("85")
    assert "Câu 4/7 · 7/10 điểm" in out
    # 2.2 parts: "tỉnh: 1/2 × Điểm tối đa; xã: 1/2 × Điểm tối đa"
    assert "1. Tham gia đầy đủ các cuộc họp của tỉnh" in out and "2. Chủ trì các cuộc họp của xã" in out
    out = chat.text("1")
    assert "Câu 5/7 · 5/10 điểm" in out
    # 2.3 yes/no with buttons
    assert [b.label for b in chat.transcript[-1].buttons][:2] == ["Có", "Không"]
    out = chat.press("Có")
    assert "Câu 6/7 · 10/10 điểm" in out
    # 2.4 not understood: self-assessed, the rule shown with the question
    assert "Cách xác định và tính điểm:\nCăn cứ kết quả kiểm tra thực tế của Sở Khoa học và Công nghệ" in out
    assert "Nhập số điểm tự chấm" in out
    out = chat.text("6")
    assert "Câu 7/7 · 6/10 điểm · Tổng 58/85" in out
    assert chat.snap.answers["1.3"].value == Ratio(Decimal(3), Decimal(4))
    assert chat.snap.answers["2.2"].value == frozenset({"o1"})
    # only the self-assessed question showed its rule text
    shown = [r.text for r in chat.transcript]
    assert sum("Cách xác định và tính điểm:" in text for text in shown) == 1


def test_the_reviewer_sees_the_rule_of_a_self_assessed_indicator_and_both_terms_of_a_ratio() -> None:
    fw = imported("annex-merged-header.xlsx")
    chat = Chat(fw, role=Role.REVIEWER)
    answers = {"2.4": AnswerView(Decimal(6)), "1.3": AnswerView(Ratio(Decimal(3), Decimal(4)))}
    unit = ReviewedUnit(10, "Xã An Bình", 99, AssessmentStatus.SUBMITTED, answers, {}, T0)
    queue = (QueueItem(10, "Xã An Bình", AssessmentStatus.SUBMITTED, T0, 2, 0),)
    snap = dataclasses.replace(chat.snap, review=ReviewView(queue, unit))
    session = SessionState(mode=Mode.REVIEW, unit=10)
    render = ReplyRenderer(Translator("vi"))
    self_assessed = "\n".join(render.reply(r).text for r in item(snap, session, "2.4").replies)
    assert "Căn cứ kết quả kiểm tra thực tế của Sở Khoa học và Công nghệ" in self_assessed
    ratio = "\n".join(render.reply(r).text for r in item(snap, session, "1.3").replies)
    assert "3/4" in ratio and "Cách xác định và tính điểm" not in ratio


# The sample answers and their points worked out by hand from each rule text (max in brackets).
SAMPLE = {
    "1.1": ("o3", Decimal(0)),  # "Chưa thành lập: 0 điểm" [10]
    "1.2": (7, Decimal(15)),  # "từ 6 lớp trở lên: 15 điểm" [15]
    "1.3": ({"numerator": 1, "denominator": 3}, Decimal("6.67")),  # 1/3 × 20 [20]
    "2.1": (69.9, Decimal(0)),  # "< 70%: 0 điểm" [10]
    "2.2": (["o1", "o2"], Decimal(10)),  # ½ + ½ of 10 [10]
    "2.3": (False, Decimal(0)),  # "Không: 0 điểm" [10]
    "2.4": (8.5, Decimal("8.5")),  # self-assessed within [0, 10]
}


@pytest.mark.parametrize("name", ["annex-merged-header.xlsx", "annex-nested-header.docx"])
def test_imported_yaml_scores_a_sample_answer_file_as_the_rules_say(name: str, tmp_path: Path) -> None:
    out, err = io.StringIO(), io.StringIO()
    yaml_path = tmp_path / "phu-luc.yaml"
    assert main(["framework", "import", str(DATA / name), "-o", str(yaml_path)], out, err) == 0, (
        err.getvalue()
    )
    answers = tmp_path / "answers.json"
    answers.write_text(
        json.dumps({"answers": {code: {"value": value} for code, (value, _) in SAMPLE.items()}}),
        encoding="utf-8",
    )
    out = io.StringIO()
    assert main(["score", str(yaml_path), str(answers), "--json"], out, err) == 0, err.getvalue()
    report = json.loads(out.getvalue())
    scores = {i["code"]: Decimal(str(i["score"])) for i in report["indicators"]}
    assert scores == {code: points for code, (_, points) in SAMPLE.items()}
    assert Decimal(str(report["total"])) == Decimal("40.17") and report["max"] == 85


def test_a_ratio_is_asked_term_by_term_by_its_definitions() -> None:
    chat = Chat(imported("annex-merged-header.xlsx"))
    chat.send(Inbound(InboundKind.RESUME))
    chat.text("câu 1.3")
    out = chat.text("3")
    assert "a = 3. Bây giờ nhập b = Tổng số văn bản đi của UBND xã" in out
    assert "1.3" not in chat.snap.answers
    out = chat.text("2")  # b below a: refused, a is kept
    assert "1.3" not in chat.snap.answers and "2" in out
    out = chat.text("4")
    assert chat.snap.answers["1.3"].value == Ratio(Decimal(3), Decimal(4))
    assert "15/20 điểm" in out
    # a term given and then left: the next question starts afresh
    chat.text("câu 1.3")
    chat.text("5")
    chat.text("để sau")
    chat.text("câu 1.3")
    chat.text("8")
    assert chat.snap.answers["1.3"].value == Ratio(Decimal(3), Decimal(4))
    assert chat.session.draft == "1.3=8"


def test_an_imported_annex_runs_a_period_in_the_console_chat(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """From the annex file to a stored self-assessment: import, the province's frameworks directory,
    a period on it, and an official answering through the console channel and the database."""
    frameworks = tmp_path / "frameworks"
    frameworks.mkdir()
    out, err = io.StringIO(), io.StringIO()
    argv = ["framework", "import", str(DATA / "annex-nested-header.docx"), "-o"]
    argv += [str(frameworks / "tinh-commune-2026.yaml"), "--id", "tinh-commune-2026", "--version", "2026.1"]
    assert main(argv, out, err) == 0, err.getvalue()
    monkeypatch.setenv("DTI_FRAMEWORKS_DIR", str(frameworks))
    with db.session() as s:
        import_units(s, UNITS, NOW)
        open_period(
            s,
            name="DTI 2026",
            year=2026,
            framework_id="tinh-commune-2026",
            framework_version="2026.1",
            now=NOW,
            self_assessment_due=NOW + dt.timedelta(days=40),
        )
    province = Province(db, EvidenceStore(tmp_path / "evidence"), tmp_path)
    channel, shown = province.chat("xa-an-binh")
    for line in [
        f"/start {province.invite('25840', 'respondent')}",
        "#2",
        "4",
        "3",
        "4",
        "85",
        "1",
        "#1",
        "6",
    ]:
        inbound = channel.inbound_for(line)
        assert inbound is not None, line
        channel.send(inbound)
    text = shown.getvalue()
    assert "Nhập số lượng lớp" in text and "a = 3. Bây giờ nhập b = Tổng số văn bản đi của UBND xã" in text
    assert "Cách xác định và tính điểm:\nCăn cứ kết quả kiểm tra thực tế" in text
    assert "Câu 7/7 · 6/10 điểm · Tổng 58/85" in text
    fw = catalog.framework("tinh-commune-2026@2026.1")
    stored = {}
    for rev in province.revisions("25840"):
        ind = fw.indicator(rev.indicator_code)
        assert ind is not None and rev.value_json is not None
        stored[rev.indicator_code] = decode_value(ind, json.loads(rev.value_json))
    assert stored == {
        "1.1": "o2",
        "1.2": Decimal(4),
        "1.3": Ratio(Decimal(3), Decimal(4)),
        "2.1": Decimal(85),
        "2.2": frozenset({"o1"}),
        "2.3": True,
        "2.4": Decimal(6),
    }
