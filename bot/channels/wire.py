"""Reading what arrives on the wire, where a sender controls the bytes.

Numbers are ASCII digits only, and few of them: `str.isdigit()` also accepts `²`, `①` and `٣`, and
`int()` raises on the first two and refuses more than 4 300 digits, so neither is applied to what a
user, a button or a webhook sent.
"""

from __future__ import annotations

import re

_DIGITS = re.compile(r"[0-9]{1,18}")


def ascii_int(text: str) -> int | None:
    """`text` as a whole number when it is 1 to 18 ASCII digits (nothing around them), else None."""
    return int(text) if _DIGITS.fullmatch(text) else None
