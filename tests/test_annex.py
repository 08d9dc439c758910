"""Importing annex tables: the Tây Ninh sheet round-trips; odd layouts are understood or explained."""

from __future__ import annotations

import csv
from pathlib import Path

from openpyxl import Workbook

from bot.sheets import read_rows, write_rows
from scoring.annex import import_annex
from scoring.export import framework_rows
from scoring.gate import build_framework
from scoring.model import AnswerType, Framework
from tests.conftest import TAY_NINH_TSV


def sheet_rows() -> list[list[str]]:
    with TAY_NINH_TSV.open(encoding="utf-8") as fh:
        return list(csv.reader(fh, delimiter="\t"))


def same_content(a: Framework, b: Framework) -> None:
    assert [(i.code, i.text, i.group_id, i.max_points) for i in a.indicators] == [
        (i.code, i.text, i.group_id, i.max_points) for i in b.indicators
    ]
    assert [(g.id, g.name, g.max_points) for g in a.groups] == [
        (g.id, g.name, g.max_points) for g in b.groups
    ]


def test_tay_ninh_sheet_imports_to_the_shipped_framework(tay_ninh: Framework) -> None:
    rows = sheet_rows()
    result = import_annex(rows, framework_id="tay-ninh-commune-2025", title="Tây Ninh")
    assert result.problems == []
    fw = build_framework(result.data, "tsv").framework
    same_content(fw, tay_ninh)
    # every "Tỷ lệ/Tỷ trọng" indicator is a percentage scored rate × max, in both
    rates = {
        r[0]
        for r in rows[1:]
        if r[1].lower().startswith(("tỷ lệ", "tỉ lệ", "tỷ trọng")) and "/1000" not in r[1]
    }
    assert len(rates) == 33
    for f in (fw, tay_ninh):
        assert {i.code for i in f.indicators if i.answer.type is AnswerType.PERCENTAGE} == rates
    assert fw.indicator("3.5").answer.type is AnswerType.YES_NO  # type: ignore[union-attr]
    assert fw.indicator("3.6").answer.type is AnswerType.YES_NO  # type: ignore[union-attr]
    # texts are verbatim from the sheet
    assert [i.text for i in tay_ninh.indicators] == [r[1] for r in rows[1:]]


def test_exported_sheet_imports_back_with_the_same_types(tay_ninh: Framework, tmp_path: Path) -> None:
    for name in ("tn.xlsx", "tn.csv", "tn.tsv"):
        path = tmp_path / name
        write_rows(path, framework_rows(tay_ninh))
        result = import_annex(read_rows(path), framework_id="x", title="x")
        assert result.problems == []
        fw = build_framework(result.data, name).framework
        same_content(fw, tay_ninh)
        assert [i.answer.type for i in fw.indicators] == [i.answer.type for i in tay_ninh.indicators]
        assert [i.evidence.description for i in fw.indicators] == [
            i.evidence.description for i in tay_ninh.indicators
        ]


def test_roman_group_headings_and_numeric_cells(tmp_path: Path) -> None:
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.append(["PHỤ LỤC I", None, None, None])
    ws.append(["STT", "Tiêu chí", "Điểm tối đa", "Cách xác định và tính điểm", "Tài liệu kiểm chứng"])
    ws.append(["I", "NHẬN THỨC SỐ", 50, None, None])
    ws.append([1.1, "Có Ban chỉ đạo chuyển đổi số", 20, "Có: 20 điểm; Không: 0 điểm", "Quyết định thành lập"])
    ws.append([1.2, "Tỷ lệ cán bộ được tập huấn", "30 điểm", "Tỷ lệ x 30", None])
    ws.append(["II", "HẠ TẦNG SỐ", None, None, None])
    ws.append(["2.1", "Mức độ trang bị máy tính", "10,5", None, None])
    ws.append([None, None, None, None, None])
    path = tmp_path / "annex.xlsx"
    wb.save(path)
    result = import_annex(read_rows(path), framework_id="ex", title="Ví dụ")
    assert result.problems == []
    fw = build_framework(result.data, "annex.xlsx").framework
    assert [(g.name, g.max_points) for g in fw.groups] == [("NHẬN THỨC SỐ", 50), ("HẠ TẦNG SỐ", 10.5)]
    types = {i.code: i.answer.type for i in fw.indicators}
    assert types == {"1.1": AnswerType.YES_NO, "1.2": AnswerType.PERCENTAGE, "2.1": AnswerType.POINTS}
    ind = fw.indicator("1.1")
    assert ind is not None and ind.evidence.required and ind.method_text == "Có: 20 điểm; Không: 0 điểm"


def test_parent_rows_become_headings() -> None:
    rows = [
        ["Mã", "Chỉ tiêu", "Nhóm", "Điểm tối đa"],
        ["4.22", "Triển khai các kế hoạch", "Chính quyền số", "40"],
        ["4.22.1", "Kế hoạch A", "Chính quyền số", "20"],
        ["4.22.2", "Kế hoạch B", "Chính quyền số", "20"],
    ]
    result = import_annex(rows, framework_id="p", title="p")
    assert result.problems == []
    assert [n.key for n in result.notes if n.key == "import.parent_row"] == ["import.parent_row"]
    fw = build_framework(result.data, "p").framework
    assert [i.code for i in fw.indicators] == ["4.22.1", "4.22.2"]


def test_rows_that_cannot_be_understood_are_named() -> None:
    rows = [
        ["Mã", "Chỉ tiêu", "Nhóm", "Điểm tối đa"],
        ["1.1", "Tỷ lệ A", "G", "mười"],
        ["1.2", "", "G", "10"],
        ["", "Chỉ tiêu không mã", "G", "10"],
        ["1.4", "Tỷ lệ D", "G", "10"],
    ]
    result = import_annex(rows, framework_id="bad", title="bad")
    assert [(p.row, p.key) for p in result.problems] == [
        (2, "import.bad_max"),
        (3, "import.no_text"),
    ]
    # a row without a code is numbered by its place in its group, as a warning
    assert [(n.row, n.key, n.params) for n in result.notes if n.key == "import.code_numbered"] == [
        (4, "import.code_numbered", {"code": "1.3"})
    ]


def test_a_sheet_without_the_usual_header_is_explained() -> None:
    result = import_annex([["a", "b"], ["c", "d"]], framework_id="x", title="x")
    assert [p.key for p in result.problems] == ["import.no_header"]


def test_group_rows_written_without_a_code_are_groups_when_their_points_add_up() -> None:
    rows = [
        ["STT", "Chỉ tiêu", "Điểm tối đa", "Cách xác định và tính điểm"],
        ["", "Nhận thức số", "20", ""],
        ["1.1", "Có kế hoạch chuyển đổi số", "10", "Có: 10 điểm; Không: 0 điểm"],
        ["1.2", "Có ban chỉ đạo", "10", "Có: 10 điểm; Không: 0 điểm"],
        ["", "Hạ tầng số", "10", ""],
        ["2.1", "Có wifi công cộng", "10", "Có: 10 điểm; Không: 0 điểm"],
    ]
    result = import_annex(rows, framework_id="nhom", title="Nhóm không mã")
    assert result.problems == []
    groups = result.data["groups"]
    assert [(g["name"], [i["code"] for i in g["indicators"]]) for g in groups] == [
        ("Nhận thức số", ["1.1", "1.2"]),
        ("Hạ tầng số", ["2.1"]),
    ]
