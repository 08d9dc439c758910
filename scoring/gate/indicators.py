"""Checking one indicator: its answer, its scoring method (options, tiers, target), its evidence
requirement and its maturity gates, and that the method fits the answer type."""

from __future__ import annotations

import difflib
import itertools
from collections.abc import Mapping
from decimal import Decimal

from scoring.gate.checker import Checker, join
from scoring.gate.issues import GateKey
from scoring.model import (
    AnswerSpec,
    AnswerType,
    ChoiceMethod,
    EvidenceKind,
    EvidenceRequirement,
    Indicator,
    Option,
    PartsMethod,
    RateMethod,
    ScoringMethod,
    SelfAssessedMethod,
    Tier,
    TiersMethod,
    YesNoMethod,
)
from scoring.numbers import HUNDRED, ONE, mul_div, plain, total

# Which scoring methods each answer type can feed.
COMPATIBLE_METHODS: dict[AnswerType, frozenset[str]] = {
    AnswerType.YES_NO: frozenset({"yes_no"}),
    AnswerType.PERCENTAGE: frozenset({"rate", "tiers"}),
    AnswerType.RATIO: frozenset({"rate", "tiers"}),
    AnswerType.COUNT: frozenset({"rate", "tiers"}),
    AnswerType.AMOUNT: frozenset({"rate", "tiers"}),
    AnswerType.CHOICE: frozenset({"choice"}),
    AnswerType.PARTS: frozenset({"parts"}),
    AnswerType.POINTS: frozenset({"self_assessed"}),
}
METHODS = ("yes_no", "rate", "tiers", "choice", "parts", "self_assessed")
_PERCENT_TYPES = (AnswerType.PERCENTAGE, AnswerType.RATIO)

_INDICATOR_KEYS = (
    "code",
    "text",
    "max_points",
    "answer",
    "scoring",
    "guidance",
    "method_text",
    "evidence",
    "not_applicable",
    "gates",
)
_ANSWER_KEYS = ("type", "unit", "numerator_label", "denominator_label", "options")
_OPTION_KEYS = ("key", "label", "points", "fraction")
_SCORING_KEYS = ("method", "target", "full_from", "tiers")
_TIER_KEYS = ("min", "points", "above")
_EVIDENCE_KEYS = ("required", "kinds", "description")


def _options(c: Checker, raw: object, fld: str, code: str, max_points: Decimal | None) -> tuple[Option, ...]:
    items = c.seq(raw, fld, code)
    if items is None:
        return ()
    options: list[Option] = []
    seen: set[str] = set()
    for i, item in enumerate(items):
        f = f"{fld}[{i}]"
        data = c.mapping(item, f, code)
        if data is None:
            continue
        c.keys(data, _OPTION_KEYS, ("key", "label"), f, code)
        key = c.identifier(data.get("key"), join(f, "key"), code)
        label = c.text(data.get("label"), join(f, "label"), code)
        if key is not None and key in seen:
            c.error(GateKey.DUPLICATE_OPTION, join(f, "key"), code, key=key)
        if key is not None:
            seen.add(key)
        has_points, has_fraction = data.get("points") is not None, data.get("fraction") is not None
        points: Decimal | None = None
        if has_points and has_fraction:
            c.error(GateKey.POINTS_AND_FRACTION, f, code)
        elif has_fraction:
            frac = c.number(data.get("fraction"), join(f, "fraction"), code)
            if frac is not None and frac > ONE:
                c.error(GateKey.FRACTION_RANGE, join(f, "fraction"), code, value=plain(frac))
            elif frac is not None and max_points is not None:
                points = mul_div(frac, max_points, ONE)
        elif has_points:
            points = c.number(data.get("points"), join(f, "points"), code)
            if points is not None and max_points is not None and points > max_points:
                c.error(
                    GateKey.POINTS_EXCEED_MAX,
                    join(f, "points"),
                    code,
                    points=plain(points),
                    max=plain(max_points),
                )
        else:
            c.error(GateKey.OPTION_NEEDS_POINTS, f, code)
        if key is not None and label is not None and points is not None:
            options.append(Option(key, label, points))
    return tuple(options)


def _answer(c: Checker, raw: object, code: str, max_points: Decimal | None) -> AnswerSpec | None:
    if isinstance(raw, str):
        raw = {"type": raw}
    data = c.mapping(raw, "answer", code)
    if data is None:
        return None
    c.keys(data, _ANSWER_KEYS, ("type",), "answer", code)
    kind = c.choice(data.get("type"), AnswerType, [t.value for t in AnswerType], "answer.type", code)
    if kind is None:
        return None
    options: tuple[Option, ...] = ()
    if kind in (AnswerType.CHOICE, AnswerType.PARTS):
        if data.get("options") is None:
            c.error(GateKey.OPTIONS_REQUIRED, "answer.options", code, type=kind.value)
        else:
            options = _options(c, data.get("options"), "answer.options", code, max_points)
    elif data.get("options") is not None:
        c.error(GateKey.OPTIONS_NOT_ALLOWED, "answer.options", code, type=kind.value)
    labels = {k: c.text(data.get(k), f"answer.{k}", code) for k in ("numerator_label", "denominator_label")}
    if kind is AnswerType.RATIO and not all(labels.values()):
        c.warn(GateKey.RATIO_LABELS_MISSING, "answer", code)
    if kind is not AnswerType.RATIO and any(labels.values()):
        c.error(GateKey.LABELS_NOT_ALLOWED, "answer", code, type=kind.value)
    unit = c.text(data.get("unit"), "answer.unit", code, required=False)
    return AnswerSpec(kind, unit, labels["numerator_label"], labels["denominator_label"], options)


def _tiers(c: Checker, raw: object, code: str, max_points: Decimal | None) -> tuple[Tier, ...] | None:
    items = c.seq(raw, "scoring.tiers", code)
    if items is None:
        return None
    if not items:
        c.error(GateKey.TIERS_EMPTY, "scoring.tiers", code)
        return None
    tiers: list[Tier] = []
    for i, item in enumerate(items):
        f = f"scoring.tiers[{i}]"
        data = c.mapping(item, f, code)
        if data is None:
            return None
        c.keys(data, _TIER_KEYS, ("min", "points"), f, code)
        lo = c.number(data.get("min"), join(f, "min"), code)
        pts = c.number(data.get("points"), join(f, "points"), code)
        above = c.flag(data.get("above"), join(f, "above"), code)
        if lo is None or pts is None:
            return None
        if max_points is not None and pts > max_points:
            c.error(
                GateKey.POINTS_EXCEED_MAX,
                join(f, "points"),
                code,
                points=plain(pts),
                max=plain(max_points),
            )
        tiers.append(Tier(lo, pts, above))
    for i in range(1, len(tiers)):
        prev, cur = tiers[i - 1], tiers[i]
        if not (cur.min < prev.min and cur.points <= prev.points):
            c.error(
                GateKey.TIERS_ORDER,
                f"scoring.tiers[{i}]",
                code,
                prev_min=plain(prev.min),
                prev_points=plain(prev.points),
                min=plain(cur.min),
                points=plain(cur.points),
            )
            return None
    return tuple(tiers)


def _method(
    c: Checker, raw: object, code: str, spec: AnswerSpec | None, max_points: Decimal | None
) -> ScoringMethod | None:
    if isinstance(raw, str):
        raw = {"method": raw}
    data = c.mapping(raw, "scoring", code)
    if data is None:
        return None
    c.keys(data, _SCORING_KEYS, ("method",), "scoring", code)
    name = data.get("method")
    if name not in METHODS:
        if name is not None:
            c.choice(name, str, METHODS, "scoring.method", code)
        return None
    assert isinstance(name, str)
    if spec is not None and name not in COMPATIBLE_METHODS[spec.type]:
        c.error(
            GateKey.METHOD_TYPE_MISMATCH,
            "scoring.method",
            code,
            method=name,
            type=spec.type.value,
            methods=", ".join(sorted(COMPATIBLE_METHODS[spec.type])),
        )
        return None
    for extra, owner in (("target", "rate"), ("full_from", "rate"), ("tiers", "tiers")):
        if data.get(extra) is not None and name != owner:
            c.error(GateKey.KEY_NOT_FOR_METHOD, f"scoring.{extra}", code, key=extra, method=name)
    if name == "yes_no":
        return YesNoMethod()
    if name == "rate":
        target = c.number(data.get("target"), "scoring.target", code, positive=True)
        is_percent = spec is not None and spec.type in _PERCENT_TYPES
        if target is None:
            if data.get("target") is None and not is_percent:
                c.error(GateKey.TARGET_REQUIRED, "scoring.target", code)
                return None
            target = HUNDRED
        if is_percent and target > HUNDRED:
            c.error(GateKey.TARGET_OVER_100, "scoring.target", code, value=plain(target))
            return None
        full_from = c.number(data.get("full_from"), "scoring.full_from", code, positive=True)
        if full_from is not None and full_from >= target:
            c.error(
                GateKey.FULL_FROM_NOT_BELOW_TARGET,
                "scoring.full_from",
                code,
                value=plain(full_from),
                target=plain(target),
            )
            return None
        return RateMethod(target, full_from)
    if name == "tiers":
        tiers = _tiers(c, data.get("tiers"), code, max_points)
        if tiers is None:
            if data.get("tiers") is None:
                c.error(GateKey.MISSING_KEY, "scoring.tiers", code, key="tiers")
            return None
        return TiersMethod(tiers)
    if name == "choice":
        return ChoiceMethod()
    if name == "parts":
        if spec is not None and max_points is not None and spec.options:
            reachable = total(o.points for o in spec.options)
            if reachable < max_points:
                c.error(
                    GateKey.PARTS_UNREACHABLE,
                    "answer.options",
                    code,
                    sum=plain(reachable),
                    max=plain(max_points),
                )
            elif reachable > max_points:
                c.warn(
                    GateKey.PARTS_CAPPED,
                    "answer.options",
                    code,
                    sum=plain(reachable),
                    max=plain(max_points),
                )
        return PartsMethod()
    return SelfAssessedMethod()


def _evidence(c: Checker, raw: object, code: str) -> EvidenceRequirement:
    if raw is None:
        return EvidenceRequirement()
    data = c.mapping(raw, "evidence", code)
    if data is None:
        return EvidenceRequirement()
    c.keys(data, _EVIDENCE_KEYS, (), "evidence", code)
    required = c.flag(data.get("required"), "evidence.required", code)
    kinds: list[EvidenceKind] = []
    raw_kinds = data.get("kinds")
    if raw_kinds is not None:
        for i, k in enumerate(c.seq(raw_kinds, "evidence.kinds", code) or []):
            kind = c.choice(k, EvidenceKind, [e.value for e in EvidenceKind], f"evidence.kinds[{i}]", code)
            if kind is not None:
                kinds.append(kind)
    description = c.text(data.get("description"), "evidence.description", code, required=False)
    if required and description is None:
        c.warn(GateKey.EVIDENCE_DESCRIPTION_MISSING, "evidence.description", code)
    return EvidenceRequirement(required, tuple(kinds), description)


def _gates(
    c: Checker, raw: object, code: str, spec: AnswerSpec | None, levels: Mapping[str, int] | None
) -> dict[str, Decimal]:
    if raw is None:
        return {}
    if levels is None:
        c.error(GateKey.GATES_WITHOUT_LEVELS, "gates", code)
        return {}
    data = c.mapping(raw, "gates", code)
    if data is None:
        return {}
    gates: dict[str, Decimal] = {}
    for level_id, threshold in data.items():
        f = f"gates.{level_id}"
        if level_id not in levels:
            close = difflib.get_close_matches(str(level_id), list(levels), n=1)
            c.error(
                GateKey.LEVEL_UNDECLARED_DID_YOU_MEAN if close else GateKey.LEVEL_UNDECLARED,
                f,
                code,
                level=level_id,
                levels=", ".join(levels),
                suggestion=close[0] if close else "",
            )
            continue
        if spec is not None and spec.type is AnswerType.YES_NO:
            if threshold is not True:
                c.error(GateKey.THRESHOLD_YES_NO, f, code, value=threshold)
                continue
            gates[str(level_id)] = ONE
            continue
        if isinstance(threshold, bool):
            c.error(GateKey.THRESHOLD_NUMBER, f, code, value=threshold, type=spec.type.value if spec else "")
            continue
        value = c.number(threshold, f, code)
        if value is None:
            continue
        if spec is not None and spec.type in _PERCENT_TYPES and value > HUNDRED:
            c.error(GateKey.THRESHOLD_PERCENT, f, code, value=plain(value))
            continue
        gates[str(level_id)] = value
    ordered = sorted(gates.items(), key=lambda kv: levels[kv[0]])
    for (lo_id, lo), (hi_id, hi) in itertools.pairwise(ordered):
        if hi < lo:
            c.warn(GateKey.THRESHOLD_DECREASING, f"gates.{hi_id}", code, lower=lo_id, higher=hi_id)
    return gates


def check_indicator(
    c: Checker,
    raw: object,
    fld: str,
    group_id: str,
    levels: Mapping[str, int] | None,
    seen: dict[str, str],
) -> Indicator | None:
    data = c.mapping(raw, fld)
    if data is None:
        return None
    raw_code = data.get("code")
    if isinstance(raw_code, float):
        c.error(GateKey.CODE_NOT_TEXT, join(fld, "code"), None, value=raw_code)
        return None
    code = c.identifier(raw_code, join(fld, "code"))
    c.keys(data, _INDICATOR_KEYS, ("code", "text", "max_points", "answer", "scoring"), fld, code)
    if code is None:
        return None
    if not code:
        c.error(GateKey.MISSING_KEY, join(fld, "code"), None, key="code")
        return None
    if code in seen:
        c.error(GateKey.DUPLICATE_CODE, "code", code, group=seen[code])
    else:
        seen[code] = group_id
    text = c.text(data.get("text"), "text", code)
    max_points = c.number(data.get("max_points"), "max_points", code, positive=True)
    spec = _answer(c, data.get("answer"), code, max_points) if data.get("answer") is not None else None
    method = (
        _method(c, data.get("scoring"), code, spec, max_points) if data.get("scoring") is not None else None
    )
    guidance = c.text(data.get("guidance"), "guidance", code, required=False)
    if guidance is None:
        c.warn(GateKey.GUIDANCE_MISSING, "guidance", code)
    method_text = c.text(data.get("method_text"), "method_text", code, required=False)
    evidence = _evidence(c, data.get("evidence"), code)
    allows_na = c.flag(data.get("not_applicable"), "not_applicable", code)
    gates = _gates(c, data.get("gates"), code, spec, levels)
    if text is None or max_points is None or spec is None or method is None:
        return None
    return Indicator(
        code=code,
        group_id=group_id,
        text=text,
        max_points=max_points,
        answer=spec,
        method=method,
        guidance=guidance,
        method_text=method_text,
        evidence=evidence,
        allows_not_applicable=allows_na,
        gates=gates,
    )
