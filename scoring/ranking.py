"""rank(entries) → the published order: by total, highest first; ties share a rank (1, 2, 2, 4).

Totals are compared as published (2 decimals), so two units whose scores print the same share a
rank; a unit its reviewer did not appraise is ranked with 0 (BRVT QĐ 3710); communes can also be
ranked within their district, where districts exist.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from scoring.engine import Report
from scoring.numbers import ZERO, round_score


@dataclass(frozen=True, slots=True)
class RankEntry:
    unit_id: str
    name: str
    total: Decimal
    appraised: bool = True
    district: str | None = None

    @classmethod
    def from_report(
        cls,
        unit_id: str,
        report: Report,
        *,
        name: str | None = None,
        appraised: bool = True,
        district: str | None = None,
    ) -> RankEntry:
        return cls(unit_id, name or unit_id, report.total, appraised, district)


@dataclass(frozen=True, slots=True)
class RankRow:
    unit_id: str
    name: str
    total: Decimal  # the total that counts: 0 for a unit that was not appraised
    rank: int
    appraised: bool
    district: str | None = None
    district_rank: int | None = None


def _competition_ranks(totals: Sequence[Decimal]) -> list[int]:
    """Ranks for totals already sorted highest first: 1, 2, 2, 4."""
    ranks: list[int] = []
    for i, t in enumerate(totals):
        ranks.append(ranks[-1] if i and t == totals[i - 1] else i + 1)
    return ranks


def rank(entries: Iterable[RankEntry]) -> tuple[RankRow, ...]:
    counted = [(e, round_score(e.total) if e.appraised else ZERO) for e in entries]
    counted.sort(key=lambda et: (-et[1], et[0].name, et[0].unit_id))
    overall = _competition_ranks([t for _, t in counted])
    district_ranks: dict[str, int] = {}
    by_district: dict[str, list[tuple[RankEntry, Decimal]]] = {}
    for e, t in counted:
        if e.district is not None:
            by_district.setdefault(e.district, []).append((e, t))
    for members in by_district.values():
        for (e, _), r in zip(members, _competition_ranks([t for _, t in members]), strict=True):
            district_ranks[e.unit_id] = r
    return tuple(
        RankRow(e.unit_id, e.name, t, r, e.appraised, e.district, district_ranks.get(e.unit_id))
        for (e, t), r in zip(counted, overall, strict=True)
    )
