"""Importing a 500-row annex (`dtibot framework import`): how long an officer waits for the report.

Writes one synthetic annex of `--rows` indicators (default 500, in groups of 10 under Roman sections)
in every layout the import reads: an .xlsx sheet with a merged two-row header, a Word table whose
header cell holds a nested table, and a .csv file. The rule texts cycle through the shapes of the test
corpus (`tests/data/rule_texts.yaml`), so every reader path is exercised. Then times, best of
`--repeat`:

- the baseline of only opening each file into rows of cells (openpyxl, python-docx, csv);
- the whole import of each file as `dtibot framework import` runs it (`bot.annex_files`): open, read
  every row and rule text, build the framework through the gate;
- reading the rule texts alone (`scoring.rules_text.read_rule`), per rule.

    make bench    # or: .venv/bin/python bench/import_bench.py [--rows 500] [--repeat 3]
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import yaml
from docx import Document
from openpyxl import Workbook

from bot.annex_files import annex_rows, import_annex_file
from scoring.rules_text import read_rule

ROOT = Path(__file__).resolve().parent.parent
HEADER_TOP = ["STT", "Chỉ tiêu", "QUY CHUẨN ĐÁNH GIÁ", None, "Nguồn thu thập dữ liệu", "Đơn vị xác minh"]
HEADER_LOW = [None, None, "Điểm tối đa", "Cách xác định và tính điểm", None, None]


def rules() -> list[tuple[str, int]]:
    """The corpus's rule texts that import without error, with their max points."""
    corpus: list[dict[str, Any]] = yaml.safe_load((ROOT / "tests/data/rule_texts.yaml").read_text("utf-8"))
    return [(str(e["text"]), int(e["max"])) for e in corpus if not e["expect"].get("error")]


def annex(n_rows: int) -> list[list[str]]:
    """Rows of the synthetic annex (after its header): sections, groups of 10 with their points."""
    texts = rules()
    body: list[list[str]] = []
    n = 0
    group = 0
    while n < n_rows:
        group += 1
        if group % 5 == 1:
            body.append([f"{'I' * (group // 5 + 1)}. NHÓM CHỈ SỐ {group // 5 + 1}", "", "", "", "", ""])
        members = [texts[(n + k) % len(texts)] for k in range(min(10, n_rows - n))]
        body.append([str(group), f"Nhóm {group}", str(sum(m for _, m in members)), "", "", ""])
        for k, (text, max_points) in enumerate(members, 1):
            body.append(
                [f"{group}.{k}", f"Chỉ tiêu {group}.{k}", str(max_points), text, "Báo cáo của xã", "Sở KH&CN"]
            )
        n += len(members)
    return body


def write_xlsx(path: Path, body: list[list[str]]) -> None:
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.append(["PHỤ LỤC"])
    ws.append(HEADER_TOP)
    ws.append(HEADER_LOW)
    for rng in ("A2:A3", "B2:B3", "C2:D2", "E2:E3", "F2:F3"):
        ws.merge_cells(rng)
    for row in body:
        ws.append([int(c) if i == 2 and c.isdigit() else (c or None) for i, c in enumerate(row)])
    wb.save(path)


def write_docx(path: Path, body: list[list[str]]) -> None:
    doc = Document()
    doc.add_paragraph("PHỤ LỤC")
    table = doc.add_table(rows=1, cols=6)
    head = table.rows[0].cells
    head[0].text, head[1].text, head[4].text, head[5].text = "STT", "Chỉ tiêu", HEADER_TOP[4], HEADER_TOP[5]
    merged = head[2].merge(head[3])
    merged.text = "QUY CHUẨN ĐÁNH GIÁ"
    nested = merged.add_table(rows=1, cols=2)
    nested.cell(0, 0).text, nested.cell(0, 1).text = "Điểm tối đa", "Cách xác định và tính điểm"
    for row in body:
        cells = table.add_row().cells
        for cell, value in zip(cells, row, strict=True):
            cell.text = value
    doc.save(str(path))


def write_csv(path: Path, body: list[list[str]]) -> None:
    import csv

    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(
            ["Mã", "Chỉ tiêu", "Điểm tối đa", "Cách xác định và tính điểm", HEADER_TOP[4], HEADER_TOP[5]]
        )
        w.writerows(body)


def best(repeat: int, fn: Callable[[], object]) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rows", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    body = annex(args.rows)
    print(f"{platform.python_implementation()} {platform.python_version()}, {platform.machine()}")
    print(f"annex: {args.rows} indicators, {len(body)} rows with sections and groups")
    with tempfile.TemporaryDirectory() as tmp:
        for name, write in (("annex.xlsx", write_xlsx), ("annex.docx", write_docx), ("annex.csv", write_csv)):
            path = Path(tmp) / name
            write(path, body)
            data = path.read_bytes()
            opened = best(args.repeat, lambda: annex_rows(data, name))  # noqa: B023
            result = import_annex_file(path, name, framework_id="bench", title="bench")
            assert result.framework is not None, (result.errors, result.gate_errors)
            assert len(result.framework.indicators) == args.rows
            whole = best(
                args.repeat,
                lambda: import_annex_file(path, name, framework_id="bench", title="bench"),  # noqa: B023
            )
            understood = sum(1 for r in result.report if r.reading.understood)
            print(
                f"{name:<11} {len(data) / 1024:7.0f} KiB  open only (baseline) {opened * 1000:7.0f} ms  "
                f"whole import {whole * 1000:7.0f} ms  ({whole / opened:4.1f} × open; "
                f"{understood}/{args.rows} rules read into a guided question)"
            )
    texts = [(t, Decimal(m)) for t, m in rules()]
    per = best(args.repeat, lambda: [read_rule(t, m) for t, m in texts]) / len(texts)
    print(f"reading one rule text: {per * 1e6:.0f} µs ({len(texts)} corpus texts)")


if __name__ == "__main__":
    main()
