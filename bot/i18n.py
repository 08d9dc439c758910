"""Localized text: message keys → Vietnamese (default) or English, numbers and dates as users write them.

The pure core returns message keys with parameters; only this module turns them into text. The
catalogs are `locales/<lang>/LC_MESSAGES/dti.po`, compiled to `.mo` by `make`; a missing compiled
catalog is an installation error, reported with the command that fixes it.
"""

from __future__ import annotations

import datetime as dt
import functools
import gettext
from decimal import ROUND_HALF_UP, Context, Decimal, localcontext
from functools import cache
from pathlib import Path

from babel.numbers import format_decimal

LOCALES_DIR = Path(__file__).resolve().parent.parent / "locales"
DOMAIN = "dti"
LANGUAGES = ("vi", "en")
DEFAULT_LANGUAGE = "vi"


def _display(value: Decimal, places: int) -> Context:
    """A context wide enough for every digit of `value` at `places` decimals (Babel formats in the
    active context): numbers are bounded where they are typed, but nothing shown may fail for size."""
    return Context(prec=max(28, value.adjusted() + places + 2))


def _half_up(value: Decimal, places: int, context: Context) -> Decimal:
    """Officials round half up (Babel would round half to even)."""
    return value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP, context=context)


class CatalogMissing(RuntimeError):
    pass


@cache
def _catalog(lang: str) -> gettext.GNUTranslations:
    try:
        return gettext.translation(DOMAIN, localedir=str(LOCALES_DIR), languages=[lang])
    except FileNotFoundError:
        raise CatalogMissing(
            f"compiled message catalog for '{lang}' not found under {LOCALES_DIR}; run `make catalogs`"
        ) from None


@functools.lru_cache(maxsize=4096)
def _formatted(value: Decimal | int, pattern: str, places: int, lang: str) -> str:
    # Babel's formatting costs a fraction of a millisecond and every progress line repeats the same
    # few numbers; equal values format identically, so they share one entry.
    number = Decimal(value)
    context = _display(number, places)
    with localcontext(context):
        return format_decimal(_half_up(number, places, context), format=pattern, locale=lang)


class Translator:
    """Text, numbers and dates for one language."""

    def __init__(self, lang: str = DEFAULT_LANGUAGE) -> None:
        if lang not in LANGUAGES:
            lang = DEFAULT_LANGUAGE
        self.lang = lang
        self._catalog = _catalog(lang)

    def __call__(self, msgid: str, /, **params: object) -> str:
        text = self._catalog.gettext(msgid)
        return text.format(**params)

    def has(self, msgid: str) -> bool:
        return self._catalog.gettext(msgid) != msgid

    def number(self, value: Decimal | int, places: int = 2) -> str:
        """70.4 → "70,4" (vi) / "70.4" (en); at most `places` decimals, thousands grouped."""
        return _formatted(value, "#,##0" + ("." + "#" * places if places else ""), places, self.lang)

    def fixed(self, value: Decimal, places: int) -> str:
        """Exactly `places` decimals: the index as published, 0,6077."""
        return _formatted(value, "0." + "0" * places if places else "0", places, self.lang)

    @staticmethod
    def date(value: dt.date) -> str:
        return value.strftime("%d/%m/%Y")
