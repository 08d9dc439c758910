"""Reading an annex's rule text (*Cách xác định và tính điểm*) into a scoring method.

A province's annex says how each indicator is scored in a few recurring shapes: a choice whose options
carry points or fractions of the max, tiers on a count or a rate, a ratio a/b of two defined terms, a
rate with a target, a checklist of parts that add up, yes/no. `read_rule` turns one rule text and the
indicator's max points into the `answer` and `scoring` mappings of a framework file, with a confidence
and notes for the report. It never guesses with high confidence: whatever it cannot read for certain
is marked medium or low, and what it cannot read at all stays self-assessed points within [0, max]
with the rule text shown to the official and the reviewer.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any

from scoring.messages import N_
from scoring.numbers import HUNDRED, ONE, ZERO, mul_div, plain, total
from scoring.textfold import fold


class Confidence(StrEnum):
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


@dataclass(frozen=True, slots=True)
class RuleNote:
    """A message key with its parameters: something the report tells the officer about a reading."""

    key: str
    params: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Reading:
    """How one rule text was read: the framework file's `answer` and `scoring` mappings."""

    answer: dict[str, Any]
    scoring: dict[str, Any]
    confidence: Confidence
    notes: tuple[RuleNote, ...] = ()
    errors: tuple[RuleNote, ...] = ()

    @property
    def method(self) -> str:
        return str(self.scoring["method"])

    @property
    def answer_type(self) -> str:
        return str(self.answer["type"])

    @property
    def understood(self) -> bool:
        return self.method != "self_assessed" and not self.errors


# -- normalising --------------------------------------------------------------------------------

# Word's list bullets, including the Symbol/Wingdings private-use code points a paste keeps.
_BULLETS = "•▪●◦○■□►▸‣⁃∙◆❖✓✔➢➤\uf0b7\uf0a7\uf0d8\uf076\uf0fc\uf0e0\uf0a8\uf02d"
_DASHES = str.maketrans({"–": "-", "—": "-", "−": "-", "‐": "-", "‑": "-", "×": "*", "≥": ">=", "≤": "<="})
_SPACES = re.compile(r"[ \t\u00a0\u2007\u202f\u200b]+")
_BULLET_RE = re.compile("[" + re.escape(_BULLETS) + "]")


_PRIVATE_BULLETS = str.maketrans({c: "•" for c in _BULLETS if "\ue000" <= c <= "\uf8ff"})


def readable(text: str) -> str:
    """The rule text as written, with the Symbol-font bullets a paste from Word keeps (private-use code
    points, drawn as empty boxes anywhere but in Word) shown as the bullets they are."""
    return text.translate(_PRIVATE_BULLETS)


def normalize(text: str) -> str:
    """NFC text with Word's bullets as line starts, one kind of dash, spaces collapsed."""
    text = unicodedata.normalize("NFC", text).translate(_DASHES)
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\u2028", "\n").replace("\v", "\n")
    text = _BULLET_RE.sub("\n", text)
    text = _SPACES.sub(" ", text)
    return "\n".join(line.strip() for line in text.split("\n") if line.strip())


_CLAUSE_SPLIT = re.compile(
    r"\n|;|(?<=\S)\.\s+(?=[^\d\s])|\s+-\s+(?=[^\d\s<>=])|(?:^|\s)\+\s+(?=\D)"
    r"|(?<=điểm),\s+|(?<=diem),\s+|(?<=\dđ),\s+|(?<=\dd),\s+",
    re.IGNORECASE,
)


def clauses(text: str) -> list[str]:
    """The rule's clauses: its lines and ';'-separated pieces, without bullets or list marks."""
    out: list[str] = []
    for piece in _CLAUSE_SPLIT.split(normalize(text)):
        piece = piece.strip().lstrip("-+*").strip().rstrip(".,;").strip()
        if piece:
            out.append(piece)
    return out


# -- points phrases -----------------------------------------------------------------------------

_NUM = r"(\d+(?:[.,]\d+)?)"
_MAXWORDS = r"(?:so )?(?:diem|d) toi da(?: cua chi (?:tieu|so)(?: nay)?)?"
_POINT_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(rf"^(?:bang |duoc |= ?)?{_MAXWORDS}$|^toi da$|^max$"), "max"),
    (re.compile(rf"^{_NUM}\s*/\s*{_NUM}\s*(?:\*\s*|x\s+)?(?:cua )?{_MAXWORDS}$"), "fraction"),
    (re.compile(rf"^{_MAXWORDS}\s*(?:\*|x)\s*{_NUM}\s*/\s*{_NUM}$"), "fraction"),
    (re.compile(rf"^{_NUM}\s*%\s*(?:\*\s*|x\s+)?(?:cua )?{_MAXWORDS}$"), "percent"),
    (re.compile(rf"^{_MAXWORDS}\s*(?:\*|x)\s*{_NUM}\s*%$"), "percent"),
    (re.compile(rf"^{_NUM}\s*(?:\*|x)\s*{_MAXWORDS}$"), "times"),
    (re.compile(rf"^{_MAXWORDS}\s*(?:\*|x)\s*{_NUM}$"), "times"),
    (re.compile(rf"^{_MAXWORDS}\s*/\s*{_NUM}$"), "divided"),
    (re.compile(rf"^(?:duoc |bang |= ?)?{_NUM}\s*(?:diem|d)?$"), "points"),
    (re.compile(r"^(?:khong|ko) (?:duoc )?(?:cham )?diem$"), "zero"),
)


def _decimal(text: str) -> Decimal | None:
    try:
        return Decimal(text.replace(",", "."))
    except InvalidOperation:
        return None


def points_phrase(text: str, max_points: Decimal) -> Decimal | None:
    """The points a phrase like "10 điểm", "10đ", "1/2*Điểm tối đa", "50% điểm tối đa" is worth."""
    f = re.sub(r"\([^)]*\)", " ", fold(normalize(text)))  # "(tối đa)", "(làm tròn)"
    f = " ".join(f.split()).strip(" .,:;")
    f = re.sub(r"\s*\*\s*", "*", f)
    for pattern, kind in _POINT_PATTERNS:
        m = pattern.match(f)
        if m is None:
            continue
        nums = [_decimal(g) for g in m.groups()]
        if any(n is None for n in nums):
            return None
        values = [n for n in nums if n is not None]
        if kind == "max":
            return max_points
        if kind == "zero":
            return ZERO
        if kind == "points":
            return values[0]
        if kind == "fraction":
            if values[1] == ZERO or values[0] > values[1]:
                return None
            return mul_div(values[0], max_points, values[1])
        if kind == "percent":
            return mul_div(values[0], max_points, HUNDRED)
        if kind == "times":
            return mul_div(values[0], max_points, ONE) if values[0] <= ONE else None
        if kind == "divided":
            return mul_div(ONE, max_points, values[0]) if values[0] >= ONE else None
    return None


# -- one clause: "condition: points" ------------------------------------------------------------

_SEPARATORS = (
    re.compile(r"\s*(?::|=>|->|→)\s*"),
    re.compile(r"\s+(?:thì|thi|được|duoc|đạt|dat|cho|tính|tinh)\s+", re.IGNORECASE),
    re.compile(r"\s*[=,]\s*"),
)


@dataclass(frozen=True, slots=True)
class Clause:
    label: str  # the condition as written (NFC), without the points
    points: Decimal | None  # None: no points phrase (a definition, a formula, an explanation)
    text: str


_OPERATOR_END = re.compile(
    r"(?:[*/x×]|nhân|nhan|với|voi|trừ|tru|giảm|giam|cộng|cong|thêm|them|mỗi|moi)\s*$", re.IGNORECASE
)
_DEDUCTION = re.compile(r"\b(?:bi )?tru(?: di)?\s*\d|\bgiam\s*\d|\bcong them\s*\d|\bthuong\s*\d")


def read_clause(text: str, max_points: Decimal) -> Clause:
    """A clause split into its condition and its points ("Có: 10 điểm", "từ 3 đến 5 lớp thì 10đ")."""
    for sep in _SEPARATORS:
        for m in reversed(list(sep.finditer(text))):
            if _OPERATOR_END.search(text[: m.start()]):
                continue
            pts = points_phrase(text[m.end() :], max_points)
            if pts is not None:
                return Clause(text[: m.start()].strip(" :-,"), pts, text)
    if re.search(r"(?:điểm|diem|\dđ|\dd)\s*$", text, re.IGNORECASE):
        for m in reversed(list(re.finditer(r"\s+", text))[-3:]):
            if _OPERATOR_END.search(text[: m.start()]) or "=" in text[: m.start()]:
                continue
            pts = points_phrase(text[m.end() :], max_points)
            if pts is not None:
                return Clause(text[: m.start()].strip(" :-,"), pts, text)
    return Clause(text, None, text)


# -- conditions on a count or a rate ------------------------------------------------------------

_PER_YEAR = (
    (re.compile(r"\b(?:moi|hang|1) tuan\b"), 52),
    (re.compile(r"\b(?:moi|hang|1) thang\b"), 12),
    (re.compile(r"\b(?:moi|hang|1) quy\b"), 4),
    (re.compile(r"\b6 thang\b|\bnua nam\b|\b(?:moi|hang) 6 thang\b"), 2),
    (re.compile(r"\b(?:moi|hang|1) nam\b"), 1),
)


@dataclass(frozen=True, slots=True)
class Condition:
    min: Decimal
    percent: bool
    unit: str | None
    above: bool = False  # "trên 80%": the measure must be above the bound


_NOT_UNITS = frozenset(
    {"tro", "len", "den", "va", "hoac", "diem", "d", "tren", "duoi", "thi", "dat", "la", "tu", "moi", "trong"}
)
_DATE = re.compile(
    r"\b\d{1,2}\s*/\s*\d{1,2}\b|\bngay\s+\d|\bthang\s+\d+\b(?!\s*lan)"
    r"|\bquy\s+(?:[ivx]+\b|[1-4]\b(?!\s*lan))|\bnam\s+\d{4}"
)
_LEVEL_WORDS = ("muc", "cap", "loai", "nhom", "bac")


def _unit(label: str) -> str | None:
    """The words after the first number: "từ 6 lớp trở lên" → "lớp", "3 hệ thống" → "hệ thống"."""
    m = re.search(r"\d+(?:[.,]\d+)?\s*([^\W\d_]+(?:\s*/\s*[^\W\d_]+)?(?:\s+[^\W\d_]+)?)", normalize(label))
    if m is None:
        return None
    words: list[str] = []
    for word in m.group(1).split():
        if fold(word).split("/")[0] in _NOT_UNITS:
            break
        words.append(word)
    return " ".join(words) or None


_NONE_WORDS = re.compile(r"^(?:khong|chua|ko)\b|^0\b|\bkhong (?:co|to chuc|thuc hien|dat)\b")


def condition(label: str) -> Condition | None:
    """The lower bound a tier's condition sets: "từ 6 lớp trở lên" → 6, "1-2 lớp" → 1, "trên 80%"."""
    f = fold(label).replace(",", ".")
    f = re.sub(r"(\d)\s*\.\s*(\d)", r"\1.\2", f)
    percent = "%" in f
    for pattern, per_year in _PER_YEAR:
        if pattern.search(f) and re.search(r"\blan\b|\bmoi\b|\bhang\b", f):
            times = re.search(r"(\d+) lan", f)
            n = Decimal(times.group(1)) if times else ONE
            if re.search(r"\b6 thang\b|\bnua nam\b", f):
                return Condition(n * 2, False, "lần/năm")
            return Condition(n * per_year, False, "lần/năm")
    nums = [(m.group(), m.end()) for m in re.finditer(r"\d+(?:\.\d+)?", f)]
    if not nums:
        if _NONE_WORDS.search(f):
            return Condition(ZERO, percent, None)
        return None
    first = Decimal(nums[0][0])
    unit = None if percent else _unit(label)
    if "lan/nam" in f or "lan / nam" in f or "lan trong nam" in f:
        unit = "lần/năm"
    if re.search(r"(?:duoi|<(?!=)|nho hon|it hon|chua dat)\s*\d", f) and not re.search(
        r"\d\s*%?\s*(?:-|den)\s*(?:duoi|<)", f
    ):
        return Condition(ZERO, percent, unit)
    if re.search(r"(?:tren|>(?!=)|lon hon|nhieu hon|vuot)\s*\d", f):
        if percent or (first != first.to_integral_value()):
            return Condition(first, percent, unit, above=True)
        return Condition(first + ONE, percent, unit)
    return Condition(first, percent, unit)


# -- the shapes ---------------------------------------------------------------------------------

_YES = re.compile(r"^(?:co|da|dung|dat|thuc hien|hoan thanh|yes)\b")
_NO = re.compile(r"^(?:khong|chua|ko|khong co|sai|no)\b")
_RATE_FORMULA = re.compile(
    r"(?:ty le|ti le|a/b|\(a/b\))\s*(?:%\s*)?(?:\*|x|nhan(?: voi)?)\s*(?:so )?(?:diem|d) toi da"
    r"|(?:diem|d) toi da\s*(?:\*|x|nhan(?: voi)?)\s*(?:ty le|ti le|a/b|\(a/b\))"
)
_RATE_TARGET_FORMULA = re.compile(
    r"(?:ty le|ti le|a/b)\s*\)?\s*/\s*(\d+(?:[.,]\d+)?)\s*%?\s*\)?"
    r"\s*(?:\*|x|nhan(?: voi)?)\s*(?:so )?(?:diem|d) toi da"
)
_CAP = re.compile(
    r"^(?:nhung |va )?(?:toi da|khong qua|tong (?:so )?diem toi da|cong don toi da)(?: la| bang)?$"
)
_TERM = re.compile(r"(?:^|[\s(;])([abAB])\s*(?::|=|là|la)\s*(.+)$")


def _num(value: Decimal) -> int | str:
    return int(value) if value == value.to_integral_value() else plain(value)


def _self_assessed(
    confidence: Confidence, notes: Sequence[RuleNote], errors: Sequence[RuleNote] = ()
) -> Reading:
    return Reading({"type": "points"}, {"method": "self_assessed"}, confidence, tuple(notes), tuple(errors))


def _key(n: int) -> str:
    return f"o{n}"


def read_rule(text: str | None, max_points: Decimal) -> Reading:
    """How the rule text scores an indicator worth `max_points`."""
    if not text or not text.strip():
        return _self_assessed(Confidence.LOW, [RuleNote(N_("rule.empty"))])
    pieces = clauses(text)
    folded_all = fold(normalize(text))
    read = [read_clause(p, max_points) for p in pieces]
    over = [c for c in read if c.points is not None and c.points > max_points]
    if over:
        return _self_assessed(
            Confidence.LOW,
            [],
            [
                RuleNote(
                    N_("rule.points_exceed_max"),
                    {"points": plain(c.points or ZERO), "max": plain(max_points), "clause": c.text},
                )
                for c in over
            ],
        )
    if _DEDUCTION.search(folded_all):
        # "chậm: trừ 2 điểm", "cộng thêm 1 điểm": points taken from or added to others, not modelled
        return _self_assessed(Confidence.LOW, [RuleNote(N_("rule.deduction"))])
    terms = _terms(pieces)
    if terms is not None:
        return _ratio(terms, read, folded_all, max_points)
    if _RATE_FORMULA.search(folded_all) or _RATE_TARGET_FORMULA.search(folded_all):
        return _rate({"type": "percentage"}, read, folded_all, max_points, [])
    scored = [c for c in read if c.points is not None]
    if not scored:
        return _self_assessed(Confidence.LOW, [RuleNote(N_("rule.not_understood"))])
    if any(_CAP.match(fold(c.label)) or fold(c.label).endswith(" toi da") for c in scored):
        # "mỗi hệ thống: 2 điểm, tối đa 10 điểm": points per item up to a cap
        return _self_assessed(Confidence.LOW, [RuleNote(N_("rule.per_item"))])
    notes: list[RuleNote] = []
    unread = [c for c in read if c.points is None]
    if unread:
        notes.append(RuleNote(N_("rule.clauses_ignored"), {"clauses": " | ".join(c.text for c in unread)}))
    tiers = _tiers({"type": "count"}, scored, max_points, notes)
    if tiers is not None:
        return tiers
    return _choice_like(scored, max_points, notes)


def _terms(pieces: Sequence[str]) -> tuple[str, str] | None:
    found: dict[str, str] = {}
    for piece in pieces:
        for part in re.split(r"(?=(?:^|\s)[abAB]\s*(?:=|:)\s)", piece):
            m = _TERM.search(part.strip())
            if m and m.group(1).lower() not in found and len(m.group(2).strip()) >= 3:
                found[m.group(1).lower()] = m.group(2).strip().rstrip(".,;")
    if "a" in found and "b" in found:
        return found["a"], found["b"]
    return None


def _ratio(terms: tuple[str, str], read: Sequence[Clause], folded_all: str, max_points: Decimal) -> Reading:
    answer = {"type": "ratio", "numerator_label": terms[0], "denominator_label": terms[1]}
    formula_clauses = [c for c in read if _TERM.search(c.text) is None]
    if not re.search(r"a\s*/\s*b|a\s*:\s*b", folded_all):
        return _self_assessed(Confidence.LOW, [RuleNote(N_("rule.ratio_without_formula"))])
    return _rate(answer, formula_clauses, folded_all, max_points, [])


def _rate(
    answer: dict[str, Any],
    read: Sequence[Clause],
    folded_all: str,
    max_points: Decimal,
    notes: list[RuleNote],
) -> Reading:
    scored = [c for c in read if c.points is not None]
    proportional = _RATE_FORMULA.search(folded_all) is not None
    explicit = _RATE_TARGET_FORMULA.search(folded_all)
    if explicit is not None:
        target = _decimal(explicit.group(1)) or HUNDRED
        if not (ZERO < target <= HUNDRED):
            return _self_assessed(Confidence.LOW, [RuleNote(N_("rule.not_understood"))])
        return Reading(answer, {"method": "rate", "target": _num(target)}, Confidence.HIGH, tuple(notes))
    if proportional:
        full = [c for c in scored if c.points == max_points]
        others = [c for c in scored if c.points != max_points]
        if others:
            return _self_assessed(
                Confidence.LOW,
                [RuleNote(N_("rule.rate_mixed"), {"clauses": " | ".join(c.text for c in others)})],
            )
        if not full:
            return Reading(answer, {"method": "rate"}, Confidence.HIGH, tuple(notes))
        cond = condition(full[0].label)
        if cond is None or not cond.percent or len(full) > 1:
            return Reading(
                answer,
                {"method": "rate"},
                Confidence.MEDIUM,
                (*notes, RuleNote(N_("rule.clauses_ignored"), {"clauses": full[0].text})),
            )
        if cond.min == HUNDRED:
            return Reading(answer, {"method": "rate"}, Confidence.HIGH, tuple(notes))
        # "từ 80% trở lên: điểm tối đa; dưới 80%: tỷ lệ × điểm tối đa": full points from 80 %,
        # the rate × max below it
        if cond.above or not ZERO < cond.min < HUNDRED:
            return _self_assessed(Confidence.LOW, [RuleNote(N_("rule.not_understood"))])
        scoring = {"method": "rate", "full_from": _num(cond.min)}
        return Reading(answer, scoring, Confidence.HIGH, tuple(notes))
    if scored:
        bands = _tiers(answer, scored, max_points, notes, rate=True)
        if bands is not None:
            return bands
    if answer["type"] == "ratio":
        return Reading(
            answer,
            {"method": "rate"},
            Confidence.MEDIUM,
            (*notes, RuleNote(N_("rule.ratio_scoring_assumed"))),
        )
    return _self_assessed(Confidence.LOW, [RuleNote(N_("rule.not_understood"))])


def _tiers(
    answer: dict[str, Any],
    scored: Sequence[Clause],
    max_points: Decimal,
    notes: list[RuleNote],
    *,
    rate: bool = False,
) -> Reading | None:
    conds = [condition(c.label) for c in scored]
    if any(c is None for c in conds):
        return None
    real = [(c, s) for c, s in zip(conds, scored, strict=True) if c is not None]
    # a tier table has at least one number; "Có: 10; Không: 0" is not one
    if not any(c.min > ZERO for c, _ in real):
        return None
    percents = {c.percent for c, _ in real if c.min > ZERO}
    if len(percents) > 1:
        return None
    percent = percents.pop()
    if any(_DATE.search(fold(s.label)) for _, s in real):
        return None  # "trước 30/6": a date, not a count
    if any(c.unit and fold(c.unit).startswith(_LEVEL_WORDS) for c, _ in real) or any(
        re.search(r"\b(?:muc(?: do)?|cap(?: do)?|loai|bac|nhom)\s+\d", fold(s.label)) for _, s in real
    ):
        return None  # "mức độ 4", "cấp tỉnh": levels to choose from, not a count
    if rate and not percent:
        return None
    confidence = Confidence.HIGH
    local = list(notes)
    ordered = sorted(real, key=lambda cs: cs[0].min, reverse=True)
    tiers: list[dict[str, Any]] = []
    previous: tuple[Decimal, Decimal] | None = None
    for cond, clause in ordered:
        pts = clause.points
        assert pts is not None
        if previous is not None and (cond.min == previous[0] or pts > previous[1]):
            return None
        previous = (cond.min, pts)
        if cond.min == ZERO and pts == ZERO and not cond.above:
            continue
        tier: dict[str, Any] = {"min": _num(cond.min), "points": _num(pts)}
        if cond.above:
            tier["above"] = True
        tiers.append(tier)
    if not tiers:
        return None
    if Decimal(str(tiers[0]["points"])) < max_points:
        confidence = Confidence.MEDIUM
        local.append(RuleNote(N_("rule.max_unreachable"), {"max": plain(max_points)}))
    if any(n.key == "rule.clauses_ignored" for n in local):
        confidence = Confidence.MEDIUM
    if not percent and answer["type"] == "count" and not any(c.unit for c, _ in real if c.min > ZERO):
        confidence = Confidence.MEDIUM  # a count of what? the officer checks
        local.append(RuleNote(N_("rule.count_without_unit")))
    if answer["type"] == "count" and percent:
        answer = {"type": "percentage"}
    elif answer["type"] == "count":
        units = [c.unit for c, _ in ordered if c.unit]
        answer = {"type": "count", "unit": units[0]} if units else {"type": "count"}
    return Reading(answer, {"method": "tiers", "tiers": tiers}, confidence, tuple(local))


def _choice_like(scored: Sequence[Clause], max_points: Decimal, notes: list[RuleNote]) -> Reading:
    folded = [fold(c.label) for c in scored]
    confidence = Confidence.MEDIUM if notes else Confidence.HIGH
    if any(not c.label for c in scored):
        return _self_assessed(Confidence.LOW, [*notes, RuleNote(N_("rule.not_understood"))])
    if len(scored) == 2:
        yes_no = None
        if _YES.match(folded[0]) and _NO.match(folded[1]):
            yes_no = (scored[0], scored[1])
        elif _NO.match(folded[0]) and _YES.match(folded[1]):
            yes_no = (scored[1], scored[0])
        if yes_no is not None and yes_no[0].points == max_points and yes_no[1].points == ZERO:
            return Reading({"type": "yes_no"}, {"method": "yes_no"}, confidence, tuple(notes))
    if len(scored) == 1:
        only = scored[0]
        if only.points == max_points:
            return Reading(
                {"type": "yes_no"},
                {"method": "yes_no"},
                Confidence.MEDIUM,
                (*notes, RuleNote(N_("rule.single_clause"), {"clause": only.text})),
            )
        return _self_assessed(Confidence.LOW, [*notes, RuleNote(N_("rule.not_understood"))])
    points = [c.points for c in scored if c.points is not None]
    options = [
        {"key": _key(n), "label": c.label, "points": _num(c.points or ZERO)} for n, c in enumerate(scored, 1)
    ]
    has_max = max_points in points
    has_zero = ZERO in points
    summed = total(points)
    if not has_max and not has_zero and summed == max_points:
        return Reading({"type": "parts", "options": options}, {"method": "parts"}, confidence, tuple(notes))
    local = list(notes)
    if not has_max:
        confidence = Confidence.MEDIUM
        local.append(RuleNote(N_("rule.max_unreachable"), {"max": plain(max_points)}))
    return Reading({"type": "choice", "options": options}, {"method": "choice"}, confidence, tuple(local))
