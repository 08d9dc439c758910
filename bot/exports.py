"""Exports for provincial staff: the results workbook, a unit's evidence as a zip, the audit trail.

The workbook has a ranking sheet for the level (STT, unit, total, index, band, rank, points per
group), a detail sheet with every indicator's self-assessed and appraised points and the difference
(a unit whose appraisal was not closed is appraised 0 there, as in the ranking, and says so), and
an evidence index (file name, document date, sha256, who sent it, time). Evidence is listed, and
filed in the zip, in the framework's order (4.2 before 4.10). Headers are in the reader's language
(Vietnamese by default), numbers are numbers, header rows are frozen, widths fit the content.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import zipfile
from collections.abc import Callable, Iterable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter
from sqlmodel import select

from bot import catalog
from bot.i18n import Translator
from bot.render.labels import LEVEL, ROLE, STATUS
from bot.results import NothingComputed
from bot.sheets import text_cell, text_cells
from scoring.answers import VIETNAM_TZ
from scoring.engine import Status
from scoring.messages import N_
from scoring.model import Framework
from storage.admin import masked_code
from storage.db import Database
from storage.evidence import EvidenceStore, sanitize_name
from storage.models import AuditLog, Invite, Period, Unit
from storage.results import (
    EvidenceIndexRow,
    Person,
    audit_rows,
    computed,
    decision_comments,
    evidence_index,
    people,
)

HEADER_FILL = PatternFill("solid", fgColor="DDE7F2")


def _number(text: str | None) -> int | float | None:
    if text is None:
        return None
    value = Decimal(text)
    return int(value) if value == value.to_integral_value() else float(value)


def _local(value: dt.datetime) -> str:
    return value.astimezone(VIETNAM_TZ).strftime("%d/%m/%Y %H:%M")


def _sheet(wb: Workbook, title: str, header: list[str], rows: Iterable[list[Any]], widths: list[int]) -> None:
    """One sheet, streamed (a write-only workbook keeps no cells in memory: 3,300 units' detail is
    200,000 rows)."""
    ws = wb.create_sheet(title[:31])
    ws.freeze_panes = "A2"
    for i, width in enumerate(widths, start=1):
        ws.column_dimensions[get_column_letter(i)].width = width
    cells = []
    for value in header:
        cell = WriteOnlyCell(ws, value=text_cell(value))
        cell.font = Font(bold=True)
        cell.fill = HEADER_FILL
        cell.alignment = Alignment(wrap_text=True, vertical="center")
        cells.append(cell)
    ws.append(cells)
    for row in rows:
        ws.append(text_cells(row))


def results_workbook(db: Database, period: Period, out: Path, t: Translator) -> int:
    """Write the workbook of the computed results (`NothingComputed` if there are none yet);
    returns the number of units."""
    assert period.id is not None
    framework = catalog.framework(f"{period.framework_id}@{period.framework_version}")
    with db.session() as s:
        rows = computed(s, period.id)
        if not rows:  # an empty workbook would look like a period without units
            raise NothingComputed(period.id)
        comments = decision_comments(s, period.id)
        evidence = evidence_index(s, period.id)
        codes = {u.code: u.id for u in s.exec(select(Unit))}
    wb = Workbook(write_only=True)
    districts = any(r["district_code"] for r in rows)
    header = [t("export.col.no"), t("export.col.unit_code"), t("export.col.unit")]
    if districts:
        header.append(t("export.col.district"))
    header += [t("export.col.total"), t("export.col.index"), t("export.col.band"), t("export.col.rank")]
    if districts:
        header.append(t("export.col.district_rank"))
    header += [f"{g.id}. {g.name} ({g.max_points.normalize():f})" for g in framework.groups]
    table = []
    for n, r in enumerate(rows, start=1):
        line: list[Any] = [
            n,
            r["code"],
            r["name"] + ("" if r["appraised"] else " " + t("export.not_appraised")),
        ]
        if districts:
            line.append(r["district_name"] or "")
        line += [_number(r["total"]), _number(r["index"]), r["band"] or "", r["rank"]]
        if districts:
            line.append(r["district_rank"])
        line += [_number(g["score"]) for g in r["groups"]]
        table.append(line)
    widths = (
        [6, 12, 34]
        + ([24] if districts else [])
        + [12, 10, 14, 8]
        + ([12] if districts else [])
        + [16] * len(framework.groups)
    )
    _sheet(wb, t("export.sheet.ranking", level=t(LEVEL[framework.level])), header, table, widths)

    header = [
        t("export.col.unit_code"),
        t("export.col.unit"),
        t("export.col.indicator_code"),
        t("export.col.indicator"),
        t("export.col.max"),
        t("export.col.self"),
        t("export.col.appraised"),
        t("export.col.difference"),
        t("export.col.status"),
        t("export.col.comment"),
    ]
    texts = {i.code: i.text for i in framework.indicators}
    statuses = {s: t(STATUS[s]) for s in Status}
    not_closed = t("export.not_closed")

    def detail() -> Iterator[list[Any]]:
        for r in sorted(rows, key=lambda r: r["code"]):
            unit_id = codes.get(r["code"]) or -1
            for ind in r["indicators"]:
                self_points, appraised = _number(ind["self"]), _number(ind["appraised"])
                difference = _number(str(Decimal(ind["appraised"]) - Decimal(ind["self"])))
                yield [
                    r["code"],
                    r["name"],
                    ind["code"],
                    texts.get(ind["code"], ""),
                    _number(ind["max"]),
                    self_points,
                    appraised,
                    difference,
                    statuses[Status(ind["status"])] if r["appraised"] else not_closed,
                    comments.get((unit_id, ind["code"]), ""),
                ]

    _sheet(wb, t("export.sheet.detail"), header, detail(), [12, 30, 10, 60, 10, 10, 10, 10, 18, 40])

    header = [t("export.col.unit_code"), t("export.col.unit"), *_evidence_header(t)]
    evidence_rows = (
        [e.unit_code, e.unit_name, *_evidence_cells(t, e)] for e in _in_order(framework, evidence)
    )
    widths = [12, 30, 10, 10, 40, 12, 66, 12, 30, 22, 18, 10]
    _sheet(wb, t("export.sheet.evidence"), header, evidence_rows, widths)
    wb.save(out)
    return len(rows)


def evidence_zip(
    db: Database, store: EvidenceStore, period: Period, unit_code: str, out: Path, t: Translator
) -> int:
    """The unit's evidence filed by indicator, with a manifest; returns the number of files."""
    assert period.id is not None
    framework = catalog.framework(f"{period.framework_id}@{period.framework_version}")
    with db.session() as s:
        rows = _in_order(framework, evidence_index(s, period.id, unit_code))
    files = 0
    manifest = io.StringIO()
    writer = csv.writer(manifest)
    writer.writerow(text_cells([*_evidence_header(t), t("export.col.path")]))
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as z:
        seen: set[str] = set()
        for n, e in enumerate(rows, start=1):
            path = ""
            if e.sha256 and store.exists(e.sha256):
                path = f"{e.indicator_code}/{n:03d}-{sanitize_name(e.name)}"
                if path not in seen:
                    z.write(store.path_for(e.sha256), path)
                    seen.add(path)
                    files += 1
            writer.writerow(text_cells([*_evidence_cells(t, e), path]))
        z.writestr("manifest.csv", "\ufeff" + manifest.getvalue())
    return files


def _evidence_header(t: Translator) -> list[str]:
    """The columns describing one evidence item, in the workbook's evidence sheet and the zip's manifest."""
    keys = (
        N_("export.col.indicator_code"),
        N_("export.col.kind"),
        N_("export.col.file"),
        N_("export.col.document_date"),
    )
    tail = (
        N_("export.col.size"),
        N_("export.col.uploader"),
        N_("export.col.account"),
        N_("export.col.time"),
        N_("export.col.late"),
    )
    return [*(t(k) for k in keys), "SHA-256", *(t(k) for k in tail)]


def _evidence_cells(t: Translator, e: EvidenceIndexRow) -> list[object]:
    """One evidence item under `_evidence_header`."""
    return [
        e.indicator_code,
        e.kind,
        e.name,
        t.date(e.citation_date) if e.citation_date else "",
        e.sha256 or "",
        e.size if e.size is not None else "",
        _person(t, e.uploader),
        e.uploader.account if e.uploader else "",
        _local(e.at),
        t("export.yes") if e.late else "",
    ]


AUDIT_HEADER = (
    N_("export.col.time"),
    N_("export.col.actor"),
    N_("export.col.action"),
    N_("export.col.entity"),
    N_("export.col.unit_code"),
    N_("export.col.old"),
    N_("export.col.new"),
)


def _person(t: Translator, who: Person | None) -> str:
    """A member as an export names them: the name if known, else role and unit."""
    if who is None:
        return "-"
    return who.name or t("export.person", role=t(ROLE.get(who.role, who.role)), unit=who.unit_name)


def _in_order(framework: Framework, rows: Iterable[EvidenceIndexRow]) -> list[EvidenceIndexRow]:
    """Evidence by unit, then indicator in the framework's order (4.2 before 4.10), then arrival."""
    position = {ind.code: n for n, ind in enumerate(framework.indicators)}
    indexed = list(enumerate(rows))
    indexed.sort(key=lambda p: (p[1].unit_code, position.get(p[1].indicator_code, len(position)), p[0]))
    return [row for _, row in indexed]


def _actor(t: Translator, row: AuditLog, members: dict[int, Person]) -> str:
    """Who made an audited change: the member in a chat, or the operator who ran `dtibot`."""
    if row.actor_member_id:
        who = members.get(row.actor_member_id)
        return f"{_person(t, who)} ({who.account})" if who is not None else "-"
    if row.operator:
        return t("export.operator", name=row.operator)
    return row.channel or "cli"  # recorded before operators were


_TOKEN = re.compile(r"[A-Za-z0-9]+")


def _without_codes(invites: dict[str, int]) -> Callable[[str], str]:
    """A text with every invite code in it replaced by the invite's id and masked code: records made
    before codes were kept out of the audit trail still named them, and a code there could join."""

    def hide(match: re.Match[str]) -> str:
        code = match.group(0).upper()
        return f"#{invites[code]} {masked_code(code)}" if code in invites else match.group(0)

    return lambda text: _TOKEN.sub(hide, text)


def audit_csv(db: Database, period: Period, out: Path, t: Translator) -> int:
    assert period.id is not None
    with db.session() as s:
        rows = audit_rows(s, period.id)
        invites = {i.code.upper(): i.id or 0 for i in s.exec(select(Invite))}
        units = {u.id: u.code for u in s.exec(select(Unit))}
        members = people(s)
    with out.open("w", encoding="utf-8-sig", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(text_cells(t(h) for h in AUDIT_HEADER))
        hide = _without_codes(invites)
        for row in rows:
            entity_id = (
                str(invites[row.entity_id]) if row.entity == "invite" and row.entity_id in invites else None
            )
            cells = [
                _local(row.at),
                _actor(t, row, members),
                row.action,
                f"{row.entity}:{entity_id or row.entity_id}",
                units.get(row.unit_id, "") if row.unit_id else "",
                row.old_json or "",
                row.new_json or "",
            ]
            writer.writerow(text_cells(hide(c) for c in cells))
    return len(rows)
