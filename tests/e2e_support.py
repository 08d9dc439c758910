"""Helpers for end-to-end tests: a demo province in a database, real evidence files, console chats."""

from __future__ import annotations

import datetime as dt
import io
import json
import zipfile
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from sqlmodel import col, select

from bot.channels.console import ConsoleChannel
from bot.service import Service
from flows.model import Mode, SessionState
from scoring.answers import VIETNAM_TZ
from scoring.model import AnswerType, Framework
from storage.admin import UnitRow, create_invite, import_units, open_period
from storage.db import Database
from storage.evidence import EvidenceStore
from storage.models import AnswerRevision, Assessment, Conversation, Evidence, Unit

NOW = dt.datetime(2026, 12, 1, 8, 0, tzinfo=dt.UTC)


def at_now() -> dt.datetime:
    """A clock stopped at NOW; module-level, so a database process can be given it (pickled)."""
    return NOW


UNITS = [
    UnitRow("70000", "Tỉnh Tây Ninh", "province", None),
    UnitRow("25840", "Xã An Bình", "commune", "70000"),
    UnitRow("25843", "Xã Hòa Thành", "commune", "70000"),
]


def pdf_bytes(tag: str) -> bytes:
    return f"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n% {tag}\ntrailer << >>\n%%EOF\n".encode()


def png_bytes() -> bytes:
    return (
        bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000")
        + b"\x1f\x15\xc4\x89"
        + b"\x00" * 20
    )


def docx_bytes() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        z.writestr("word/document.xml", "<w:document/>")
    return buf.getvalue()


@dataclass
class Province:
    db: Database
    store: EvidenceStore
    files: Path
    clock_value: dt.datetime = NOW
    invites: dict[str, str] = field(default_factory=dict)

    def clock(self) -> dt.datetime:
        self.clock_value += dt.timedelta(seconds=5)
        return self.clock_value

    def service(self) -> Service:
        return Service(self.db, clock=self.clock)

    def invite(self, unit: str, role: str) -> str:
        with self.db.session() as s:
            return create_invite(s, unit, role, self.clock_value).code

    def chat(self, chat_id: str) -> tuple[ConsoleChannel, io.StringIO]:
        out = io.StringIO()
        return ConsoleChannel(self.service(), self.store, chat_id, out, echo=True), out

    def session_state(self, chat_id: str) -> SessionState:
        with self.db.session() as s:
            conv = s.exec(select(Conversation).where(Conversation.chat_id == chat_id)).one()
            return SessionState.from_json(json.loads(conv.state_json))

    def revisions(self, unit_code: str) -> list[AnswerRevision]:
        with self.db.session() as s:
            unit = s.exec(select(Unit).where(Unit.code == unit_code)).one()
            return list(
                s.exec(
                    select(AnswerRevision)
                    .join(Assessment, col(Assessment.id) == col(AnswerRevision.assessment_id))
                    .where(Assessment.unit_id == unit.id)
                    .order_by(col(AnswerRevision.id))
                )
            )

    def evidence(self, unit_code: str) -> list[Evidence]:
        with self.db.session() as s:
            unit = s.exec(select(Unit).where(Unit.code == unit_code)).one()
            return list(
                s.exec(
                    select(Evidence)
                    .join(Assessment, col(Assessment.id) == col(Evidence.assessment_id))
                    .where(Assessment.unit_id == unit.id)
                    .order_by(col(Evidence.id))
                )
            )


def make_province(db: Database, tmp: Path) -> Province:
    store = EvidenceStore(tmp / "evidence")
    files = tmp / "files"
    files.mkdir()
    (files / "bao-cao.pdf").write_bytes(pdf_bytes("bao cao"))
    (files / "anh-chup.png").write_bytes(png_bytes())
    (files / "ke-hoach.docx").write_bytes(docx_bytes())
    (files / "virus.pdf").write_bytes(b"MZ\x90\x00" + b"\x00" * 60)
    (files / "rong.pdf").write_bytes(b"")
    open_province(db, UNITS, dt.datetime(2027, 1, 15, 17, 0, tzinfo=VIETNAM_TZ))
    return Province(db, store, files)


def open_province(db: Database, units: list[UnitRow], due: dt.datetime) -> None:
    """`units` imported and the 2025 assessment period open on the Tây Ninh commune framework."""
    with db.session() as s:
        import_units(s, units, NOW)
        open_period(
            s,
            name="Kỳ đánh giá 2025",
            year=2025,
            framework_id="tay-ninh-commune-2025",
            framework_version="2025.1",
            now=NOW,
            self_assessment_due=due,
        )


def answer_for(fw: Framework, code: str) -> tuple[str, object]:
    """A valid typed answer to `code` and the value it must be stored as (the crash tests' script)."""
    ind = fw.indicator(code)
    assert ind is not None
    if ind.answer.type is AnswerType.YES_NO:
        return "có", True
    if ind.answer.type is AnswerType.PERCENTAGE:
        return "50", Decimal(50)
    return "5", Decimal(5)


def next_line(fw: Framework, session: SessionState, sent: dict[str, object]) -> str:
    """What the crash tests' official types next: `để sau` at the evidence step, otherwise a valid
    answer to the current indicator (recorded in `sent` with the value it must be stored as)."""
    if session.mode is Mode.EVIDENCE:
        return "để sau"
    assert session.mode is Mode.ASK and session.current is not None
    line, value = answer_for(fw, session.current)
    sent[session.current] = value
    return line
