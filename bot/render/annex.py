"""The annex import report: every indicator's rule text beside how it was read, for a provincial
officer to check a whole annex in minutes; printed by `dtibot framework import` and written with
`--report report.xlsx` (the same rows, text cells never formulas)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

from bot.annex_files import ImportResult
from bot.i18n import Translator
from bot.render.labels import ANSWER_TYPE
from bot.render.problems import gate_issues, import_problem
from bot.sheets import write_rows
from scoring.annex import ReportRow
from scoring.messages import N_
from scoring.model import AnswerType
from scoring.rules_text import Confidence, Reading

CONFIDENCE: dict[Confidence, str] = {
    Confidence.HIGH: N_("annex.confidence.high"),
    Confidence.MEDIUM: N_("annex.confidence.medium"),
    Confidence.LOW: N_("annex.confidence.low"),
}


def _points(t: Translator, value: object) -> str:
    return t.number(Decimal(str(value)))


def reading_text(t: Translator, reading: Reading, max_points: Decimal) -> str:
    return method_text(t, reading.answer, reading.scoring, max_points)


def method_text(t: Translator, answer: dict[str, Any], scoring: dict[str, Any], max_points: Decimal) -> str:
    """How an indicator is asked and scored, in words (its framework-file `answer` and `scoring`): the
    options, tiers or parts with their points, a ratio's a and b, a rate's target."""
    method = str(scoring["method"])
    options: list[dict[str, Any]] = list(answer.get("options", []))
    if method == "choice":
        items = "; ".join(f"{o['label']} → {_points(t, o['points'])}" for o in options)
        return t("annex.read.choice", options=items)
    if method == "parts":
        items = "; ".join(f"{o['label']} → {_points(t, o['points'])}" for o in options)
        return t("annex.read.parts", parts=items)
    if method == "yes_no":
        return t("annex.read.yes_no", max=t.number(max_points))
    if method == "tiers":
        unit = answer.get("unit") or ("%" if answer["type"] in ("percentage", "ratio") else "")
        tiers = "; ".join(
            f"{'>' if tier.get('above') else '≥'} {_points(t, tier['min'])} {unit}".rstrip()
            + f" → {_points(t, tier['points'])}"
            for tier in scoring["tiers"]
        )
        text = t("annex.read.tiers", tiers=tiers)
    elif method == "rate" and scoring.get("full_from") is not None:
        text = t(
            "annex.read.rate_full_from",
            target=_points(t, scoring.get("target", 100)),
            full=_points(t, scoring["full_from"]),
        )
    elif method == "rate":
        text = t("annex.read.rate", target=_points(t, scoring.get("target", 100)))
    else:
        return t("annex.read.self_assessed", max=t.number(max_points))
    if answer["type"] == "ratio":
        a, b = answer.get("numerator_label") or "a", answer.get("denominator_label") or "b"
        text = t("annex.read.ratio", a=a, b=b) + " " + text
    return text


def report_header(t: Translator) -> list[str]:
    return [
        t("annex.col.row"),
        t("annex.col.code"),
        t("annex.col.text"),
        t("annex.col.max"),
        t("annex.col.rule"),
        t("annex.col.reading"),
        t("annex.col.answer"),
        t("annex.col.confidence"),
        t("annex.col.notes"),
    ]


def report_row(t: Translator, row: ReportRow) -> list[str]:
    reading = row.reading
    notes = [t(n.key, **n.params) for n in (*reading.errors, *reading.notes)]
    return [
        str(row.row),
        row.code,
        row.text,
        t.number(row.max_points),
        row.rule_text,
        reading_text(t, reading, row.max_points),
        t(ANSWER_TYPE[AnswerType(reading.answer_type)]),
        t(CONFIDENCE[reading.confidence]),
        "\n".join(notes),
    ]


def report_sheet(t: Translator, rows: tuple[ReportRow, ...] | list[ReportRow]) -> list[list[str]]:
    return [report_header(t), *(report_row(t, r) for r in rows)]


def write_report(t: Translator, rows: tuple[ReportRow, ...] | list[ReportRow], out: Path) -> None:
    """The report as a workbook (.xlsx, or .csv/.tsv): `framework import --report` and the web's
    download (raises OSError)."""
    write_rows(
        out,
        report_sheet(t, rows),
        title=t("annex.sheet_title"),
        widths=(7, 9, 40, 8, 60, 60, 14, 16, 50),
        wrapped=(3, 5, 6, 9),
    )


def report_lines(t: Translator, rows: tuple[ReportRow, ...] | list[ReportRow]) -> list[str]:
    """The report as text: one block per indicator, what was not understood first."""
    lines: list[str] = []
    counts = {c: sum(1 for r in rows if r.confidence is c) for c in Confidence}
    lines.append(
        t(
            "annex.summary",
            indicators=len(rows),
            high=counts[Confidence.HIGH],
            medium=counts[Confidence.MEDIUM],
            low=counts[Confidence.LOW],
        )
    )
    for r in rows:
        cells = report_row(t, r)
        lines.append("")
        lines.append(
            t(
                "annex.line.head",
                row=cells[0],
                code=cells[1],
                max=cells[3],
                confidence=cells[7],
                answer=cells[6],
                text=cells[2],
            )
        )
        if r.rule_text:
            lines.append(t("annex.line.rule", text=r.rule_text.replace("\n", " ⏎ ")))
        lines.append(t("annex.line.reading", text=cells[5]))
        for note in cells[8].split("\n") if cells[8] else []:
            lines.append(t("annex.line.note", text=note))
    return lines


def problem_lines(t: Translator, result: ImportResult) -> tuple[list[str], list[str]]:
    """(errors, warnings) of an `ImportResult`, each naming the file and the row or indicator."""
    errors = [t("gate.error_prefix") + " " + import_problem(t, result.source, p) for p in result.errors]
    warnings = [t("gate.warning_prefix") + " " + import_problem(t, result.source, p) for p in result.warnings]
    gate = gate_issues(t, result.gate_errors, result.gate_warnings)
    errors += gate[: len(result.gate_errors)]
    warnings += gate[len(result.gate_errors) :]
    return errors, warnings
