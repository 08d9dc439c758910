"""The forgiving parsers: what officials type on a phone, and that nothing they type can crash them."""

from __future__ import annotations

import datetime as dt
import unicodedata
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.i18n import Translator
from flows.intents import Intent, detect, payload, read_payload
from flows.parse import (
    Problem,
    parse_answer,
    parse_citation,
    parse_link,
    parse_number,
    parse_ratio,
    parse_yes_no,
)
from scoring.model import Framework, Ratio
from tests.conftest import D


@pytest.mark.parametrize(
    "text", ["có", "Có", "CÓ", "co", "c", "ok", "đúng", "dung", "Có.", " có ", "yes", "👍", "rồi"]
)
def test_yes(text: str) -> None:
    assert parse_yes_no(text) is True


@pytest.mark.parametrize(
    "text", ["không", "khong", "ko", "k", "KHÔNG", "chưa", "chua", "no", "Không!", "sai"]
)
def test_no(text: str) -> None:
    assert parse_yes_no(text) is False


def test_decomposed_vietnamese_is_understood() -> None:
    nfd = unicodedata.normalize("NFD", "Không")
    assert nfd != "Không" and parse_yes_no(nfd) is False
    assert parse_yes_no(unicodedata.normalize("NFD", "có")) is True


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("70,4", "70.4"),
        ("70.4", "70.4"),
        ("70,4%", "70.4"),
        ("70,4 %", "70.4"),
        (" 100 ", "100"),
        ("0", "0"),
        ("15 điểm", "15"),
    ],
)
def test_numbers(text: str, value: str) -> None:
    assert parse_number(text) == D(value)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1.234", "1234"),
        ("1.234.567", "1234567"),
        ("1 234 567", "1234567"),
        ("1.234,5", "1234.5"),
        ("1,234.5", "1234.5"),
        ("4 cuộc", "4"),
    ],
)
def test_thousands_for_counts_and_amounts(text: str, value: str) -> None:
    assert parse_number(text, thousands_dot=True) == D(value)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("150 triệu", "150000000"),
        ("1,5 tỷ", "1500000000"),
        ("150.000.000 đồng", "150000000"),
        ("200k", "200000"),
    ],
)
def test_money_words(text: str, value: str) -> None:
    assert parse_number(text, thousands_dot=True, units=True) == D(value)


@pytest.mark.parametrize("text", ["", "abc", "12/30", "1,2,3", "--5", "5 6", "1e5", "∞", "NaN"])
def test_not_numbers(text: str) -> None:
    assert parse_number(text) is None


@pytest.mark.parametrize(
    ("text", "num", "den"),
    [
        ("12/30", 12, 30),
        ("12 / 30", 12, 30),
        ("12 trên 30", 12, 30),
        ("12 tren 30", 12, 30),
        ("1.200/3.000", 1200, 3000),
    ],
)
def test_ratios(text: str, num: int, den: int) -> None:
    assert parse_ratio(text) == (D(num), D(den))


def test_answers_by_type(tay_ninh: Framework, maturity: Framework) -> None:
    rate = tay_ninh.indicator("1.1")
    yes_no = tay_ninh.indicator("3.5")
    points = tay_ninh.indicator("1.4")
    choice = maturity.indicator("1.1")
    parts = maturity.indicator("3.4")
    count = maturity.indicator("1.3")
    assert rate and yes_no and points and choice and parts and count
    assert parse_answer(rate, "70,4%") == D("70.4")
    assert parse_answer(rate, "12 trên 30") == Ratio(D(12), D(30))
    assert parse_answer(yes_no, "ko") is False
    assert parse_answer(points, "15") == D(15)
    assert parse_answer(choice, "2") == "pho_chu_tich"
    assert parse_answer(choice, "Chủ tịch UBND xã") == "chu_tich"
    assert parse_answer(choice, "pho chu tich") == "pho_chu_tich"
    assert parse_answer(parts, "1, 2") == frozenset({"to_chuc", "bao_cao"})
    assert parse_answer(parts, "tất cả") == frozenset({"to_chuc", "bao_cao"})
    assert parse_answer(parts, "không") == frozenset()
    assert parse_answer(count, "4 cuộc") == D(4)


@pytest.mark.parametrize(
    ("code", "text", "key"),
    [
        ("1.1", "120", "ask.bad.percent_range"),
        ("1.1", "31/30", "ask.bad.numerator_exceeds"),
        ("1.1", "3/0", "ask.bad.denominator_zero"),
        ("1.1", "-5", "ask.bad.negative"),
        ("1.1", "nhiều", "ask.bad.percentage"),
        ("3.5", "có lẽ", "ask.bad.yes_no"),
        ("1.4", "25", "ask.bad.points_range"),
        ("1.4", "x" * 400, "ask.bad.too_long"),
    ],
)
def test_specific_problems(tay_ninh: Framework, code: str, text: str, key: str) -> None:
    ind = tay_ninh.indicator(code)
    assert ind is not None
    result = parse_answer(ind, text)
    assert isinstance(result, Problem) and result.key == key


def test_count_must_be_whole(maturity: Framework) -> None:
    ind = maturity.indicator("1.3")
    assert ind is not None
    result = parse_answer(ind, "2,5")
    assert isinstance(result, Problem) and result.key == "ask.bad.count"


def test_citations_and_links() -> None:
    c = parse_citation("123/QĐ-UBND - 15/03/2025 - Về việc ban hành kế hoạch chuyển đổi số")
    assert c is not None and (c.number, c.date, c.summary) == (
        "123/QĐ-UBND",
        dt.date(2025, 3, 15),
        "Về việc ban hành kế hoạch chuyển đổi số",
    )
    assert parse_citation("45/KH-UBND – 1/2/2026 – Kế hoạch") is not None
    assert parse_citation("123/QĐ-UBND - 31/02/2025 - ngày không có") is None
    assert parse_citation("chỉ là văn bản") is None
    assert parse_link("https://xa.tayninh.gov.vn/bao-cao") == "https://xa.tayninh.gov.vn/bao-cao"
    assert parse_link("javascript:alert(1)") is None
    assert parse_link("http://localhost") is None


def test_intents_and_codes() -> None:
    codes = frozenset({"1.2", "4.22.3"})
    assert detect("Để sau", codes=codes, expects_number=False) == detect(
        "de sau", codes=codes, expects_number=True
    )
    assert detect("xem điểm", codes=codes, expects_number=True).intent is Intent.PREVIEW  # type: ignore[union-attr]
    assert detect("4.22.3", codes=codes, expects_number=True).arg == "4.22.3"  # type: ignore[union-attr]
    assert detect("1.2", codes=codes, expects_number=True) is None  # a number answer, not a jump
    assert detect("1.2", codes=codes, expects_number=False).intent is Intent.JUMP  # type: ignore[union-attr]
    assert detect("câu 1.2", codes=codes, expects_number=True).arg == "1.2"  # type: ignore[union-attr]
    assert detect("nhóm 4", codes=codes, expects_number=True).arg == "4"  # type: ignore[union-attr]
    assert detect("/start AB12CD34", codes=codes, expects_number=True).arg == "AB12CD34"  # type: ignore[union-attr]
    assert detect("khong", codes=codes, expects_number=False) is None  # "no" is an answer
    assert detect("không áp dụng", codes=codes, expects_number=False).intent is Intent.NOT_APPLICABLE  # type: ignore[union-attr]


def test_button_payloads_fit_telegram_and_round_trip() -> None:
    data = payload("ans", 123456, "4.22.10", "pho_chu_tich")
    assert len(data.encode()) <= 64
    press = read_payload(data)
    assert press is not None and (press.action, press.period_id, press.code, press.arg) == (
        "ans",
        123456,
        "4.22.10",
        "pho_chu_tich",
    )
    assert (
        read_payload("garbage") is None
        and read_payload("a|x|1|2") is None
        and read_payload("a|1|" + "x" * 80 + "|") is None
    )


HOSTILE = st.one_of(
    st.text(),
    st.text(alphabet=st.characters(categories=["Cc", "Cf", "Zs", "Mn", "So"])),
    st.text().map(lambda s: unicodedata.normalize("NFD", s)),
    st.sampled_from(
        ["٣٤", "１２/３０", "12/30/40", "1" * 5000, "\x00\x1b[31m", "𝟕𝟎", "70,4,5%", "9" * 400 + "/1"]
    ),
)


@settings(max_examples=400, deadline=None)
@given(HOSTILE)
def test_parsers_never_raise(text: str) -> None:
    parse_yes_no(text)
    parse_number(text)
    parse_number(text, thousands_dot=True, units=True)
    parse_ratio(text)
    parse_citation(text)
    parse_link(text)
    detect(text, codes=frozenset({"1.1"}), expects_number=True)


@settings(max_examples=300, deadline=None)
@given(HOSTILE, st.sampled_from(["1.1", "1.4", "3.5", "4.22.10"]))
def test_every_bad_answer_gets_a_problem_not_an_exception(tay_ninh: Framework, text: str, code: str) -> None:
    ind = tay_ninh.indicator(code)
    assert ind is not None
    result = parse_answer(ind, text)
    if isinstance(result, Decimal):
        assert result >= 0
    assert result is not None


def test_a_100kb_line_is_handled_quickly(tay_ninh: Framework) -> None:
    ind = tay_ninh.indicator("1.1")
    assert ind is not None
    result = parse_answer(ind, "7" * 100_000)
    assert isinstance(result, Problem) and result.key == "ask.bad.too_long"


def test_huge_numbers_are_refused_and_shown_without_error(tay_ninh: Framework, vi: Translator) -> None:
    ind = tay_ninh.indicator("1.1")
    assert ind is not None
    result = parse_answer(ind, "100000000000000000000000000")
    assert isinstance(result, Problem) and result.key == "ask.bad.too_large"
    assert result.params == {"max": D(100)}
    assert vi.number(D("1e26")) == "100.000.000.000.000.000.000.000.000"
