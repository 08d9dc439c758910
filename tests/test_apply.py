"""flows.apply is what storage reads back: the same events recorded in the database and applied in
memory give the same snapshot, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

from sqlmodel import Session

from bot.service import resolve_framework
from flows.apply import apply
from flows.model import (
    AddEvidence,
    AssessmentStatus,
    Citation,
    Decision,
    FileInfo,
    SaveAnswer,
    Snapshot,
    Submit,
)
from storage.db import Database
from storage.load import Loaded, Message, load
from storage.record import Write, write
from tests.e2e_support import NOW, make_province
from tests.test_state_rules_storage import Chat


def reload(s: Session, now: dt.datetime) -> Loaded:
    (loaded,) = load(s, [Message("console", "l1", None)], resolve_framework, now)
    assert loaded is not None
    return loaded


def view(snap: Snapshot) -> object:
    return (snap.status, snap.revision, snap.submitted_at, dict(snap.answers))


def test_apply_is_what_storage_reads_back(db: Database, tmp_path: Path) -> None:
    p = make_province(db, tmp_path)
    Chat(p, "l1", p.invite("25840", "leader")).say("70,4")
    now = NOW + dt.timedelta(hours=1)
    with db.session() as s:
        before = reload(s, now)
    pdf = FileInfo("ef" * 32, 1234, "application/pdf", "bao-cao.pdf")
    cited = Citation("15/BC-VNPT", dt.date(2025, 10, 10), "Báo cáo hạ tầng")
    steps = [
        (
            SaveAnswer("1.1", Decimal("80.5")),
            SaveAnswer("1.2", None, not_applicable=True, reason="Không có trạm"),
            AddEvidence("1.1", file=pdf, citation=cited, late=True),
            AddEvidence("1.1", url="https://xa.gov.vn/bc"),
            AddEvidence("1.1", file=pdf, note="Ảnh chụp"),
        ),
        (Submit(AssessmentStatus.DRAFT, before.snapshot.revision + 5),),
    ]
    expected = before.snapshot
    loaded = before
    for events in steps:
        with db.session() as s:
            write(s, [Write(loaded, Decision(loaded.snapshot.session, events), None)], now)
        expected = apply(expected, events, now)
        with db.session() as s:
            loaded = reload(s, now)
        assert view(loaded.snapshot) == view(replace(expected, session=loaded.snapshot.session))
    assert loaded.snapshot.status is AssessmentStatus.SUBMITTED
