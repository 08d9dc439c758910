"""Every state change is a legal move from the state it was decided on, enforced where it is written
(issue 20, items 1–3): through console chats, and against storage directly with a state changed between
the read and the write, on SQLite and PostgreSQL."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlmodel import select

from bot.channels.console import ConsoleChannel
from bot.service import resolve_framework
from flows.model import (
    AssessmentStatus,
    Decision,
    IllegalTransition,
    RequestSubmission,
    SaveAnswer,
    SessionState,
    Submit,
)
from storage.db import Database
from storage.load import Loaded, Message, load
from storage.models import AppraisalDecision, Assessment, AuditLog, Unit
from storage.record import ConcurrentUpdate, Write, write
from tests.conftest import D
from tests.e2e_support import NOW, Province, make_province


class Chat:
    def __init__(self, p: Province, chat_id: str, join: str) -> None:
        self.out = io.StringIO()
        self.console = ConsoleChannel(p.service(), p.store, chat_id, self.out, echo=True)
        self.console.run([], join=join)

    def say(self, line: str) -> str:
        start = len(self.out.getvalue())
        inbound = self.console.inbound_for(line)
        assert inbound is not None
        self.console.send(inbound)
        return self.out.getvalue()[start:]


def status(db: Database, unit: str = "25840") -> str:
    with db.session() as s:
        unit_id = s.exec(select(Unit.id).where(Unit.code == unit)).one()
        return s.exec(select(Assessment.status).where(Assessment.unit_id == unit_id)).one()


def set_status(db: Database, value: str, unit: str = "25840") -> None:
    with db.session() as s:
        unit_id = s.exec(select(Unit.id).where(Unit.code == unit)).one()
        s.execute(sa.update(Assessment).where(Assessment.unit_id == unit_id).values(status=value))


@pytest.fixture
def province(db: Database, tmp_path: Path) -> Province:
    return make_province(db, tmp_path)


def test_a_stale_respondent_confirmation_does_not_undo_a_submission(province: Province) -> None:
    respondent = Chat(province, "r1", province.invite("25840", "respondent"))
    leader = Chat(province, "l1", province.invite("25840", "leader"))
    respondent.say("70,4")
    respondent.say("để sau")
    assert "Gửi cho lãnh đạo" in respondent.say("nộp")  # the confirmation stays open on the phone
    leader.say("nộp")
    leader.say("có")
    assert status(province.db) == "submitted"
    out = respondent.say("có")
    assert "đã được nộp" in out
    assert status(province.db) == "submitted"
    assert "không sửa được nữa" in respondent.say("câu 1.1") + respondent.say("90")
    with province.db.session() as s:
        moves = s.exec(
            select(AuditLog.old_json, AuditLog.new_json).where(AuditLog.action == "assessment.status")
        )
        assert [tuple(m) for m in moves] == [('"draft"', '"submitted"')]


def test_the_leader_submits_only_what_they_were_shown(province: Province) -> None:
    respondent = Chat(province, "r1", province.invite("25840", "respondent"))
    leader = Chat(province, "l1", province.invite("25840", "leader"))
    respondent.say("70,4")
    respondent.say("để sau")
    assert "1/62 chỉ tiêu đã trả lời" in leader.say("nộp")
    respondent.say("80")  # 1.2, after the leader saw the summary
    out = leader.say("có")
    assert "đã thay đổi sau khi bạn xem" in out and "2/62 chỉ tiêu đã trả lời" in out
    assert status(province.db) == "draft"
    leader.say("có")
    assert status(province.db) == "submitted"


def test_a_closed_appraisal_is_not_reopened_by_a_second_reviewer(province: Province) -> None:
    leader = Chat(province, "l1", province.invite("25840", "leader"))
    leader.say("70,4")
    leader.say("để sau")
    leader.say("nộp")
    leader.say("có")
    reviewer = Chat(province, "v1", province.invite("70000", "reviewer"))
    reviewer.say("danh sách")
    out = reviewer.say("#1")  # open the unit: its first indicator with its buttons
    assert "Thẩm định Xã An Bình" in out
    set_status(province.db, "appraised")  # another reviewer closed the appraisal meanwhile
    out = reviewer.say("#3")  # Yêu cầu bổ sung, on the item still open on this screen
    out += reviewer.say("Thiếu báo cáo")
    assert "đã được kết thúc thẩm định" in out
    assert status(province.db) == "appraised"
    with province.db.session() as s:
        assert s.exec(select(AppraisalDecision)).all() == []


def _loaded_leader(province: Province) -> Loaded:
    Chat(province, "l1", province.invite("25840", "leader")).say("70,4")
    with province.db.session() as s:
        (loaded,) = load(s, [Message("console", "l1", None)], resolve_framework, NOW)
    assert loaded is not None
    snap = loaded.snapshot
    assert snap.status is AssessmentStatus.DRAFT and snap.revision == 1
    return loaded


def test_storage_refuses_a_move_from_a_state_the_assessment_left(province: Province) -> None:
    loaded = _loaded_leader(province)
    set_status(province.db, "submitted")
    submit = Decision(SessionState(), (Submit(AssessmentStatus.DRAFT, 1),))
    with pytest.raises(ConcurrentUpdate), province.db.session() as s:
        write(s, [Write(loaded, submit, None)], NOW)
    answer = Decision(SessionState(), (SaveAnswer("1.2", D(50)),))
    with pytest.raises(ConcurrentUpdate), province.db.session() as s:
        write(s, [Write(loaded, answer, None)], NOW)
    assert status(province.db) == "submitted" and len(province.revisions("25840")) == 1


def test_storage_refuses_a_submission_of_another_revision(province: Province) -> None:
    loaded = _loaded_leader(province)
    stale = Decision(SessionState(), (Submit(AssessmentStatus.DRAFT, 0),))
    with pytest.raises(ConcurrentUpdate), province.db.session() as s:
        write(s, [Write(loaded, stale, None)], NOW)
    assert status(province.db) == "draft"


def test_storage_refuses_an_illegal_move(province: Province) -> None:
    loaded = _loaded_leader(province)
    illegal = Decision(SessionState(), (RequestSubmission(AssessmentStatus.SUBMITTED, 1),))
    with pytest.raises(IllegalTransition), province.db.session() as s:
        write(s, [Write(loaded, illegal, None)], NOW)
    assert status(province.db) == "draft"


def test_a_batch_refuses_answers_on_an_assessment_submitted_meanwhile(province: Province) -> None:
    """Answers are written only over the state they were decided in (the batch's pipeline on
    PostgreSQL)."""
    Chat(province, "r1", province.invite("25840", "respondent")).say("70,4")
    with province.db.session() as s:
        (loaded,) = load(s, [Message("console", "r1", "x1")], resolve_framework, NOW)
    assert loaded is not None and loaded.snapshot.status is AssessmentStatus.DRAFT
    set_status(province.db, "submitted")
    decision = Decision(loaded.snapshot.session, (SaveAnswer("1.2", D(50)),))
    with pytest.raises(ConcurrentUpdate), province.db.session() as s:
        write(s, [Write(loaded, decision, "x1")], NOW)
    assert len(province.revisions("25840")) == 1
