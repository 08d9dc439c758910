"""The framework as typed, immutable data: what one scorecard (Bộ chỉ số) says.

Everything here is built by the loading gate (`scoring.gate`) from a YAML file and then only read.
Scoring methods carry their own arithmetic (`points`) and their "measure" (the number a maturity
threshold is compared with), so the engine never needs to switch on the method kind.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import TypeVar, cast

from scoring.numbers import ONE, ZERO, clamp, mul_div, percent_of, total

T = TypeVar("T")


class UnitLevel(StrEnum):
    PROVINCE = "province"
    DEPARTMENT = "department"
    DISTRICT = "district"
    COMMUNE = "commune"


class FrameworkKind(StrEnum):
    POINTS = "points"
    MATURITY = "maturity"


class AnswerType(StrEnum):
    YES_NO = "yes_no"
    PERCENTAGE = "percentage"
    RATIO = "ratio"
    COUNT = "count"
    AMOUNT = "amount"
    CHOICE = "choice"
    PARTS = "parts"
    POINTS = "points"


class NotApplicablePolicy(StrEnum):
    """What a "not applicable" indicator scores (Bà Rịa–Vũng Tàu QĐ 3710: peer average)."""

    PEER_AVERAGE = "peer_average"
    EXCLUDE = "exclude"


class BandBasis(StrEnum):
    POINTS = "points"
    PERCENT = "percent"


class EvidenceKind(StrEnum):
    DOCUMENT = "document"
    CITATION = "citation"
    SCREENSHOT = "screenshot"
    LINK = "link"
    PHOTO = "photo"


@dataclass(frozen=True, slots=True)
class Ratio:
    """A numerator over a denominator, as officials report it ("12/30")."""

    numerator: Decimal
    denominator: Decimal

    @property
    def percent(self) -> Decimal:
        return percent_of(self.numerator, self.denominator)


AnswerValue = bool | Decimal | Ratio | str | frozenset[str]


@dataclass(frozen=True, slots=True)
class Option:
    key: str
    label: str
    points: Decimal


@dataclass(frozen=True, slots=True)
class AnswerSpec:
    """How the official answers: the type and what the conversation needs to ask for it."""

    type: AnswerType
    unit: str | None = None
    numerator_label: str | None = None
    denominator_label: str | None = None
    options: tuple[Option, ...] = ()

    def option(self, key: str) -> Option | None:
        for opt in self.options:
            if opt.key == key:
                return opt
        return None


def measure(spec: AnswerSpec, value: AnswerValue) -> Decimal:
    """The one number an answer stands for: percent, count, amount, option points, parts checked."""
    if isinstance(value, bool):
        return ONE if value else ZERO
    if isinstance(value, Ratio):
        return value.percent
    if isinstance(value, Decimal):
        return value
    if isinstance(value, str):
        opt = spec.option(value)
        return opt.points if opt is not None else ZERO
    return total(opt.points for opt in spec.options if opt.key in value)


@dataclass(frozen=True, slots=True)
class YesNoMethod:
    """Có → max, Không → 0."""

    def points(self, spec: AnswerSpec, value: AnswerValue, max_points: Decimal) -> Decimal:
        return max_points if value is True else ZERO


@dataclass(frozen=True, slots=True)
class RateMethod:
    """Full points at `target` (100 % by default), proportional below it, capped at max. With
    `full_from`, full points already from there ("từ 80% trở lên: điểm tối đa; dưới 80%: tỷ lệ ×
    điểm tối đa"), proportional to `target` below it."""

    target: Decimal = Decimal(100)
    full_from: Decimal | None = None

    def points(self, spec: AnswerSpec, value: AnswerValue, max_points: Decimal) -> Decimal:
        m = measure(spec, value)
        if m >= self.target or (self.full_from is not None and m >= self.full_from):
            return max_points
        if m <= ZERO:
            return ZERO
        return mul_div(m, max_points, self.target)


@dataclass(frozen=True, slots=True)
class Tier:
    min: Decimal
    points: Decimal
    above: bool = False  # the measure must be above `min`, not just reach it ("trên 80%")

    def reached(self, measure: Decimal) -> bool:
        return measure > self.min if self.above else measure >= self.min


@dataclass(frozen=True, slots=True)
class TiersMethod:
    """Count or rate tiers, highest first: e.g. 4/3/2/1 meetings → 20/15/10/5, else 0."""

    tiers: tuple[Tier, ...]

    def points(self, spec: AnswerSpec, value: AnswerValue, max_points: Decimal) -> Decimal:
        m = measure(spec, value)
        for tier in self.tiers:
            if tier.reached(m):
                return tier.points
        return ZERO


@dataclass(frozen=True, slots=True)
class ChoiceMethod:
    """One option chosen; each option carries its points (a fraction of max is resolved at load)."""

    def points(self, spec: AnswerSpec, value: AnswerValue, max_points: Decimal) -> Decimal:
        return clamp(measure(spec, value), max_points)


@dataclass(frozen=True, slots=True)
class PartsMethod:
    """Sum of the parts checked (½ for attending, ½ for chairing), capped at max."""

    def points(self, spec: AnswerSpec, value: AnswerValue, max_points: Decimal) -> Decimal:
        return clamp(measure(spec, value), max_points)


@dataclass(frozen=True, slots=True)
class SelfAssessedMethod:
    """The official (and later the reviewer) enters points; clamped to [0, max]."""

    def points(self, spec: AnswerSpec, value: AnswerValue, max_points: Decimal) -> Decimal:
        return clamp(measure(spec, value), max_points)


ScoringMethod = YesNoMethod | RateMethod | TiersMethod | ChoiceMethod | PartsMethod | SelfAssessedMethod


@dataclass(frozen=True, slots=True)
class EvidenceRequirement:
    required: bool = False
    kinds: tuple[EvidenceKind, ...] = ()
    description: str | None = None


@dataclass(frozen=True, slots=True)
class Indicator:
    code: str
    group_id: str
    text: str
    max_points: Decimal
    answer: AnswerSpec
    method: ScoringMethod
    guidance: str | None = None
    method_text: str | None = None
    evidence: EvidenceRequirement = EvidenceRequirement()
    allows_not_applicable: bool = False
    gates: Mapping[str, Decimal] = field(default_factory=dict)

    def points(self, value: AnswerValue) -> Decimal:
        return clamp(self.method.points(self.answer, value, self.max_points), self.max_points)


@dataclass(frozen=True, slots=True)
class Group:
    id: str
    name: str
    max_points: Decimal
    indicator_codes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Band:
    """A classification band; `min` is inclusive, `below` exclusive (None: up to the top)."""

    id: str
    label: str
    min: Decimal
    below: Decimal | None


@dataclass(frozen=True, slots=True)
class Classification:
    basis: BandBasis
    bands: tuple[Band, ...]  # highest first
    scheme: str | None = None  # the decision preset it came from, if any

    def band_for(self, total: Decimal, max_points: Decimal) -> Band | None:
        value = total if self.basis is BandBasis.POINTS else percent_of(total, max_points)
        for band in self.bands:
            if value >= band.min:
                return band
        return None

    def threshold_points(self, band: Band, max_points: Decimal) -> Decimal:
        """The total that reaches `band`, in points whatever the basis."""
        if self.basis is BandBasis.POINTS:
            return band.min
        return mul_div(band.min, max_points, Decimal(100))


@dataclass(frozen=True, slots=True)
class MaturityLevel:
    id: str
    name: str


@dataclass(frozen=True, slots=True)
class Decision:
    number: str | None
    date: dt.date | None
    issuer: str | None = None


@dataclass(frozen=True, slots=True)
class Framework:
    id: str
    version: str
    title: str
    level: UnitLevel
    kind: FrameworkKind
    decision: Decision
    groups: tuple[Group, ...]
    indicators: tuple[Indicator, ...]
    classification: Classification | None
    not_applicable: NotApplicablePolicy = NotApplicablePolicy.PEER_AVERAGE
    levels: tuple[MaturityLevel, ...] = ()
    structure: str | None = None
    note: str | None = None
    spec_version: int = 1
    _by_code: Mapping[str, Indicator] = field(default_factory=dict, compare=False, repr=False)
    _positions: Mapping[str, int] = field(default_factory=dict, compare=False, repr=False)
    _codes: frozenset[str] = field(default=frozenset(), compare=False, repr=False)
    # Values other modules derive from the framework alone, computed once per framework (see `derived`)
    _derived: dict[str, object] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_code", {ind.code: ind for ind in self.indicators})
        object.__setattr__(self, "_positions", {ind.code: n for n, ind in enumerate(self.indicators, 1)})
        object.__setattr__(self, "_codes", frozenset(self._by_code))

    def derived(self, name: str, make: Callable[[Framework], T]) -> T:
        """`make(self)`, computed on first use and kept with this immutable framework."""
        try:
            return cast(T, self._derived[name])
        except KeyError:
            value = make(self)
            self._derived[name] = value
            return value

    @property
    def codes(self) -> frozenset[str]:
        """Every indicator's code."""
        return self._codes

    def position(self, code: str) -> int:
        """The indicator's place in the framework, from 1 ("câu 5/62")."""
        return self._positions[code]

    @property
    def max_points(self) -> Decimal:
        return total(g.max_points for g in self.groups)

    def indicator(self, code: str) -> Indicator | None:
        return self._by_code.get(code)

    def group(self, group_id: str) -> Group | None:
        for g in self.groups:
            if g.id == group_id:
                return g
        return None

    @property
    def key(self) -> str:
        return f"{self.id}@{self.version}"
