"""The checker every part of the gate reports to: it collects errors and warnings (never stops at the
first) and reads the YAML's basic shapes (mappings, lists, text, numbers, dates, choices)."""

from __future__ import annotations

import datetime as dt
import difflib
import re
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal, InvalidOperation
from typing import TypeVar

from scoring.gate.issues import GateIssue, GateKey, Severity
from scoring.numbers import ZERO, plain

E = TypeVar("E")


class Checker:
    def __init__(self, source: str) -> None:
        self.source = source
        self.errors: list[GateIssue] = []
        self.warnings: list[GateIssue] = []

    # -- reporting -----------------------------------------------------------------------------
    def error(self, key: GateKey, fld: str, code: str | None = None, /, **params: object) -> None:
        self.errors.append(GateIssue.of(key, self.source, fld, code, params))

    def warn(self, key: GateKey, fld: str, code: str | None = None, /, **params: object) -> None:
        self.warnings.append(GateIssue.of(key, self.source, fld, code, params, Severity.WARNING))

    # -- shape helpers -------------------------------------------------------------------------
    def mapping(self, raw: object, fld: str, code: str | None = None) -> Mapping[str, object] | None:
        if isinstance(raw, Mapping):
            return raw
        self.error(GateKey.WRONG_TYPE, fld, code, expected="mapping", found=kind_of(raw))
        return None

    def seq(self, raw: object, fld: str, code: str | None = None) -> list[object] | None:
        if isinstance(raw, list):
            return raw
        self.error(GateKey.WRONG_TYPE, fld, code, expected="list", found=kind_of(raw))
        return None

    def keys(
        self,
        data: Mapping[str, object],
        allowed: Iterable[str],
        required: Iterable[str],
        fld: str,
        code: str | None = None,
    ) -> None:
        allowed = tuple(allowed)
        for key in data:
            if key not in allowed:
                close = difflib.get_close_matches(str(key), allowed, n=1)
                self.error(
                    GateKey.UNKNOWN_KEY_DID_YOU_MEAN if close else GateKey.UNKNOWN_KEY,
                    join(fld, str(key)),
                    code,
                    key=key,
                    suggestion=close[0] if close else "",
                    allowed=", ".join(allowed),
                )
        for key in required:
            if key not in data or data[key] is None:
                self.error(GateKey.MISSING_KEY, join(fld, key), code, key=key)

    def text(self, raw: object, fld: str, code: str | None = None, *, required: bool = True) -> str | None:
        if raw is None:
            return None
        if isinstance(raw, str) and raw.strip():
            return " ".join(raw.split()) if "\n" not in raw.strip() else raw.strip()
        if isinstance(raw, str) and not required:
            return None
        self.error(GateKey.WRONG_TYPE, fld, code, expected="text", found=kind_of(raw))
        return None

    def identifier(self, raw: object, fld: str, code: str | None = None) -> str | None:
        if isinstance(raw, bool) or not isinstance(raw, (str, int)):
            if raw is not None:
                self.error(GateKey.WRONG_TYPE, fld, code, expected="text", found=kind_of(raw))
            return None
        return str(raw).strip()

    def number(
        self,
        raw: object,
        fld: str,
        code: str | None = None,
        *,
        positive: bool = False,
    ) -> Decimal | None:
        if raw is None:
            return None
        value: Decimal | None = None
        if isinstance(raw, bool):
            value = None
        elif isinstance(raw, int):
            value = Decimal(raw)
        elif isinstance(raw, float):
            value = Decimal(repr(raw))
        elif isinstance(raw, str):
            try:
                value = Decimal(raw.strip().replace(",", "."))
            except InvalidOperation:
                value = None
        if value is None or not value.is_finite():
            self.error(GateKey.BAD_NUMBER, fld, code, value=raw)
            return None
        if value < ZERO:
            self.error(GateKey.NEGATIVE, fld, code, value=plain(value))
            return None
        if positive and value == ZERO:
            self.error(GateKey.NOT_POSITIVE, fld, code)
            return None
        return value

    def choice(
        self, raw: object, enum: Callable[[str], E], allowed: Iterable[str], fld: str, code: str | None = None
    ) -> E | None:
        if raw is None:
            return None
        allowed = tuple(allowed)
        if isinstance(raw, str) and raw in allowed:
            return enum(raw)
        close = difflib.get_close_matches(str(raw), allowed, n=1)
        self.error(
            GateKey.BAD_VALUE_DID_YOU_MEAN if close else GateKey.BAD_VALUE,
            fld,
            code,
            value=raw,
            allowed=", ".join(allowed),
            suggestion=close[0] if close else "",
        )
        return None

    def flag(self, raw: object, fld: str, code: str | None = None) -> bool:
        if raw is None:
            return False
        if isinstance(raw, bool):
            return raw
        self.error(GateKey.WRONG_TYPE, fld, code, expected="true/false", found=kind_of(raw))
        return False


def kind_of(raw: object) -> str:
    if raw is None:
        return "empty"
    if isinstance(raw, bool):
        return "true/false"
    if isinstance(raw, (int, float)):
        return "number"
    if isinstance(raw, str):
        return "text"
    if isinstance(raw, list):
        return "list"
    if isinstance(raw, Mapping):
        return "mapping"
    return type(raw).__name__


def join(base: str, key: str) -> str:
    return f"{base}.{key}" if base else key


def read_date(c: Checker, raw: object, fld: str) -> dt.date | None:
    if raw is None:
        return None
    if isinstance(raw, dt.date) and not isinstance(raw, dt.datetime):
        return raw
    if isinstance(raw, str):
        m = re.fullmatch(r"\s*(\d{1,2})/(\d{1,2})/(\d{4})\s*", raw)
        try:
            if m:
                return dt.date(int(m[3]), int(m[2]), int(m[1]))
            return dt.date.fromisoformat(raw.strip())
        except ValueError:
            pass
    c.error(GateKey.BAD_DATE, fld, value=raw)
    return None


# -- parts of a framework ------------------------------------------------------------------------
