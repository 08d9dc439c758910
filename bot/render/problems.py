"""Problems found in a framework file, an answers file or an annex sheet, as messages that say
where the problem is and how to fix it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from bot.i18n import Translator
from scoring.annex import ImportProblem
from scoring.answers import AnswerProblem
from scoring.gate import GateIssue
from scoring.messages import N_

_KIND: dict[str, str] = {
    "mapping": N_("kind.mapping"),
    "list": N_("kind.list"),
    "text": N_("kind.text"),
    "number": N_("kind.number"),
    "true/false": N_("kind.flag"),
    "empty": N_("kind.empty"),
}


def _params(t: Translator, params: Mapping[str, str]) -> dict[str, str]:
    """Type words ("mapping", "list", …) in `expected`/`found` said in the reader's language."""
    return {k: (t(_KIND[v]) if k in ("expected", "found") and v in _KIND else v) for k, v in params.items()}


def gate_issue(t: Translator, issue: GateIssue) -> str:
    where = (
        t("where.indicator", source=issue.source, code=issue.code, field=issue.field or "-")
        if issue.code
        else (
            t("where.field", source=issue.source, field=issue.field)
            if issue.field
            else t("where.file", source=issue.source)
        )
    )
    return f"{where}: {t(issue.key, code=issue.code or '', **_params(t, issue.params))}"


def gate_issues(t: Translator, errors: Iterable[GateIssue], warnings: Iterable[GateIssue]) -> list[str]:
    lines = [t("gate.error_prefix") + " " + gate_issue(t, e) for e in errors]
    lines += [t("gate.warning_prefix") + " " + gate_issue(t, w) for w in warnings]
    return lines


def answer_problem(t: Translator, problem: AnswerProblem) -> str:
    text = t(problem.key, code=problem.code or "", **problem.params)
    return t("where.answer", code=problem.code) + ": " + text if problem.code else text


def import_problem(t: Translator, source: str, problem: ImportProblem) -> str:
    return t("where.row", source=source, row=problem.row) + ": " + t(problem.key, **problem.params)
