"""Reading a province's annex table (Phụ lục) into framework data the gate can check.

Provinces publish their scorecards as spreadsheets with the usual columns: Mã/STT, Chỉ tiêu/Chỉ
số, Nhóm, Điểm tối đa, and sometimes Cách tính and Tài liệu kiểm chứng. This module gets the rows
as plain cell values (the caller opens the .xlsx/.csv/.tsv), finds the header, tells group rows
from indicator rows, infers the obvious answer types ("Tỷ lệ…" → percentage scored rate × max,
"Có …" → yes/no, otherwise self-assessed points) and returns the framework mapping plus, for every
row it could not understand, a problem naming the row.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from scoring.messages import N_
from scoring.model import AnswerType
from scoring.numbers import plain
from scoring.textfold import fold

Cell = object

_HEADERS: dict[str, tuple[str, ...]] = {
    "code": ("ma", "ma so", "stt", "tt", "so tt", "ma chi tieu", "ma chi so", "code"),
    "text": (
        "chi tieu",
        "chi so",
        "ten chi tieu",
        "ten chi so",
        "chi tieu thanh phan",
        "chi so thanh phan",
        "tieu chi",
        "noi dung",
        "noi dung danh gia",
        "indicator",
    ),
    "group": ("nhom", "nhom chi tieu", "nhom chi so", "chi so chinh", "tru cot", "group"),
    "max": ("diem toi da", "so diem toi da", "diem", "thang diem", "max points", "max_points"),
    "method": (
        "cach tinh",
        "cach tinh diem",
        "cach xac dinh va tinh diem",
        "phuong phap tinh diem",
        "phuong phap",
    ),
    "evidence": ("tai lieu kiem chung", "tai lieu minh chung", "minh chung", "tlkc"),
    "type": ("kieu tra loi", "answer type"),
}
_ROMAN = re.compile(r"^(?=[ivxlc]+$)c{0,3}(xc|xl|l?x{0,3})(ix|iv|v?i{0,3})$")
_NUMBER = re.compile(r"-?\d+(?:[.,]\d+)?")
_SIMPLE_TYPES = {
    AnswerType.YES_NO.value: "yes_no",
    AnswerType.PERCENTAGE.value: "rate",
    AnswerType.RATIO.value: "rate",
    AnswerType.POINTS.value: "self_assessed",
}


@dataclass(frozen=True)
class ImportProblem:
    row: int  # 1-based, as the spreadsheet shows it
    key: str
    params: dict[str, str] = field(default_factory=dict)


@dataclass
class AnnexImport:
    data: dict[str, Any]
    problems: list[ImportProblem]  # rows not understood: no file should be written
    notes: list[ImportProblem]  # choices made on the reader's behalf


def _cell(value: Cell) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return " ".join(str(value).split())


def _header_columns(row: Sequence[Cell]) -> dict[str, int]:
    found: dict[str, int] = {}
    for col, value in enumerate(row):
        name = fold(_cell(value)).rstrip(":")
        for field_name, names in _HEADERS.items():
            if field_name in found:
                continue
            if name in names or any(
                name.startswith(n + " ") or name.startswith(n + "(") for n in names if len(n) > 3
            ):
                found[field_name] = col
                break
    return found


def _points(text: str) -> Decimal | None:
    m = _NUMBER.search(text)
    if m is None:
        return None
    try:
        value = Decimal(m.group().replace(",", "."))
    except InvalidOperation:
        return None
    return value if value > 0 else None


def _is_heading_code(code: str) -> bool:
    c = code.strip().rstrip(".").casefold()
    return bool(c) and (bool(_ROMAN.match(c)) or (len(c) == 1 and c.isalpha()))


def infer_answer(text: str, method_text: str) -> tuple[str, str]:
    """(answer type, scoring method) read from an indicator's wording and its "Cách tính"."""
    t = fold(text)
    m = fold(method_text)
    if t.startswith(("ty le", "ti le", "ty trong", "ti trong")):
        if re.search(r"/\s*1[.,]?000|tren 1[.,]?000|1[.,]?000 dan", t):
            return AnswerType.POINTS.value, "self_assessed"
        return AnswerType.PERCENTAGE.value, "rate"
    if t.startswith("co ") or (re.search(r"\bco\b", m) and re.search(r"\bkhong\b", m)):
        return AnswerType.YES_NO.value, "yes_no"
    return AnswerType.POINTS.value, "self_assessed"


@dataclass
class _Group:
    id: str | None
    name: str
    max_points: Decimal | None
    indicators: list[dict[str, Any]] = field(default_factory=list)


def import_annex(
    rows: Sequence[Sequence[Cell]],
    *,
    framework_id: str,
    title: str,
    level: str = "commune",
    version: str = "1",
    decision: dict[str, Any] | None = None,
) -> AnnexImport:
    problems: list[ImportProblem] = []
    notes: list[ImportProblem] = []
    header_row, cols = -1, {}
    for i, row in enumerate(rows[:20]):
        found = _header_columns(row)
        if {"code", "text", "max"} <= found.keys():
            header_row, cols = i, found
            break
    data: dict[str, Any] = {
        "spec_version": 1,
        "id": framework_id,
        "version": version,
        "title": title,
        "level": level,
        "kind": "points",
        "decision": decision or {},
        "groups": [],
    }
    if header_row < 0:
        problems.append(ImportProblem(1, N_("import.no_header")))
        return AnnexImport(data, problems, notes)

    def get(row: Sequence[Cell], name: str) -> str:
        col = cols.get(name)
        return _cell(row[col]) if col is not None and col < len(row) else ""

    if "evidence" not in cols:
        notes.append(ImportProblem(header_row + 1, N_("import.no_evidence_column")))
    groups: list[_Group] = []
    by_name: dict[str, _Group] = {}
    current: _Group | None = None
    body = [(i + 1, row) for i, row in enumerate(rows) if i > header_row]
    codes = [get(row, "code").rstrip(".") for _, row in body]
    for pos, (line, row) in enumerate(body):
        code, text, max_text = codes[pos], get(row, "text"), get(row, "max")
        group_name = get(row, "group")
        if not (code or text or max_text):
            continue
        next_code = next((c for c in codes[pos + 1 :] if c), "")
        is_parent = bool(code) and next_code.startswith(code + ".")
        if (
            _is_heading_code(code)
            or (not code and text and not max_text)
            or (is_parent and "." not in code and "group" not in cols)
        ):
            name = text or group_name
            if not name:
                problems.append(ImportProblem(line, N_("import.heading_without_name")))
                continue
            current = by_name.get(fold(name))
            if current is None:
                current = _Group(None, name, _points(max_text) if max_text else None)
                groups.append(current)
                by_name[fold(name)] = current
            continue
        if is_parent:
            notes.append(ImportProblem(line, N_("import.parent_row"), {"code": code}))
            continue
        if not text:
            problems.append(ImportProblem(line, N_("import.no_text"), {"code": code}))
            continue
        if not code:
            problems.append(ImportProblem(line, N_("import.no_code"), {"text": text[:60]}))
            continue
        max_points = _points(max_text)
        if max_points is None:
            problems.append(ImportProblem(line, N_("import.bad_max"), {"code": code, "value": max_text}))
            continue
        if group_name:
            target = by_name.get(fold(group_name))
            if target is None:
                target = _Group(None, group_name, None)
                groups.append(target)
                by_name[fold(group_name)] = target
        elif current is not None:
            target = current
        else:
            problems.append(ImportProblem(line, N_("import.no_group"), {"code": code}))
            continue
        method_text = get(row, "method")
        declared = get(row, "type")
        if declared in _SIMPLE_TYPES:
            answer_type, method = declared, _SIMPLE_TYPES[declared]
        else:
            if declared:
                notes.append(
                    ImportProblem(line, N_("import.type_not_simple"), {"code": code, "type": declared})
                )
            answer_type, method = infer_answer(text, method_text)
        indicator: dict[str, Any] = {
            "code": code,
            "text": text,
            "max_points": int(max_points)
            if max_points == max_points.to_integral_value()
            else plain(max_points),
            "answer": {"type": answer_type},
            "scoring": {"method": method},
        }
        if method_text:
            indicator["method_text"] = method_text
        evidence = get(row, "evidence")
        if evidence:
            indicator["evidence"] = {"required": True, "description": evidence}
        target.indicators.append(indicator)

    for n, g in enumerate(groups, start=1):
        firsts = {str(ind["code"]).split(".")[0] for ind in g.indicators}
        g.id = firsts.pop() if len(firsts) == 1 else f"G{n}"
    used = [g.id for g in groups]
    for n, g in enumerate(groups, start=1):
        if used.count(g.id) > 1:
            g.id = f"G{n}"
    for g in groups:
        if not g.indicators:
            notes.append(ImportProblem(header_row + 1, N_("import.empty_group"), {"group": g.name}))
            continue
        group: dict[str, Any] = {"id": g.id, "name": g.name}
        if g.max_points is not None:
            group["max_points"] = (
                int(g.max_points) if g.max_points == g.max_points.to_integral_value() else plain(g.max_points)
            )
        group["indicators"] = g.indicators
        data["groups"].append(group)
    if not data["groups"] and not problems:
        problems.append(ImportProblem(header_row + 1, N_("import.no_indicators")))
    return AnnexImport(data, problems, notes)
