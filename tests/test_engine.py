"""Scoring rules: methods, evidence, appraisal, not applicable (peer average / exclusion), maturity, gaps."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from scoring.answers import VIETNAM_TZ, Answer, Evidence
from scoring.engine import Rules, Status, score, score_units
from scoring.model import Framework, NotApplicablePolicy, Ratio
from scoring.numbers import total
from tests.conftest import D

EV = (Evidence("kh.pdf"),)


def test_rate_times_max_capped(make_framework: Callable[..., Framework]) -> None:
    fw = make_framework()
    assert score(fw, {"1.1": Answer(D("70.4"))}).indicator("1.1").score == D("14.08")
    assert score(fw, {"1.1": Answer(D(100))}).indicator("1.1").score == 20
    assert score(fw, {"1.1": Answer(Ratio(D(12), D(30)))}).indicator("1.1").score == 8
    third = score(fw, {"1.1": Answer(Ratio(D(1), D(3)))}).indicator("1.1").score
    assert D("6.6666666") < third < D("6.6666667")


def test_target_rate_full_points_at_target(make_framework: Callable[..., Framework]) -> None:
    def target(d: dict[str, Any]) -> None:
        d["groups"][0]["indicators"][0]["scoring"] = {"method": "rate", "target": 80}

    fw = make_framework(target)
    assert score(fw, {"1.1": Answer(D(80))}).indicator("1.1").score == 20
    assert score(fw, {"1.1": Answer(D(95))}).indicator("1.1").score == 20
    assert score(fw, {"1.1": Answer(D(40))}).indicator("1.1").score == 10


def test_yes_no_and_count_tiers(make_framework: Callable[..., Framework]) -> None:
    fw = make_framework()
    assert score(fw, {"1.2": Answer(True, evidence=EV)}).indicator("1.2").score == 30
    assert score(fw, {"1.2": Answer(False)}).indicator("1.2").score == 0
    for meetings, points in [(6, 20), (4, 20), (3, 15), (2, 10), (1, 5), (0, 0)]:
        assert score(fw, {"2.1": Answer(D(meetings))}).indicator("2.1").score == points


def test_self_assessed_points_are_clamped(make_framework: Callable[..., Framework]) -> None:
    fw = make_framework()
    ind = fw.indicator("2.2")
    assert ind is not None
    assert ind.points(D(45)) == 30
    assert ind.points(D(-3)) == 0
    assert score(fw, {"2.2": Answer(D("12.5"))}).indicator("2.2").score == D("12.5")


def test_required_evidence_missing_scores_zero_but_keeps_the_claim(
    make_framework: Callable[..., Framework],
) -> None:
    fw = make_framework()
    r = score(fw, {"1.2": Answer(True)}).indicator("1.2")
    assert (r.score, r.status, r.claimed, r.reason) == (
        0,
        Status.EVIDENCE_MISSING,
        30,
        "score.reason.evidence_missing",
    )
    # a "no" claims nothing, so no evidence is needed
    assert score(fw, {"1.2": Answer(False)}).indicator("1.2").status is Status.ANSWERED
    # a preview may ignore the rule
    assert score(fw, {"1.2": Answer(True)}, Rules(require_evidence=False)).indicator("1.2").score == 30


def test_evidence_after_the_deadline_scores_zero(make_framework: Callable[..., Framework]) -> None:
    fw = make_framework()
    deadline = dt.datetime(2027, 1, 15, 17, 0, tzinfo=VIETNAM_TZ)
    late = Answer(True, evidence=(Evidence("kh.pdf", deadline + dt.timedelta(minutes=1)),))
    on_time = Answer(True, evidence=(Evidence("kh.pdf", deadline),))
    mixed = Answer(True, evidence=(*late.evidence, *on_time.evidence))
    rules = Rules(evidence_deadline=deadline)
    assert score(fw, {"1.2": late}, rules).indicator("1.2").status is Status.EVIDENCE_LATE
    assert score(fw, {"1.2": late}, rules).indicator("1.2").score == 0
    assert score(fw, {"1.2": on_time}, rules).indicator("1.2").score == 30
    assert score(fw, {"1.2": mixed}, rules).indicator("1.2").score == 30


def test_appraised_points_replace_self_assessment(make_framework: Callable[..., Framework]) -> None:
    fw = make_framework()
    r = score(fw, {"1.2": Answer(True, evidence=EV, appraised_points=D(15))}).indicator("1.2")
    assert (r.score, r.reason) == (15, "score.reason.appraised")
    # evidence rules still apply to appraised points
    assert score(fw, {"1.2": Answer(True, appraised_points=D(15))}).indicator("1.2").score == 0


def test_not_applicable_gets_the_peer_average(make_framework: Callable[..., Framework]) -> None:
    fw = make_framework()
    units = {
        "a": {"2.2": Answer(D(30))},
        "b": {"2.2": Answer(D(20))},
        "c": {"2.2": Answer(D(10), not_applicable=False)},
        "d": {"2.2": Answer(None, not_applicable=True)},
        "e": {},  # did not answer: not a peer
    }
    reports = score_units(fw, units)
    r = reports["d"].indicator("2.2")
    assert (r.status, r.score, r.reason, r.reason_params) == (
        Status.NOT_APPLICABLE,
        20,
        "score.reason.peer_average",
        {"peers": "3"},
    )
    assert reports["d"].total == 20
    assert reports["e"].indicator("2.2").status is Status.MISSING
    # alone, the average is pending and scores 0 for now
    alone = score(fw, units["d"]).indicator("2.2")
    assert (alone.score, alone.reason) == (0, "score.reason.peer_pending")


def test_not_applicable_with_no_peer_scores_zero(make_framework: Callable[..., Framework]) -> None:
    fw = make_framework()
    reports = score_units(fw, {"a": {"2.2": Answer(None, not_applicable=True)}, "b": {}})
    assert reports["a"].indicator("2.2").reason == "score.reason.no_peers"


def test_not_applicable_excluded_from_max(make_framework: Callable[..., Framework]) -> None:
    fw = make_framework(not_applicable="exclude")
    report = score(fw, {"2.2": Answer(None, not_applicable=True), "1.1": Answer(D(100))})
    assert report.max == 70 and report.total == 20
    assert report.groups[1].max == 20
    overridden = score(
        fw, {"2.2": Answer(None, not_applicable=True)}, Rules(not_applicable=NotApplicablePolicy.PEER_AVERAGE)
    )
    assert overridden.max == 100


def test_not_applicable_ignored_where_the_framework_forbids_it(
    make_framework: Callable[..., Framework],
) -> None:
    fw = make_framework()
    r = score(fw, {"1.1": Answer(D(50), not_applicable=True)}).indicator("1.1")
    assert (r.status, r.score) == (Status.ANSWERED, 10)


def test_group_and_total_roll_up(make_framework: Callable[..., Framework]) -> None:
    fw = make_framework()
    report = score(
        fw,
        {
            "1.1": Answer(D("70.4")),
            "1.2": Answer(True, evidence=EV),
            "2.1": Answer(D(3)),
            "2.2": Answer(D(7)),
        },
    )
    assert [g.score for g in report.groups] == [D("44.08"), D(22)]
    assert report.total == D("66.08") and report.max == 100
    assert report.percent == D("66.08")


def test_next_band_gap_lists_the_biggest_gains(make_framework: Callable[..., Framework]) -> None:
    bands = [
        {"id": "tot", "label": "Tốt", "min": 80},
        {"id": "kha", "label": "Khá", "min": 50},
        {"id": "yeu", "label": "Yếu", "min": 0},
    ]
    fw = make_framework(classification={"basis": "points", "bands": bands})
    report = score(fw, {"1.1": Answer(D(50)), "1.2": Answer(True), "2.1": Answer(D(2))})
    assert report.total == 20 and report.band is not None and report.band.id == "yeu"
    gap = report.next_band
    assert gap is not None and gap.band.id == "kha" and gap.points_needed == 30
    assert [(g.code, g.points) for g in gap.indicators] == [("1.2", 30)]
    assert [g.code for g in report.top_gains(3)] == ["1.2", "2.2", "1.1"]


def test_maturity_gate_rule(maturity: Framework) -> None:
    ev = (Evidence("qd.pdf"),)
    khoi_dong = {
        "1.1": Answer("pho_chu_tich", evidence=ev),
        "1.2": Answer(True, evidence=ev),
        "2.2": Answer(Ratio(D(6), D(10))),
        "2.3": Answer(True),
        "3.2": Answer(D(55)),
    }
    report = score(maturity, khoi_dong)
    assert report.level is not None and report.level.id == "khoi_dong"
    assert report.next_level is not None and report.next_level.level.id == "ket_noi"
    assert {u.code for u in report.next_level.unmet} == {"1.3", "2.1", "3.1", "3.2", "4.2"}

    ket_noi = {
        **khoi_dong,
        "1.3": Answer(D(1), evidence=ev),
        "2.1": Answer(D(50)),
        "3.1": Answer(D(20)),
        "3.2": Answer(D(80)),
        "4.2": Answer(True),
    }
    assert score(maturity, ket_noi).level.id == "ket_noi"  # type: ignore[union-attr]

    # co_ban needs every co_ban gate; 1.1 must now be the chairman (10 points), 2.2 at 100 %
    co_ban = {
        **ket_noi,
        "1.3": Answer(D(2), evidence=ev),
        "2.1": Answer(D(70)),
        "3.1": Answer(D(40)),
        "3.2": Answer(D(90)),
        "3.4": Answer(frozenset({"to_chuc"})),
        "4.1": Answer(D(50)),
    }
    r = score(maturity, co_ban)
    assert r.level.id == "ket_noi"  # type: ignore[union-attr]
    assert {u.code for u in r.next_level.unmet} == {"1.1", "2.2"}  # type: ignore[union-attr]
    co_ban.update({"1.1": Answer("chu_tich", evidence=ev), "2.2": Answer(Ratio(D(10), D(10)))})
    assert score(maturity, co_ban).level.id == "co_ban"  # type: ignore[union-attr]

    # meeting a higher level's gates does not help while a lower level is unmet
    skip = {**co_ban, "1.2": Answer(False)}
    r = score(maturity, skip)
    assert r.level is None and r.next_level is not None and r.next_level.level.id == "khoi_dong"


def test_maturity_evidence_missing_means_not_met(maturity: Framework) -> None:
    answers = {
        "1.1": Answer("chu_tich"),
        "1.2": Answer(True, evidence=(Evidence("x"),)),
        "2.2": Answer(D(60)),
        "2.3": Answer(True),
        "3.2": Answer(D(60)),
    }
    r = score(maturity, answers)
    assert r.level is None
    assert [(u.code, u.status) for u in r.next_level.unmet] == [("1.1", Status.EVIDENCE_MISSING)]  # type: ignore[union-attr]


def test_maturity_not_applicable_counts_as_met(maturity: Framework) -> None:
    ev = (Evidence("qd.pdf"),)
    answers = {
        "1.1": Answer("chu_tich", evidence=ev),
        "1.2": Answer(True, evidence=ev),
        "2.2": Answer(D(60)),
        "2.3": Answer(True),
        "3.2": Answer(D(85)),
        "1.3": Answer(D(1), evidence=ev),
        "2.1": Answer(D(50)),
        "3.1": Answer(None, not_applicable=True),
        "4.2": Answer(True),
    }
    r = score(maturity, answers)
    assert r.level is not None and r.level.id == "ket_noi"
    # the example excludes not-applicable indicators from the max
    assert r.max == 120


def test_evidence_flagged_late_scores_zero(make_framework: Callable[..., Framework]) -> None:
    fw = make_framework()
    late = Answer(True, evidence=(Evidence("kh.pdf", late=True),))
    assert score(fw, {"1.2": late}).indicator("1.2").status is Status.EVIDENCE_LATE
    mixed = Answer(True, evidence=(Evidence("kh.pdf", late=True), Evidence("bc.pdf")))
    assert score(fw, {"1.2": mixed}).indicator("1.2").score == 30


def test_unanswered_indicators_carry_their_own_frameworks_maximum(
    make_framework: Callable[..., Framework],
) -> None:
    """Unanswered results are built once per indicator and reused: never across frameworks that share
    indicator codes with different maxima (a framework revised under the same codes)."""

    def bigger(d: dict[str, Any]) -> None:
        d["groups"][0]["indicators"][0]["max_points"] = 25
        d["groups"][0]["max_points"] += 5
        if "max_points" in d:
            d["max_points"] += 5

    first, revised = make_framework(), make_framework(bigger)
    for _ in range(2):  # the second time from what the first built
        old, new = score(first, {}), score(revised, {})
        assert old.indicator("1.1").full_max == 20 and new.indicator("1.1").full_max == 25
        assert old.indicator("1.1").status is Status.MISSING and old.indicator("1.1").score == 0
        assert new.max == old.max + 5
    answered = score(revised, {"1.1": Answer(D(100))})
    assert answered.indicator("1.1").score == 25 and score(revised, {}).indicator("1.1").score == 0


def test_group_sums_keep_every_digit_that_adding_each_indicator_gives(
    make_framework: Callable[..., Framework],
) -> None:
    """Group sums skip the zeros of unanswered indicators; the sums (digits and all, as exports and
    appraisal records print them) stay exactly what adding every indicator's score gives."""
    fw = make_framework()
    for answers in (
        {},
        {"1.1": Answer(D(0))},
        {"2.2": Answer(D("0.0"))},  # a group whose only answer scores zero, to one decimal
        {"1.1": Answer(Ratio(D(1), D(3))), "2.2": Answer(D("12.50"))},
    ):
        report = score(fw, answers)
        for g in report.groups:
            members = [r for r in report.indicators if r.group_id == g.id]
            assert str(g.score) == str(total(r.score for r in members))
            assert str(g.max) == str(total(r.max for r in members))
        assert str(report.total) == str(total(r.score for r in report.indicators))
