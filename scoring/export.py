"""A `Framework` written back out: as the canonical YAML mapping, or as an annex table.

`load_framework(dump_framework(f))` gives back `f` exactly; `framework_rows(f)` is the sheet layout
provinces publish (Mã, Chỉ tiêu, Nhóm, Điểm tối đa, …) that `scoring.annex` reads back in.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import yaml

from scoring.model import (
    AnswerType,
    Framework,
    Indicator,
    RateMethod,
    ScoringMethod,
    TiersMethod,
)
from scoring.numbers import HUNDRED, plain


def _num(value: Decimal) -> int | float | str:
    """A YAML scalar that reads back as exactly `value`."""
    if value == value.to_integral_value():
        return int(value)
    as_float = float(value)
    if Decimal(repr(as_float)) == value:
        return as_float
    return plain(value)


def _method_name(method: ScoringMethod) -> str:
    return {
        "YesNoMethod": "yes_no",
        "RateMethod": "rate",
        "TiersMethod": "tiers",
        "ChoiceMethod": "choice",
        "PartsMethod": "parts",
        "SelfAssessedMethod": "self_assessed",
    }[type(method).__name__]


def indicator_data(ind: Indicator) -> dict[str, Any]:
    """One indicator as its framework file writes it."""
    answer: dict[str, Any] = {"type": ind.answer.type.value}
    for key in ("unit", "numerator_label", "denominator_label"):
        value = getattr(ind.answer, key)
        if value is not None:
            answer[key] = value
    if ind.answer.options:
        answer["options"] = [
            {"key": o.key, "label": o.label, "points": _num(o.points)} for o in ind.answer.options
        ]
    scoring: dict[str, Any] = {"method": _method_name(ind.method)}
    if isinstance(ind.method, RateMethod) and (
        ind.method.target != HUNDRED or ind.answer.type not in (AnswerType.PERCENTAGE, AnswerType.RATIO)
    ):
        scoring["target"] = _num(ind.method.target)
    if isinstance(ind.method, RateMethod) and ind.method.full_from is not None:
        scoring["full_from"] = _num(ind.method.full_from)
    if isinstance(ind.method, TiersMethod):
        scoring["tiers"] = [
            {"min": _num(t.min), "points": _num(t.points), **({"above": True} if t.above else {})}
            for t in ind.method.tiers
        ]
    out: dict[str, Any] = {"code": ind.code, "text": ind.text, "max_points": _num(ind.max_points)}
    if ind.guidance is not None:
        out["guidance"] = ind.guidance
    out["answer"] = answer
    out["scoring"] = scoring
    if ind.method_text is not None:
        out["method_text"] = ind.method_text
    ev = ind.evidence
    if ev.required or ev.kinds or ev.description:
        evidence: dict[str, Any] = {"required": ev.required}
        if ev.kinds:
            evidence["kinds"] = [k.value for k in ev.kinds]
        if ev.description is not None:
            evidence["description"] = ev.description
        out["evidence"] = evidence
    if ind.allows_not_applicable:
        out["not_applicable"] = True
    if ind.gates:
        out["gates"] = {
            level: (True if ind.answer.type is AnswerType.YES_NO else _num(t))
            for level, t in ind.gates.items()
        }
    return out


def framework_data(fw: Framework) -> dict[str, Any]:
    data: dict[str, Any] = {
        "spec_version": fw.spec_version,
        "id": fw.id,
        "version": fw.version,
        "title": fw.title,
        "level": fw.level.value,
        "kind": fw.kind.value,
        "decision": {
            k: v
            for k, v in (
                ("number", fw.decision.number),
                ("date", fw.decision.date),
                ("issuer", fw.decision.issuer),
            )
            if v is not None
        },
    }
    if fw.note is not None:
        data["note"] = fw.note
    data["not_applicable"] = fw.not_applicable.value
    if fw.structure is not None:
        data["structure"] = fw.structure
    c = fw.classification
    if c is not None:
        if c.scheme is not None:
            data["classification"] = {"scheme": c.scheme}
        else:
            bands = []
            for b in c.bands:
                band: dict[str, Any] = {"id": b.id, "label": b.label, "min": _num(b.min)}
                if b.below is not None:
                    band["below"] = _num(b.below)
                bands.append(band)
            data["classification"] = {"basis": c.basis.value, "bands": bands}
    if fw.levels:
        data["levels"] = [{"id": lv.id, "name": lv.name} for lv in fw.levels]
    data["max_points"] = _num(fw.max_points)
    data["groups"] = [
        {
            "id": g.id,
            "name": g.name,
            "max_points": _num(g.max_points),
            "indicators": [indicator_data(i) for i in fw.indicators if i.group_id == g.id],
        }
        for g in fw.groups
    ]
    return data


class _Dumper(yaml.SafeDumper):
    """Multi-line texts (an annex's rule with its line breaks) as literal blocks, easy to edit."""


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    if "\n" in value and not any(line != line.rstrip() for line in value.split("\n")):
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", value)


_Dumper.add_representer(str, _text)


def dump_framework(fw: Framework, header: str | None = None) -> str:
    text = yaml.dump(framework_data(fw), Dumper=_Dumper, allow_unicode=True, sort_keys=False, width=100)
    if header:
        text = "".join(f"# {line}\n" if line else "#\n" for line in header.splitlines()) + text
    return text


ANNEX_HEADER = ("Mã", "Chỉ tiêu", "Nhóm", "Điểm tối đa", "Cách tính", "Tài liệu kiểm chứng", "Kiểu trả lời")


def framework_rows(fw: Framework) -> list[list[str | int | float]]:
    """The framework as an annex table, header first, the group named on every indicator row.

    The last column carries the answer type, so a sheet exported here imports back with the
    same types instead of inferring them from the wording.
    """
    rows: list[list[str | int | float]] = [list(ANNEX_HEADER)]
    names = {g.id: g.name for g in fw.groups}
    for ind in fw.indicators:
        rows.append(
            [
                ind.code,
                ind.text,
                names[ind.group_id],
                _num(ind.max_points),
                ind.method_text or "",
                ind.evidence.description or "",
                ind.answer.type.value,
            ]
        )
    return rows
