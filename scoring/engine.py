"""score(framework, answers, rules) → Report: the one place where points are decided.

Every channel's live preview, the reviewers' final results and the published ranking go through
here, so the decisions' rules are applied in exactly one way:

- required evidence missing → 0; evidence supplied only after the deadline → 0 (BRVT QĐ 3710);
- appraised points, where a reviewer gave them, replace the self-assessed points;
- "not applicable" → the average of the same-level units that scored the indicator (`score_units`),
  or the indicator leaves the max, as the framework says;
- totals roll up to groups and the framework; the index is total ÷ max; bands and maturity levels
  come from the framework.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from types import MappingProxyType
from typing import TypeVar

from scoring.answers import Answer, Answers
from scoring.messages import N_
from scoring.model import (
    AnswerType,
    Band,
    Framework,
    FrameworkKind,
    Indicator,
    MaturityLevel,
    NotApplicablePolicy,
    measure,
)
from scoring.numbers import ZERO, add, clamp, divide, percent_of, ratio_of, sub, total

K = TypeVar("K")


class Status(StrEnum):
    ANSWERED = "answered"
    MISSING = "missing"
    NOT_APPLICABLE = "not_applicable"
    EVIDENCE_MISSING = "evidence_missing"
    EVIDENCE_LATE = "evidence_late"


@dataclass(frozen=True, slots=True)
class Rules:
    """How strictly the decisions' evidence rules apply to this scoring run."""

    require_evidence: bool = True
    evidence_deadline: dt.datetime | None = None
    not_applicable: NotApplicablePolicy | None = None  # None: as the framework says


@dataclass(frozen=True, slots=True)
class IndicatorResult:
    code: str
    group_id: str
    score: Decimal
    max: Decimal  # the max counted for this unit (0 when a not-applicable indicator is excluded)
    status: Status
    reason: str | None = None
    reason_params: Mapping[str, str] = field(default_factory=dict)
    claimed: Decimal | None = None  # points the answer earns before the evidence rules
    full_max: Decimal = ZERO

    @property
    def gain(self) -> Decimal:
        """Points the unit can still win here by answering or supplying evidence (none when N/A)."""
        if self.status is Status.NOT_APPLICABLE:
            return ZERO
        return sub(self.max, self.score)


@dataclass(frozen=True, slots=True)
class GroupResult:
    id: str
    name: str
    score: Decimal
    max: Decimal


@dataclass(frozen=True, slots=True)
class Gain:
    code: str
    points: Decimal


@dataclass(frozen=True, slots=True)
class BandGap:
    band: Band
    points_needed: Decimal
    indicators: tuple[Gain, ...]  # the fewest indicators, biggest gain first, that close the gap


@dataclass(frozen=True, slots=True)
class Unmet:
    code: str
    level_id: str
    threshold: Decimal
    status: Status


@dataclass(frozen=True, slots=True)
class LevelGap:
    level: MaturityLevel
    unmet: tuple[Unmet, ...]


@dataclass(frozen=True)
class Report:
    framework_key: str
    indicators: tuple[IndicatorResult, ...]
    groups: tuple[GroupResult, ...]
    total: Decimal
    max: Decimal
    index: Decimal  # total ÷ max, exact, 0–1
    band: Band | None
    level: MaturityLevel | None
    next_band: BandGap | None
    next_level: LevelGap | None
    _by_code: Mapping[str, IndicatorResult] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_code", {r.code: r for r in self.indicators})

    @property
    def percent(self) -> Decimal:
        return percent_of(self.total, self.max)

    def indicator(self, code: str) -> IndicatorResult:
        return self._by_code[code]

    def count(self, status: Status) -> int:
        return sum(1 for r in self.indicators if r.status is status)

    def top_gains(self, n: int = 3) -> tuple[Gain, ...]:
        """The `n` indicators that would gain the most points, in framework order on ties."""
        ranked = sorted(
            (Gain(r.code, r.gain) for r in self.indicators if r.gain > ZERO),
            key=lambda g: -g.points,
        )
        return tuple(ranked[:n])


@dataclass(frozen=True, slots=True)
class _Raw:
    """An indicator's outcome before not-applicable indicators are resolved."""

    score: Decimal
    status: Status
    reason: str | None
    claimed: Decimal | None


_NO_PARAMS: Mapping[str, str] = MappingProxyType({})
_PEER_STATUSES = frozenset({Status.ANSWERED, Status.EVIDENCE_MISSING, Status.EVIDENCE_LATE})
_MISSING = _Raw(ZERO, Status.MISSING, None, None)
_NA = _Raw(ZERO, Status.NOT_APPLICABLE, None, None)


def _evidence_status(indicator: Indicator, answer: Answer, rules: Rules) -> Status | None:
    if not (rules.require_evidence and indicator.evidence.required):
        return None
    if not answer.evidence:
        return Status.EVIDENCE_MISSING
    deadline = rules.evidence_deadline
    if all(
        e.late or (deadline is not None and e.submitted_at is not None and e.submitted_at > deadline)
        for e in answer.evidence
    ):
        return Status.EVIDENCE_LATE
    return None


def _assess_one(indicator: Indicator, answer: Answer | None, rules: Rules) -> _Raw:
    if answer is None:
        return _MISSING
    if answer.not_applicable and indicator.allows_not_applicable:
        return _NA
    if answer.appraised_points is not None:
        claimed = clamp(answer.appraised_points, indicator.max_points)
        reason: str | None = N_("score.reason.appraised")
    elif answer.value is not None:
        claimed = indicator.points(answer.value)
        reason = None
    else:
        return _MISSING
    if claimed > ZERO:
        problem = _evidence_status(indicator, answer, rules)
        if problem is Status.EVIDENCE_MISSING:
            return _Raw(ZERO, problem, N_("score.reason.evidence_missing"), claimed)
        if problem is Status.EVIDENCE_LATE:
            return _Raw(ZERO, problem, N_("score.reason.evidence_late"), claimed)
    return _Raw(claimed, Status.ANSWERED, reason, claimed)


def _assess(framework: Framework, answers: Answers, rules: Rules) -> list[_Raw]:
    get = answers.get
    return [_assess_one(ind, get(ind.code), rules) for ind in framework.indicators]


def _policy(framework: Framework, rules: Rules) -> NotApplicablePolicy:
    return rules.not_applicable or framework.not_applicable


def _unanswered_results(framework: Framework) -> tuple[IndicatorResult, ...]:
    """Each indicator's result while unanswered: most of a unit's indicators are, until late in its
    assessment, and the running total after every answer would otherwise build them again."""
    return tuple(
        IndicatorResult(
            ind.code,
            ind.group_id,
            ZERO,
            ind.max_points,
            Status.MISSING,
            None,
            _NO_PARAMS,
            None,
            ind.max_points,
        )
        for ind in framework.indicators
    )


def _indicator_results(
    framework: Framework,
    raws: Sequence[_Raw],
    policy: NotApplicablePolicy,
    peer_averages: Mapping[str, tuple[Decimal, int]] | None,
) -> list[IndicatorResult]:
    results: list[IndicatorResult] = []
    unanswered = framework.derived("unanswered_results", _unanswered_results)
    for n, (ind, raw) in enumerate(zip(framework.indicators, raws, strict=True)):
        full = ind.max_points
        if raw is _MISSING:
            results.append(unanswered[n])
            continue
        if raw.status is not Status.NOT_APPLICABLE:
            results.append(
                IndicatorResult(
                    ind.code,
                    ind.group_id,
                    raw.score,
                    full,
                    raw.status,
                    raw.reason,
                    _NO_PARAMS,
                    raw.claimed,
                    full,
                )
            )
            continue
        if policy is NotApplicablePolicy.EXCLUDE:
            results.append(
                IndicatorResult(
                    ind.code,
                    ind.group_id,
                    ZERO,
                    ZERO,
                    Status.NOT_APPLICABLE,
                    N_("score.reason.excluded"),
                    _NO_PARAMS,
                    None,
                    full,
                )
            )
            continue
        peer = peer_averages.get(ind.code) if peer_averages is not None else None
        params: Mapping[str, str] = _NO_PARAMS
        if peer_averages is None:
            points, reason = ZERO, N_("score.reason.peer_pending")
        elif peer is None:
            points, reason = ZERO, N_("score.reason.no_peers")
        else:
            points, reason = peer[0], N_("score.reason.peer_average")
            params = {"peers": str(peer[1])}
        results.append(
            IndicatorResult(
                ind.code, ind.group_id, points, full, Status.NOT_APPLICABLE, reason, params, None, full
            )
        )
    return results


def _met(indicator: Indicator, answer: Answer | None, result: IndicatorResult, threshold: Decimal) -> bool:
    if result.status is Status.NOT_APPLICABLE:
        return True
    if result.status is not Status.ANSWERED or answer is None:
        return False
    if answer.appraised_points is not None and indicator.answer.type is AnswerType.POINTS:
        return answer.appraised_points >= threshold
    if answer.value is None:
        return False
    return measure(indicator.answer, answer.value) >= threshold


def _maturity(
    framework: Framework, answers: Answers, results: Sequence[IndicatorResult]
) -> tuple[MaturityLevel | None, LevelGap | None]:
    reached: MaturityLevel | None = None
    for level in framework.levels:
        unmet = tuple(
            Unmet(ind.code, level.id, ind.gates[level.id], res.status)
            for ind, res in zip(framework.indicators, results, strict=True)
            if level.id in ind.gates and not _met(ind, answers.get(ind.code), res, ind.gates[level.id])
        )
        if unmet:
            return reached, LevelGap(level, unmet)
        reached = level
    return reached, None


def _band_gap(
    framework: Framework,
    results: Sequence[IndicatorResult],
    achieved: Decimal,
    max_points: Decimal,
    band: Band | None,
) -> BandGap | None:
    c = framework.classification
    if c is None:
        return None
    higher = [b for b in c.bands if band is None or b.min > band.min]
    if not higher:
        return None
    target = higher[-1]
    needed = sub(c.threshold_points(target, max_points), achieved)
    picked: list[Gain] = []
    covered = ZERO
    for r in sorted(results, key=lambda r: -r.gain):
        if covered >= needed or r.gain <= ZERO:
            break
        picked.append(Gain(r.code, r.gain))
        covered = add(covered, r.gain)
    return BandGap(target, needed, tuple(picked))


def _report(
    framework: Framework,
    answers: Answers,
    raws: Sequence[_Raw],
    rules: Rules,
    peer_averages: Mapping[str, tuple[Decimal, int]] | None,
) -> Report:
    results = _indicator_results(framework, raws, _policy(framework, rules), peer_averages)
    scores = {g.id: ZERO for g in framework.groups}
    maxima = dict(scores)
    for r in results:  # exact sums in framework order, as `total` adds
        if r.score is not ZERO:  # adding the ZERO that unanswered indicators score changes nothing
            scores[r.group_id] = add(scores[r.group_id], r.score)
        maxima[r.group_id] = add(maxima[r.group_id], r.max)
    groups = tuple(GroupResult(g.id, g.name, scores[g.id], maxima[g.id]) for g in framework.groups)
    achieved = total(g.score for g in groups)
    max_points = total(g.max for g in groups)
    c = framework.classification
    classified = c is not None and max_points > ZERO  # nothing to classify when every indicator is excluded
    band = c.band_for(achieved, max_points) if c is not None and classified else None
    level: MaturityLevel | None = None
    next_level: LevelGap | None = None
    if framework.kind is FrameworkKind.MATURITY:
        level, next_level = _maturity(framework, answers, results)
    return Report(
        framework_key=framework.key,
        indicators=tuple(results),
        groups=groups,
        total=achieved,
        max=max_points,
        index=ratio_of(achieved, max_points),
        band=band,
        level=level,
        next_band=_band_gap(framework, results, achieved, max_points, band) if classified else None,
        next_level=next_level,
    )


def score(
    framework: Framework,
    answers: Answers,
    rules: Rules = Rules(),
    peer_averages: Mapping[str, tuple[Decimal, int]] | None = None,
) -> Report:
    """One unit's report. Without `peer_averages` a not-applicable indicator scores 0 for now
    (status not applicable, reason "peer pending") until `score_units` sees the whole level."""
    return _report(framework, answers, _assess(framework, answers, rules), rules, peer_averages)


def peer_averages(framework: Framework, assessed: Sequence[Sequence[_Raw]]) -> dict[str, tuple[Decimal, int]]:
    """Per indicator: the average score of the units that scored it, and how many they were."""
    averages: dict[str, tuple[Decimal, int]] = {}
    for i, ind in enumerate(framework.indicators):
        scores = [raws[i].score for raws in assessed if raws[i].status in _PEER_STATUSES]
        if scores:
            averages[ind.code] = (divide(total(scores), Decimal(len(scores))), len(scores))
    return averages


def score_units(framework: Framework, units: Mapping[K, Answers], rules: Rules = Rules()) -> dict[K, Report]:
    """Reports for a whole set of same-level units, resolving "not applicable" from their peers."""
    assessed = {key: _assess(framework, answers, rules) for key, answers in units.items()}
    averages = peer_averages(framework, list(assessed.values()))
    return {key: _report(framework, units[key], raws, rules, averages) for key, raws in assessed.items()}
