"""Checking how a framework classifies a total: a named band scheme or explicit bands that cover the
scale without gaps or overlaps, and a maturity framework's levels."""

from __future__ import annotations

import itertools
from decimal import Decimal

from scoring.decisions import band_scheme
from scoring.gate.checker import Checker, join
from scoring.gate.issues import GateKey
from scoring.model import (
    Band,
    BandBasis,
    Classification,
    FrameworkKind,
    MaturityLevel,
)
from scoring.numbers import HUNDRED, ZERO, plain

_CLASSIFICATION_KEYS = ("scheme", "basis", "bands")
_BAND_KEYS = ("id", "label", "min", "below")
_LEVEL_KEYS = ("id", "name")


def check_classification(c: Checker, raw: object, max_points: Decimal | None) -> Classification | None:
    """The bands; `max_points` is None when the groups are broken and the total is unknown."""
    if raw is None:
        return None
    errors_before = len(c.errors)
    data = c.mapping(raw, "classification")
    if data is None:
        return None
    c.keys(data, _CLASSIFICATION_KEYS, (), "classification")
    scheme_id = data.get("scheme")
    if scheme_id is not None:
        if data.get("bands") is not None or data.get("basis") is not None:
            c.error(GateKey.SCHEME_AND_BANDS, "classification")
            return None
        scheme = band_scheme(str(scheme_id))
        if scheme is None:
            from scoring.decisions import BAND_SCHEMES

            c.error(
                GateKey.SCHEME_UNKNOWN,
                "classification.scheme",
                value=scheme_id,
                schemes=", ".join(BAND_SCHEMES),
            )
            return None
        if scheme.scale is not None and max_points is not None and scheme.scale != max_points:
            c.error(
                GateKey.SCHEME_SCALE,
                "classification.scheme",
                scheme=scheme.id,
                scale=plain(scheme.scale),
                max=plain(max_points),
            )
            return None
        return scheme.classification
    basis = c.choice(data.get("basis"), BandBasis, [b.value for b in BandBasis], "classification.basis")
    if data.get("basis") is None:
        c.error(GateKey.MISSING_KEY, "classification.basis", key="basis")
    items = c.seq(data.get("bands"), "classification.bands")
    if basis is None or items is None:
        return None
    ceiling = max_points if basis is BandBasis.POINTS else HUNDRED
    if ceiling is None:
        return None
    bands: list[tuple[int, Band]] = []
    ids: set[str] = set()
    for i, item in enumerate(items):
        f = f"classification.bands[{i}]"
        bdata = c.mapping(item, f)
        if bdata is None:
            continue
        c.keys(bdata, _BAND_KEYS, ("id", "label", "min"), f)
        bid = c.identifier(bdata.get("id"), join(f, "id"))
        label = c.text(bdata.get("label"), join(f, "label"))
        lo = c.number(bdata.get("min"), join(f, "min"))
        below = c.number(bdata.get("below"), join(f, "below"))
        if bid is not None and bid in ids:
            c.error(GateKey.DUPLICATE_BAND, join(f, "id"), id=bid)
        if bid is not None:
            ids.add(bid)
        if lo is not None and lo > ceiling:
            c.error(
                GateKey.BAND_ABOVE_MAX,
                join(f, "min"),
                band=label or bid,
                min=plain(lo),
                max=plain(ceiling),
            )
            continue
        if lo is not None and below is not None and below <= lo:
            c.error(GateKey.BAND_EMPTY, f, band=label or bid, min=plain(lo), below=plain(below))
            continue
        if bid is not None and label is not None and lo is not None:
            bands.append((i, Band(bid, label, lo, below)))
    if not bands:
        c.error(GateKey.BANDS_EMPTY, "classification.bands")
        return None
    if len(c.errors) > errors_before:
        return None
    bands.sort(key=lambda ib: ib[1].min, reverse=True)
    for (_, upper), (j, lower) in itertools.pairwise(bands):
        f = f"classification.bands[{j}]"
        if lower.min == upper.min:
            c.error(GateKey.BAND_OVERLAP, f, band=lower.label, other=upper.label, at=plain(lower.min))
        elif lower.below is None:
            continue
        elif lower.below > upper.min:
            c.error(GateKey.BAND_OVERLAP, f, band=lower.label, other=upper.label, at=plain(upper.min))
        elif lower.below < upper.min:
            c.error(
                GateKey.BAND_GAP,
                f,
                band=lower.label,
                other=upper.label,
                start=plain(lower.below),
                end=plain(upper.min),
            )
    top_i, top = bands[0]
    if top.below is not None and top.below <= ceiling:
        c.error(
            GateKey.BAND_TOP_GAP,
            f"classification.bands[{top_i}].below",
            band=top.label,
            start=plain(top.below),
            end=plain(ceiling),
        )
    low_i, low = bands[-1]
    if low.min != ZERO:
        c.error(
            GateKey.BAND_BOTTOM_GAP,
            f"classification.bands[{low_i}].min",
            band=low.label,
            min=plain(low.min),
        )
    resolved = []
    for k, (_, b) in enumerate(bands):
        resolved.append(
            Band(
                b.id, b.label, b.min, b.below if b.below is not None else (bands[k - 1][1].min if k else None)
            )
        )
    return Classification(basis, tuple(resolved))


def check_levels(
    c: Checker, raw: object, kind: FrameworkKind | None
) -> tuple[tuple[MaturityLevel, ...], dict[str, int] | None]:
    if kind is not FrameworkKind.MATURITY:
        if raw is not None:
            c.error(GateKey.LEVELS_WITHOUT_MATURITY, "levels")
        return (), None
    if raw is None:
        c.error(GateKey.MATURITY_NEEDS_LEVELS, "levels")
        return (), {}
    items = c.seq(raw, "levels")
    levels: list[MaturityLevel] = []
    index: dict[str, int] = {}
    for i, item in enumerate(items or []):
        f = f"levels[{i}]"
        data = c.mapping(item, f)
        if data is None:
            continue
        c.keys(data, _LEVEL_KEYS, _LEVEL_KEYS, f)
        lid = c.identifier(data.get("id"), join(f, "id"))
        name = c.text(data.get("name"), join(f, "name"))
        if lid is None or name is None:
            continue
        if lid in index:
            c.error(GateKey.DUPLICATE_LEVEL, join(f, "id"), id=lid)
            continue
        index[lid] = len(levels)
        levels.append(MaturityLevel(lid, name))
    if not levels:
        c.error(GateKey.MATURITY_NEEDS_LEVELS, "levels")
    return tuple(levels), index
