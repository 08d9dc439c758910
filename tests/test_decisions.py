"""The decisions' own numbers: Hậu Giang, Bà Rịa–Vũng Tàu and Điện Biên, the index, Tây Ninh totals."""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from scoring.answers import Answer
from scoring.decisions import BAND_SCHEMES, STRUCTURES, band_scheme
from scoring.engine import score
from scoring.gate import FrameworkInvalid, build_framework
from scoring.model import Framework
from scoring.numbers import round_index
from tests.conftest import D


def points_framework(groups: list[tuple[str, int]], **extra: Any) -> dict[str, Any]:
    """One self-assessed indicator per group carrying the group's max: enough to test bands and sums."""
    return {
        "spec_version": 1,
        "id": "decision-test",
        "version": "1",
        "title": "T",
        "level": extra.pop("level", "district"),
        "decision": {"number": "x"},
        "groups": [
            {
                "id": str(i + 1),
                "name": name,
                "max_points": pts,
                "indicators": [
                    {
                        "code": f"{i + 1}.1",
                        "text": name,
                        "guidance": "g",
                        "max_points": pts,
                        "answer": "points",
                        "scoring": "self_assessed",
                    }
                ],
            }
            for i, (name, pts) in enumerate(groups)
        ],
        **extra,
    }


def total_of(fw: Framework, total: Decimal) -> str | None:
    """The band label a unit with `total` points gets, spreading the points over the indicators."""
    answers: dict[str, Answer] = {}
    left = total
    for ind in fw.indicators:
        take = min(left, ind.max_points)
        answers[ind.code] = Answer(take)
        left -= take
    assert left == 0
    report = score(fw, answers)
    assert report.total == total
    return report.band.label if report.band else None


@pytest.fixture
def hau_giang_department() -> Framework:
    data = points_framework(
        [
            ("Nhận thức số", 45),
            ("Thể chế số", 50),
            ("Nhân lực số", 50),
            ("An toàn thông tin mạng", 50),
            ("Hoạt động chính quyền số", 50),
        ],
        level="department",
    )
    data["classification"] = {"scheme": "hau-giang-1949-department"}
    return build_framework(data, "hg-dept").framework


@pytest.fixture
def hau_giang_district() -> Framework:
    data = points_framework(
        [
            ("Nhận thức số", 60),
            ("Thể chế số", 60),
            ("Nhân lực số", 60),
            ("An toàn thông tin mạng", 60),
            ("Chính quyền số", 60),
            ("Kinh tế số", 30),
            ("Xã hội số", 30),
        ]
    )
    data["classification"] = {"scheme": "hau-giang-1949-district"}
    return build_framework(data, "hg-dist").framework


@pytest.mark.parametrize(
    ("total", "band"),
    [
        ("245", "Xuất sắc"),
        ("220", "Xuất sắc"),
        ("219.99", "Tốt"),
        ("196", "Tốt"),
        ("195.99", "Khá"),
        ("171", "Khá"),
        ("170.99", "Trung bình"),
        ("122", "Trung bình"),
        ("121.99", "Yếu"),
        ("0", "Yếu"),
    ],
)
def test_hau_giang_department_bands(hau_giang_department: Framework, total: str, band: str) -> None:
    assert hau_giang_department.max_points == 245
    assert total_of(hau_giang_department, D(total)) == band


@pytest.mark.parametrize(
    ("total", "band"),
    [
        ("360", "Xuất sắc"),
        ("324", "Xuất sắc"),
        ("323.99", "Tốt"),
        ("288", "Tốt"),
        ("287.99", "Khá"),
        ("252", "Khá"),
        ("251.99", "Trung bình"),
        ("180", "Trung bình"),
        ("179.99", "Yếu"),
    ],
)
def test_hau_giang_district_bands(hau_giang_district: Framework, total: str, band: str) -> None:
    assert hau_giang_district.max_points == 360
    assert total_of(hau_giang_district, D(total)) == band


@pytest.mark.parametrize(
    ("total", "band"),
    [
        ("100", "Tốt"),
        ("90", "Tốt"),
        ("89.99", "Khá"),
        ("80", "Khá"),
        ("79.99", "Trung bình"),
        ("70", "Trung bình"),
        ("69.99", "Yếu"),
        ("0", "Yếu"),
    ],
)
def test_brvt_bands_on_a_100_point_scale(total: str, band: str) -> None:
    data = points_framework(
        [("Nền tảng", 40), ("Chính quyền số", 40), ("Kinh tế số", 10), ("Xã hội số", 10)], level="commune"
    )
    data["classification"] = {"scheme": "brvt-3710-percent"}
    fw = build_framework(data, "brvt").framework
    assert total_of(fw, D(total)) == band


def test_brvt_percent_bands_scale_to_any_total() -> None:
    data = points_framework([("A", 300), ("B", 200)], level="commune")
    data["classification"] = {"scheme": "brvt-3710-percent"}
    fw = build_framework(data, "brvt500").framework
    assert total_of(fw, D(450)) == "Tốt"
    assert total_of(fw, D("449.99")) == "Khá"
    assert total_of(fw, D(350)) == "Trung bình"
    assert total_of(fw, D("349.99")) == "Yếu"


DIEN_BIEN_DEPARTMENT = [
    ("Nhận thức số", 50),
    ("Thể chế số", 50),
    ("Hạ tầng số", 50),
    ("Nhân lực số", 50),
    ("An toàn thông tin mạng", 50),
    ("Hoạt động chuyển đổi số", 250),
]
DIEN_BIEN_DISTRICT = [
    *DIEN_BIEN_DEPARTMENT[:5],
    ("Hoạt động chuyển đổi số", 100),
    ("Hoạt động kinh tế số", 75),
    ("Hoạt động xã hội số", 75),
]


@pytest.mark.parametrize(
    ("structure", "level", "groups"),
    [
        ("dien-bien-2001-department", "department", DIEN_BIEN_DEPARTMENT),
        ("dien-bien-2001-district", "district", DIEN_BIEN_DISTRICT),
    ],
)
def test_dien_bien_structures_500_points(structure: str, level: str, groups: list[tuple[str, int]]) -> None:
    fw = build_framework(points_framework(groups, level=level, structure=structure), "db").framework
    assert fw.max_points == 500 == STRUCTURES[structure].max_points
    assert len(fw.groups) == len(groups)
    # the index is total ÷ max, published in %
    answers = {ind.code: Answer(ind.max_points * D("0.6")) for ind in fw.indicators}
    report = score(fw, answers)
    assert report.total == 300 and report.percent == 60


@pytest.mark.parametrize(
    "mutate",
    [
        lambda g: g.__setitem__(5, ("Hoạt động chuyển đổi số", 240)),
        lambda g: g.__setitem__(0, ("Nhận thức", 50)),
        lambda g: g.pop(),
    ],
)
def test_dien_bien_structure_mismatch_is_rejected(mutate: Callable[[list[tuple[str, int]]], None]) -> None:
    groups = copy.deepcopy(DIEN_BIEN_DEPARTMENT)
    mutate(groups)
    with pytest.raises(FrameworkInvalid) as exc:
        build_framework(
            points_framework(groups, level="department", structure="dien-bien-2001-department"), "db"
        )
    assert {e.key for e in exc.value.errors} & {"gate.structure_group", "gate.structure_group_count"}


def test_structure_matching_ignores_case_and_diacritics() -> None:
    groups = [(name.upper(), pts) for name, pts in DIEN_BIEN_DEPARTMENT]
    build_framework(points_framework(groups, level="department", structure="dien-bien-2001-department"), "db")


def test_index_is_total_over_max_with_4_decimals_as_published() -> None:
    data = points_framework([("A", 600), ("B", 400)], level="province")
    fw = build_framework(data, "national").framework
    report = score(fw, {"1.1": Answer(D("407.7")), "2.1": Answer(D(200))})
    assert report.index == D("0.6077")
    assert round_index(report.index) == D("0.6077")
    report = score(fw, {"1.1": Answer(D("1") / 3 * 1)})
    assert round_index(report.index) == D("0.0003")


def test_every_scheme_is_contiguous_from_zero() -> None:
    for scheme_id in BAND_SCHEMES:
        scheme = band_scheme(scheme_id)
        assert scheme is not None
        bands = scheme.classification.bands
        assert bands[-1].min == 0 and bands[0].below is None
        for upper, lower in itertools.pairwise(bands):
            assert lower.below == upper.min


def test_tay_ninh_groups_and_total(tay_ninh: Framework) -> None:
    assert len(tay_ninh.indicators) == 62
    assert [int(g.max_points) for g in tay_ninh.groups] == [80, 100, 100, 520, 80, 80]
    assert tay_ninh.max_points == 960
    full = score(
        tay_ninh,
        {},
    )
    assert full.total == 0 and full.max == 960
