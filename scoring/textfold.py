"""Folding Vietnamese text for matching: case, diacritics and đ→d ignored, spaces collapsed.

"Không", "khong", "KHÔNG" and the NFD-decomposed form some keyboards send all fold to "khong".
"""

from __future__ import annotations

import unicodedata

_D = str.maketrans({"đ": "d", "Đ": "d"})


def nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


def fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFD", text.translate(_D))
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(stripped.casefold().split())
