"""Every problem the framework gate can report names, in its `GateKey`, the parameters its text needs,
and both catalogs' texts use exactly those (plus the indicator code every issue carries)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from babel.messages.pofile import read_po

from scoring.gate import GateIssue, GateKey

ROOT = Path(__file__).resolve().parents[1]
PLACEHOLDER = re.compile(r"\{(\w+)\}")


def catalog(lang: str) -> dict[str, str]:
    with (ROOT / "locales" / lang / "LC_MESSAGES" / "dti.po").open("rb") as f:
        return {str(m.id): str(m.string) for m in read_po(f) if m.id}


@pytest.mark.parametrize("lang", ["vi", "en"])
def test_every_gate_key_matches_its_catalog_text(lang: str) -> None:
    texts = catalog(lang)
    wrong = {}
    for key in GateKey:
        assert texts.get(key.value), f"{key.value} has no {lang} text"
        used = set(PLACEHOLDER.findall(texts[key.value])) - {"code"}
        if used != key.params:
            wrong[key.value] = (sorted(used), sorted(key.params))
    assert wrong == {}


def test_every_gate_text_in_the_catalogs_is_a_key() -> None:
    prefixes = {"gate.error_prefix", "gate.warning_prefix"}  # the renderer's, not a problem
    texts = {k for k in catalog("vi") if k.startswith("gate.")} - prefixes
    assert texts == {key.value for key in GateKey}


def test_an_issue_missing_a_parameter_its_text_needs_is_refused() -> None:
    with pytest.raises(TypeError, match=r"gate\.points_exceed_max needs max"):
        GateIssue.of(GateKey.POINTS_EXCEED_MAX, "f.yaml", "max_points", "1.1", {"points": "12"})
    issue = GateIssue.of(GateKey.POINTS_EXCEED_MAX, "f.yaml", "max_points", "1.1", {"points": 12, "max": 10})
    assert issue.params == {"points": "12", "max": "10"}
