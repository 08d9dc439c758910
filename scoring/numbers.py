"""Exact decimal arithmetic for scores, and the rounding the decisions publish.

Every quantity is a finite decimal. Division is the only operation that can produce a repeating
decimal (1/3 × 10); its result is fixed at 30 decimal places, far below anything published. All
other operations go through one explicit 60-digit context, never the thread's global decimal
context, so sums of fixed-point values are exact and associative: group sums always add up to the
total, whatever order they are summed in. Rounding happens only for display: scores to 2
decimals, the index to 4, half up as officials round by hand.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Context, Decimal

ZERO = Decimal(0)
ONE = Decimal(1)
HUNDRED = Decimal(100)

_CTX = Context(prec=60, rounding=ROUND_HALF_EVEN)
_FIXED = Decimal("1e-30")
_SCORE_QUANTUM = Decimal("0.01")
_INDEX_QUANTUM = Decimal("0.0001")


def add(a: Decimal, b: Decimal) -> Decimal:
    return _CTX.add(a, b)


def sub(a: Decimal, b: Decimal) -> Decimal:
    return _CTX.subtract(a, b)


def total(values: Iterable[Decimal]) -> Decimal:
    """The exact sum of `values`."""
    acc = ZERO
    for v in values:
        acc = _CTX.add(acc, v)
    return acc


def mul_div(a: Decimal, b: Decimal, c: Decimal) -> Decimal:
    """a × b ÷ c, fixed at 30 decimal places; c must not be zero."""
    return _CTX.divide(_CTX.multiply(a, b), c).quantize(_FIXED, context=_CTX)


def divide(a: Decimal, b: Decimal) -> Decimal:
    """a ÷ b, fixed at 30 decimal places; b must not be zero."""
    return _CTX.divide(a, b).quantize(_FIXED, context=_CTX)


def percent_of(part: Decimal, whole: Decimal) -> Decimal:
    """part as a percentage of whole; 0 when whole is 0."""
    if whole == ZERO:
        return ZERO
    return mul_div(part, HUNDRED, whole)


def ratio_of(part: Decimal, whole: Decimal) -> Decimal:
    """part ÷ whole on a 0–1 scale (the published index); 0 when whole is 0."""
    if whole == ZERO:
        return ZERO
    return divide(part, whole)


def clamp(value: Decimal, upper: Decimal) -> Decimal:
    """value limited to [0, upper]."""
    if value < ZERO:
        return ZERO
    if value > upper:
        return upper
    return value


def round_score(value: Decimal) -> Decimal:
    """A score as published: 2 decimals, half up."""
    return value.quantize(_SCORE_QUANTUM, rounding=ROUND_HALF_UP, context=_CTX)


def round_index(value: Decimal) -> Decimal:
    """The index as published on its 0–1 scale: 4 decimals, half up (e.g. 0,6077)."""
    return value.quantize(_INDEX_QUANTUM, rounding=ROUND_HALF_UP, context=_CTX)


def plain(value: Decimal) -> str:
    """A decimal written without exponent or trailing zeros ("412.5", "20", "0.0001")."""
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text
