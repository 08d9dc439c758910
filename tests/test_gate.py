"""The loading gate: every kind of broken framework is rejected with file, indicator code and field."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from bot import catalog
from scoring.gate import FrameworkInvalid, GateIssue, build_framework, load_framework
from scoring.model import AnswerType, BandBasis
from tests.conftest import D, base_data


def errors_of(mutate: Callable[[dict[str, Any]], None]) -> list[GateIssue]:
    data = copy.deepcopy(base_data())
    mutate(data)
    with pytest.raises(FrameworkInvalid) as exc:
        build_framework(data, "khung.yaml")
    assert all(e.source == "khung.yaml" for e in exc.value.errors)
    return exc.value.errors


def ind(data: dict[str, Any], group: int, index: int) -> dict[str, Any]:
    result: dict[str, Any] = data["groups"][group]["indicators"][index]
    return result


def test_base_framework_is_valid_without_warnings() -> None:
    result = build_framework(base_data(), "khung.yaml")
    assert result.warnings == ()
    fw = result.framework
    assert fw.max_points == 100
    assert [g.max_points for g in fw.groups] == [50, 50]
    assert fw.indicator("2.1") is not None


def test_shipped_frameworks_validate_and_file_names_match_ids() -> None:
    items = catalog.shipped()
    assert {i.id for i in items} >= {"tay-ninh-commune-2025", "mic-maturity-commune-example"}
    for item in items:
        result = catalog.load_path(item.path)
        assert result.framework.id == item.id
        assert all(w.severity == "warning" for w in result.warnings)


def test_duplicate_code_names_code_and_first_group() -> None:
    def mutate(d: dict[str, Any]) -> None:
        ind(d, 1, 0)["code"] = "1.1"

    [e] = [e for e in errors_of(mutate) if e.key == "gate.duplicate_code"]
    assert e.code == "1.1"
    assert e.field == "code"
    assert e.params["group"] == "1"


def test_group_max_must_equal_sum_of_indicators() -> None:
    def mutate(d: dict[str, Any]) -> None:
        d["groups"][0]["max_points"] = 55

    [e] = errors_of(mutate)
    assert e.key == "gate.group_max_mismatch"
    assert e.field == "groups[0].max_points"
    assert (e.params["declared"], e.params["sum"]) == ("55", "50")


def test_declared_total_must_equal_groups() -> None:
    [e] = errors_of(lambda d: d.update(max_points=120))
    assert e.key == "gate.total_max_mismatch"


@pytest.mark.parametrize(
    ("bands", "key"),
    [
        (
            [{"id": "a", "label": "A", "min": 80}, {"id": "b", "label": "B", "min": 0, "below": 85}],
            "gate.band_overlap",
        ),
        (
            [{"id": "a", "label": "A", "min": 80}, {"id": "b", "label": "B", "min": 0, "below": 70}],
            "gate.band_gap",
        ),
        (
            [{"id": "a", "label": "A", "min": 80}, {"id": "b", "label": "B", "min": 10}],
            "gate.band_bottom_gap",
        ),
        (
            [{"id": "a", "label": "A", "min": 80, "below": 95}, {"id": "b", "label": "B", "min": 0}],
            "gate.band_top_gap",
        ),
        ([{"id": "a", "label": "A", "min": 80}, {"id": "b", "label": "B", "min": 80}], "gate.band_overlap"),
        ([{"id": "a", "label": "A", "min": 120}, {"id": "b", "label": "B", "min": 0}], "gate.band_above_max"),
        ([{"id": "a", "label": "A", "min": 50}, {"id": "a", "label": "B", "min": 0}], "gate.duplicate_band"),
    ],
)
def test_bands_must_cover_without_overlap_or_gap(bands: list[dict[str, Any]], key: str) -> None:
    errors = errors_of(lambda d: d.update(classification={"basis": "points", "bands": bands}))
    assert key in {e.key for e in errors}
    assert all(e.field.startswith("classification") for e in errors)


def test_band_below_is_implied_by_the_next_band() -> None:
    bands = [{"id": "tot", "label": "Tốt", "min": 80}, {"id": "yeu", "label": "Yếu", "min": 0}]
    fw = build_framework(base_data(classification={"basis": "points", "bands": bands}), "x").framework
    assert fw.classification is not None
    assert fw.classification.bands[1].below == D(80)


def test_tiers_out_of_order() -> None:
    def mutate(d: dict[str, Any]) -> None:
        ind(d, 1, 0)["scoring"]["tiers"][1], ind(d, 1, 0)["scoring"]["tiers"][2] = (
            ind(d, 1, 0)["scoring"]["tiers"][2],
            ind(d, 1, 0)["scoring"]["tiers"][1],
        )

    [e] = errors_of(mutate)
    assert (e.key, e.code, e.field) == ("gate.tiers_order", "2.1", "scoring.tiers[2]")


def test_tier_points_rising_while_min_falls_is_out_of_order() -> None:
    def mutate(d: dict[str, Any]) -> None:
        ind(d, 1, 0)["scoring"]["tiers"][3]["points"] = 12

    assert [e.key for e in errors_of(mutate)] == ["gate.tiers_order"]


@pytest.mark.parametrize(
    ("answer", "method"),
    [
        ("yes_no", "rate"),
        ("percentage", "yes_no"),
        ("choice", "rate"),
        ("points", "tiers"),
        ("count", "parts"),
    ],
)
def test_answer_type_that_cannot_feed_its_method(answer: str, method: str) -> None:
    def mutate(d: dict[str, Any]) -> None:
        i = ind(d, 0, 0)
        i["answer"] = {
            "type": answer,
            **({"options": [{"key": "a", "label": "A", "points": 1}]} if answer == "choice" else {}),
        }
        i["scoring"] = {"method": method}

    errors = errors_of(mutate)
    [e] = [e for e in errors if e.key == "gate.method_type_mismatch"]
    assert (e.code, e.field, e.params["method"], e.params["type"]) == (
        "1.1",
        "scoring.method",
        method,
        answer,
    )


def test_unknown_key_suggests_the_close_one() -> None:
    def mutate(d: dict[str, Any]) -> None:
        ind(d, 0, 1)["guidence"] = ind(d, 0, 1).pop("guidance")

    errors = errors_of(mutate)
    [e] = [e for e in errors if e.key.startswith("gate.unknown_key")]
    assert e.key == "gate.unknown_key_did_you_mean"
    assert (e.code, e.field, e.params["suggestion"]) == (
        "1.2",
        "groups[0].indicators[1].guidence",
        "guidance",
    )


def test_unknown_top_level_key() -> None:
    [e] = errors_of(lambda d: d.update(colour="red"))
    assert e.key == "gate.unknown_key" and e.field == "colour"


def test_undeclared_maturity_level() -> None:
    def mutate(d: dict[str, Any]) -> None:
        d["kind"] = "maturity"
        d["levels"] = [{"id": "khoi_dong", "name": "Khởi động"}, {"id": "ket_noi", "name": "Kết nối"}]
        ind(d, 0, 0)["gates"] = {"khoi_dong": 50, "ket_noi_": 80}

    errors = errors_of(mutate)
    [e] = [e for e in errors if e.key.startswith("gate.level_undeclared")]
    assert (e.code, e.field, e.params["suggestion"]) == ("1.1", "gates.ket_noi_", "ket_noi")


def test_gates_in_a_points_framework_are_rejected() -> None:
    def mutate(d: dict[str, Any]) -> None:
        ind(d, 0, 0)["gates"] = {"co_ban": 50}

    assert [e.key for e in errors_of(mutate)] == ["gate.gates_without_levels"]


def test_code_written_as_a_yaml_number_is_rejected() -> None:
    text = """
spec_version: 1
id: x
version: "1"
title: T
level: commune
decision: {number: "1/QĐ"}
groups:
  - id: "4"
    name: G
    indicators:
      - {code: 4.10, text: T, guidance: g, max_points: 10, answer: yes_no, scoring: yes_no}
"""
    with pytest.raises(FrameworkInvalid) as exc:
        load_framework(text, "so.yaml")
    [e] = exc.value.errors
    assert e.key == "gate.code_not_text"
    assert e.params["value"] == "4.1"


def test_yaml_syntax_error_names_line() -> None:
    with pytest.raises(FrameworkInvalid) as exc:
        load_framework("id: x\ngroups: [\n  - a: b", "hong.yaml")
    [e] = exc.value.errors
    assert e.key == "gate.yaml_syntax" and e.source == "hong.yaml" and int(e.params["line"]) >= 2


def test_all_errors_are_reported_at_once() -> None:
    def mutate(d: dict[str, Any]) -> None:
        ind(d, 0, 0)["max_points"] = "mười"
        ind(d, 1, 1)["code"] = "1.2"
        d["level"] = "xa"

    keys = {e.key for e in errors_of(mutate)}
    assert {"gate.bad_number", "gate.duplicate_code", "gate.bad_value"} <= keys


def test_warnings_are_kept_apart_from_errors() -> None:
    data = base_data()
    del ind(data, 0, 0)["guidance"]
    data["decision"] = {}
    result = build_framework(data, "w.yaml")
    assert {(w.key, w.code) for w in result.warnings} == {
        ("gate.guidance_missing", "1.1"),
        ("gate.decision_number_missing", None),
    }
    assert all(w.severity == "warning" for w in result.warnings)


def test_choice_fraction_resolves_to_points_and_over_max_is_an_error() -> None:
    def choice(options: list[dict[str, Any]]) -> Callable[[dict[str, Any]], None]:
        def mutate(d: dict[str, Any]) -> None:
            ind(d, 0, 1)["answer"] = {"type": "choice", "options": options}
            ind(d, 0, 1)["scoring"] = "choice"

        return mutate

    data = copy.deepcopy(base_data())
    choice(
        [{"key": "ct", "label": "Chủ tịch", "points": 30}, {"key": "pct", "label": "Phó", "fraction": 0.5}]
    )(data)
    fw = build_framework(data, "c.yaml").framework
    spec = fw.indicator("1.2")
    assert spec is not None and spec.answer.type is AnswerType.CHOICE
    assert [o.points for o in spec.answer.options] == [D(30), D(15)]
    errors = errors_of(choice([{"key": "ct", "label": "Chủ tịch", "points": 31}]))
    assert [(e.key, e.field) for e in errors] == [("gate.points_exceed_max", "answer.options[0].points")]


def test_parts_that_cannot_reach_max() -> None:
    def mutate(d: dict[str, Any]) -> None:
        ind(d, 0, 1)["answer"] = {
            "type": "parts",
            "options": [
                {"key": "a", "label": "Dự họp", "fraction": 0.5},
                {"key": "b", "label": "Chủ trì", "fraction": 0.25},
            ],
        }
        ind(d, 0, 1)["scoring"] = "parts"

    assert [e.key for e in errors_of(mutate)] == ["gate.parts_unreachable"]


def test_rate_on_a_count_needs_a_target() -> None:
    def mutate(d: dict[str, Any]) -> None:
        ind(d, 1, 0)["scoring"] = {"method": "rate"}

    assert [e.key for e in errors_of(mutate)] == ["gate.target_required"]


def test_scheme_scale_must_match_the_total() -> None:
    errors = errors_of(lambda d: d.update(classification={"scheme": "hau-giang-1949-department"}))
    [e] = errors
    assert e.key == "gate.scheme_scale" and e.params["scale"] == "245" and e.params["max"] == "100"


def test_percent_scheme_fits_any_total() -> None:
    fw = build_framework(base_data(classification={"scheme": "brvt-3710-percent"}), "x").framework
    assert fw.classification is not None and fw.classification.basis is BandBasis.PERCENT


def test_unsupported_spec_version() -> None:
    [e] = errors_of(lambda d: d.update(spec_version=9))
    assert e.key == "gate.spec_version"


def test_missing_required_keys() -> None:
    def mutate(d: dict[str, Any]) -> None:
        del ind(d, 0, 0)["scoring"]
        del d["title"]

    got = {(e.key, e.code, e.field) for e in errors_of(mutate)}
    assert ("gate.missing_key", "1.1", "groups[0].indicators[0].scoring") in got
    assert ("gate.missing_key", None, "title") in got
