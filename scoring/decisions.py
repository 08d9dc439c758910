"""Rules fixed by the provincial decisions, reusable by any framework file.

A framework refers to a band scheme with `classification: {scheme: <id>}` and to a prescribed group
structure with `structure: <id>`; the gate then checks the framework against the decision (same
total for a points scheme, same groups with the same max points for a structure).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from scoring.model import Band, BandBasis, Classification, UnitLevel


@dataclass(frozen=True, slots=True)
class BandScheme:
    id: str
    decision: str
    classification: Classification
    scale: Decimal | None  # the total the point bands were written for; None for percent bands


@dataclass(frozen=True, slots=True)
class GroupSpec:
    name: str
    max_points: Decimal


@dataclass(frozen=True, slots=True)
class Structure:
    id: str
    decision: str
    level: UnitLevel
    groups: tuple[GroupSpec, ...]

    @property
    def max_points(self) -> Decimal:
        return sum((g.max_points for g in self.groups), Decimal(0))


def _five_bands(basis: BandBasis, lows: tuple[int, int, int, int]) -> Classification:
    xs, tot, kha, tb = (Decimal(v) for v in lows)
    return Classification(
        basis,
        (
            Band("xuat_sac", "Xuất sắc", xs, None),
            Band("tot", "Tốt", tot, xs),
            Band("kha", "Khá", kha, tot),
            Band("trung_binh", "Trung bình", tb, kha),
            Band("yeu", "Yếu", Decimal(0), tb),
        ),
    )


_HG = "Quyết định 1949/QĐ-UBND ngày 23/11/2022 của UBND tỉnh Hậu Giang"
_BRVT = "Quyết định 3710/QĐ-UBND ngày 02/12/2022 của UBND tỉnh Bà Rịa – Vũng Tàu"
_DB = "Quyết định 2001/QĐ-UBND ngày 31/10/2022 của UBND tỉnh Điện Biên"

BAND_SCHEMES: dict[str, BandScheme] = {
    s.id: s
    for s in (
        BandScheme(
            "hau-giang-1949-department",
            _HG + " (sở, ban, ngành: 245 điểm)",
            _five_bands(BandBasis.POINTS, (220, 196, 171, 122)),
            Decimal(245),
        ),
        BandScheme(
            "hau-giang-1949-district",
            _HG + " (UBND cấp huyện: 360 điểm)",
            _five_bands(BandBasis.POINTS, (324, 288, 252, 180)),
            Decimal(360),
        ),
        BandScheme(
            "brvt-3710-percent",
            _BRVT + " (thang 100 điểm)",
            Classification(
                BandBasis.PERCENT,
                (
                    Band("tot", "Tốt", Decimal(90), None),
                    Band("kha", "Khá", Decimal(80), Decimal(90)),
                    Band("trung_binh", "Trung bình", Decimal(70), Decimal(80)),
                    Band("yeu", "Yếu", Decimal(0), Decimal(70)),
                ),
            ),
            None,
        ),
    )
}

_FOUNDATION = tuple(
    GroupSpec(name, Decimal(50))
    for name in ("Nhận thức số", "Thể chế số", "Hạ tầng số", "Nhân lực số", "An toàn thông tin mạng")
)

STRUCTURES: dict[str, Structure] = {
    s.id: s
    for s in (
        Structure(
            "dien-bien-2001-department",
            _DB + " (cấp sở: 6 chỉ số chính, 500 điểm)",
            UnitLevel.DEPARTMENT,
            (*_FOUNDATION, GroupSpec("Hoạt động chuyển đổi số", Decimal(250))),
        ),
        Structure(
            "dien-bien-2001-district",
            _DB + " (cấp huyện: 8 chỉ số chính, 500 điểm)",
            UnitLevel.DISTRICT,
            (
                *_FOUNDATION,
                GroupSpec("Hoạt động chuyển đổi số", Decimal(100)),
                GroupSpec("Hoạt động kinh tế số", Decimal(75)),
                GroupSpec("Hoạt động xã hội số", Decimal(75)),
            ),
        ),
    )
}


def band_scheme(scheme_id: str) -> BandScheme | None:
    scheme = BAND_SCHEMES.get(scheme_id)
    if scheme is None:
        return None
    c = scheme.classification
    return BandScheme(scheme.id, scheme.decision, Classification(c.basis, c.bands, scheme.id), scheme.scale)
