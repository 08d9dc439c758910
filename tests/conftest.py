"""Shared fixtures: the shipped frameworks and a tiny framework builder for table tests."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from bot import catalog
from bot.i18n import Translator
from scoring.gate import build_framework
from scoring.model import Framework

if TYPE_CHECKING:
    from aiohttp.test_utils import TestClient

    from tests.web_support import WebProvince

pytest_plugins = ["tests.storage_fixtures"]


@pytest.fixture(autouse=True)
def no_unexpected_errors(request: pytest.FixtureRequest) -> Iterator[None]:
    """A message whose handling fails for a reason other than a conflict or an unreachable database
    is a bug (bot/service.py logs it at ERROR and counts it): it fails the test, unless the test
    provokes one on purpose (`@pytest.mark.unexpected_errors`)."""
    from bot import service

    before = len(service.UNEXPECTED)
    yield
    if request.node.get_closest_marker("unexpected_errors") is None:
        assert service.UNEXPECTED[before:] == [], "a message failed unexpectedly"


ROOT = Path(__file__).resolve().parent.parent
TAY_NINH_TSV = ROOT / "scoring" / "frameworks" / "sources" / "tay-ninh-commune-2025-indicators.tsv"


def D(value: str | int) -> Decimal:
    return Decimal(str(value))


@pytest.fixture(scope="session")
def tay_ninh() -> Framework:
    return catalog.framework("tay-ninh-commune-2025")


@pytest.fixture(scope="session")
def maturity() -> Framework:
    return catalog.framework("mic-maturity-commune-example")


@pytest.fixture(scope="session")
def vi() -> Translator:
    return Translator("vi")


@pytest.fixture(scope="session")
def en() -> Translator:
    return Translator("en")


def base_data(**overrides: Any) -> dict[str, Any]:
    """A small valid framework mapping: two groups, four indicators, 100 points."""
    data: dict[str, Any] = {
        "spec_version": 1,
        "id": "test-fw",
        "version": "1",
        "title": "Khung thử",
        "level": "commune",
        "decision": {"number": "1/QĐ-UBND", "date": "01/01/2025"},
        "groups": [
            {
                "id": "1",
                "name": "Nhóm một",
                "max_points": 50,
                "indicators": [
                    {
                        "code": "1.1",
                        "text": "Tỷ lệ hồ sơ trực tuyến",
                        "guidance": "g",
                        "max_points": 20,
                        "answer": "percentage",
                        "scoring": "rate",
                    },
                    {
                        "code": "1.2",
                        "text": "Có kế hoạch",
                        "guidance": "g",
                        "max_points": 30,
                        "answer": "yes_no",
                        "scoring": "yes_no",
                        "evidence": {"required": True, "description": "Kế hoạch"},
                    },
                ],
            },
            {
                "id": "2",
                "name": "Nhóm hai",
                "max_points": 50,
                "indicators": [
                    {
                        "code": "2.1",
                        "text": "Số cuộc họp",
                        "guidance": "g",
                        "max_points": 20,
                        "answer": "count",
                        "scoring": {
                            "method": "tiers",
                            "tiers": [
                                {"min": 4, "points": 20},
                                {"min": 3, "points": 15},
                                {"min": 2, "points": 10},
                                {"min": 1, "points": 5},
                            ],
                        },
                    },
                    {
                        "code": "2.2",
                        "text": "Điểm tự chấm",
                        "guidance": "g",
                        "max_points": 30,
                        "answer": "points",
                        "scoring": "self_assessed",
                        "not_applicable": True,
                    },
                ],
            },
        ],
    }
    data.update(overrides)
    return data


@pytest.fixture
def make_framework() -> Callable[..., Framework]:
    def make(mutate: Callable[[dict[str, Any]], None] | None = None, **overrides: Any) -> Framework:
        data = copy.deepcopy(base_data(**overrides))
        if mutate is not None:
            mutate(data)
        return build_framework(data, "test.yaml").framework

    return make


@pytest.fixture
async def client(w: WebProvince) -> AsyncIterator[TestClient[object, object]]:
    """The web workspace of the test module's province `w` (a fixture of the web tests), on 127.0.0.1."""
    c = w.app_client()
    await c.start_server()
    try:
        yield c
    finally:
        await c.close()
