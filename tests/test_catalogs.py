"""Every message key used in the code is translated in both catalogs, with the same placeholders."""

from __future__ import annotations

import re
import string
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from tests.conftest import ROOT

LANGS = ("vi", "en")


def catalog(lang: str) -> Catalog:
    with (ROOT / "locales" / lang / "LC_MESSAGES" / "dti.po").open("rb") as fh:
        return read_po(fh, locale=lang)


def used_keys() -> set[str]:
    keys: set[str] = set()
    for pkg in ("bot", "scoring", "flows", "storage"):
        for _, _, message, _, _ in extract_from_dir(
            str(ROOT / pkg), keywords={"N_": None, "t": None}, comment_tags=()
        ):
            if isinstance(message, str):
                keys.add(message)
    return keys


def placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def test_every_used_key_is_translated_in_both_languages() -> None:
    keys = used_keys()
    assert len(keys) > 150
    for lang in LANGS:
        cat = catalog(lang)
        missing = sorted(k for k in keys if k not in cat or not cat[k].string)
        assert missing == [], f"{lang} catalog misses {missing}"
        fuzzy = sorted(m.id for m in cat if m.id and m.fuzzy)
        assert fuzzy == [], f"{lang} catalog has fuzzy entries {fuzzy}"


@pytest.mark.parametrize("lang", LANGS)
def test_placeholders_match_between_languages(lang: str) -> None:
    vi, other = catalog("vi"), catalog(lang)
    for msg in vi:
        if not msg.id:
            continue
        assert isinstance(msg.string, str)
        theirs = other[msg.id].string
        assert isinstance(theirs, str)
        assert placeholders(msg.string) == placeholders(theirs), msg.id


def test_no_inline_vietnamese_in_bot_code() -> None:
    """User-facing text belongs in locales/: no Vietnamese letters in string literals of bot/ code."""
    vietnamese = re.compile(r"[ăâđêôơưĂÂĐÊÔƠƯàáạảãầấậẩẫằắặẳẵèéẹẻẽềếệểễìíịỉĩòóọỏõồốộổỗờớợởỡùúụủũừứựửữỳýỵỷỹ]")
    offenders = []
    for path in (ROOT / "bot").rglob("*.py"):
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            code = line.split("#", 1)[0]
            if vietnamese.search(code) and ('"' in code or "'" in code):
                offenders.append(f"{path.relative_to(ROOT)}:{n}")
    assert offenders == []


def test_compiled_catalogs_exist() -> None:
    for lang in LANGS:
        assert (Path(ROOT) / "locales" / lang / "LC_MESSAGES" / "dti.mo").exists(), "run make catalogs"
