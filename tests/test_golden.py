"""Engine tests as data: each file under tests/golden/ is a conversation — what a member sends, and the
events the engine decides and the message keys it replies with (not rendered Vietnamese: rendering has
its own tests) — replayed on the pure engine with a fixed clock (tests/flows_harness.py).

To add a scenario, write its "send" steps and run `DTI_UPDATE_GOLDEN=1 .venv/bin/pytest tests/test_golden.py`:
the expected side is written from what the engine does; read the diff before committing it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import json
import os
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from flows.model import (
    AnswerView,
    AssessmentStatus,
    DecisionView,
    FileInfo,
    Inbound,
    InboundKind,
    InviteView,
    Mode,
    QueueItem,
    Review,
    ReviewedUnit,
    Role,
    SessionState,
    Verdict,
)
from scoring.model import Framework
from tests.flows_harness import T0, Chat

GOLDEN = Path(__file__).resolve().parent / "golden"
UPDATE = os.environ.get("DTI_UPDATE_GOLDEN") == "1"


def plain(value: object) -> object:
    """An event as data: its type and fields, values as their text."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        return {"type": type(value).__name__, **fields}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, tuple | list | frozenset):
        items = [plain(v) for v in value]
        return sorted(items, key=repr) if isinstance(value, frozenset) else items
    if isinstance(value, Decimal | dt.date | dt.datetime):
        return str(value)
    return value


def inbound(step: dict[str, Any]) -> Inbound:
    if "text" in step:
        return Inbound(InboundKind.TEXT, text=step["text"])
    if "button" in step:
        return Inbound(InboundKind.BUTTON, payload=step["button"])
    if "file" in step:
        info = FileInfo(step.get("sha256", "ab" * 32), 1000, "application/pdf", step["file"])
        return Inbound(InboundKind.FILE, files=(info,), caption=step.get("caption", ""))
    if "form" in step:
        return Inbound(InboundKind.FORM, payload=step["form"], fields=tuple(step.get("fields", {}).items()))
    return Inbound(InboundKind.RESUME)


def start(fw: Framework, setup: dict[str, Any]) -> Chat:
    role = Role(setup.get("role", "respondent"))
    if setup.get("joined", True) is False:
        invite = InviteView("AB12CD34", "Xã An Bình", role, T0 + dt.timedelta(days=1), False, 10, "25840")
        return Chat(fw, role=role, joined=False, invite=invite)
    chat = Chat(fw, role=role)
    if role is Role.REVIEWER:
        status = AssessmentStatus(setup.get("status", "submitted"))
        answers = {c: AnswerView(Decimal(v)) for c, v in setup.get("answers", {}).items()}
        unit = ReviewedUnit(10, "Xã An Bình", 99, status, answers, {}, T0)
        queue = (QueueItem(10, "Xã An Bình", status, T0, 0, 0),)
        review = Review(queue, unit)
        chat.snap = dataclasses.replace(chat.snap, session=SessionState(mode=Mode.REVIEW), review=review)
    elif "status" in setup:
        decisions = {
            c: DecisionView(Verdict(d), None, "thiếu", 1, T0 + dt.timedelta(days=3), T0)
            for c, d in setup.get("decisions", {}).items()
        }
        chat.snap = dataclasses.replace(
            chat.snap, status=AssessmentStatus(setup["status"]), submitted_at=T0, decisions=decisions
        )
    return chat


def replay(fw: Framework, scenario: dict[str, Any]) -> list[dict[str, Any]]:
    chat = start(fw, scenario.get("setup", {}))
    steps = []
    for step in scenario["steps"]:
        sent = {k: v for k, v in step.items() if k not in ("events", "replies", "mode", "current")}
        decision = chat.send_decision(inbound(sent))
        replies = [
            {"lines": [m.key for m in r.lines], "buttons": [b.payload for b in r.buttons]}
            for r in decision.replies
        ]
        steps.append(
            {
                **sent,
                "events": plain(decision.events),
                "replies": replies,
                "mode": decision.session.mode.value,
                "current": decision.session.current,
            }
        )
    return steps


SCENARIOS = sorted(GOLDEN.glob("*.json"))


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_golden(path: Path, request: pytest.FixtureRequest) -> None:
    scenario = json.loads(path.read_text(encoding="utf-8"))
    fw: Framework = request.getfixturevalue(scenario.get("framework", "tay_ninh"))
    got = replay(fw, scenario)
    if UPDATE:
        path.write_text(
            json.dumps({**scenario, "steps": got}, ensure_ascii=False, indent=1) + "\n", encoding="utf-8"
        )
        return
    for n, (expected, actual) in enumerate(zip(scenario["steps"], got, strict=True)):
        assert actual == expected, f"{path.name} step {n}: {expected.get('text') or expected}"


def test_every_scenario_has_its_expectations() -> None:
    assert SCENARIOS
    for path in SCENARIOS:
        for step in json.loads(path.read_text(encoding="utf-8"))["steps"]:
            assert "events" in step and "replies" in step, path.name
