"""storage.load.answer_views: the engine's view of stored answers, with decoded values reused
across messages, but never for an indicator other than the one they were decoded for."""

from __future__ import annotations

import json
from dataclasses import replace
from decimal import Decimal

from bot.service import resolve_framework
from scoring.model import AnswerSpec, AnswerType, Framework, Ratio
from storage.load import answer_views

FRAMEWORK = resolve_framework("tay-ninh-commune-2025", "2025.1")


def _code(kind: AnswerType) -> str:
    assert FRAMEWORK is not None
    return next(i.code for i in FRAMEWORK.indicators if i.answer.type is kind)


Row = tuple[str, int, int, object, bool, str | None]  # code, id, revision, value, not applicable, reason


def _views(framework: Framework, rows: list[Row]) -> dict[str, object]:
    revisions = [(code, rid, rev, json.dumps(v), na, why) for code, rid, rev, v, na, why in rows]
    views = answer_views(framework, revisions, []).views
    return {code: view.value for code, view in views.items()}


def test_the_latest_revision_of_each_indicator_is_decoded_and_decoding_again_gives_the_same() -> None:
    assert FRAMEWORK is not None
    points, ratio = _code(AnswerType.POINTS), _code(AnswerType.PERCENTAGE)
    rows = [
        (points, 1, 1, "0", False, None),
        (points, 2, 2, "1", False, None),
        (ratio, 3, 1, {"numerator": "12", "denominator": "30"}, False, None),
    ]
    first = _views(FRAMEWORK, rows)
    assert first == {points: Decimal(1), ratio: Ratio(Decimal(12), Decimal(30))}
    assert _views(FRAMEWORK, rows) == first  # the second time from what was decoded the first time


def test_a_value_decoded_for_one_indicator_is_not_reused_for_another_under_the_same_code() -> None:
    assert FRAMEWORK is not None
    points = _code(AnswerType.POINTS)
    assert _views(FRAMEWORK, [(points, 1, 1, "1", False, None)]) == {points: Decimal(1)}
    # the same code, now a yes/no question (a framework revised under the same code): "1" no longer fits
    changed = replace(
        FRAMEWORK,
        indicators=tuple(
            replace(i, answer=AnswerSpec(AnswerType.YES_NO)) if i.code == points else i
            for i in FRAMEWORK.indicators
        ),
    )
    assert changed.indicator(points) is not FRAMEWORK.indicator(points)
    assert _views(changed, [(points, 1, 1, "1", False, None)]) == {}
    assert _views(FRAMEWORK, [(points, 1, 1, "1", False, None)]) == {points: Decimal(1)}
