"""Property tests: bounds, monotonicity, sums, and export → import losing nothing."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scoring.answers import Answer, Evidence
from scoring.engine import Status, score, score_units
from scoring.export import dump_framework, framework_data
from scoring.gate import build_framework, load_framework
from scoring.model import AnswerType, Framework, Ratio
from scoring.numbers import total

POINTS = st.decimals(min_value=Decimal("0.5"), max_value=Decimal(60), places=2)


@st.composite
def indicators(draw: st.DrawFn, code: str) -> dict[str, Any]:
    max_points = draw(POINTS)
    kind = draw(
        st.sampled_from(["yes_no", "percentage", "ratio", "count", "amount", "choice", "parts", "points"])
    )
    ind: dict[str, Any] = {"code": code, "text": f"Chỉ tiêu {code} đủ dài", "max_points": str(max_points)}
    if draw(st.booleans()):
        ind["guidance"] = draw(st.text(min_size=1, max_size=40).filter(lambda s: s.strip() != ""))
    if kind == "yes_no":
        ind["answer"], ind["scoring"] = "yes_no", "yes_no"
    elif kind in ("percentage", "ratio"):
        ind["answer"] = {
            "type": kind,
            **({"numerator_label": "Tử", "denominator_label": "Mẫu"} if kind == "ratio" else {}),
        }
        if draw(st.booleans()):
            ind["scoring"] = {
                "method": "rate",
                "target": str(draw(st.decimals(min_value=1, max_value=100, places=1))),
            }
        else:
            mins = sorted(
                draw(
                    st.lists(
                        st.decimals(min_value=0, max_value=100, places=1), min_size=1, max_size=4, unique=True
                    )
                ),
                reverse=True,
            )
            pts = sorted(
                (draw(st.decimals(min_value=0, max_value=max_points, places=2)) for _ in mins), reverse=True
            )
            ind["scoring"] = {
                "method": "tiers",
                "tiers": [{"min": str(m), "points": str(p)} for m, p in zip(mins, pts, strict=True)],
            }
    elif kind in ("count", "amount"):
        ind["answer"] = {"type": kind, "unit": "đơn vị"}
        ind["scoring"] = {"method": "rate", "target": str(draw(st.integers(min_value=1, max_value=1000)))}
    elif kind == "choice":
        n = draw(st.integers(min_value=1, max_value=4))
        ind["answer"] = {
            "type": "choice",
            "options": [
                {"key": f"o{i}", "label": f"Lựa chọn {i}", "fraction": str(Decimal(i) / n)}
                for i in range(n + 1)
            ],
        }
        ind["scoring"] = "choice"
    elif kind == "parts":
        ind["answer"] = {
            "type": "parts",
            "options": [
                {"key": "a", "label": "Dự họp", "fraction": "0.5"},
                {"key": "b", "label": "Chủ trì", "fraction": "0.5"},
            ],
        }
        ind["scoring"] = "parts"
    else:
        ind["answer"], ind["scoring"] = "points", "self_assessed"
    if draw(st.booleans()):
        ind["evidence"] = {"required": True, "kinds": ["document"], "description": "Văn bản"}
    if draw(st.booleans()):
        ind["not_applicable"] = True
    return ind


@st.composite
def frameworks(draw: st.DrawFn) -> Framework:
    groups = []
    for g in range(draw(st.integers(min_value=1, max_value=3))):
        inds = [
            draw(indicators(f"{g + 1}.{i + 1}")) for i in range(draw(st.integers(min_value=1, max_value=4)))
        ]
        groups.append({"id": str(g + 1), "name": f"Nhóm {g + 1}", "indicators": inds})
    data = {
        "spec_version": 1,
        "id": "prop",
        "version": "1",
        "title": "Khung sinh ngẫu nhiên",
        "level": draw(st.sampled_from(["commune", "district", "department"])),
        "not_applicable": draw(st.sampled_from(["peer_average", "exclude"])),
        "decision": {"number": "9/QĐ-UBND"},
        "groups": groups,
    }
    if draw(st.booleans()):
        data["classification"] = {"scheme": "brvt-3710-percent"}
    return build_framework(data, "prop.yaml").framework


def value_for(draw: st.DrawFn, fw: Framework, code: str) -> Any:
    ind = fw.indicator(code)
    assert ind is not None
    t = ind.answer.type
    if t is AnswerType.YES_NO:
        return draw(st.booleans())
    if t is AnswerType.PERCENTAGE:
        return draw(st.decimals(min_value=0, max_value=100, places=2))
    if t is AnswerType.RATIO:
        den = draw(st.integers(min_value=1, max_value=10_000))
        return Ratio(Decimal(draw(st.integers(min_value=0, max_value=den))), Decimal(den))
    if t in (AnswerType.COUNT, AnswerType.AMOUNT):
        return Decimal(draw(st.integers(min_value=0, max_value=5000)))
    if t is AnswerType.CHOICE:
        return draw(st.sampled_from([o.key for o in ind.answer.options]))
    if t is AnswerType.PARTS:
        return frozenset(draw(st.lists(st.sampled_from([o.key for o in ind.answer.options]), unique=True)))
    return draw(st.decimals(min_value=0, max_value=ind.max_points, places=2))


@st.composite
def answer_sets(draw: st.DrawFn, fw: Framework) -> dict[str, Answer]:
    answers: dict[str, Answer] = {}
    for ind in fw.indicators:
        choice = draw(st.sampled_from(["value", "value", "skip", "na"]))
        if choice == "skip":
            continue
        if choice == "na":
            answers[ind.code] = Answer(None, not_applicable=True)
            continue
        evidence = (Evidence("x.pdf"),) if draw(st.booleans()) else ()
        answers[ind.code] = Answer(value_for(draw, fw, ind.code), evidence=evidence)
    return answers


@st.composite
def framework_and_answers(draw: st.DrawFn) -> tuple[Framework, list[dict[str, Answer]]]:
    fw = draw(frameworks())
    return fw, [draw(answer_sets(fw)) for _ in range(draw(st.integers(min_value=1, max_value=4)))]


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(framework_and_answers())
def test_scores_stay_within_bounds_and_sums_agree(case: tuple[Framework, list[dict[str, Answer]]]) -> None:
    fw, units = case
    reports = score_units(fw, dict(enumerate(units)))
    for report in reports.values():
        for r in report.indicators:
            assert 0 <= r.score <= r.max <= r.full_max
        for g in report.groups:
            members = [r for r in report.indicators if r.group_id == g.id]
            assert g.score == total(r.score for r in members)
            assert g.max == total(r.max for r in members)
        assert (
            report.total == total(g.score for g in report.groups) == total(r.score for r in report.indicators)
        )
        assert 0 <= report.total <= report.max <= fw.max_points
        assert 0 <= report.index <= 1
        if report.next_band is not None:
            assert report.next_band.points_needed > 0


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_more_is_never_worse(data: st.DataObject) -> None:
    fw = data.draw(frameworks())
    ind = data.draw(st.sampled_from(fw.indicators))
    t = ind.answer.type
    if t in (AnswerType.CHOICE, AnswerType.POINTS):
        values = sorted(
            [data.draw(st.decimals(min_value=0, max_value=ind.max_points, places=2)) for _ in range(2)]
        )
        if t is AnswerType.CHOICE:
            return  # options are unordered; their points are checked against max by the gate
        low, high = values
    elif t is AnswerType.YES_NO:
        low, high = False, True
    elif t is AnswerType.PARTS:
        keys = [o.key for o in ind.answer.options]
        low, high = frozenset(keys[:1]), frozenset(keys)
    elif t is AnswerType.RATIO:
        den = data.draw(st.integers(min_value=1, max_value=1000))
        a, b = sorted(data.draw(st.integers(min_value=0, max_value=den)) for _ in range(2))
        low, high = Ratio(Decimal(a), Decimal(den)), Ratio(Decimal(b), Decimal(den))
    else:
        upper = 100 if t is AnswerType.PERCENTAGE else 5000
        low, high = sorted(data.draw(st.decimals(min_value=0, max_value=upper, places=2)) for _ in range(2))
    assert ind.points(low) <= ind.points(high)
    ev = (Evidence("x.pdf"),)
    s_low = score(fw, {ind.code: Answer(low, evidence=ev)}).total
    s_high = score(fw, {ind.code: Answer(high, evidence=ev)}).total
    assert s_low <= s_high


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(frameworks())
def test_export_then_import_loses_nothing(fw: Framework) -> None:
    again = load_framework(dump_framework(fw, "header"), "again.yaml").framework
    assert again == fw
    assert framework_data(again) == framework_data(fw)


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(framework_and_answers())
def test_answers_that_are_missing_or_not_applicable_never_earn_their_own_points(
    case: tuple[Framework, list[dict[str, Answer]]],
) -> None:
    fw, units = case
    report = score(fw, units[0])
    for r in report.indicators:
        if r.status is Status.MISSING or (
            r.status is Status.NOT_APPLICABLE and r.reason != "score.reason.peer_average"
        ):
            assert r.score == 0
