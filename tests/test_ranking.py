"""Ranking: by total descending, shared ranks on ties, districts, unappraised units ranked with 0."""

from __future__ import annotations

from collections.abc import Callable

from scoring.answers import Answer
from scoring.engine import score_units
from scoring.model import Framework
from scoring.ranking import RankEntry, rank
from tests.conftest import D


def test_ties_share_a_rank_and_the_next_rank_is_skipped() -> None:
    rows = rank(
        [
            RankEntry("a", "A", D(90)),
            RankEntry("b", "B", D(80)),
            RankEntry("c", "C", D(80)),
            RankEntry("d", "D", D(70)),
        ]
    )
    assert [(r.unit_id, r.rank) for r in rows] == [("a", 1), ("b", 2), ("c", 2), ("d", 4)]


def test_totals_are_compared_as_published() -> None:
    rows = rank(
        [
            RankEntry("a", "A", D("85.3333333")),
            RankEntry("b", "B", D("85.334")),
            RankEntry("c", "C", D("85.336")),
        ]
    )
    assert [(r.unit_id, r.rank) for r in rows] == [("c", 1), ("a", 2), ("b", 2)]


def test_unappraised_units_are_ranked_with_zero() -> None:
    rows = rank(
        [RankEntry("a", "A", D(95), appraised=False), RankEntry("b", "B", D(10)), RankEntry("c", "C", D(0))]
    )
    assert [(r.unit_id, r.total, r.rank, r.appraised) for r in rows] == [
        ("b", 10, 1, True),
        ("a", 0, 2, False),
        ("c", 0, 2, True),
    ]


def test_communes_are_ranked_within_their_district() -> None:
    rows = rank(
        [
            RankEntry("x1", "X1", D(70), district="X"),
            RankEntry("y1", "Y1", D(90), district="Y"),
            RankEntry("x2", "X2", D(80), district="X"),
            RankEntry("y2", "Y2", D(60), district="Y"),
            RankEntry("x3", "X3", D(80), district="X"),
            RankEntry("p", "P", D(100)),
        ]
    )
    got = {r.unit_id: (r.rank, r.district_rank) for r in rows}
    assert got == {"p": (1, None), "y1": (2, 1), "x2": (3, 1), "x3": (3, 1), "x1": (5, 3), "y2": (6, 2)}


def test_rank_reports_of_a_whole_level(make_framework: Callable[..., Framework]) -> None:
    fw = make_framework()
    reports = score_units(
        fw,
        {
            "a": {"1.1": Answer(D(100)), "2.2": Answer(D(30))},
            "b": {"1.1": Answer(D(50)), "2.2": Answer(None, not_applicable=True)},
            "c": {"1.1": Answer(D(50)), "2.2": Answer(D(10))},
        },
    )
    rows = rank(RankEntry.from_report(k, r, name=k.upper()) for k, r in reports.items())
    # b: 10 + the average of a and c on 2.2 (20) = 30; c: 10 + 10 = 20
    assert [(r.unit_id, r.total, r.rank) for r in rows] == [("a", 50, 1), ("b", 30, 2), ("c", 20, 3)]
