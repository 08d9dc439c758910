"""Forgiving parsers for what officials type on a phone.

NFC text, case and diacritics ignored, đ→d ("khong", "ko", "k" and "không" are all no; "chưa" is
"not yet", so no), numbers as "70,4", "70.4", "70,4 %", "1.234" (thousands), "1,5 tỷ", ratios as
"12/30" or "12 trên 30". Every parser returns a value or a `Problem` naming what was expected; none
raises, whatever the input (arbitrary Unicode, control characters, 100 KB lines).
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import ROUND_FLOOR, Decimal, InvalidOperation

from flows.model import Citation, Param
from scoring.messages import N_
from scoring.model import AnswerSpec, AnswerType, AnswerValue, Indicator, Ratio
from scoring.numbers import HUNDRED, ZERO, plain
from scoring.textfold import fold

MAX_ANSWER_CHARS = 300  # an answer is short; anything longer is not an answer
MAX_TEXT_CHARS = 4000  # what the engine looks at of any message
MAX_NOTE_CHARS = 500  # a file's caption kept as a note for the reviewer
MAX_DIGITS = 24  # digits of any number typed; more is not a number anyone means
# The largest value each kind of number can take: a count of things a commune has or did, an amount
# in đồng (a million billion is far beyond any commune budget), the terms of a ratio.
MAX_COUNT = Decimal(10) ** 9
MAX_AMOUNT = Decimal(10) ** 15
MAX_RATIO_TERM = Decimal(10) ** 9


def ascii_int(text: str) -> int | None:
    """A non-negative number written in ASCII digits; None for anything else ("²", "①", "-1", "")."""
    if not text or len(text) > 18 or not text.isascii() or not text.isdigit():
        return None
    return int(text)


@dataclass(frozen=True, slots=True)
class Problem:
    key: str
    params: Mapping[str, Param] = field(default_factory=dict)


def clean(text: str) -> str:
    """NFC, control characters removed, whitespace collapsed, cut to MAX_TEXT_CHARS."""
    text = unicodedata.normalize("NFC", text[: MAX_TEXT_CHARS * 2])
    text = "".join(ch if unicodedata.category(ch)[0] != "C" else " " for ch in text)
    return " ".join(text.split())[:MAX_TEXT_CHARS]


def folded(text: str) -> str:
    """Folded and stripped of the punctuation people put around short answers."""
    return fold(text).strip(" .!,;:?\"'()[]")


_YES = frozenset(
    {
        "co",
        "c",
        "yes",
        "y",
        "ok",
        "oke",
        "okay",
        "dung",
        "da co",
        "co roi",
        "roi",
        "da",
        "vang",
        "dong y",
        "👍",
        "✅",
        "co a",
        "ok a",
        "da dung",
        "co nhe",
    }
)
_NO = frozenset(
    {
        "khong",
        "ko",
        "k",
        "kg",
        "hong",
        "khum",
        "no",
        "n",
        "chua",
        "chua co",
        "khong co",
        "sai",
        "👎",
        "❌",
        "khong a",
        "chua a",
        "khog",
        "khg",
        "khng",
        "kh",
        "hok",
        "hem",
        "ko co",
        "k co",
        "chua lam",
        "khong lam",
    }
)
# Politeness around a short answer: "dạ không ạ", "có nhé", "ko a".
_LEADING = ("da ", "vang ")
_TRAILING = (" a", " nhe", " nha", " nhen", " day", " roi a", " a nhe")


def parse_yes_no(text: str) -> bool | None:
    f = folded(text)
    for _ in range(2):
        if f in _YES:
            return True
        if f in _NO:
            return False
        f = next((f[len(w) :] for w in _LEADING if f.startswith(w)), f)
        f = next((f[: -len(w)] for w in _TRAILING if f.endswith(w) and len(f) > len(w)), f)
    return None


# Only ASCII digits are numbers ("²" and "①" are not).
_SEPARATED = re.compile(r"^[0-9]{1,3}(?:([.,  ])[0-9]{3})+$")
_PLAIN = re.compile(r"^[0-9]+(?:[.,][0-9]+)?$")
_NUMBER_TOKEN = re.compile(r"^([+-]?)\s*([0-9.,  ]*[0-9])(.*)$")
_MULTIPLIERS: dict[str, Decimal] = {
    "ty": Decimal(10) ** 9,
    "trieu": Decimal(10) ** 6,
    "tr": Decimal(10) ** 6,
    "nghin": Decimal(1000),
    "ngan": Decimal(1000),
    "k": Decimal(1000),
    "dong": Decimal(1),
    "vnd": Decimal(1),
    "d": Decimal(1),
}


def _digits(body: str, *, thousands_dot: bool) -> Decimal | None:
    """ "1.234,5" → 1234.5; "70,4" → 70.4; "1.234" → 1234 when `thousands_dot`, else 1.234."""
    body = body.replace(" ", " ").strip()
    m = _SEPARATED.match(body)
    if m is not None:
        sep = m.group(1)
        groups = body.count(sep)
        if sep == " " or groups > 1 or (sep == "." and thousands_dot):
            body = body.replace(sep, "")
    if "." in body and "," in body:
        decimal_sep = "." if body.rfind(".") > body.rfind(",") else ","
        thousands = "," if decimal_sep == "." else "."
        body = body.replace(thousands, "").replace(decimal_sep, ".")
    else:
        body = body.replace(",", ".")
    if not _PLAIN.match(body) or sum(ch.isdigit() for ch in body) > MAX_DIGITS:
        return None
    try:
        return Decimal(body)
    except InvalidOperation:
        return None


def parse_number(text: str, *, thousands_dot: bool = False, units: bool = False) -> Decimal | None:
    """A number as typed; `units` allows money words (1,5 tỷ; 150 triệu đồng); trailing words are
    allowed ("4 cuộc", "15 điểm"), trailing digits are not."""
    f = fold(text)[:MAX_ANSWER_CHARS].rstrip(" .")
    m = _NUMBER_TOKEN.match(f)
    if m is None:
        return None
    sign, body, rest = m.groups()
    value = _digits(body, thousands_dot=thousands_dot)
    if value is None:
        return None
    rest = rest.strip().strip("%").strip()
    if units and rest:
        word = rest.split()[0].rstrip(".")
        if word in _MULTIPLIERS:
            value *= _MULTIPLIERS[word]
            rest = " ".join(rest.split()[1:])
    if rest and any(ch.isdigit() for ch in rest):
        return None
    return -value if sign == "-" else value


_RATIO = re.compile(r"^\s*([+-]?[0-9.,  ]*[0-9])\s*(?:/|tren|:|of|per)\s*([+-]?[0-9.,  ]*[0-9])\s*$")


def parse_ratio(text: str) -> tuple[Decimal, Decimal] | None:
    m = _RATIO.match(fold(text)[:MAX_ANSWER_CHARS])
    if m is None:
        return None
    num = _digits(m.group(1).lstrip("+"), thousands_dot=True)
    den = _digits(m.group(2).lstrip("+"), thousands_dot=True)
    if num is None or den is None:
        return None
    return (-num if m.group(1).startswith("-") else num), (-den if m.group(2).startswith("-") else den)


def _percent_or_ratio(spec: AnswerSpec, text: str) -> AnswerValue | Problem:
    ratio = parse_ratio(text)
    if ratio is not None:
        num, den = ratio
        if num < ZERO or den < ZERO:
            return Problem(N_("ask.bad.negative"), {"value": plain(min(num, den))})
        if den == ZERO:
            return Problem(N_("ask.bad.denominator_zero"))
        if num > den:
            return Problem(N_("ask.bad.numerator_exceeds"), {"numerator": num, "denominator": den})
        if den > MAX_RATIO_TERM:
            return Problem(N_("ask.bad.too_large"), {"max": MAX_RATIO_TERM})
        return Ratio(num, den)
    value = parse_number(text)
    if value is None:
        return Problem(N_("ask.bad.ratio") if spec.type is AnswerType.RATIO else N_("ask.bad.percentage"))
    if value < ZERO:
        return Problem(N_("ask.bad.negative"), {"value": plain(value)})
    if value > HUNDRED:
        return Problem(N_("ask.bad.percent_range"), {"value": value})
    return value


def _option_index(spec: AnswerSpec, text: str) -> str | None:
    f = folded(text)
    index = ascii_int(f)
    if index is not None and 1 <= index <= len(spec.options):
        return spec.options[index - 1].key
    for opt in spec.options:
        if f == fold(opt.key) or f == folded(opt.label):
            return opt.key
    matches = [o.key for o in spec.options if len(f) >= 3 and f in folded(o.label)]
    return matches[0] if len(matches) == 1 else None


_ALL = frozenset({"tat ca", "all", "ca hai", "ca ba", "du ca", "het"})
_NONE = frozenset({"khong", "khong co", "ko", "k", "none", "chua", "chua co"})


def _parts(spec: AnswerSpec, text: str) -> frozenset[str] | None:
    f = folded(text)
    if f in _ALL:
        return frozenset(o.key for o in spec.options)
    if f in _NONE:
        return frozenset()
    chosen: set[str] = set()
    for piece in re.split(r"\s*(?:,|;|\+|\bva\b|\band\b|\s)\s*", f):
        if not piece:
            continue
        key = _option_index(spec, piece)
        if key is None:
            return None
        chosen.add(key)
    return frozenset(chosen) if chosen else None


def _options_list(spec: AnswerSpec) -> str:
    return "; ".join(f"{i}. {o.label}" for i, o in enumerate(spec.options, 1))


def example_points(max_points: Decimal) -> Decimal:
    """A plausible self-assessed score for an indicator worth `max_points`, for the prompts: three
    quarters of the max, to the half point below (7,5 of 10; 15 of 20; 0,5 of 1)."""
    example = (max_points * 3 / 4 * 2).to_integral_value(rounding=ROUND_FLOOR) / 2
    return example if example > ZERO else max_points


def _largest(indicator: Indicator) -> Decimal:
    """The largest number an answer to `indicator` may be (for the message when one is larger)."""
    kind = indicator.answer.type
    if kind in (AnswerType.PERCENTAGE, AnswerType.RATIO):
        return HUNDRED
    return {AnswerType.COUNT: MAX_COUNT, AnswerType.AMOUNT: MAX_AMOUNT}.get(kind, indicator.max_points)


def parse_answer(indicator: Indicator, text: str) -> AnswerValue | Problem:
    """The answer `text` gives to `indicator`, or what was wrong with it."""
    spec = indicator.answer
    if len(text) > MAX_ANSWER_CHARS:
        return Problem(N_("ask.bad.too_long"), {"max": MAX_ANSWER_CHARS})
    if sum(ch in "0123456789" for ch in text) > MAX_DIGITS:
        return Problem(N_("ask.bad.too_large"), {"max": _largest(indicator)})
    kind = spec.type
    if kind is AnswerType.YES_NO:
        yn = parse_yes_no(text)
        return Problem(N_("ask.bad.yes_no")) if yn is None else yn
    if kind in (AnswerType.PERCENTAGE, AnswerType.RATIO):
        return _percent_or_ratio(spec, text)
    if kind is AnswerType.CHOICE:
        key = _option_index(spec, text)
        return Problem(N_("ask.bad.choice"), {"options": _options_list(spec)}) if key is None else key
    if kind is AnswerType.PARTS:
        parts = _parts(spec, text)
        return Problem(N_("ask.bad.parts"), {"options": _options_list(spec)}) if parts is None else parts
    value = parse_number(
        text, thousands_dot=kind in (AnswerType.COUNT, AnswerType.AMOUNT), units=kind is AnswerType.AMOUNT
    )
    if value is None:
        return Problem(
            {AnswerType.COUNT: N_("ask.bad.count"), AnswerType.AMOUNT: N_("ask.bad.amount")}.get(
                kind, N_("ask.bad.points")
            ),
            {"max": indicator.max_points, "example": example_points(indicator.max_points)},
        )
    if value < ZERO:
        return Problem(N_("ask.bad.negative"), {"value": plain(value)})
    if kind is AnswerType.COUNT and value != value.to_integral_value():
        return Problem(N_("ask.bad.count"), {"max": indicator.max_points})
    limit = {AnswerType.COUNT: MAX_COUNT, AnswerType.AMOUNT: MAX_AMOUNT}.get(kind)
    if limit is not None and value > limit:
        return Problem(N_("ask.bad.too_large"), {"max": limit})
    if kind is AnswerType.POINTS and value > indicator.max_points:
        return Problem(N_("ask.bad.points_range"), {"value": value, "max": indicator.max_points})
    return value


_CITATION = re.compile(
    r"^(.+?)\s+[-–—]\s+([0-9]{1,2})\s*[/.-]\s*([0-9]{1,2})\s*[/.-]\s*([0-9]{4})\s+[-–—]\s+(.+)$"
)
# A document number as Vietnamese documents write it: "15/BC-VNPT", "45/QĐ-UBND", "123/2025/NĐ-CP";
# a letter after the first slash tells it from a date.
_DOC_NUMBER = re.compile(
    r"(?:\b[Ss][ốốoỐO]\s*:?\s*)?(?<![\w/])([0-9]{1,6}(?:/[0-9]{4})?/[^\W\d_][\w.]*(?:[-–][\w.]+)*)"
)
# A date: "10/10/2025", "10-10-2025", "ngày 12/3/2025", "ngày 12 tháng 3 năm 2025".
_DOC_DATE = re.compile(
    r"(?:\b[Nn]g[àa]y\s*)?(?<![0-9/])([0-9]{1,2})\s*[/.-]\s*([0-9]{1,2})\s*[/.-]\s*([0-9]{4})(?![0-9/])"
    r"|\b[Nn]g[àa]y\s+([0-9]{1,2})\s+th[áa]ng\s+([0-9]{1,2})\s+n[ăa]m\s+([0-9]{4})\b"
)
_EDGES = " -–—,;:.()"


def _date(day: str, month: str, year: str) -> dt.date | None:
    try:
        date = dt.date(int(year), int(month), int(day))
    except ValueError:
        return None
    return date if 1990 <= date.year <= 2100 else None


def parse_citation(text: str) -> Citation | None:
    """A cited document: "123/QĐ-UBND - 15/03/2025 - Về việc ban hành kế hoạch", or written naturally
    with a number and a date anywhere: "Báo cáo số 15/BC-VNPT ngày 10/10/2025 về hạ tầng băng rộng",
    "QĐ 45/QĐ-UBND ngày 12/3/2025". None without both a document number and a date."""
    t = clean(text)[:1000]
    m = _CITATION.match(t)
    if m is not None:
        number, day, month, year, summary = m.groups()
        date = _date(day, month, year)
        if date is not None and _DOC_NUMBER.search(number) is not None:
            return Citation(number.strip(), date, summary.strip())
    number_match = _DOC_NUMBER.search(t)
    date_match = _DOC_DATE.search(t)
    if number_match is None or date_match is None:
        return None
    groups = date_match.groups()
    parts = groups[:3] if groups[0] is not None else groups[3:]
    date = _date(parts[0] or "", parts[1] or "", parts[2] or "")
    if date is None:
        return None
    spans = sorted([number_match.span(), date_match.span()])
    pieces = (t[: spans[0][0]], t[spans[0][1] : spans[1][0]], t[spans[1][1] :])
    summary = " ".join(" ".join(p.split()).strip(_EDGES) for p in pieces if p.strip(_EDGES))
    return Citation(number_match.group(1).rstrip("."), date, summary)


_URL = re.compile(r"^https?://\S+$", re.IGNORECASE)


def parse_link(text: str) -> str | None:
    t = clean(text)
    if len(t) > 2000 or not _URL.match(t):
        return None
    parts = urllib.parse.urlsplit(t)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc or "." not in parts.netloc:
        return None
    return t
