"""Spreadsheet files in and out: .xlsx (openpyxl), .csv and .tsv, as lists of cell values.

openpyxl is imported only when a workbook is read or written: every `dtibot` command imports this
module, and the bot processes never touch a workbook.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path

SHEET_SUFFIXES = (".xlsx", ".xlsm", ".csv", ".tsv", ".txt")


class SheetError(ValueError):
    pass


def read_rows(path: Path, sheet: str | None = None) -> list[list[object]]:
    suffix = path.suffix.lower()
    if suffix in (".xlsx", ".xlsm"):
        from openpyxl import load_workbook

        try:
            wb = load_workbook(path, read_only=True, data_only=True)
        except Exception as exc:  # openpyxl raises many types for a damaged or foreign file
            raise SheetError(str(exc)) from exc
        try:
            if sheet is not None and sheet not in wb.sheetnames:
                raise SheetError(f"sheet '{sheet}' not in {wb.sheetnames}")
            ws = wb[sheet] if sheet is not None else wb.worksheets[0]
            return [list(row) for row in ws.iter_rows(values_only=True)]
        finally:
            wb.close()
    if suffix not in (".csv", ".tsv", ".txt"):
        raise SheetError(f"unsupported file type '{suffix}'")
    text = path.read_text(encoding="utf-8-sig")
    if suffix == ".tsv":
        delimiter = "\t"
    else:
        try:
            delimiter = csv.Sniffer().sniff(text[:4096], delimiters=",;\t").delimiter
        except csv.Error:
            delimiter = ","
    return [list(row) for row in csv.reader(io.StringIO(text), delimiter=delimiter)]


def write_rows(path: Path, rows: Sequence[Sequence[object]], title: str = "Sheet1") -> None:
    suffix = path.suffix.lower()
    if suffix == ".xlsx":
        from openpyxl import Workbook
        from openpyxl.styles import Alignment, Font

        wb = Workbook()
        ws = wb.active
        assert ws is not None
        ws.title = title[:31]
        for row in rows:
            ws.append(list(row))
        for cell in ws[1]:
            cell.font = Font(bold=True)
        ws.freeze_panes = "A2"
        for col, width in zip("ABCDEFG", (10, 80, 30, 12, 40, 40, 14), strict=False):
            ws.column_dimensions[col].width = width
        for row in ws.iter_rows(min_row=2, min_col=2, max_col=2):
            for cell in row:
                cell.alignment = Alignment(wrap_text=True, vertical="top")
        wb.save(path)
        return
    delimiter = "\t" if suffix == ".tsv" else ","
    with path.open("w", encoding="utf-8", newline="") as fh:
        csv.writer(fh, delimiter=delimiter, lineterminator="\n").writerows(rows)
