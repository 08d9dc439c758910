"""Reading what arrives on the wire, where a sender controls the bytes.

Numbers are ASCII digits only and few of them: `str.isdigit()` also accepts `²`, `①` and `٣`, and
`int()` raises on the first two and refuses more than 4 300 digits, so both are never applied to what a
user, a button or a webhook sent. Secrets and signatures are compared as bytes in constant time:
`hmac.compare_digest` raises on a `str` with non-ASCII characters, and a header that is not valid
UTF-8 arrives with surrogates in it.
"""

from __future__ import annotations

import hmac
import re

_DIGITS = re.compile(r"[0-9]{1,18}")


def ascii_int(text: str) -> int | None:
    """`text` as a whole number when it is 1 to 18 ASCII digits (nothing around them), else None."""
    return int(text) if _DIGITS.fullmatch(text) else None


def _wire_bytes(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def same_secret(given: str, expected: str) -> bool:
    """Whether a secret or signature header equals the expected one (constant time, any characters)."""
    return hmac.compare_digest(_wire_bytes(given), _wire_bytes(expected))
