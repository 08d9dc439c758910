"""A small province through self-assessment, appraisal with returns and supplements, and publication,
all over the console channel; the published ranking is checked against a table worked out by hand.

Framework `tests/data/e2e-commune.yaml` (100 points, BRVT bands on the share of max):
  1.1 rate × 30 · 1.2 yes/no 20 · 2.1 self-assessed 20 · 2.2 rate × 20 (may be N/A)
  · 2.3 yes/no 10 (no evidence)
Three districts (701, 702, 703), four communes each, one reviewer per district.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import zipfile
from decimal import Decimal
from pathlib import Path

import pytest
from openpyxl import load_workbook
from sqlmodel import col, select

from bot.channels.console import ConsoleChannel
from bot.cli import main as cli_main
from flows.model import Mode, SessionState
from scoring.answers import VIETNAM_TZ
from storage.admin import UnitRow, create_invite, import_units, open_period
from storage.db import Database
from storage.evidence import EvidenceStore
from storage.models import AppraisalDecision, Assessment, Conversation, Evidence, Outbox
from tests.e2e_support import NOW, Province, pdf_bytes

DATA = Path(__file__).resolve().parent / "data"
DISTRICTS = {
    "701": ["70101", "70102", "70103", "70104"],
    "702": ["70201", "70202", "70203", "70204"],
    "703": ["70301", "70302", "70303", "70304"],
}

# What each commune answers, in walk order (1.1, 1.2, 2.1, 2.2, 2.3): (line, evidence) with evidence
# "file" (a PDF then Done), "later", or None when no evidence step comes (no points claimed, or 2.3).
FILE, LATER = "file", "later"
SCRIPTS: dict[str, list[tuple[str, str | None]]] = {
    "70101": [("100", FILE), ("có", FILE), ("20", FILE), ("100", FILE), ("có", None)],
    "70102": [("80", FILE), ("có", FILE), ("15", FILE), ("50", FILE), ("có", None)],
    "70103": [("50", FILE), ("có", FILE), ("10", FILE), ("75", FILE), ("có", None)],
    "70104": [("100", FILE), ("khong", None), ("20", FILE), ("50", FILE), ("có", None)],
    "70201": [("60", FILE), ("có", FILE), ("12", FILE), ("NA", None), ("có", None)],
    "70202": [("40", FILE), ("có", LATER), ("10", FILE), ("100", FILE), ("khong", None)],
    "70203": [("100", LATER), ("có", FILE), ("20", FILE), ("80", FILE), ("có", None)],
    "70204": [("90", FILE), ("có", FILE), ("18", LATER), ("60", FILE), ("có", None)],
    "70301": [("100", FILE), ("có", FILE), ("20", FILE), ("100", FILE), ("có", None)],
    "70302": [("70", FILE), ("có", FILE), ("20", FILE), ("NA", None), ("có", None)],
    "70303": [("100", FILE), ("có", FILE), ("5", FILE), ("0", None), ("khong", None)],
    "70304": [("100", FILE)],  # never finishes, never submits
}
SUBMITS = [c for c in SCRIPTS if c != "70304"]

# The table worked out by hand from the decisions' rules.
# 2.2 peer average over the appraised units that scored it: C1 20, C2 10, C3 15, C4 10, C6 20, C7 16,
# C8 12, C11 0 → 103 / 8 = 12,875 (C5 and C10 are not applicable; C9 and C12 were not appraised).
EXPECTED = {
    #        total     band          rank  district rank
    "70101": ("100", "Tốt", 1, 1),  # everything accepted
    "70204": ("87", "Khá", 2, 1),  # 27 + 20 + 18 (returned, supplemented on time, accepted) + 12 + 10
    "70302": ("83.88", "Khá", 3, 1),  # 21 + 20 + 20 + 12,875 (N/A → peer average) + 10
    "70102": ("74", "Trung bình", 4, 2),  # 2.1 adjusted from 15 to 10: 24 + 20 + 10 + 10 + 10
    "70201": ("72.88", "Trung bình", 5, 2),  # 18 + 20 + 12 + 12,875 + 10
    "70103": ("70", "Trung bình", 6, 3),  # 15 + 20 + 10 + 15 + 10 — tied with 70104
    "70104": ("70", "Trung bình", 6, 3),  # 30 + 0 + 20 + 10 + 10
    "70203": (
        "66",
        "Yếu",
        8,
        3,
    ),  # 1.1's evidence came after the reviewer's deadline → 0: 0 + 20 + 20 + 16 + 10
    "70303": ("55", "Yếu", 9, 2),  # 30 + 20 + 5 + 0 + 0
    "70202": ("42", "Yếu", 10, 4),  # 1.2 claimed without evidence → 0: 12 + 0 + 10 + 20 + 0
    "70301": ("0", None, 11, 3),  # submitted, never appraised: 0 and still ranked
    "70304": ("0", None, 11, 3),  # never submitted: 0 and still ranked
}


class Chat:
    def __init__(self, p: Province, chat_id: str) -> None:
        self.p = p
        self.id = chat_id
        self.out = io.StringIO()
        self.console = ConsoleChannel(p.service(), p.store, chat_id, self.out, echo=True)

    def say(self, *lines: str) -> None:
        for line in lines:
            print(f"> {line}", file=self.out)
            inbound = self.console.inbound_for(line)
            assert inbound is not None, line
            self.console.send(inbound)

    def press(self, label: str) -> None:
        labels = [b.label for b in self.console.keyboard]
        assert label in labels, (label, labels, self.out.getvalue()[-1500:])
        self.say(f"#{labels.index(label) + 1}")

    def state(self) -> SessionState:
        with self.p.db.session() as s:
            conv = s.exec(select(Conversation).where(Conversation.chat_id == self.id)).one()
            return SessionState.from_json(json.loads(conv.state_json))


def province(db: Database, tmp: Path) -> Province:
    files = tmp / "files"
    files.mkdir()
    (files / "bc.pdf").write_bytes(pdf_bytes("bao cao"))
    (files / "bo-sung.pdf").write_bytes(pdf_bytes("bo sung"))
    rows = [UnitRow("70", "Tỉnh Thử", "province", None)]
    for d, communes in DISTRICTS.items():
        rows.append(UnitRow(d, f"Huyện {d}", "district", "70"))
        rows += [UnitRow(c, f"Xã {c}", "commune", d) for c in communes]
    with db.session() as s:
        import_units(s, rows, NOW)
        open_period(
            s,
            name="DTI thử 2026",
            year=2026,
            framework_id="e2e-commune",
            framework_version="1",
            now=NOW,
            self_assessment_due=dt.datetime(2027, 1, 15, 17, tzinfo=VIETNAM_TZ),
            supplement_due=dt.datetime(2027, 1, 20, 17, tzinfo=VIETNAM_TZ),
        )
    return Province(db, EvidenceStore(tmp / "evidence"), files)


def join(p: Province, chat_id: str, unit: str, role: str) -> Chat:
    chat = Chat(p, chat_id)
    with p.db.session() as s:
        code = create_invite(s, unit, role, p.clock_value).code
    chat.console.run([], join=code)
    return chat


def self_assess(chat: Chat, script: list[tuple[str, str | None]], submit: bool) -> None:
    for line, evidence in script:
        if line == "NA":
            chat.say("không áp dụng", "Xã không có thủ tục dịch vụ công toàn trình")
            continue
        chat.say(line)
        if evidence == FILE:
            chat.say(f"/file {chat.p.files}/bc.pdf", "#1")
        elif evidence == LATER:
            chat.say("#2")
    if submit:
        chat.say("nộp", "#1")


def review(chat: Chat, unit_name: str, plan: dict[str, tuple[str, ...]], finish: str | None) -> None:
    """Open the unit, decide each indicator as `plan` says (accept when absent), then send or close."""
    chat.say("danh sách")
    chat.press(unit_name)
    for _ in range(20):
        state = chat.state()
        if state.mode is not Mode.REVIEW or state.current is None:
            break
        action = plan.get(state.current, ("accept",))
        if action[0] == "accept":
            chat.press("✔ Chấp nhận")
        elif action[0] == "adjust":
            chat.press("✎ Điều chỉnh điểm")
            chat.say(action[1], action[2])
        else:
            chat.press("↩ Yêu cầu bổ sung")
            chat.say(action[1], action[2])
    if finish is not None:
        chat.press(finish)


@pytest.fixture
def framework_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DTI_FRAMEWORKS_DIR", str(DATA))


def test_a_province_from_self_assessment_to_publication(
    db: Database, tmp_path: Path, framework_dir: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = province(db, tmp_path)
    reviewers = {d: join(p, f"rv{d}", d, "reviewer") for d in DISTRICTS}
    communes = {c: join(p, f"c{c}", c, "leader") for c in SCRIPTS}
    for code, script in SCRIPTS.items():
        self_assess(communes[code], script, submit=code in SUBMITS)
    reviewers["701"].console.deliver()
    assert "Xã 70101 đã nộp bản tự đánh giá" in reviewers["701"].out.getvalue()  # reviewers are notified
    assert "Xã 70201" not in reviewers["701"].out.getvalue()  # …only of their own district's communes

    # district 701: accept, one adjustment with its reason
    review(reviewers["701"], "Xã 70101", {}, "🔒 Kết thúc thẩm định")
    review(
        reviewers["701"],
        "Xã 70102",
        {"2.1": ("adjust", "10", "Phần mềm chưa có biên bản nghiệm thu")},
        "🔒 Kết thúc thẩm định",
    )
    review(reviewers["701"], "Xã 70103", {}, "🔒 Kết thúc thẩm định")
    review(reviewers["701"], "Xã 70104", {}, "🔒 Kết thúc thẩm định")
    # district 702: returns — one supplemented after the reviewer's deadline, one on time
    review(reviewers["702"], "Xã 70201", {}, "🔒 Kết thúc thẩm định")
    review(reviewers["702"], "Xã 70202", {}, "🔒 Kết thúc thẩm định")
    review(
        reviewers["702"],
        "Xã 70203",
        {"1.1": ("return", "Cần báo cáo số liệu của VNPT", "02/12/2026 09:00")},
        "📨 Gửi yêu cầu bổ sung",
    )
    review(
        reviewers["702"],
        "Xã 70204",
        {"2.1": ("return", "Cần báo cáo ứng dụng nền tảng số", "20/12/2026")},
        "📨 Gửi yêu cầu bổ sung",
    )
    c7, c8 = communes["70203"], communes["70204"]
    c7.console.deliver()
    c8.console.deliver()
    assert "Cần báo cáo số liệu của VNPT" in c7.out.getvalue()  # told exactly what was returned and why
    assert "Cần báo cáo ứng dụng nền tảng số" in c8.out.getvalue()
    c8.say("câu 2.1", f"/file {p.files}/bo-sung.pdf", "#1", "nộp", "#1")  # on time
    p.clock_value = dt.datetime(2026, 12, 3, 8, tzinfo=dt.UTC)  # after the 02/12 09:00 deadline
    c7.say("câu 1.1", f"/file {p.files}/bo-sung.pdf")
    assert "Đã quá hạn bổ sung minh chứng (02/12/2026 09:00)" in c7.out.getvalue()
    c7.say("#1", "nộp", "#1")
    reviewers["702"].console.deliver()
    assert "Xã 70203 đã bổ sung các chỉ tiêu: 1.1" in reviewers["702"].out.getvalue()
    review(reviewers["702"], "Xã 70203", {}, "🔒 Kết thúc thẩm định")
    review(reviewers["702"], "Xã 70204", {}, "🔒 Kết thúc thẩm định")
    # district 703: 70301 is left unappraised
    review(reviewers["703"], "Xã 70302", {}, "🔒 Kết thúc thẩm định")
    review(reviewers["703"], "Xã 70303", {}, "🔒 Kết thúc thẩm định")

    with db.session() as s:
        statuses = {a.unit_id: a.status for a in s.exec(select(Assessment))}
        decisions = s.exec(select(AppraisalDecision).order_by(col(AppraisalDecision.id))).all()
        late = [e for e in s.exec(select(Evidence)) if e.late]
    assert sorted(statuses.values()).count("appraised") == 10 and "submitted" in statuses.values()
    adjusted = [d for d in decisions if d.decision == "adjust"]
    assert [(d.indicator_code, d.self_points, d.appraised_points, d.comment) for d in adjusted] == [
        ("2.1", "15", "10", "Phần mềm chưa có biên bản nghiệm thu")
    ]
    assert len(late) == 1

    # results: compute, publish, check against the hand-made table
    monkeypatch.setenv("DTI_DATABASE_URL", db.url)
    out, err = io.StringIO(), io.StringIO()
    assert cli_main(["results", "compute"], out, err) == 0, err.getvalue()
    assert cli_main(["results", "publish"], out, err) == 2  # 70301 and 70304 were not appraised
    assert "70301 Xã 70301 (đã nộp)" in err.getvalue() and "70304 Xã 70304 (đang làm)" in err.getvalue()
    assert cli_main(["results", "publish", "--force"], out, err) == 0, err.getvalue()
    from bot.results import published
    from storage.admin import period_by_ref

    with db.session() as s:
        period = period_by_ref(s, None)
    document = published(db, period)
    assert document is not None
    got = {u["code"]: (u["total"], u["band"], u["rank"], u["district_rank"]) for u in document["units"]}
    assert got == {
        code: (Decimal(total).normalize().__format__("f"), band, rank, drank)
        for code, (total, band, rank, drank) in EXPECTED.items()
    }
    assert [u["code"] for u in document["units"]][:3] == ["70101", "70204", "70302"]
    by_code = {u["code"]: u for u in document["units"]}
    assert by_code["70102"]["losses"][0] == {"code": "2.1", "lost": "10"}
    assert by_code["70301"]["appraised"] is False and by_code["70301"]["self_total"] == "100"

    # each unit's members were told their result
    with db.session() as s:
        told = s.exec(select(Outbox).where(Outbox.priority == 5)).all()
    texts = {r.chat_id: json.loads(r.payload_json)["text"] for r in told}
    assert len(told) == 12
    assert "Kết quả DTI thử 2026 của Xã 70102: 74/100 điểm · chỉ số 0,7400" in texts["c70102"]
    assert "Hạng: 4/12" in texts["c70102"] and "Hạng trong Huyện 701: 2/4" in texts["c70102"]
    assert "chưa được thẩm định nên tính 0 điểm (hạng 11/12)" in texts["c70301"]

    # the published copy is frozen: a later change and recomputation do not alter it
    review(reviewers["703"], "Xã 70301", {}, "🔒 Kết thúc thẩm định")
    assert cli_main(["results", "compute"], out, err) == 0
    assert published(db, period) == document

    # exports, opened and checked cell by cell
    workbook = tmp_path / "results.xlsx"
    assert cli_main(["results", "compute"], out, err) == 0
    monkeypatch.setenv("DTI_EVIDENCE_DIR", str(p.store.root))
    assert cli_main(["export", "results", "--out", str(workbook)], out, err) == 0, err.getvalue()
    wb = load_workbook(workbook)
    ranking, detail, index = wb.worksheets
    assert (
        ranking.title == "Xếp hạng cấp xã"
        and detail.title == "Chi tiết chỉ tiêu"
        and index.title == "Danh mục minh chứng"
    )
    assert ranking.freeze_panes == "A2" and detail.freeze_panes == "A2"
    assert all(c.font.bold for c in detail[1]) and not detail["A2"].font.bold  # the header row only
    assert detail.column_dimensions["D"].width == 60 and index.column_dimensions["G"].width == 66
    header = [c.value for c in ranking[1]]
    assert header == [
        "STT",
        "Mã đơn vị",
        "Đơn vị",
        "Huyện",
        "Tổng điểm",
        "Chỉ số",
        "Xếp loại",
        "Hạng",
        "Hạng trong huyện",
        "1. Hạ tầng số (50)",
        "2. Chính quyền số (50)",
    ]
    rows = [[c.value for c in row] for row in ranking.iter_rows(min_row=2)]
    with db.session() as s:
        from storage.results import computed

        current = computed(s, period.id or 0)
    assert len(rows) == len(current) == 12
    for n, (row, unit) in enumerate(zip(rows, current, strict=True), start=1):
        assert row[0] == n and row[1] == unit["code"]
        assert row[2].startswith(unit["name"]) and row[3] == unit["district_name"]
        assert row[4] == pytest.approx(float(unit["total"])) and isinstance(row[4], int | float)
        assert row[5] == pytest.approx(float(unit["index"]))
        assert (row[6] or None) == unit["band"] and row[7] == unit["rank"] and row[8] == unit["district_rank"]
        assert row[9:] == [pytest.approx(float(g["score"])) for g in unit["groups"]]
    detail_rows = [[c.value for c in row] for row in detail.iter_rows(min_row=2)]
    assert len(detail_rows) == 12 * 5
    c2 = next(r for r in detail_rows if r[0] == "70102" and r[2] == "2.1")
    assert c2[4:8] == [20, 15, 10, -5] and c2[9] == "Phần mềm chưa có biên bản nghiệm thu"
    c7_row = next(r for r in detail_rows if r[0] == "70203" and r[2] == "1.1")
    assert c7_row[6] == 0 and c7_row[8] == "minh chứng nộp muộn"
    index_rows = [[c.value for c in row] for row in index.iter_rows(min_row=2)]
    assert [c.value for c in index[1]][:7] == [
        "Mã đơn vị",
        "Đơn vị",
        "Mã chỉ tiêu",
        "Loại",
        "Tên tệp / văn bản",
        "Ngày văn bản",
        "SHA-256",
    ]
    assert all(len(r[6]) == 64 for r in index_rows if r[3] == "file")
    assert sum(1 for r in index_rows if r[11] == "Có") == 1

    archive = tmp_path / "70204.zip"
    assert cli_main(["export", "evidence", "--unit", "70204", "--out", str(archive)], out, err) == 0, (
        err.getvalue()
    )
    with zipfile.ZipFile(archive) as z:
        names = z.namelist()
        assert "manifest.csv" in names and any(
            n.startswith("2.1/") and n.endswith("bo-sung.pdf") for n in names
        )
        assert z.read(next(n for n in names if n.startswith("2.1/"))) == pdf_bytes("bo sung")
    audit = tmp_path / "audit.csv"
    assert cli_main(["export", "audit", "--out", str(audit)], out, err) == 0
    trail = audit.read_text(encoding="utf-8-sig")
    assert (
        "appraisal.decide" in trail
        and "results.publish" in trail
        and "Phần mềm chưa có biên bản nghiệm thu" in trail
    )


def test_two_reviewers_cannot_overwrite_each_other_and_scope_is_enforced(
    db: Database, tmp_path: Path, framework_dir: None
) -> None:
    p = province(db, tmp_path)
    first, second = join(p, "rvA", "701", "reviewer"), join(p, "rvB", "701", "reviewer")
    other = join(p, "rv702", "702", "reviewer")
    commune = join(p, "c1", "70101", "leader")
    self_assess(commune, SCRIPTS["70101"], submit=True)
    for reviewer in (first, second):
        reviewer.say("danh sách")
        reviewer.press("Xã 70101")
    shown = first.state().current
    assert shown is not None and second.state().current == shown
    first.press("✔ Chấp nhận")
    second.press("✎ Điều chỉnh điểm")  # pressed on the item as it was before the first reviewer decided
    second.say("5", "Không đủ minh chứng")
    assert "vừa được người thẩm định khác quyết định" in second.out.getvalue()
    with db.session() as s:
        decisions = s.exec(select(AppraisalDecision).where(AppraisalDecision.indicator_code == shown)).all()
    assert [(d.decision, d.revision) for d in decisions] == [("accept", 1)]  # nothing overwritten

    # a reviewer of another district cannot open this unit, even with a forged button
    other.say("danh sách")
    assert "Chưa có bản tự đánh giá nào chờ thẩm định" in other.out.getvalue()
    from flows.intents import payload
    from flows.model import Inbound, InboundKind
    from storage.models import Unit

    with db.session() as s:
        unit_id = s.exec(select(Unit).where(Unit.code == "70101")).one().id
        period_id = s.exec(select(Assessment)).one().period_id
    other.console.send(Inbound(InboundKind.BUTTON, payload=payload("rv", period_id, None, f"open:{unit_id}")))
    other.console.send(Inbound(InboundKind.BUTTON, payload=payload("rv", period_id, shown, "accept:1")))
    assert "Nút này đã cũ" in other.out.getvalue()
    assert "Xã 70101" not in other.out.getvalue().split("Nút này đã cũ", 1)[1]
    with db.session() as s:
        assert len(s.exec(select(AppraisalDecision)).all()) == 1
