"""A unit's answers as typed values, and the one gate that turns raw values into them.

Raw values come from JSON (`dtibot score`), from the conversation after it has parsed the typed text,
or from storage. Whatever the source, `parse_value` decides whether a value fits its indicator and
says precisely why not, so the scoring engine only ever sees well-formed answers.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from scoring.messages import N_
from scoring.model import AnswerType, AnswerValue, Framework, Indicator, Ratio
from scoring.numbers import HUNDRED, ZERO, plain

VIETNAM_TZ = dt.timezone(dt.timedelta(hours=7), "Asia/Ho_Chi_Minh")


@dataclass(frozen=True, slots=True)
class Evidence:
    name: str
    submitted_at: dt.datetime | None = None
    late: bool = False  # known to be after its own deadline (a unit's extension, a reviewer's return)


@dataclass(frozen=True, slots=True)
class Answer:
    value: AnswerValue | None = None
    not_applicable: bool = False
    evidence: tuple[Evidence, ...] = ()
    appraised_points: Decimal | None = None
    reason: str | None = None


Answers = Mapping[str, Answer]


@dataclass(frozen=True)
class AnswerProblem:
    key: str
    code: str | None
    params: Mapping[str, str] = field(default_factory=dict)


class AnswerError(ValueError):
    """Answers that cannot be scored; every problem names its indicator code."""

    def __init__(self, problems: list[AnswerProblem]) -> None:
        super().__init__("; ".join(f"{p.code}: {p.key} {dict(p.params)}" for p in problems))
        self.problems = problems


def _number(raw: object) -> Decimal | None:
    if isinstance(raw, bool):
        return None
    if isinstance(raw, Decimal):
        return raw if raw.is_finite() else None
    if isinstance(raw, int):
        return Decimal(raw)
    if isinstance(raw, float):
        try:
            d = Decimal(repr(raw))
        except InvalidOperation:
            return None
        return d if d.is_finite() else None
    return None


_EXPECTED: dict[AnswerType, str] = {
    AnswerType.YES_NO: N_("answer.expected.yes_no"),
    AnswerType.PERCENTAGE: N_("answer.expected.percentage"),
    AnswerType.RATIO: N_("answer.expected.ratio"),
    AnswerType.COUNT: N_("answer.expected.count"),
    AnswerType.AMOUNT: N_("answer.expected.amount"),
    AnswerType.CHOICE: N_("answer.expected.choice"),
    AnswerType.PARTS: N_("answer.expected.parts"),
    AnswerType.POINTS: N_("answer.expected.points"),
}


def _problem(msgid: str, code: str, /, **params: str) -> AnswerProblem:
    return AnswerProblem(msgid, code, params)


def _ratio(raw: Mapping[str, object], code: str) -> Ratio | AnswerProblem:
    extra = set(raw) - {"numerator", "denominator"}
    if extra or "numerator" not in raw or "denominator" not in raw:
        return _problem(N_("answer.ratio_shape"), code)
    num, den = _number(raw["numerator"]), _number(raw["denominator"])
    if num is None or den is None:
        return _problem(N_("answer.ratio_shape"), code)
    if num < ZERO or den < ZERO:
        return _problem(N_("answer.negative"), code, value=plain(min(num, den)))
    if den == ZERO:
        return _problem(N_("answer.denominator_zero"), code)
    if num > den:
        return _problem(N_("answer.numerator_exceeds"), code, numerator=plain(num), denominator=plain(den))
    return Ratio(num, den)


def _wrong(indicator: Indicator) -> AnswerProblem:
    """The value is not of the indicator's type: say what is expected."""
    options = ", ".join(o.key for o in indicator.answer.options)
    params = {"max": plain(indicator.max_points), "options": options}
    return AnswerProblem(_EXPECTED[indicator.answer.type], indicator.code, params)


def parse_value(indicator: Indicator, raw: object) -> AnswerValue | AnswerProblem:
    """`raw` as the typed value `indicator` takes, or the problem with it."""
    code = indicator.code
    spec = indicator.answer
    kind = spec.type
    options = ", ".join(o.key for o in spec.options) if spec.options else ""
    if kind is AnswerType.YES_NO:
        if isinstance(raw, bool):
            return raw
        return _wrong(indicator)
    if kind in (AnswerType.PERCENTAGE, AnswerType.RATIO):
        if isinstance(raw, Mapping):
            return _ratio(raw, code)
        pct = _number(raw)
        if pct is None:
            return _wrong(indicator)
        if pct < ZERO or pct > HUNDRED:
            return _problem(N_("answer.percent_range"), code, value=plain(pct))
        return pct
    if kind in (AnswerType.COUNT, AnswerType.AMOUNT, AnswerType.POINTS):
        n = _number(raw)
        if n is None:
            return _wrong(indicator)
        if n < ZERO:
            return _problem(N_("answer.negative"), code, value=plain(n))
        if kind is AnswerType.COUNT and n != n.to_integral_value():
            return _problem(N_("answer.not_integer"), code, value=plain(n))
        if kind is AnswerType.POINTS and n > indicator.max_points:
            return _problem(N_("answer.points_range"), code, value=plain(n), max=plain(indicator.max_points))
        return n
    if kind is AnswerType.CHOICE:
        if isinstance(raw, str) and spec.option(raw) is not None:
            return raw
        if not isinstance(raw, str):
            return _wrong(indicator)
        return _problem(N_("answer.unknown_option"), code, value=raw, options=options)
    # AnswerType.PARTS
    if not isinstance(raw, list) or not all(isinstance(k, str) for k in raw):
        return _wrong(indicator)
    known = {o.key for o in spec.options}
    unknown = [k for k in raw if k not in known]
    if unknown:
        return _problem(
            N_("answer.unknown_part"), code, value=", ".join(unknown), options=", ".join(sorted(known))
        )
    return frozenset(raw)


def _evidence(raw: object, code: str) -> tuple[Evidence, ...] | AnswerProblem:
    if not isinstance(raw, list):
        return _problem(N_("answer.evidence_shape"), code)
    items: list[Evidence] = []
    for item in raw:
        if isinstance(item, str) and item.strip():
            items.append(Evidence(item.strip()))
        elif (
            isinstance(item, Mapping)
            and isinstance(item.get("name"), str)
            and set(item)
            <= {
                "name",
                "submitted_at",
            }
        ):
            when = item.get("submitted_at")
            at: dt.datetime | None = None
            if when is not None:
                if not isinstance(when, str):
                    return _problem(N_("answer.evidence_time"), code, value=str(when))
                try:
                    at = dt.datetime.fromisoformat(when)
                except ValueError:
                    return _problem(N_("answer.evidence_time"), code, value=when)
                if at.tzinfo is None:
                    at = at.replace(tzinfo=VIETNAM_TZ)
            items.append(Evidence(str(item["name"]), at))
        else:
            return _problem(N_("answer.evidence_shape"), code)
    return tuple(items)


_ANSWER_FIELDS = frozenset({"value", "evidence", "not_applicable", "reason", "appraised_points"})


def parse_answer(indicator: Indicator, raw: object) -> Answer | list[AnswerProblem]:
    """One answer object of the answers file (`{"value": …, "evidence": […], …}`)."""
    code = indicator.code
    if not isinstance(raw, Mapping):
        return [_problem(N_("answer.not_object"), code)]
    problems: list[AnswerProblem] = [
        _problem(N_("answer.unknown_field"), code, field=str(k), allowed=", ".join(sorted(_ANSWER_FIELDS)))
        for k in raw
        if k not in _ANSWER_FIELDS
    ]
    na = raw.get("not_applicable", False)
    if not isinstance(na, bool):
        problems.append(_problem(N_("answer.flag_type"), code, field="not_applicable"))
        na = False
    if na and not indicator.allows_not_applicable:
        problems.append(_problem(N_("answer.na_not_allowed"), code))
    value: AnswerValue | None = None
    if raw.get("value") is not None:
        parsed = parse_value(indicator, raw["value"])
        if isinstance(parsed, AnswerProblem):
            problems.append(parsed)
        else:
            value = parsed
    evidence: tuple[Evidence, ...] = ()
    if "evidence" in raw:
        ev = _evidence(raw["evidence"], code)
        if isinstance(ev, AnswerProblem):
            problems.append(ev)
        else:
            evidence = ev
    appraised: Decimal | None = None
    if raw.get("appraised_points") is not None:
        appraised = _number(raw["appraised_points"])
        if appraised is None or appraised < ZERO or appraised > indicator.max_points:
            problems.append(
                _problem(
                    N_("answer.points_range"),
                    code,
                    value=str(raw["appraised_points"]),
                    max=plain(indicator.max_points),
                )
            )
            appraised = None
    reason = raw.get("reason")
    if reason is not None and not isinstance(reason, str):
        problems.append(_problem(N_("answer.flag_type"), code, field="reason"))
        reason = None
    if problems:
        return problems
    return Answer(value, bool(na), evidence, appraised, reason)


def parse_answers(framework: Framework, document: object) -> dict[str, Answer]:
    """The answers file `{"answers": {"<code>": {...}}}`, all problems reported at once."""
    if not isinstance(document, Mapping) or not isinstance(document.get("answers"), Mapping):
        raise AnswerError([AnswerProblem(N_("answer.document_shape"), None)])
    problems: list[AnswerProblem] = []
    answers: dict[str, Answer] = {}
    for code, raw in document["answers"].items():
        indicator = framework.indicator(str(code))
        if indicator is None:
            problems.append(AnswerProblem(N_("answer.unknown_code"), str(code), {"framework": framework.id}))
            continue
        parsed = parse_answer(indicator, raw)
        if isinstance(parsed, list):
            problems.extend(parsed)
        else:
            answers[indicator.code] = parsed
    if problems:
        raise AnswerError(problems)
    return answers


def encode_value(value: AnswerValue) -> object:
    """An answer value as JSON-ready data that `decode_value` reads back exactly (numbers as text)."""
    if isinstance(value, bool | str):
        return value
    if isinstance(value, Decimal):
        return plain(value)
    if isinstance(value, Ratio):
        return {"numerator": plain(value.numerator), "denominator": plain(value.denominator)}
    return sorted(value)


def decode_value(indicator: Indicator, raw: object) -> AnswerValue | None:
    """A stored value for `indicator`; None when it no longer fits (the framework changed)."""
    if isinstance(raw, str) and indicator.answer.type not in (AnswerType.CHOICE,):
        try:
            raw = Decimal(raw)
        except InvalidOperation:
            return None
    elif isinstance(raw, Mapping):
        try:
            raw = {k: Decimal(str(v)) for k, v in raw.items()}
        except InvalidOperation:
            return None
    parsed = parse_value(indicator, raw)
    return None if isinstance(parsed, AnswerProblem) else parsed
