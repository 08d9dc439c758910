"""The one loading gate for frameworks: YAML text in, a valid `Framework` (plus warnings) out.

Nothing else builds a `Framework`. Every problem is collected (not just the first) as a `GateIssue`
naming the file, the indicator code and the field, under a message key whose catalog text says how
to fix it; warnings (a missing guidance text, say) are kept apart from errors, as pyxform does.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import difflib
import itertools
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import TypeVar

import yaml

from scoring.decisions import STRUCTURES, band_scheme
from scoring.messages import N_
from scoring.model import (
    AnswerSpec,
    AnswerType,
    Band,
    BandBasis,
    ChoiceMethod,
    Classification,
    Decision,
    EvidenceKind,
    EvidenceRequirement,
    Framework,
    FrameworkKind,
    Group,
    Indicator,
    MaturityLevel,
    NotApplicablePolicy,
    Option,
    PartsMethod,
    RateMethod,
    ScoringMethod,
    SelfAssessedMethod,
    Tier,
    TiersMethod,
    UnitLevel,
    YesNoMethod,
)
from scoring.numbers import HUNDRED, ONE, ZERO, mul_div, plain, total
from scoring.textfold import fold

SUPPORTED_SPEC_VERSIONS = (1,)

E = TypeVar("E")


class Severity:
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True)
class GateIssue:
    key: str
    source: str
    field: str
    code: str | None = None
    params: Mapping[str, str] = dataclasses.field(default_factory=dict)
    severity: str = Severity.ERROR

    def __str__(self) -> str:
        where = f"{self.source}: {self.code + ': ' if self.code else ''}{self.field}"
        params = ", ".join(f"{k}={v}" for k, v in self.params.items())
        return f"{where}: {self.key}" + (f" ({params})" if params else "")


class FrameworkInvalid(ValueError):
    """The file does not describe a usable framework; `errors` say where and why."""

    def __init__(self, source: str, errors: list[GateIssue], warnings: list[GateIssue]) -> None:
        super().__init__(f"{source}: {len(errors)} error(s); first: {errors[0]}")
        self.source = source
        self.errors = errors
        self.warnings = warnings


@dataclass(frozen=True)
class GateResult:
    framework: Framework
    warnings: tuple[GateIssue, ...]


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

_TOP_KEYS = (
    "spec_version",
    "id",
    "version",
    "title",
    "level",
    "kind",
    "decision",
    "note",
    "not_applicable",
    "classification",
    "structure",
    "levels",
    "max_points",
    "groups",
)
_GROUP_KEYS = ("id", "name", "max_points", "indicators")
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
_CLASSIFICATION_KEYS = ("scheme", "basis", "bands")
_BAND_KEYS = ("id", "label", "min", "below")
_LEVEL_KEYS = ("id", "name")
_DECISION_KEYS = ("number", "date", "issuer")
_ID_RE = re.compile(r"^[a-z0-9][a-z0-9._-]*$")


class _Checker:
    def __init__(self, source: str) -> None:
        self.source = source
        self.errors: list[GateIssue] = []
        self.warnings: list[GateIssue] = []

    # -- reporting -----------------------------------------------------------------------------
    def error(self, msgid: str, fld: str, code: str | None = None, /, **params: object) -> None:
        self.errors.append(GateIssue(msgid, self.source, fld, code, {k: str(v) for k, v in params.items()}))

    def warn(self, msgid: str, fld: str, code: str | None = None, /, **params: object) -> None:
        self.warnings.append(
            GateIssue(msgid, self.source, fld, code, {k: str(v) for k, v in params.items()}, Severity.WARNING)
        )

    # -- shape helpers -------------------------------------------------------------------------
    def mapping(self, raw: object, fld: str, code: str | None = None) -> Mapping[str, object] | None:
        if isinstance(raw, Mapping):
            return raw
        self.error(N_("gate.wrong_type"), fld, code, expected="mapping", found=_kind(raw))
        return None

    def seq(self, raw: object, fld: str, code: str | None = None) -> list[object] | None:
        if isinstance(raw, list):
            return raw
        self.error(N_("gate.wrong_type"), fld, code, expected="list", found=_kind(raw))
        return None

    def keys(
        self,
        data: Mapping[str, object],
        allowed: Iterable[str],
        required: Iterable[str],
        fld: str,
        code: str | None = None,
    ) -> None:
        allowed = tuple(allowed)
        for key in data:
            if key not in allowed:
                close = difflib.get_close_matches(str(key), allowed, n=1)
                self.error(
                    N_("gate.unknown_key_did_you_mean") if close else N_("gate.unknown_key"),
                    _join(fld, str(key)),
                    code,
                    key=key,
                    suggestion=close[0] if close else "",
                    allowed=", ".join(allowed),
                )
        for key in required:
            if key not in data or data[key] is None:
                self.error(N_("gate.missing_key"), _join(fld, key), code, key=key)

    def text(self, raw: object, fld: str, code: str | None = None, *, required: bool = True) -> str | None:
        if raw is None:
            return None
        if isinstance(raw, str) and raw.strip():
            return " ".join(raw.split()) if "\n" not in raw.strip() else raw.strip()
        if isinstance(raw, str) and not required:
            return None
        self.error(N_("gate.wrong_type"), fld, code, expected="text", found=_kind(raw))
        return None

    def identifier(self, raw: object, fld: str, code: str | None = None) -> str | None:
        if isinstance(raw, bool) or not isinstance(raw, (str, int)):
            if raw is not None:
                self.error(N_("gate.wrong_type"), fld, code, expected="text", found=_kind(raw))
            return None
        return str(raw).strip()

    def number(
        self,
        raw: object,
        fld: str,
        code: str | None = None,
        *,
        positive: bool = False,
    ) -> Decimal | None:
        if raw is None:
            return None
        value: Decimal | None = None
        if isinstance(raw, bool):
            value = None
        elif isinstance(raw, int):
            value = Decimal(raw)
        elif isinstance(raw, float):
            value = Decimal(repr(raw))
        elif isinstance(raw, str):
            try:
                value = Decimal(raw.strip().replace(",", "."))
            except InvalidOperation:
                value = None
        if value is None or not value.is_finite():
            self.error(N_("gate.bad_number"), fld, code, value=raw)
            return None
        if value < ZERO:
            self.error(N_("gate.negative"), fld, code, value=plain(value))
            return None
        if positive and value == ZERO:
            self.error(N_("gate.not_positive"), fld, code)
            return None
        return value

    def choice(
        self, raw: object, enum: Callable[[str], E], allowed: Iterable[str], fld: str, code: str | None = None
    ) -> E | None:
        if raw is None:
            return None
        allowed = tuple(allowed)
        if isinstance(raw, str) and raw in allowed:
            return enum(raw)
        close = difflib.get_close_matches(str(raw), allowed, n=1)
        self.error(
            N_("gate.bad_value_did_you_mean") if close else N_("gate.bad_value"),
            fld,
            code,
            value=raw,
            allowed=", ".join(allowed),
            suggestion=close[0] if close else "",
        )
        return None

    def flag(self, raw: object, fld: str, code: str | None = None) -> bool:
        if raw is None:
            return False
        if isinstance(raw, bool):
            return raw
        self.error(N_("gate.wrong_type"), fld, code, expected="true/false", found=_kind(raw))
        return False


def _kind(raw: object) -> str:
    if raw is None:
        return "empty"
    if isinstance(raw, bool):
        return "true/false"
    if isinstance(raw, (int, float)):
        return "number"
    if isinstance(raw, str):
        return "text"
    if isinstance(raw, list):
        return "list"
    if isinstance(raw, Mapping):
        return "mapping"
    return type(raw).__name__


def _join(base: str, key: str) -> str:
    return f"{base}.{key}" if base else key


def _date(c: _Checker, raw: object, fld: str) -> dt.date | None:
    if raw is None:
        return None
    if isinstance(raw, dt.date) and not isinstance(raw, dt.datetime):
        return raw
    if isinstance(raw, str):
        m = re.fullmatch(r"\s*(\d{1,2})/(\d{1,2})/(\d{4})\s*", raw)
        try:
            if m:
                return dt.date(int(m[3]), int(m[2]), int(m[1]))
            return dt.date.fromisoformat(raw.strip())
        except ValueError:
            pass
    c.error(N_("gate.bad_date"), fld, value=raw)
    return None


# -- parts of a framework ------------------------------------------------------------------------


def _options(c: _Checker, raw: object, fld: str, code: str, max_points: Decimal | None) -> tuple[Option, ...]:
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
        key = c.identifier(data.get("key"), _join(f, "key"), code)
        label = c.text(data.get("label"), _join(f, "label"), code)
        if key is not None and key in seen:
            c.error(N_("gate.duplicate_option"), _join(f, "key"), code, key=key)
        if key is not None:
            seen.add(key)
        has_points, has_fraction = data.get("points") is not None, data.get("fraction") is not None
        points: Decimal | None = None
        if has_points and has_fraction:
            c.error(N_("gate.points_and_fraction"), f, code)
        elif has_fraction:
            frac = c.number(data.get("fraction"), _join(f, "fraction"), code)
            if frac is not None and frac > ONE:
                c.error(N_("gate.fraction_range"), _join(f, "fraction"), code, value=plain(frac))
            elif frac is not None and max_points is not None:
                points = mul_div(frac, max_points, ONE)
        elif has_points:
            points = c.number(data.get("points"), _join(f, "points"), code)
            if points is not None and max_points is not None and points > max_points:
                c.error(
                    N_("gate.points_exceed_max"),
                    _join(f, "points"),
                    code,
                    points=plain(points),
                    max=plain(max_points),
                )
        else:
            c.error(N_("gate.option_needs_points"), f, code)
        if key is not None and label is not None and points is not None:
            options.append(Option(key, label, points))
    return tuple(options)


def _answer(c: _Checker, raw: object, code: str, max_points: Decimal | None) -> AnswerSpec | None:
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
            c.error(N_("gate.options_required"), "answer.options", code, type=kind.value)
        else:
            options = _options(c, data.get("options"), "answer.options", code, max_points)
    elif data.get("options") is not None:
        c.error(N_("gate.options_not_allowed"), "answer.options", code, type=kind.value)
    labels = {k: c.text(data.get(k), f"answer.{k}", code) for k in ("numerator_label", "denominator_label")}
    if kind is AnswerType.RATIO and not all(labels.values()):
        c.warn(N_("gate.ratio_labels_missing"), "answer", code)
    if kind is not AnswerType.RATIO and any(labels.values()):
        c.error(N_("gate.labels_not_allowed"), "answer", code, type=kind.value)
    unit = c.text(data.get("unit"), "answer.unit", code, required=False)
    return AnswerSpec(kind, unit, labels["numerator_label"], labels["denominator_label"], options)


def _tiers(c: _Checker, raw: object, code: str, max_points: Decimal | None) -> tuple[Tier, ...] | None:
    items = c.seq(raw, "scoring.tiers", code)
    if items is None:
        return None
    if not items:
        c.error(N_("gate.tiers_empty"), "scoring.tiers", code)
        return None
    tiers: list[Tier] = []
    for i, item in enumerate(items):
        f = f"scoring.tiers[{i}]"
        data = c.mapping(item, f, code)
        if data is None:
            return None
        c.keys(data, _TIER_KEYS, ("min", "points"), f, code)
        lo = c.number(data.get("min"), _join(f, "min"), code)
        pts = c.number(data.get("points"), _join(f, "points"), code)
        above = c.flag(data.get("above"), _join(f, "above"), code)
        if lo is None or pts is None:
            return None
        if max_points is not None and pts > max_points:
            c.error(
                N_("gate.points_exceed_max"),
                _join(f, "points"),
                code,
                points=plain(pts),
                max=plain(max_points),
            )
        tiers.append(Tier(lo, pts, above))
    for i in range(1, len(tiers)):
        prev, cur = tiers[i - 1], tiers[i]
        if not (cur.min < prev.min and cur.points <= prev.points):
            c.error(
                N_("gate.tiers_order"),
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
    c: _Checker, raw: object, code: str, spec: AnswerSpec | None, max_points: Decimal | None
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
            N_("gate.method_type_mismatch"),
            "scoring.method",
            code,
            method=name,
            type=spec.type.value,
            methods=", ".join(sorted(COMPATIBLE_METHODS[spec.type])),
        )
        return None
    for extra, owner in (("target", "rate"), ("full_from", "rate"), ("tiers", "tiers")):
        if data.get(extra) is not None and name != owner:
            c.error(N_("gate.key_not_for_method"), f"scoring.{extra}", code, key=extra, method=name)
    if name == "yes_no":
        return YesNoMethod()
    if name == "rate":
        target = c.number(data.get("target"), "scoring.target", code, positive=True)
        is_percent = spec is not None and spec.type in _PERCENT_TYPES
        if target is None:
            if data.get("target") is None and not is_percent:
                c.error(N_("gate.target_required"), "scoring.target", code)
                return None
            target = HUNDRED
        if is_percent and target > HUNDRED:
            c.error(N_("gate.target_over_100"), "scoring.target", code, value=plain(target))
            return None
        full_from = c.number(data.get("full_from"), "scoring.full_from", code, positive=True)
        if full_from is not None and full_from >= target:
            c.error(
                N_("gate.full_from_not_below_target"),
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
                c.error(N_("gate.missing_key"), "scoring.tiers", code, key="tiers")
            return None
        return TiersMethod(tiers)
    if name == "choice":
        return ChoiceMethod()
    if name == "parts":
        if spec is not None and max_points is not None and spec.options:
            reachable = total(o.points for o in spec.options)
            if reachable < max_points:
                c.error(
                    N_("gate.parts_unreachable"),
                    "answer.options",
                    code,
                    sum=plain(reachable),
                    max=plain(max_points),
                )
            elif reachable > max_points:
                c.warn(
                    N_("gate.parts_capped"),
                    "answer.options",
                    code,
                    sum=plain(reachable),
                    max=plain(max_points),
                )
        return PartsMethod()
    return SelfAssessedMethod()


def _evidence(c: _Checker, raw: object, code: str) -> EvidenceRequirement:
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
        c.warn(N_("gate.evidence_description_missing"), "evidence.description", code)
    return EvidenceRequirement(required, tuple(kinds), description)


def _gates(
    c: _Checker, raw: object, code: str, spec: AnswerSpec | None, levels: Mapping[str, int] | None
) -> dict[str, Decimal]:
    if raw is None:
        return {}
    if levels is None:
        c.error(N_("gate.gates_without_levels"), "gates", code)
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
                N_("gate.level_undeclared_did_you_mean") if close else N_("gate.level_undeclared"),
                f,
                code,
                level=level_id,
                levels=", ".join(levels),
                suggestion=close[0] if close else "",
            )
            continue
        if spec is not None and spec.type is AnswerType.YES_NO:
            if threshold is not True:
                c.error(N_("gate.threshold_yes_no"), f, code, value=threshold)
                continue
            gates[str(level_id)] = ONE
            continue
        if isinstance(threshold, bool):
            c.error(
                N_("gate.threshold_number"), f, code, value=threshold, type=spec.type.value if spec else ""
            )
            continue
        value = c.number(threshold, f, code)
        if value is None:
            continue
        if spec is not None and spec.type in _PERCENT_TYPES and value > HUNDRED:
            c.error(N_("gate.threshold_percent"), f, code, value=plain(value))
            continue
        gates[str(level_id)] = value
    ordered = sorted(gates.items(), key=lambda kv: levels[kv[0]])
    for (lo_id, lo), (hi_id, hi) in itertools.pairwise(ordered):
        if hi < lo:
            c.warn(N_("gate.threshold_decreasing"), f"gates.{hi_id}", code, lower=lo_id, higher=hi_id)
    return gates


def _indicator(
    c: _Checker,
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
        c.error(N_("gate.code_not_text"), _join(fld, "code"), None, value=raw_code)
        return None
    code = c.identifier(raw_code, _join(fld, "code"))
    c.keys(data, _INDICATOR_KEYS, ("code", "text", "max_points", "answer", "scoring"), fld, code)
    if code is None:
        return None
    if not code:
        c.error(N_("gate.missing_key"), _join(fld, "code"), None, key="code")
        return None
    if code in seen:
        c.error(N_("gate.duplicate_code"), "code", code, group=seen[code])
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
        c.warn(N_("gate.guidance_missing"), "guidance", code)
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


def _classification(c: _Checker, raw: object, max_points: Decimal | None) -> Classification | None:
    """The bands; `max_points` is None when the groups are broken and the total is unknown."""
    if raw is None:
        return None
    errors_before = len(c.errors)
    data = c.mapping(raw, "classification")
    if data is None:
        return None
    c.keys(data, _CLASSIFICATION_KEYS, (), "classification")
    scheme_id = data.get("scheme")
    if scheme_id is not None:
        if data.get("bands") is not None or data.get("basis") is not None:
            c.error(N_("gate.scheme_and_bands"), "classification")
            return None
        scheme = band_scheme(str(scheme_id))
        if scheme is None:
            from scoring.decisions import BAND_SCHEMES

            c.error(
                N_("gate.scheme_unknown"),
                "classification.scheme",
                value=scheme_id,
                schemes=", ".join(BAND_SCHEMES),
            )
            return None
        if scheme.scale is not None and max_points is not None and scheme.scale != max_points:
            c.error(
                N_("gate.scheme_scale"),
                "classification.scheme",
                scheme=scheme.id,
                scale=plain(scheme.scale),
                max=plain(max_points),
            )
            return None
        return scheme.classification
    basis = c.choice(data.get("basis"), BandBasis, [b.value for b in BandBasis], "classification.basis")
    if data.get("basis") is None:
        c.error(N_("gate.missing_key"), "classification.basis", key="basis")
    items = c.seq(data.get("bands"), "classification.bands")
    if basis is None or items is None:
        return None
    ceiling = max_points if basis is BandBasis.POINTS else HUNDRED
    if ceiling is None:
        return None
    bands: list[tuple[int, Band]] = []
    ids: set[str] = set()
    for i, item in enumerate(items):
        f = f"classification.bands[{i}]"
        bdata = c.mapping(item, f)
        if bdata is None:
            continue
        c.keys(bdata, _BAND_KEYS, ("id", "label", "min"), f)
        bid = c.identifier(bdata.get("id"), _join(f, "id"))
        label = c.text(bdata.get("label"), _join(f, "label"))
        lo = c.number(bdata.get("min"), _join(f, "min"))
        below = c.number(bdata.get("below"), _join(f, "below"))
        if bid is not None and bid in ids:
            c.error(N_("gate.duplicate_band"), _join(f, "id"), id=bid)
        if bid is not None:
            ids.add(bid)
        if lo is not None and lo > ceiling:
            c.error(
                N_("gate.band_above_max"),
                _join(f, "min"),
                band=label or bid,
                min=plain(lo),
                max=plain(ceiling),
            )
            continue
        if lo is not None and below is not None and below <= lo:
            c.error(N_("gate.band_empty"), f, band=label or bid, min=plain(lo), below=plain(below))
            continue
        if bid is not None and label is not None and lo is not None:
            bands.append((i, Band(bid, label, lo, below)))
    if not bands:
        c.error(N_("gate.bands_empty"), "classification.bands")
        return None
    if len(c.errors) > errors_before:
        return None
    bands.sort(key=lambda ib: ib[1].min, reverse=True)
    for (_, upper), (j, lower) in itertools.pairwise(bands):
        f = f"classification.bands[{j}]"
        if lower.min == upper.min:
            c.error(N_("gate.band_overlap"), f, band=lower.label, other=upper.label, at=plain(lower.min))
        elif lower.below is None:
            continue
        elif lower.below > upper.min:
            c.error(N_("gate.band_overlap"), f, band=lower.label, other=upper.label, at=plain(upper.min))
        elif lower.below < upper.min:
            c.error(
                N_("gate.band_gap"),
                f,
                band=lower.label,
                other=upper.label,
                start=plain(lower.below),
                end=plain(upper.min),
            )
    top_i, top = bands[0]
    if top.below is not None and top.below <= ceiling:
        c.error(
            N_("gate.band_top_gap"),
            f"classification.bands[{top_i}].below",
            band=top.label,
            start=plain(top.below),
            end=plain(ceiling),
        )
    low_i, low = bands[-1]
    if low.min != ZERO:
        c.error(
            N_("gate.band_bottom_gap"),
            f"classification.bands[{low_i}].min",
            band=low.label,
            min=plain(low.min),
        )
    resolved = []
    for k, (_, b) in enumerate(bands):
        resolved.append(
            Band(
                b.id, b.label, b.min, b.below if b.below is not None else (bands[k - 1][1].min if k else None)
            )
        )
    return Classification(basis, tuple(resolved))


def _levels(
    c: _Checker, raw: object, kind: FrameworkKind | None
) -> tuple[tuple[MaturityLevel, ...], dict[str, int] | None]:
    if kind is not FrameworkKind.MATURITY:
        if raw is not None:
            c.error(N_("gate.levels_without_maturity"), "levels")
        return (), None
    if raw is None:
        c.error(N_("gate.maturity_needs_levels"), "levels")
        return (), {}
    items = c.seq(raw, "levels")
    levels: list[MaturityLevel] = []
    index: dict[str, int] = {}
    for i, item in enumerate(items or []):
        f = f"levels[{i}]"
        data = c.mapping(item, f)
        if data is None:
            continue
        c.keys(data, _LEVEL_KEYS, _LEVEL_KEYS, f)
        lid = c.identifier(data.get("id"), _join(f, "id"))
        name = c.text(data.get("name"), _join(f, "name"))
        if lid is None or name is None:
            continue
        if lid in index:
            c.error(N_("gate.duplicate_level"), _join(f, "id"), id=lid)
            continue
        index[lid] = len(levels)
        levels.append(MaturityLevel(lid, name))
    if not levels:
        c.error(N_("gate.maturity_needs_levels"), "levels")
    return tuple(levels), index


def _check_structure(c: _Checker, structure_id: str, groups: list[Group], level: UnitLevel | None) -> None:
    structure = STRUCTURES.get(structure_id)
    if structure is None:
        c.error(
            N_("gate.structure_unknown"), "structure", value=structure_id, structures=", ".join(STRUCTURES)
        )
        return
    if level is not None and level is not structure.level:
        c.error(
            N_("gate.structure_level"),
            "level",
            structure=structure_id,
            expected=structure.level.value,
            found=level.value,
        )
    if len(groups) != len(structure.groups):
        c.error(
            N_("gate.structure_group_count"),
            "groups",
            structure=structure_id,
            expected=len(structure.groups),
            found=len(groups),
        )
        return
    for i, (group, spec) in enumerate(zip(groups, structure.groups, strict=True)):
        if fold(group.name) != fold(spec.name) or group.max_points != spec.max_points:
            c.error(
                N_("gate.structure_group"),
                f"groups[{i}]",
                structure=structure_id,
                expected=f"{spec.name} ({plain(spec.max_points)})",
                found=f"{group.name} ({plain(group.max_points)})",
            )


def build_framework(data: object, source: str) -> GateResult:
    """Validate parsed YAML `data` from `source`; raise `FrameworkInvalid` listing every error."""
    c = _Checker(source)
    top = c.mapping(data, "")
    if top is None:
        raise FrameworkInvalid(source, c.errors, c.warnings)
    c.keys(top, _TOP_KEYS, ("spec_version", "id", "version", "title", "level", "decision", "groups"), "")
    spec_version = top.get("spec_version")
    if spec_version is not None and spec_version not in SUPPORTED_SPEC_VERSIONS:
        c.error(
            N_("gate.spec_version"),
            "spec_version",
            found=spec_version,
            supported=", ".join(map(str, SUPPORTED_SPEC_VERSIONS)),
        )
        raise FrameworkInvalid(source, c.errors, c.warnings)
    fid = c.identifier(top.get("id"), "id")
    if fid is not None and not _ID_RE.match(fid):
        c.error(N_("gate.bad_id"), "id", value=fid)
    version = c.identifier(top.get("version"), "version")
    if isinstance(top.get("version"), float):
        c.error(N_("gate.code_not_text"), "version", value=top.get("version"))
    title = c.text(top.get("title"), "title")
    level = c.choice(top.get("level"), UnitLevel, [u.value for u in UnitLevel], "level")
    kind = c.choice(top.get("kind", "points"), FrameworkKind, [k.value for k in FrameworkKind], "kind")
    na_policy = c.choice(
        top.get("not_applicable", "peer_average"),
        NotApplicablePolicy,
        [p.value for p in NotApplicablePolicy],
        "not_applicable",
    )
    note = c.text(top.get("note"), "note", required=False)
    decision = Decision(None, None)
    ddata = c.mapping(top.get("decision"), "decision") if top.get("decision") is not None else None
    if ddata is not None:
        c.keys(ddata, _DECISION_KEYS, (), "decision")
        number = c.text(ddata.get("number"), "decision.number", required=False)
        decision = Decision(
            number,
            _date(c, ddata.get("date"), "decision.date"),
            c.text(ddata.get("issuer"), "decision.issuer", required=False),
        )
        if number is None:
            c.warn(N_("gate.decision_number_missing"), "decision.number")
    levels, level_index = _levels(c, top.get("levels"), kind)

    groups: list[Group] = []
    indicators: list[Indicator] = []
    seen_codes: dict[str, str] = {}
    seen_groups: set[str] = set()
    raw_groups = c.seq(top.get("groups"), "groups") if top.get("groups") is not None else None
    if raw_groups is not None and not raw_groups:
        c.error(N_("gate.no_groups"), "groups")
    for gi, graw in enumerate(raw_groups or []):
        gf = f"groups[{gi}]"
        gdata = c.mapping(graw, gf)
        if gdata is None:
            continue
        c.keys(gdata, _GROUP_KEYS, ("id", "name", "indicators"), gf)
        if isinstance(gdata.get("id"), float):
            c.error(N_("gate.code_not_text"), _join(gf, "id"), value=gdata.get("id"))
            continue
        gid = c.identifier(gdata.get("id"), _join(gf, "id"))
        gname = c.text(gdata.get("name"), _join(gf, "name"))
        gmax = c.number(gdata.get("max_points"), _join(gf, "max_points"), positive=True)
        if gid is None or gname is None:
            continue
        if gid in seen_groups:
            c.error(N_("gate.duplicate_group"), _join(gf, "id"), id=gid)
        seen_groups.add(gid)
        items = (
            c.seq(gdata.get("indicators"), _join(gf, "indicators"))
            if gdata.get("indicators") is not None
            else []
        )
        if not items:
            c.error(N_("gate.empty_group"), _join(gf, "indicators"), group=gname)
        members = [
            _indicator(c, item, f"{gf}.indicators[{ii}]", gid, level_index, seen_codes)
            for ii, item in enumerate(items or [])
        ]
        valid = [m for m in members if m is not None]
        indicators.extend(valid)
        if len(valid) == len(members) and valid:
            summed = total(m.max_points for m in valid)
            if gmax is None and gdata.get("max_points") is None:
                gmax = summed
            elif gmax is not None and gmax != summed:
                c.error(
                    N_("gate.group_max_mismatch"),
                    _join(gf, "max_points"),
                    group=gname,
                    declared=plain(gmax),
                    sum=plain(summed),
                )
        if gmax is not None:
            groups.append(Group(gid, gname, gmax, tuple(m.code for m in valid)))

    max_points = total(g.max_points for g in groups)
    declared_max = c.number(top.get("max_points"), "max_points", positive=True)
    if declared_max is not None and not c.errors and declared_max != max_points:
        c.error(
            N_("gate.total_max_mismatch"), "max_points", declared=plain(declared_max), sum=plain(max_points)
        )
    structure = top.get("structure")
    if structure is not None and not c.errors:
        _check_structure(c, str(structure), groups, level)
    classification = _classification(c, top.get("classification"), None if c.errors else max_points)
    if kind is FrameworkKind.MATURITY and level_index:
        gated = {lid for ind in indicators for lid in ind.gates}
        for lvl in levels:
            if lvl.id not in gated:
                c.warn(N_("gate.level_without_indicators"), "levels", level=lvl.id)

    if c.errors:
        raise FrameworkInvalid(source, c.errors, c.warnings)
    assert fid is not None and version is not None and title is not None and level is not None
    assert kind is not None and na_policy is not None
    framework = Framework(
        id=fid,
        version=version,
        title=title,
        level=level,
        kind=kind,
        decision=decision,
        groups=tuple(groups),
        indicators=tuple(indicators),
        classification=classification,
        not_applicable=na_policy,
        levels=levels,
        structure=str(structure) if structure is not None else None,
        note=note,
        spec_version=int(spec_version) if isinstance(spec_version, int) else 1,
    )
    return GateResult(framework, tuple(c.warnings))


def load_framework(text: str, source: str) -> GateResult:
    """Parse YAML `text` read from `source` (used only to name it in messages) and validate it."""
    try:
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        issue = GateIssue(
            N_("gate.yaml_syntax"),
            source,
            "",
            None,
            {
                "line": str(mark.line + 1 if mark else 0),
                "column": str(mark.column + 1 if mark else 0),
                "problem": str(exc.problem or exc),
            },
        )
        raise FrameworkInvalid(source, [issue], []) from None
    except yaml.YAMLError as exc:
        issue = GateIssue(
            N_("gate.yaml_syntax"), source, "", None, {"line": "0", "column": "0", "problem": str(exc)}
        )
        raise FrameworkInvalid(source, [issue], []) from None
    return build_framework(data, source)
