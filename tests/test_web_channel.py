"""The web workspace as a channel (issue 23): a reviewer's web form and a member's upload go through
the same service, engine and revision checks as the chat, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlmodel import col, select

from flows.intents import payload
from flows.model import FileInfo, Inbound, InboundKind
from storage.db import Database
from storage.models import AppraisalDecision, AuditLog, Evidence, Member, Outbox
from tests.e2e_support import Province, make_province, pdf_bytes
from tests.test_state_rules_storage import Chat


def member_id(db: Database, chat_id: str) -> int:
    with db.session() as s:
        found = s.exec(select(Member.id).where(Member.chat_id == chat_id)).one()
        assert found is not None
        return found


def form(action: str, code: str | None, **fields: str) -> Inbound:
    return Inbound(InboundKind.FORM, payload=payload("rv", 1, code, action), fields=tuple(fields.items()))


@pytest.fixture
def submitted(db: Database, tmp_path: Path) -> tuple[Province, Chat, int]:
    """A commune that submitted 1.1 with a file; the province reviewer in the chat, and their id."""
    p = make_province(db, tmp_path)
    leader = Chat(p, "l1", p.invite("25840", "leader"))
    leader.say("70,4")
    leader.say(f"/file {p.files}/bao-cao.pdf")
    leader.say("xong")
    leader.say("nộp")
    leader.say("có")
    reviewer = Chat(p, "v1", p.invite("70000", "reviewer"))
    return p, reviewer, member_id(db, "v1")


def unit_id(p: Province) -> str:
    from storage.models import Unit

    with p.db.session() as s:
        return str(s.exec(select(Unit.id).where(Unit.code == "25840")).one())


def test_a_web_decision_is_the_chat_decision(submitted: tuple[Province, Chat, int]) -> None:
    p, _, reviewer = submitted
    service = p.service()
    unit = unit_id(p)
    out = service.handle_web(reviewer, form("adjust:0", "1.1", unit=unit, points="99", comment="x"))
    assert "phải là số từ 0 đến 10" in out[0].text
    out = service.handle_web(reviewer, form("adjust:0", "1.1", unit=unit, points="6,5", comment="Số liệu cũ"))
    assert "1.1: điều chỉnh (6,5 điểm)" in out[0].text
    with p.db.session() as s:
        (decision,) = s.exec(select(AppraisalDecision)).all()
        assert (decision.decision, decision.appraised_points, decision.revision) == ("adjust", "6.5", 1)
        audit = s.exec(select(AuditLog).where(AuditLog.action == "appraisal.decide")).one()
        assert audit.channel == "web"
        assert not s.exec(select(Outbox).where(Outbox.channel == "web")).all()  # the page shows it
    out = service.handle_web(reviewer, form("accept:0", "1.1", unit=unit))  # a stale page
    assert "vừa được người thẩm định khác quyết định" in out[0].text


def test_web_and_chat_racing_on_one_indicator(submitted: tuple[Province, Chat, int]) -> None:
    p, chat, reviewer = submitted
    chat.say("danh sách")
    chat.say("#1")  # the chat shows 1.1 at revision 0
    p.service().handle_web(reviewer, form("accept:0", "1.1", unit=unit_id(p)))  # the web decides first
    # Yêu cầu bổ sung, on what the chat still shows: refused when the decision is made
    out = chat.say("#3") + chat.say("Thiếu") + chat.say("#1")
    assert "vừa được người thẩm định khác quyết định" in out
    with p.db.session() as s:
        assert [d.decision for d in s.exec(select(AppraisalDecision))] == ["accept"]


def test_a_web_form_for_a_unit_outside_the_scope_is_refused(submitted: tuple[Province, Chat, int]) -> None:
    p, _, reviewer = submitted
    out = p.service().handle_web(reviewer, form("accept:0", "1.1", unit="999999"))
    assert "đã cũ nên không được ghi nhận" in out[0].text
    with p.db.session() as s:
        assert s.exec(select(AppraisalDecision)).all() == []


def test_a_member_uploads_evidence_from_the_web(submitted: tuple[Province, Chat, int]) -> None:
    p, _, _ = submitted
    leader = member_id(p.db, "l1")
    stored = p.store.put(pdf_bytes("tu may tinh"), "bien-ban.pdf")
    info = FileInfo(stored.sha256, stored.size, stored.mime, "bien-ban.pdf")
    out = p.service().handle_web(leader, Inbound(InboundKind.FILE, files=(info,), fields=(("code", "1.1"),)))
    assert "Đã nhận tệp bien-ban.pdf" in out[-1].text
    with p.db.session() as s:
        names = [e.original_name for e in s.exec(select(Evidence).order_by(col(Evidence.id)))]
        assert names == ["bao-cao.pdf", "bien-ban.pdf"]
        assert s.exec(select(Evidence.channel).where(Evidence.original_name == "bien-ban.pdf")).one() == "web"
