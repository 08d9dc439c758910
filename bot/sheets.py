"""Spreadsheet files in and out: .xlsx (openpyxl), .csv and .tsv, as lists of cell values.

Every text cell written by any export goes through `text_cell`: a text a spreadsheet would read as the
start of a formula (`=`, `+`, `-`, `@`, a tab or a carriage return, and their full-width forms) gets
a leading apostrophe (OWASP's advice on CSV injection), so a unit name, file name, citation or comment
an official typed is shown as text and never run; in a workbook such a text is then an ordinary
string cell, never a formula. `read_rows` takes that apostrophe off again, so an exported sheet imports
back unchanged.

openpyxl is imported only when a workbook is read or written: every `dtibot` command imports this
module, and the bot processes never touch a workbook.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

SHEET_SUFFIXES = (".xlsx", ".xlsm", ".csv", ".tsv", ".txt")
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "＝", "＋", "－", "＠")


def _armed(text: str) -> bool:
    """Whether a spreadsheet would read `text`, past any apostrophes already in front, as a formula."""
    return text.lstrip("'").startswith(FORMULA_STARTS)


def text_cell(value: T) -> T | str:
    """A cell value as written to any export: text that would start a formula gets an apostrophe in
    front (one more if it already had some, so `read_rows` restores it exactly); anything else as is."""
    if isinstance(value, str) and _armed(value):
        return "'" + value
    return value


def text_cells(row: Iterable[object]) -> list[object]:
    return [text_cell(value) for value in row]


def _restored(value: object) -> object:
    """The inverse of `text_cell`, for a cell read back from a sheet."""
    if isinstance(value, str) and value.startswith("'") and _armed(value):
        return value[1:]
    return value


class SheetError(ValueError):
    pass


def read_rows(path: Path, sheet: str | None = None) -> list[list[object]]:
    suffix = path.suffix.lower()
    if suffix not in (".xlsx", ".xlsm", ".csv", ".tsv", ".txt"):
        raise SheetError(f"unsupported file type '{suffix}'")
    return read_rows_bytes(path.read_bytes(), suffix, sheet)


def read_rows_bytes(
    data: bytes, suffix: str, sheet: str | None = None, *, fill_merged_down: bool = False
) -> list[list[object]]:
    """The rows of a workbook or delimited text file given as bytes, with `suffix` saying which. With
    `fill_merged_down`, a cell merged down over several rows (a rule or a verifier shared by the rows
    of a group) gives its value to each of them, as Word does."""
    if suffix in (".xlsx", ".xlsm"):
        from openpyxl import load_workbook

        try:
            wb = load_workbook(io.BytesIO(data), read_only=not fill_merged_down, data_only=True)
        except Exception as exc:  # openpyxl raises many types for a damaged or foreign file
            raise SheetError(str(exc)) from exc
        try:
            if sheet is not None and sheet not in wb.sheetnames:
                raise SheetError(f"sheet '{sheet}' not in {wb.sheetnames}")
            ws = wb[sheet] if sheet is not None else wb.worksheets[0]
            rows = [[_restored(v) for v in row] for row in ws.iter_rows(values_only=True)]
            if fill_merged_down:
                for merged in ws.merged_cells.ranges:
                    if merged.min_col != merged.max_col:
                        continue
                    col = merged.min_col - 1
                    value = rows[merged.min_row - 1][col]
                    for r in range(merged.min_row, merged.max_row):
                        rows[r][col] = value
            return rows
        finally:
            wb.close()
    if suffix not in (".csv", ".tsv", ".txt"):
        raise SheetError(f"unsupported file type '{suffix}'")
    text = data.decode("utf-8-sig")
    if suffix == ".tsv":
        delimiter = "\t"
    else:
        try:
            delimiter = csv.Sniffer().sniff(text[:4096], delimiters=",;\t").delimiter
        except csv.Error:
            delimiter = ","
    return [[_restored(v) for v in row] for row in csv.reader(io.StringIO(text), delimiter=delimiter)]


_WIDTHS = (10, 80, 30, 12, 40, 40, 14)


def write_rows(
    path: Path,
    rows: Sequence[Sequence[object]],
    title: str = "Sheet1",
    *,
    widths: Sequence[int] = _WIDTHS,
    wrapped: Sequence[int] = (2,),
) -> None:
    """Rows to .xlsx (bold frozen header, column `widths`, the 1-based `wrapped` columns wrapped), .csv
    or .tsv; every text cell through `text_cell`."""
    suffix = path.suffix.lower()
    if suffix == ".xlsx":
        from openpyxl import Workbook
        from openpyxl.styles import Alignment, Font
        from openpyxl.utils import get_column_letter

        wb = Workbook()
        ws = wb.active
        assert ws is not None
        ws.title = title[:31]
        for row in rows:
            ws.append(text_cells(row))
        for cell in ws[1]:
            cell.font = Font(bold=True)
        ws.freeze_panes = "A2"
        for n, width in enumerate(widths, 1):
            ws.column_dimensions[get_column_letter(n)].width = width
        for col in wrapped:
            for row in ws.iter_rows(min_row=2, min_col=col, max_col=col):
                for cell in row:
                    cell.alignment = Alignment(wrap_text=True, vertical="top")
        wb.save(path)
        return
    delimiter = "\t" if suffix == ".tsv" else ","
    with path.open("w", encoding="utf-8", newline="") as fh:
        csv.writer(fh, delimiter=delimiter, lineterminator="\n").writerows(text_cells(r) for r in rows)
