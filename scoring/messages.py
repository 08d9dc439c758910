"""Message keys: the pure core names what to say, `locales/` says it.

`N_` marks a literal key for `pybabel extract` without translating it; the core never formats text.
"""

from __future__ import annotations


def N_(key: str) -> str:
    return key
