"""A scoring `Report` as the readable Vietnamese summary table, or as the JSON object of `dtibot score`."""

from __future__ import annotations

from typing import Any

from bot.i18n import Translator
from bot.render.labels import STATUS
from scoring.engine import IndicatorResult, Report, Status
from scoring.model import Framework
from scoring.numbers import round_index, round_score


def _json_number(value: Any) -> int | float:
    rounded = float(value)
    return int(rounded) if rounded.is_integer() else rounded


def report_json(framework: Framework, report: Report) -> dict[str, Any]:
    """The `--json` shape: total, max, index, percent, band, groups, indicators and the gaps."""
    band = report.band
    out: dict[str, Any] = {
        "framework": {"id": framework.id, "version": framework.version, "title": framework.title},
        "total": _json_number(round_score(report.total)),
        "max": _json_number(round_score(report.max)),
        "index": _json_number(round_index(report.index)),
        "percent": _json_number(round_score(report.percent)),
        "band": band.label if band else None,
        "band_id": band.id if band else None,
        "level": {"id": report.level.id, "name": report.level.name} if report.level else None,
        "groups": [
            {
                "id": g.id,
                "name": g.name,
                "score": _json_number(round_score(g.score)),
                "max": _json_number(g.max),
            }
            for g in report.groups
        ],
        "indicators": [
            {
                "code": r.code,
                "group": r.group_id,
                "score": _json_number(round_score(r.score)),
                "max": _json_number(r.max),
                "status": r.status.value,
                "reason": r.reason,
            }
            for r in report.indicators
        ],
        "top_gains": [
            {"code": g.code, "points": _json_number(round_score(g.points))} for g in report.top_gains(3)
        ],
        "next_band": None,
        "next_level": None,
    }
    if report.next_band is not None:
        nb = report.next_band
        out["next_band"] = {
            "band": nb.band.label,
            "points_needed": _json_number(round_score(nb.points_needed)),
            "indicators": [
                {"code": g.code, "points": _json_number(round_score(g.points))} for g in nb.indicators
            ],
        }
    if report.next_level is not None:
        nl = report.next_level
        out["next_level"] = {
            "level": {"id": nl.level.id, "name": nl.level.name},
            "unmet": [
                {"code": u.code, "threshold": _json_number(u.threshold), "status": u.status.value}
                for u in nl.unmet
            ],
        }
    return out


def _status(t: Translator, r: IndicatorResult) -> str:
    text = t(STATUS[r.status])
    if r.reason:
        text += " — " + t(r.reason, **r.reason_params)
    return text


def _table(rows: list[list[str]], right: set[int]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [c.rjust(widths[i]) if i in right else c.ljust(widths[i]) for i, c in enumerate(row)]
        lines.append("  ".join(cells).rstrip())
    return lines


def report_text(t: Translator, framework: Framework, report: Report, *, details: bool = True) -> str:
    n = t.number
    lines = [framework.title, t("report.framework_line", key=framework.key, decision=_decision(t, framework))]
    summary = t(
        "report.total_line",
        total=n(report.total),
        max=n(report.max),
        index=t.fixed(round_index(report.index), 4),
        percent=n(report.percent),
    )
    if report.band is not None:
        summary += " · " + t("report.band", band=report.band.label)
    lines += ["", summary]
    if framework.levels:
        lines.append(t("report.level", level=report.level.name if report.level else t("report.no_level")))
    lines.append("")
    group_rows = [[t("report.col.group"), t("report.col.score"), t("report.col.max")]]
    group_rows += [[f"{g.id}. {g.name}", n(g.score), n(g.max)] for g in report.groups]
    lines += _table(group_rows, {1, 2})
    if details:
        lines.append("")
        rows = [[t("report.col.code"), t("report.col.score"), t("report.col.max"), t("report.col.status")]]
        rows += [[r.code, n(r.score), n(r.max), _status(t, r)] for r in report.indicators]
        lines += _table(rows, {1, 2})
    lines += ["", _progress(t, report)]
    if report.next_band is not None:
        nb = report.next_band
        lines.append(
            t(
                "report.next_band",
                band=nb.band.label,
                points=n(nb.points_needed),
                indicators=", ".join(f"{g.code} (+{n(g.points)})" for g in nb.indicators),
            )
        )
    if report.next_level is not None:
        nl = report.next_level
        lines.append(
            t(
                "report.next_level",
                level=nl.level.name,
                indicators=", ".join(f"{u.code} (≥ {n(u.threshold)})" for u in nl.unmet),
            )
        )
    gains = report.top_gains(3)
    if gains:
        lines.append(t("report.top_gains", indicators=", ".join(f"{g.code} (+{n(g.points)})" for g in gains)))
    return "\n".join(lines)


def _decision(t: Translator, framework: Framework) -> str:
    d = framework.decision
    if d.number and d.date:
        return t("report.decision", number=d.number, date=t.date(d.date))
    if d.number:
        return d.number
    return t("report.decision_unknown")


def _progress(t: Translator, report: Report) -> str:
    counts = {s: report.count(s) for s in Status}
    return t(
        "report.progress",
        answered=counts[Status.ANSWERED],
        total=len(report.indicators),
        missing=counts[Status.MISSING],
        evidence=counts[Status.EVIDENCE_MISSING] + counts[Status.EVIDENCE_LATE],
        na=counts[Status.NOT_APPLICABLE],
    )


__all__ = ["report_json", "report_text"]
