"""Reading a province's annex table (Phụ lục) into framework data the gate can check.

Provinces publish their scorecards as Excel sheets or Word tables with the usual columns: Mã/STT,
Chỉ tiêu/Chỉ số, Nhóm, Điểm tối đa, Cách xác định và tính điểm, Tài liệu kiểm chứng, and often a
data source (Nguồn thu thập dữ liệu) and a verifier (Đơn vị xác minh). Headers often span two rows
("QUY CHUẨN ĐÁNH GIÁ" over "Điểm tối đa" and "Cách xác định và tính điểm"); sections are Roman
numerals, groups carry their points ("1 | Nhận thức số | 100"), and footnotes and signatures follow
the table. This module gets the rows as plain cell values (the caller opens the file), tells those
rows apart, reads every rule text (`scoring.rules_text`) and returns the framework mapping, a report
row per indicator, the problems that stop the import (each naming its row) and the notes kept apart.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from scoring.messages import N_
from scoring.model import AnswerType
from scoring.numbers import plain, total
from scoring.rules_text import Confidence, Reading, RuleNote, normalize, read_rule, readable
from scoring.textfold import fold

Cell = object

_HEADERS: dict[str, tuple[str, ...]] = {
    "skip": (
        "diem tu cham",
        "tu cham",
        "giai trinh",
        "diem tham dinh",
        "ket qua tham dinh",
        "ket qua tu danh gia",
        "tu danh gia",
        "quy chuan danh gia",
        "ghi chu",
    ),
    "code": ("ma", "ma so", "stt", "tt", "so tt", "ma chi tieu", "ma chi so", "code"),
    "text": (
        "chi tieu",
        "chi so",
        "ten chi tieu",
        "ten chi so",
        "chi tieu thanh phan",
        "chi so thanh phan",
        "tieu chi",
        "ten tieu chi",
        "noi dung",
        "noi dung danh gia",
        "noi dung chi so",
        "indicator",
    ),
    "group": ("nhom", "nhom chi tieu", "nhom chi so", "chi so chinh", "tru cot", "group"),
    "max": ("diem toi da", "so diem toi da", "diem", "thang diem", "max points", "max_points"),
    "method": (
        "cach tinh",
        "cach tinh diem",
        "cach xac dinh va tinh diem",
        "cach xac dinh",
        "phuong phap tinh diem",
        "phuong phap danh gia",
        "phuong phap",
        "huong dan cham diem",
    ),
    "evidence": ("tai lieu kiem chung", "tai lieu minh chung", "minh chung", "tlkc"),
    "source": ("nguon thu thap du lieu", "nguon du lieu", "nguon thu thap", "nguon so lieu"),
    "verifier": ("don vi xac minh", "co quan xac minh", "don vi kiem tra", "don vi danh gia"),
    "type": ("kieu tra loi", "answer type"),
}
_ROMAN = re.compile(r"^(?=[ivxlc]+$)c{0,3}(xc|xl|l?x{0,3})(ix|iv|v?i{0,3})$")
_SECTION = re.compile(r"^(?:phan\s+)?([IVXLC]+)\s*[.):\-]\s*(.+)$|^(?:phan\s+)([IVXLC]+)\s+(.+)$")
_NUMBER = re.compile(r"-?\d+(?:[.,]\d+)?")
_GROUP_CODE = re.compile(r"^\d+\.?$")
_FOOTER = (
    "ghi chu",
    "luu y",
    "nguoi lap",
    "thu truong",
    "chu tich",
    "pho chu tich",
    "xac nhan",
    "ky ten",
    "(ky",
    "tm.",
    "tm ",
    "kt.",
    "noi nhan",
    "(*)",
    "*",
    "nguon:",
)
_SIMPLE_TYPES = {
    AnswerType.YES_NO.value: "yes_no",
    AnswerType.PERCENTAGE.value: "rate",
    AnswerType.RATIO.value: "rate",
    AnswerType.POINTS.value: "self_assessed",
}
_HEADER_ROWS = 30


@dataclass(frozen=True)
class ImportProblem:
    row: int  # 1-based, as the spreadsheet shows it
    key: str
    params: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ReportRow:
    """One indicator as the import read it, for the officer to check beside the rule text."""

    row: int
    code: str
    text: str
    max_points: Decimal
    rule_text: str
    reading: Reading

    @property
    def confidence(self) -> Confidence:
        return self.reading.confidence


_CONFIDENCE_ORDER = {Confidence.LOW: 0, Confidence.MEDIUM: 1, Confidence.HIGH: 2}


@dataclass
class AnnexImport:
    data: dict[str, Any]
    problems: list[ImportProblem]  # errors: nothing may be written
    notes: list[ImportProblem]  # warnings: choices made on the reader's behalf
    report: list[ReportRow] = field(default_factory=list)

    def report_for_review(self) -> list[ReportRow]:
        """The report with what was not understood first, then what to check, then the rest."""
        return sorted(self.report, key=lambda r: (_CONFIDENCE_ORDER[r.confidence], r.row))


def _cell(value: Cell, *, lines: bool = False) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if lines:
        return "\n".join(" ".join(line.split()) for line in str(value).splitlines() if line.strip())
    return " ".join(str(value).split())


def _field(value: Cell) -> str | None:
    name = " ".join(re.sub(r"[^\w\s]", " ", fold(_cell(value))).split())
    if not name:
        return None
    for field_name, names in _HEADERS.items():
        if name in names or any(
            name.startswith(n + " ") or name.startswith(n + "(") for n in names if len(n) > 3
        ):
            return field_name
    return None


def _header_columns(rows: Sequence[Sequence[Cell]]) -> tuple[dict[str, int], dict[str, str]]:
    """Columns found in one header row, or two (the lower row's names under merged upper cells)."""
    found: dict[str, int] = {}
    names: dict[str, str] = {}
    width = max((len(r) for r in rows), default=0)
    for col in range(width):
        for row in reversed(rows):
            value = row[col] if col < len(row) else None
            name = _field(value)
            if name is None:
                continue
            if name != "skip" and name not in found:
                found[name] = col
                names[name] = _cell(value)
            break
    return found, names


def _find_header(rows: Sequence[Sequence[Cell]]) -> tuple[int, int, dict[str, int], dict[str, str]]:
    """(first header row, rows it spans, columns, their names as written) or (-1, 0, {}, {})."""
    required = {"code", "text", "max"}
    for i in range(min(len(rows), _HEADER_ROWS)):
        one, one_names = _header_columns(rows[i : i + 1])
        below, _ = _header_columns(rows[i + 1 : i + 2]) if i + 1 < len(rows) else ({}, {})
        if below and not {"code", "text"} <= below.keys():
            two, two_names = _header_columns(rows[i : i + 2])
            if required <= two.keys():
                return i, 2, two, two_names
        if required <= one.keys():
            return i, 1, one, one_names
    return -1, 0, {}, {}


def _decimal(text: str) -> Decimal | None:
    m = _NUMBER.search(text)
    if m is None:
        return None
    try:
        return Decimal(m.group().replace(",", "."))
    except InvalidOperation:
        return None


def _points(text: str) -> Decimal | None:
    value = _decimal(text)
    return value if value is not None and value > 0 else None


def _number(value: Decimal) -> int | str:
    return int(value) if value == value.to_integral_value() else plain(value)


def _is_heading_code(code: str) -> bool:
    c = code.strip().rstrip(".").casefold()
    return bool(c) and (bool(_ROMAN.match(c)) or (len(c) == 1 and c.isalpha()))


def infer_answer(text: str, method_text: str) -> tuple[str, str]:
    """(answer type, scoring method) read from an indicator's wording when its rule says nothing."""
    t = fold(text)
    m = fold(method_text)
    if t.startswith(("ty le", "ti le", "ty trong", "ti trong")):
        if re.search(r"/\s*1[.,]?000|tren 1[.,]?000|1[.,]?000 dan", t):
            return AnswerType.POINTS.value, "self_assessed"
        return AnswerType.PERCENTAGE.value, "rate"
    if t.startswith("co ") or (re.search(r"\bco\b", m) and re.search(r"\bkhong\b", m)):
        return AnswerType.YES_NO.value, "yes_no"
    return AnswerType.POINTS.value, "self_assessed"


def _reading(text: str, rule: str, max_points: Decimal, declared: str) -> tuple[Reading, list[RuleNote]]:
    """How the indicator is answered and scored: the declared type, else its rule, else its wording."""
    extra: list[RuleNote] = []
    if declared in _SIMPLE_TYPES:
        scoring = {"method": _SIMPLE_TYPES[declared]}
        return Reading({"type": declared}, scoring, Confidence.HIGH), extra
    if declared:
        extra.append(RuleNote(N_("import.type_not_simple"), {"type": declared}))
    reading = read_rule(rule, max_points)
    if reading.understood or reading.errors:
        return reading, extra
    answer_type, method = infer_answer(text, rule)
    if method != "self_assessed":
        wording = RuleNote(N_("rule.from_wording"))
        return Reading({"type": answer_type}, {"method": method}, Confidence.MEDIUM, (wording,)), extra
    return reading, extra


@dataclass
class _Group:
    id: str | None
    name: str
    max_points: Decimal | None
    row: int
    code: str | None = None
    section: bool = False
    indicators: list[dict[str, Any]] = field(default_factory=list)
    rows: list[int] = field(default_factory=list)


def _same_cells(row: Sequence[Cell]) -> str | None:
    """The text of a row that is one cell merged across the table (Word repeats it in every column)."""
    texts = {_cell(v) for v in row if _cell(v)}
    return texts.pop() if len(texts) == 1 and sum(1 for v in row if _cell(v)) > 1 else None


def _is_footer(row: Sequence[Cell]) -> bool:
    first = next((fold(_cell(v)) for v in row if _cell(v)), "")
    return first.startswith(_FOOTER)


def _sums_what_follows(max_text: str, following: Iterable[tuple[str, str]]) -> bool:
    """Whether a row's points are the sum of the coded rows right after it (until the next row without a
    code): a group row written without a code, "Nhận thức số | 100", above its indicators."""
    points = _points(max_text)
    summed: list[Decimal] = []
    for code, their_max in following:
        value = _points(their_max)
        if not code or value is None:
            break
        summed.append(value)
    return points is not None and bool(summed) and total(summed) == points


def _is_heading_row(
    code: str,
    text: str,
    max_text: str,
    rule: str,
    next_code: str,
    previous_code: str,
    *,
    is_parent: bool,
    has_group_column: bool,
    following: Iterable[tuple[str, str]],
) -> bool:
    """A row naming a section or group (its indicators follow), not an indicator."""
    return bool(
        _is_heading_code(code)
        or (not code and text and not max_text and not rule)
        or (
            not code
            and text
            and not rule
            and not has_group_column
            and next_code.rpartition(".")[0] != previous_code.rpartition(".")[0]  # a new group starts
            and _sums_what_follows(max_text, following)
        )
        or (is_parent and "." not in code and not has_group_column)
        or (_GROUP_CODE.match(code) and not rule and next_code.startswith(code + "."))
    )


def _max_points(line: int, code: str, text: str, max_text: str) -> Decimal | ImportProblem:
    """An indicator row's max points, or the problem that keeps it from being one."""
    shown = code or "-"
    if not text:
        return ImportProblem(line, N_("import.no_text"), {"code": shown})
    if not max_text:
        return ImportProblem(line, N_("import.no_max"), {"code": shown, "text": text[:60]})
    max_points = _points(max_text)
    if max_points is None:
        return ImportProblem(line, N_("import.bad_max"), {"code": shown, "value": max_text})
    return max_points


def _next_code(code: str) -> str | None:
    """The code after `code` at its level ("1.9" → "1.10"), or None when its last part is no number."""
    head, _, last = code.rpartition(".")
    return f"{head}.{int(last) + 1}" if head and last.isascii() and last.isdigit() else None


def _same_number(a: str, b: str) -> bool:
    try:
        return Decimal(a) == Decimal(b)
    except InvalidOperation:
        return False


def _codes_read_back(
    codes: list[str], body: Sequence[tuple[int, Sequence[Cell]]], notes: list[ImportProblem]
) -> list[str]:
    """The codes, with a spreadsheet's numbers read back as the codes they were typed as: "1.10" typed
    into a number cell is kept as 1.1, which only its place after 1.9 tells apart from the real 1.1."""
    out: list[str] = []
    seen: set[str] = set()
    previous = ""
    for (line, _), code in zip(body, codes, strict=True):
        if code and code in seen:
            after = _next_code(previous)
            if after is not None and after not in seen and _same_number(after, code):
                notes.append(
                    ImportProblem(line, N_("import.code_from_number"), {"code": after, "found": code})
                )
                code = after
        if code:
            seen.add(code)
            previous = code
        out.append(code)
    return out


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
    report: list[ReportRow] = []
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
    header_row, span, cols, header_names = _find_header(rows)
    if header_row < 0:
        problems.append(ImportProblem(1, N_("import.no_header")))
        return AnnexImport(data, problems, notes, report)

    def get(row: Sequence[Cell], name: str, *, lines: bool = False) -> str:
        col = cols.get(name)
        return _cell(row[col], lines=lines) if col is not None and col < len(row) else ""

    if "evidence" not in cols:
        notes.append(ImportProblem(header_row + 1, N_("import.no_evidence_column")))
    if "method" not in cols:
        notes.append(ImportProblem(header_row + 1, N_("import.no_method_column")))
    groups: list[_Group] = []
    by_name: dict[str, _Group] = {}
    current: _Group | None = None
    body = [(i + 1, row) for i, row in enumerate(rows) if i >= header_row + span]
    codes = _codes_read_back([get(row, "code").rstrip(".").strip() for _, row in body], body, notes)
    has_data = [
        bool(_points(get(row, "max")) and (get(row, "text") or codes[n])) for n, (_, row) in enumerate(body)
    ]
    data_after = [any(has_data[n + 1 :]) for n in range(len(body))]
    seen_codes: dict[str, int] = {}
    unnumbered: list[tuple[_Group, dict[str, Any], int]] = []
    indicators_seen = False

    def heading(name: str, max_text: str, line: int, code: str | None, *, section: bool = False) -> _Group:
        found = by_name.get(fold(name))
        if found is None:
            found = _Group(None, name, _points(max_text) if max_text else None, line, code, section)
            groups.append(found)
            by_name[fold(name)] = found
        return found

    for pos, (line, row) in enumerate(body):
        code, text, max_text = codes[pos], get(row, "text"), get(row, "max")
        group_name = get(row, "group")
        rule = readable(get(row, "method", lines=True))
        if not (code or text or max_text or rule):
            if indicators_seen and not data_after[pos]:
                break  # the table has ended: what follows is notes and signatures
            continue
        if indicators_seen and _is_footer(row) and not _points(max_text):
            break
        merged = _same_cells(row)
        if merged is not None and not _points(max_text):
            code, text = merged, ""
        section = _SECTION.match(normalize(code)) if code else None
        if section is not None:
            roman, name = (section.group(1), section.group(2)) if section.group(1) else section.groups()[2:]
            current = heading(name.strip(), max_text, line, roman, section=True)
            continue
        next_code = next((c for c in codes[pos + 1 :] if c), "")
        is_parent = bool(code) and next_code.startswith(code + ".")
        following = ((c, get(r, "max")) for c, (_, r) in zip(codes[pos + 1 :], body[pos + 1 :], strict=True))
        if _is_heading_row(
            code,
            text,
            max_text,
            rule,
            next_code,
            next((c for c in reversed(codes[:pos]) if c), ""),
            is_parent=is_parent,
            has_group_column="group" in cols,
            following=following,
        ):
            name = text or group_name
            if not name:
                problems.append(ImportProblem(line, N_("import.heading_without_name")))
                continue
            current = heading(name, max_text, line, code or None, section=_is_heading_code(code))
            continue
        if is_parent:
            notes.append(ImportProblem(line, N_("import.parent_row"), {"code": code}))
            continue
        max_points = _max_points(line, code, text, max_text)
        if isinstance(max_points, ImportProblem):
            problems.append(max_points)
            continue
        if group_name:
            target = heading(group_name, "", line, None)
        elif current is not None:
            target = current
        else:
            problems.append(ImportProblem(line, N_("import.no_group"), {"code": code or "-"}))
            continue
        if code and code in seen_codes:
            problems.append(
                ImportProblem(
                    line, N_("import.duplicate_code"), {"code": code, "first": str(seen_codes[code])}
                )
            )
            continue
        if code:
            seen_codes[code] = line
        indicators_seen = True
        reading, extra = _reading(text, rule, max_points, get(row, "type"))
        shown = code or "-"
        for note in extra:
            notes.append(ImportProblem(line, note.key, {"code": shown, **note.params}))
        for error in reading.errors:
            problems.append(ImportProblem(line, error.key, {"code": shown, **error.params}))
        indicator: dict[str, Any] = {
            "code": code,
            "text": text,
            "max_points": _number(max_points),
            "answer": reading.answer,
            "scoring": reading.scoring,
        }
        guidance = [
            f"{header_names[name]}: {value}"
            for name in ("source", "verifier")
            if (value := get(row, name, lines=True))
        ]
        if guidance:
            indicator["guidance"] = "\n".join(guidance)
        if rule:
            indicator["method_text"] = rule
        evidence = get(row, "evidence", lines=True)
        if evidence:
            indicator["evidence"] = {"required": True, "description": evidence}
        target.indicators.append(indicator)
        target.rows.append(line)
        report.append(ReportRow(line, code, text, max_points, rule, reading))
        if not code:
            unnumbered.append((target, indicator, line))

    _number_by_position(groups, unnumbered, {c: 0 for c in codes if c} | seen_codes, notes, report)
    _finish_groups(groups, data, problems, notes, header_row)
    if not data["groups"] and not problems:
        problems.append(ImportProblem(header_row + 1, N_("import.no_indicators")))
    return AnnexImport(data, problems, notes, report)


def _number_by_position(
    groups: list[_Group],
    unnumbered: list[tuple[_Group, dict[str, Any], int]],
    seen: dict[str, int],
    notes: list[ImportProblem],
    report: list[ReportRow],
) -> None:
    """Codes for rows that had none: the group's number and the row's place in it ("2.3")."""
    for group, indicator, line in unnumbered:
        own = (group.code or "").rstrip(".")
        prefix = own if own.isdigit() else str(groups.index(group) + 1)
        place = group.indicators.index(indicator) + 1
        code = f"{prefix}.{place}"
        while code in seen:
            place += 1
            code = f"{prefix}.{place}"
        seen[code] = line
        indicator["code"] = code
        notes.append(ImportProblem(line, N_("import.code_numbered"), {"code": code}))
        for n, r in enumerate(report):
            if r.row == line:
                report[n] = ReportRow(r.row, code, r.text, r.max_points, r.rule_text, r.reading)


def _finish_groups(
    groups: list[_Group],
    data: dict[str, Any],
    problems: list[ImportProblem],
    notes: list[ImportProblem],
    header_row: int,
) -> None:
    for n, g in enumerate(groups, start=1):
        firsts = {str(ind["code"]).split(".")[0] for ind in g.indicators}
        g.id = firsts.pop() if len(firsts) == 1 else f"G{n}"
    used = [g.id for g in groups]
    for n, g in enumerate(groups, start=1):
        if used.count(g.id) > 1:
            g.id = f"G{n}"
    for g in groups:
        if not g.indicators:
            if not g.section:
                notes.append(ImportProblem(g.row, N_("import.empty_group"), {"group": g.name}))
            continue
        group: dict[str, Any] = {"id": g.id, "name": g.name}
        if g.max_points is not None:
            summed = total(Decimal(str(ind["max_points"])) for ind in g.indicators)
            if summed != g.max_points:
                problems.append(
                    ImportProblem(
                        g.row,
                        N_("import.group_sum"),
                        {"group": g.name, "declared": plain(g.max_points), "sum": plain(summed)},
                    )
                )
            group["max_points"] = _number(g.max_points)
        group["indicators"] = g.indicators
        data["groups"].append(group)


def find_header(rows: Sequence[Sequence[Cell]]) -> int:
    """The 0-based row where the annex header starts, or -1 when there is none."""
    return _find_header(rows)[0]
