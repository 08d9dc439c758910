"""Writes the fixture annexes in tests/data/ (committed, so the tests never depend on running this):
the same small annex as an .xlsx sheet with a merged two-row header, a Word table whose header cell
holds a nested table, and .csv/.tsv files. Run: .venv/bin/python tests/data/make_annexes.py"""

from __future__ import annotations

import csv
from pathlib import Path

from docx import Document
from docx.table import Table
from openpyxl import Workbook
from openpyxl.styles import Alignment

HERE = Path(__file__).parent
SOURCE, VERIFIER = "Nguồn thu thập dữ liệu", "Đơn vị xác minh"

# (code, text, max, rule, source, verifier); a None max marks a section or group row
ROWS: list[tuple[str, str, str | None, str, str, str]] = [
    ("I. NHÓM CHỈ SỐ NỀN TẢNG", "", None, "", "", ""),
    ("1", "Nhận thức số", "45", "", "", ""),
    (
        "1.1",
        "Ban Chỉ đạo chuyển đổi số của xã",
        "10",
        "- Trưởng ban là Chủ tịch UBND: Điểm tối đa;\n- Trưởng ban là Phó Chủ tịch: 1/2*Điểm tối đa;\n"
        "- Chưa thành lập: 0 điểm",
        "Quyết định thành lập",
        "Sở KH&CN",
    ),
    (
        "1.2.",
        "Số lớp tập huấn kỹ năng số cho người dân",
        "15",
        "Tổ chức từ 6 lớp trở lên: 15 điểm;\ntừ 3 đến 5 lớp: 10 điểm;\n1-2 lớp: 5 điểm;\n"
        "không tổ chức: 0 điểm",
        "Báo cáo của xã",
        "Phòng Văn hóa - Xã hội",
    ),
    (
        "1.3",
        "Văn bản điện tử có ký số",
        "20",
        "a = Số văn bản đi được ký số;\nb = Tổng số văn bản đi của UBND xã;\nTỷ lệ = a/b;\n"
        "Điểm = Tỷ lệ × Điểm tối đa",
        "Hệ thống quản lý văn bản",
        "Sở KH&CN",
    ),
    ("2", "Hạ tầng số", "40", "", "", ""),
    (
        "2.1",
        "Tỷ lệ thôn, ấp có wifi công cộng",
        "10",
        "≥ 90%: 10 điểm; 70–<90%: 7 điểm; < 70%: 0 điểm",
        "Báo cáo của xã",
        "Viễn thông tỉnh",
    ),
    (
        "2.2",
        "Họp giao ban về chuyển đổi số",
        "10",
        "\uf0b7 Tham gia đầy đủ các cuộc họp của tỉnh: 1/2 × Điểm tối đa\n"
        "\uf0b7 Chủ trì các cuộc họp của xã: 1/2 × Điểm tối đa",
        "Giấy mời, biên bản",
        "Sở KH&CN",
    ),
    ("", "Ban hành kế hoạch chuyển đổi số năm", "10", "Có: 10 điểm; Không: 0 điểm", "Kế hoạch", "Sở KH&CN"),
    (
        "2.4",
        "Mức độ ứng dụng nền tảng số dùng chung",
        "10",
        "Căn cứ kết quả kiểm tra thực tế của Sở Khoa học và Công nghệ",
        "Báo cáo",
        "Sở KH&CN",
    ),
]
FOOTER = [
    "Ghi chú: Điểm tự chấm do xã tự đánh giá, Sở KH&CN thẩm định.",
    "CHỦ TỊCH UBND XÃ",
    "(Ký, ghi rõ họ tên)",
]


def xlsx() -> None:
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "Phụ lục"
    ws.append(["PHỤ LỤC I: BỘ CHỈ SỐ ĐÁNH GIÁ CHUYỂN ĐỔI SỐ CẤP XÃ"])
    ws.append(["(Kèm theo Quyết định số 99/QĐ-UBND)"])
    ws.append(["STT", "Chỉ tiêu", "QUY CHUẨN ĐÁNH GIÁ", None, SOURCE, VERIFIER, "TỰ ĐÁNH GIÁ", None])
    ws.append(
        [None, None, "Điểm tối đa", "Cách xác định và tính điểm", None, None, "Điểm tự chấm", "Giải trình"]
    )
    for rng in ("A3:A4", "B3:B4", "C3:D3", "E3:E4", "F3:F4", "G3:H3"):
        ws.merge_cells(rng)
    for code, text, max_points, rule, source, verifier in ROWS:
        if max_points is None:
            ws.append([code])
            ws.merge_cells(start_row=ws.max_row, start_column=1, end_row=ws.max_row, end_column=8)
            continue
        number = int(max_points)
        ws.append([code, text, number, rule or None, source or None, verifier or None, None, None])
        ws.cell(ws.max_row, 4).alignment = Alignment(wrap_text=True)
    ws.append([])
    for line in FOOTER:
        ws.append([line])
    wb.save(HERE / "annex-merged-header.xlsx")


def docx() -> None:
    doc = Document()
    doc.add_paragraph("ỦY BAN NHÂN DÂN TỈNH")
    intro = doc.add_table(rows=1, cols=2)
    intro.cell(0, 0).text = "Số: 99/QĐ-UBND"
    intro.cell(0, 1).text = "Ngày 10 tháng 3 năm 2026"
    doc.add_paragraph("PHỤ LỤC I: BỘ CHỈ SỐ ĐÁNH GIÁ CHUYỂN ĐỔI SỐ CẤP XÃ")
    table = doc.add_table(rows=1, cols=7)
    head = table.rows[0].cells
    head[0].text, head[1].text = "STT", "Chỉ tiêu"
    rules_head = head[2].merge(head[3])
    rules_head.text = "QUY CHUẨN ĐÁNH GIÁ"
    nested: Table = rules_head.add_table(rows=1, cols=2)
    nested.cell(0, 0).text = "Điểm tối đa"
    nested.cell(0, 1).text = "Cách xác định và tính điểm"
    head[4].text, head[5].text, head[6].text = SOURCE, VERIFIER, "Điểm tự chấm"
    for code, text, max_points, rule, source, verifier in ROWS:
        cells = table.add_row().cells
        if max_points is None:
            merged = cells[0].merge(cells[6])
            merged.text = code
            continue
        values = [code, text, max_points, "", source, verifier, ""]
        for cell, value in zip(cells, values, strict=True):
            cell.text = value
        paragraphs = rule.split("\n")
        cells[3].text = paragraphs[0]
        for more in paragraphs[1:]:
            cells[3].add_paragraph(more)
    for line in FOOTER:
        doc.add_paragraph(line)
    doc.save(str(HERE / "annex-nested-header.docx"))


def delimited() -> None:
    header = ["Mã", "Chỉ tiêu", "Điểm tối đa", "Cách xác định và tính điểm", SOURCE, VERIFIER]
    rows = [header]
    for code, text, max_points, rule, source, verifier in ROWS:
        rows.append([code, text, max_points or "", rule, source, verifier])
    rows += [[], *[[line] for line in FOOTER]]
    for name, delimiter in (("annex.csv", ","), ("annex.tsv", "\t")):
        with (HERE / name).open("w", encoding="utf-8", newline="") as fh:
            csv.writer(fh, delimiter=delimiter, lineterminator="\n").writerows(rows)


if __name__ == "__main__":
    xlsx()
    docx()
    delimited()
