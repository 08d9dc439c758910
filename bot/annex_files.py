"""A province's annex file in, a checked framework out: the one import path for every channel.

`import_annex_file` opens an .xlsx/.xlsm sheet, a Word .docx table (including a header cell holding a
nested table) or a .csv/.tsv file, from a path or from bytes (the web upload), hands its rows to the
pure reader (`scoring.annex`), and passes the result through the gate. It returns everything a caller
shows: the framework (when there are no errors), the report rows with what was not understood first,
the errors that stop the import and the warnings, kept apart. It writes nothing.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.sheets import SheetError, read_rows_bytes
from scoring.annex import ImportProblem, ReportRow, find_header, import_annex
from scoring.gate import FrameworkInvalid, GateIssue, build_framework
from scoring.model import Framework
from scoring.textfold import fold

ANNEX_SUFFIXES = (".xlsx", ".xlsm", ".docx", ".csv", ".tsv", ".txt")


class AnnexUnreadable(ValueError):
    """The file cannot be opened as an annex at all (wrong type, damaged, not UTF-8)."""


@dataclass(frozen=True)
class ImportResult:
    source: str
    framework: Framework | None  # None when there are errors: nothing may be written
    data: dict[str, Any]
    report: tuple[ReportRow, ...]  # not understood first, then to check, then the rest
    errors: tuple[ImportProblem, ...]
    warnings: tuple[ImportProblem, ...]
    gate_errors: tuple[GateIssue, ...] = ()
    gate_warnings: tuple[GateIssue, ...] = ()

    @property
    def ok(self) -> bool:
        return self.framework is not None


def slug(text: str) -> str:
    """A framework id from a file name: "Phu luc 1 (xa)" → "phu-luc-1-xa", diacritics folded."""
    out = "".join(ch if ch.isalnum() else "-" for ch in fold(text))
    return "-".join(p for p in out.split("-") if p) or "framework"


def _cell_text(cell: Any) -> str:
    return "\n".join(p.text for p in cell.paragraphs).strip()


def _table_rows(table: Any) -> list[list[str]]:
    """A Word table as rows of texts, one per grid column. A cell spanning columns gives its text to the
    first; a cell holding a nested table (a two-level header) gives that table's last row instead."""
    rows: list[list[str]] = []
    for row in table.rows:
        cells = list(row.cells)
        out: list[str] = []
        i = 0
        while i < len(cells):
            span = 1
            while i + span < len(cells) and cells[i + span]._tc is cells[i]._tc:
                span += 1
            cell = cells[i]
            nested = cell.tables
            if nested and nested[-1].rows:
                last = [_cell_text(c) for c in _unique(nested[-1].rows[-1].cells)]
                if len(last) == span:
                    out.extend(last)
                else:
                    inner = [" ".join(t for t in r if t) for r in _table_rows(nested[-1])]
                    out.extend([" ".join([_cell_text(cell), *inner]).strip()] + [""] * (span - 1))
            else:
                out.extend([_cell_text(cell)] + [""] * (span - 1))
            i += span
        rows.append(out)
    return rows


def _unique(cells: Sequence[Any]) -> list[Any]:
    out: list[Any] = []
    for c in cells:
        if not out or out[-1]._tc is not c._tc:
            out.append(c)
    return out


def docx_rows(data: bytes) -> list[list[str]]:
    """The rows of the first table in a Word file that has an annex header (the decision's own tables
    and the text around the annex, footnotes and signatures included, are left out)."""
    from docx import Document

    try:
        document = Document(io.BytesIO(data))
    except Exception as exc:  # python-docx raises many types for a damaged or foreign file
        raise AnnexUnreadable(str(exc)) from exc
    tables = [_table_rows(t) for t in document.tables]
    for rows in tables:
        if find_header(rows) >= 0:
            return rows
    return tables[0] if tables else []


def annex_rows(data: bytes, name: str, sheet: str | None = None) -> list[list[object]]:
    suffix = Path(name).suffix.lower()
    if suffix not in ANNEX_SUFFIXES:
        raise AnnexUnreadable(f"unsupported file type '{suffix}'")
    if suffix == ".docx":
        return [list(r) for r in docx_rows(data)]
    try:
        if suffix in (".xlsx", ".xlsm") and sheet is None:
            return _annex_sheet(data, suffix)
        return read_rows_bytes(data, suffix, sheet, fill_merged_down=True)
    except SheetError as exc:
        raise AnnexUnreadable(str(exc)) from exc
    except UnicodeDecodeError as exc:
        raise AnnexUnreadable(f"not UTF-8 text: {exc.reason}") from exc


def _annex_sheet(data: bytes, suffix: str) -> list[list[object]]:
    """The first sheet of a workbook that has an annex header (a decision's workbook may open with a
    cover sheet), or the first sheet when none has."""
    from openpyxl import load_workbook

    try:
        wb = load_workbook(io.BytesIO(data), read_only=True)
        names = list(wb.sheetnames)
        wb.close()
    except Exception as exc:  # openpyxl raises many types for a damaged or foreign file
        raise SheetError(str(exc)) from exc
    first: list[list[object]] | None = None
    for name in names:
        rows = read_rows_bytes(data, suffix, name, fill_merged_down=True)
        if find_header(rows) >= 0:
            return rows
        first = rows if first is None else first
    return first or []


def import_annex_file(
    source: Path | bytes,
    name: str,
    *,
    framework_id: str | None = None,
    title: str | None = None,
    level: str = "commune",
    version: str = "1",
    decision: dict[str, Any] | None = None,
    sheet: str | None = None,
) -> ImportResult:
    """Read the annex `source` (a path, or the bytes of a file called `name`) into a checked framework;
    its id and title default to the file's name. Raises `AnnexUnreadable` when the file cannot be
    opened; every other problem is in the result."""
    data = source.read_bytes() if isinstance(source, Path) else source
    rows = annex_rows(data, name, sheet)
    stem = Path(name).stem
    imported = import_annex(
        rows,
        framework_id=framework_id or slug(stem),
        title=title or stem,
        level=level,
        version=version,
        decision=decision,
    )
    report = tuple(imported.report_for_review())
    errors, warnings = tuple(imported.problems), tuple(imported.notes)
    if errors:
        return ImportResult(name, None, imported.data, report, errors, warnings)
    try:
        checked = build_framework(imported.data, name)
    except FrameworkInvalid as exc:
        return ImportResult(
            name, None, imported.data, report, errors, warnings, tuple(exc.errors), tuple(exc.warnings)
        )
    return ImportResult(
        name, checked.framework, imported.data, report, errors, warnings, (), checked.warnings
    )
