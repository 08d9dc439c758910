"""Annex files in every layout (xlsx with a merged two-row header, docx with a nested header table,
csv, tsv) import into the same framework; bad annexes are refused naming the file, the row and the
problem, with nothing written and warnings kept apart."""

from __future__ import annotations

import io
from decimal import Decimal as D
from pathlib import Path

import pytest
import yaml
from openpyxl import Workbook, load_workbook

from bot.annex_files import AnnexUnreadable, import_annex_file
from bot.cli import main
from scoring.annex import import_annex
from scoring.model import (
    AnswerType,
    ChoiceMethod,
    PartsMethod,
    RateMethod,
    SelfAssessedMethod,
    TiersMethod,
    YesNoMethod,
)

DATA = Path(__file__).parent / "data"
LAYOUTS = ("annex-merged-header.xlsx", "annex-nested-header.docx", "annex.csv", "annex.tsv")
EXPECTED_METHODS = {
    "1.1": (AnswerType.CHOICE, ChoiceMethod),
    "1.2": (AnswerType.COUNT, TiersMethod),
    "1.3": (AnswerType.RATIO, RateMethod),
    "2.1": (AnswerType.PERCENTAGE, TiersMethod),
    "2.2": (AnswerType.PARTS, PartsMethod),
    "2.3": (AnswerType.YES_NO, YesNoMethod),
    "2.4": (AnswerType.POINTS, SelfAssessedMethod),
}


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out, err)
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("name", LAYOUTS)
def test_every_layout_imports_the_same_framework(name: str) -> None:
    result = import_annex_file(DATA / name, name, framework_id="annex", title="Phụ lục")
    assert result.errors == () and result.gate_errors == ()
    fw = result.framework
    assert fw is not None
    assert [(g.id, g.name, g.max_points, g.indicator_codes) for g in fw.groups] == [
        ("1", "Nhận thức số", D(45), ("1.1", "1.2", "1.3")),
        ("2", "Hạ tầng số", D(40), ("2.1", "2.2", "2.3", "2.4")),
    ]
    for code, (answer_type, method) in EXPECTED_METHODS.items():
        ind = fw.indicator(code)
        assert ind is not None
        assert ind.answer.type is answer_type, code
        assert isinstance(ind.method, method), code
    tiers = fw.indicator("1.2")
    assert tiers is not None and tiers.answer.unit == "lớp"
    assert isinstance(tiers.method, TiersMethod)
    assert [(t.min, t.points) for t in tiers.method.tiers] == [(D(6), D(15)), (D(3), D(10)), (D(1), D(5))]
    ratio = fw.indicator("1.3")
    assert ratio is not None and ratio.answer.numerator_label == "Số văn bản đi được ký số"
    assert ratio.answer.denominator_label == "Tổng số văn bản đi của UBND xã"
    choice = fw.indicator("1.1")
    assert choice is not None
    assert [(o.label, o.points) for o in choice.answer.options] == [
        ("Trưởng ban là Chủ tịch UBND", D(10)),
        ("Trưởng ban là Phó Chủ tịch", D(5)),
        ("Chưa thành lập", D(0)),
    ]
    # the rule keeps its line breaks; source and verifier are kept as guidance
    assert choice.method_text is not None and choice.method_text.count("\n") == 2
    assert choice.guidance == "Nguồn thu thập dữ liệu: Quyết định thành lập\nĐơn vị xác minh: Sở KH&CN"
    # Word's Symbol-font bullets (private-use code points, empty boxes outside Word) kept as bullets
    parts = fw.indicator("2.2")
    assert parts is not None and parts.method_text is not None
    assert parts.method_text.startswith("• Tham gia đầy đủ") and "\uf0b7" not in parts.method_text
    # the row without a code is numbered by its place in its group, as a warning
    numbered = [w for w in result.warnings if w.key == "import.code_numbered"]
    assert [w.params["code"] for w in numbered] == ["2.3"]
    # the report lists what was not understood first; footnotes and signatures are no indicators
    assert result.report[0].code == "2.4"
    assert len(result.report) == 7


def test_uploaded_bytes_import_like_a_file() -> None:
    data = (DATA / "annex-nested-header.docx").read_bytes()
    result = import_annex_file(data, "Phụ lục 1 (xã).docx")
    assert result.framework is not None and len(result.framework.indicators) == 7
    assert (result.framework.id, result.framework.title) == ("phu-luc-1-xa", "Phụ lục 1 (xã)")


def test_a_file_that_is_no_annex_is_unreadable() -> None:
    with pytest.raises(AnnexUnreadable):
        import_annex_file(b"not a workbook", "x.xlsx", framework_id="x", title="x")
    with pytest.raises(AnnexUnreadable):
        import_annex_file(b"%PDF-1.4", "x.pdf", framework_id="x", title="x")


HEADER = ["STT", "Chỉ tiêu", "Điểm tối đa", "Cách xác định và tính điểm", "Tài liệu kiểm chứng"]


def problems(rows: list[list[str]]) -> list[tuple[int, str]]:
    return [(p.row, p.key) for p in import_annex(rows, framework_id="x", title="x").problems]


def test_bad_rows_are_named_by_row_and_problem() -> None:
    rows = [
        HEADER,
        ["1", "Nhận thức số", "30", "", ""],
        ["1.1", "Có Ban chỉ đạo", "10", "Có: 10 điểm; Không: 0 điểm", "QĐ"],
        ["1.2", "Có kế hoạch", "", "Có: 10 điểm; Không: 0 điểm", "KH"],
        ["1.1", "Chỉ tiêu trùng mã", "5", "", ""],
        ["1.3", "Họp định kỳ", "10", "Có: 15 điểm; Không: 0 điểm", ""],
        ["1.4", "Tỷ lệ văn bản ký số", "5", "", ""],
    ]
    assert problems(rows) == [
        (4, "import.no_max"),
        (5, "import.duplicate_code"),
        (6, "rule.points_exceed_max"),
        (2, "import.group_sum"),
    ]


def test_points_not_adding_up_to_the_group() -> None:
    rows = [
        HEADER,
        ["1", "Nhận thức số", "100", "", ""],
        ["1.1", "A", "10", "", ""],
        ["1.2", "B", "20", "", ""],
    ]
    result = import_annex(rows, framework_id="x", title="x")
    assert [(p.row, p.key, p.params) for p in result.problems] == [
        (2, "import.group_sum", {"group": "Nhận thức số", "declared": "100", "sum": "30"})
    ]


def test_no_header() -> None:
    assert problems([["Phụ lục"], ["a", "b", "c"]]) == [(1, "import.no_header")]


def bad_workbook(path: Path) -> None:
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.append(HEADER)
    ws.append(["I", "NHẬN THỨC SỐ", None, None, None])
    ws.append(["1.1", "Có Ban chỉ đạo", 10, "Có: 12 điểm; Không: 0 điểm", "QĐ"])
    ws.append([None, "Có kế hoạch", 10, "Có: 10 điểm; Không: 0 điểm", "KH"])
    wb.save(path)


def test_cli_refuses_a_bad_annex_naming_file_and_row_and_writes_nothing(tmp_path: Path) -> None:
    annex, out, report = tmp_path / "phu-luc.xlsx", tmp_path / "x.yaml", tmp_path / "r.xlsx"
    bad_workbook(annex)
    code, _, err = run(
        "--lang", "vi", "framework", "import", str(annex), "-o", str(out), "--report", str(report)
    )
    assert code == 2
    assert not out.exists()
    lines = err.splitlines()
    errors = [line for line in lines if line.startswith("LỖI")]
    warnings = [line for line in lines if line.startswith("CẢNH BÁO")]
    assert errors == [f"LỖI {annex}, dòng 3: Cách tính cho 12 điểm ở «Có: 12 điểm», vượt điểm tối đa 10."]
    # the warning (a row numbered by position) is listed apart from the error
    assert [w.split(":")[0] for w in warnings] == [f"CẢNH BÁO {annex}, dòng 4"]
    assert "1.2" in warnings[0]
    # the report is still written, so the officer sees every reading
    assert report.exists()


def test_cli_writes_framework_and_report(tmp_path: Path) -> None:
    out, report = tmp_path / "x.yaml", tmp_path / "report.xlsx"
    name = str(DATA / "annex-merged-header.xlsx")
    code, stdout, err = run(
        "--lang",
        "vi",
        "framework",
        "import",
        name,
        "-o",
        str(out),
        "--report",
        str(report),
        "--id",
        "phu-luc",
    )
    assert code == 0, err
    data = yaml.safe_load(out.read_text(encoding="utf-8"))
    assert data["id"] == "phu-luc" and len(data["groups"]) == 2
    assert "Dòng 14 · 2.4" in stdout.split("\n\n")[1]  # not understood first
    ws = load_workbook(report).active
    assert ws is not None
    rows = [[c.value for c in r] for r in ws.iter_rows()]
    assert rows[0][:6] == [
        "Dòng",
        "Mã",
        "Chỉ tiêu",
        "Điểm tối đa",
        "Cách xác định và tính điểm (bản gốc)",
        "Cách hiểu",
    ]
    assert [r[1] for r in rows[1:]] == ["2.4", "1.1", "1.2", "1.3", "2.1", "2.2", "2.3"]
    by_code = {r[1]: r for r in rows[1:]}
    assert by_code["1.2"][5] == "theo bậc: ≥ 6 lớp → 15; ≥ 3 lớp → 10; ≥ 1 lớp → 5; thấp hơn → 0"
    assert "a = Số văn bản đi được ký số" in str(by_code["1.3"][5])
    assert by_code["1.1"][7] == "cao" and str(by_code["2.4"][7]).startswith("thấp")
    # a rule text starting with "-" is a text cell, never a formula
    assert str(by_code["1.1"][4]).startswith("'- Trưởng ban là Chủ tịch UBND")
    assert all(c.data_type != "f" for r in ws.iter_rows() for c in r)
    # validate and show confirm the written file
    code, shown, err = run("--lang", "vi", "framework", "validate", str(out))
    assert code == 0 and "hợp lệ" in shown
    code, shown, err = run("--lang", "vi", "framework", "show", str(out))
    assert code == 0 and "7 chỉ tiêu · 85 điểm" in shown
    assert "↳ theo bậc: ≥ 6 lớp → 15; ≥ 3 lớp → 10; ≥ 1 lớp → 5; thấp hơn → 0" in shown
    assert "↳ theo bậc: ≥ 90 % → 10; ≥ 70 % → 7; thấp hơn → 0" in shown
    # the officer edits the YAML: validate and show confirm the edit, or name what is wrong
    edited = yaml.safe_load(out.read_text(encoding="utf-8"))
    tiers = edited["groups"][0]["indicators"][1]["scoring"]["tiers"]
    tiers[1]["points"] = 12
    out.write_text(yaml.safe_dump(edited, allow_unicode=True, sort_keys=False), encoding="utf-8")
    code, shown, _ = run("--lang", "vi", "framework", "show", str(out))
    assert code == 0 and "≥ 6 lớp → 15; ≥ 3 lớp → 12; ≥ 1 lớp → 5" in shown
    tiers[0]["points"] = 20
    out.write_text(yaml.safe_dump(edited, allow_unicode=True, sort_keys=False), encoding="utf-8")
    code, _, err = run("--lang", "vi", "framework", "validate", str(out))
    assert code == 2 and "1.2" in err and "scoring.tiers[0].points" in err


def test_word_table_with_a_merged_two_row_header_and_punctuated_names() -> None:
    """The common Word layout: "TT" and "Tiêu chí, chỉ số" merged down two rows, "QUY CHUẨN ĐÁNH GIÁ"
    and "TỰ ĐÁNH GIÁ" merged across their sub-columns."""
    from docx import Document

    doc = Document()
    table = doc.add_table(rows=2, cols=8)
    top, low = table.rows[0].cells, table.rows[1].cells
    top[0].merge(low[0]).text = "TT"
    top[1].merge(low[1]).text = "Tiêu chí, chỉ số"
    top[2].merge(top[3]).text = "QUY CHUẨN ĐÁNH GIÁ"
    low[2].text, low[3].text = "Điểm tối đa", "Cách xác định và tính điểm"
    top[4].merge(low[4]).text = "Tài liệu kiểm chứng"
    top[5].merge(top[6]).text = "TỰ ĐÁNH GIÁ"
    low[5].text, low[6].text = "Điểm tự chấm", "Giải trình"
    top[7].merge(low[7]).text = "Ghi chú"
    for code, text, max_points, rule in (
        ("I", "HẠ TẦNG SỐ", "20", ""),
        ("1.1", "Có mạng nội bộ (LAN)", "10", "Có: 10 điểm; Không: 0 điểm"),
        ("1.2", "Số máy chủ", "10", "Từ 2 máy chủ trở lên: 10 điểm; 1 máy chủ: 5 điểm"),
    ):
        cells = table.add_row().cells
        cells[0].text, cells[1].text, cells[2].text, cells[3].text = code, text, max_points, rule
        cells[4].text = "Báo cáo" if rule else ""
    buf = io.BytesIO()
    doc.save(buf)
    result = import_annex_file(buf.getvalue(), "phu-luc.docx")
    fw = result.framework
    assert fw is not None, result.errors
    assert [(g.name, g.max_points) for g in fw.groups] == [("HẠ TẦNG SỐ", D(20))]
    servers = fw.indicator("1.2")
    assert servers is not None and servers.answer.unit == "máy chủ"
    assert isinstance(servers.method, TiersMethod)
    assert [(t.min, t.points) for t in servers.method.tiers] == [(D(2), D(10)), (D(1), D(5))]
    lan = fw.indicator("1.1")
    assert lan is not None and lan.answer.type is AnswerType.YES_NO and lan.evidence.description == "Báo cáo"


def test_a_sheet_cell_merged_down_over_a_groups_rows_applies_to_each(tmp_path: Path) -> None:
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.append(["STT", "Chỉ tiêu", "Điểm tối đa", "Cách xác định và tính điểm", "Đơn vị xác minh"])
    ws.append(["I. HẠ TẦNG SỐ"])
    ws.merge_cells("A2:E2")
    ws.append(["1.1", "Có mạng nội bộ", 10, "Có: 10 điểm; Không: 0 điểm", "Viễn thông tỉnh"])
    ws.append(["1.2", "Có wifi công cộng", 10, None, None])
    ws.merge_cells("D3:D4")
    ws.merge_cells("E3:E4")
    path = tmp_path / "phu-luc.xlsx"
    wb.save(path)
    result = import_annex_file(path, path.name)
    fw = result.framework
    assert fw is not None, result.errors
    assert [g.name for g in fw.groups] == ["HẠ TẦNG SỐ"]
    for code in ("1.1", "1.2"):
        ind = fw.indicator(code)
        assert ind is not None and ind.answer.type is AnswerType.YES_NO
        assert ind.guidance == "Đơn vị xác minh: Viễn thông tỉnh"


def test_the_annex_sheet_is_found_behind_a_cover_sheet(tmp_path: Path) -> None:
    wb = Workbook()
    cover = wb.active
    assert cover is not None
    cover.title = "Quyết định"
    cover.append(["QUYẾT ĐỊNH số 99/QĐ-UBND ban hành Bộ chỉ số"])
    annex = wb.create_sheet("Phụ lục I")
    annex.append(HEADER)
    annex.append(["I", "HẠ TẦNG SỐ", None, None, None])
    annex.append(["1.1", "Có mạng nội bộ", 10, "Có: 10 điểm; Không: 0 điểm", "Sơ đồ mạng"])
    path = tmp_path / "quyet-dinh.xlsx"
    wb.save(path)
    result = import_annex_file(path, path.name)
    assert result.framework is not None and [i.code for i in result.framework.indicators] == ["1.1"]


def test_codes_typed_as_numbers_are_read_back_by_their_place(tmp_path: Path) -> None:
    """Excel keeps 1.10 typed into a number cell as 1.1; after 1.9 it is read as 1.10, with a note, and
    a real repeat is still an error."""
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.append(["STT", "Chỉ tiêu", "Điểm tối đa", "Cách xác định và tính điểm"])
    ws.append(["I. NHẬN THỨC SỐ"])
    for n in range(1, 12):
        ws.append([float(f"1.{n}"), f"Chỉ tiêu thứ {n}", 10, "Có: 10 điểm; Không: 0 điểm"])
    path = tmp_path / "so.xlsx"
    wb.save(path)
    result = import_annex_file(path, path.name)
    fw = result.framework
    assert fw is not None, result.errors
    assert [i.code for i in fw.indicators] == [f"1.{n}" for n in range(1, 12)]
    tenth = fw.indicator("1.10")
    assert tenth is not None and tenth.text == "Chỉ tiêu thứ 10"
    read_back = [
        (w.params["found"], w.params["code"]) for w in result.warnings if w.key == "import.code_from_number"
    ]
    assert read_back == [("1.1", "1.10")]
    ws.append([1.3, "Lặp lại", 10, "Có: 10 điểm; Không: 0 điểm"])
    wb.save(path)
    repeated = import_annex_file(path, path.name)
    assert repeated.framework is None
    assert [e.key for e in repeated.errors] == ["import.duplicate_code"]
