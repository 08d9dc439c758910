"""The tables as SQLAlchemy Core `Table`s, and which member a chat belongs to.

The recording path (storage/load.py reads, storage/record.py writes) runs as Core statements on plain
tuples: ORM loading and unit-of-work flushes cost several times more than the database itself on the
deadline-day rush. The statements are built once, from these tables.
"""

from __future__ import annotations

import datetime as dt
import json

import sqlalchemy as sa
from sqlmodel import Session

from flows.model import Mode, SessionState
from storage.models import (
    AnswerRevision,
    AppraisalDecision,
    Assessment,
    AuditLog,
    Conversation,
    Evidence,
    Extension,
    Invite,
    JoinAttempt,
    Member,
    Outbox,
    Period,
    ProcessedInbound,
    Publication,
    Unit,
    table_of,
)

CONV = table_of(Conversation)
MEMBER = table_of(Member)
UNIT = table_of(Unit)
PERIOD = table_of(Period)
EXTENSION = table_of(Extension)
ASSESSMENT = table_of(Assessment)
ANSWER = table_of(AnswerRevision)
EVIDENCE = table_of(Evidence)
DECISION = table_of(AppraisalDecision)
AUDIT = table_of(AuditLog)
OUTBOX = table_of(Outbox)
PROCESSED = table_of(ProcessedInbound)
INVITE = table_of(Invite)
JOIN_ATTEMPT = table_of(JoinAttempt)
PUBLICATION = table_of(Publication)

B = sa.bindparam

# A chat of a messaging channel is its member's by (channel, chat id); a web chat ("web", "m<member id>",
# opened by `open_web_chat` at sign-in) is bound to its member by id: one member, any number of channels.
# A member an operator removed binds no chat any more.
WEB = "web"
MEMBER_ACTIVE = MEMBER.c.removed_at.is_(None)
BINDS_CONV = sa.and_(
    MEMBER_ACTIVE,
    sa.or_(
        sa.and_(MEMBER.c.channel == CONV.c.channel, MEMBER.c.chat_id == CONV.c.chat_id),
        sa.and_(CONV.c.channel == WEB, MEMBER.c.id == CONV.c.member_id),
    ),
)


def web_chat_id(member_id: int) -> str:
    return f"m{member_id}"


def open_web_chat(s: Session, member_id: int, now: dt.datetime) -> str:
    """The member's web chat (created at their first sign-in), bound to them by id; its chat id."""
    chat_id = web_chat_id(member_id)
    found = s.connection().execute(
        sa.select(CONV.c.member_id).where(CONV.c.channel == WEB, CONV.c.chat_id == chat_id)
    )
    if found.first() is None:
        state = SessionState(mode=Mode.ASK)  # a member already: no joining, no welcome to wait for
        row = dict(channel=WEB, chat_id=chat_id, member_id=member_id, version=1, updated_at=now)
        s.connection().execute(CONV.insert(), {**row, "state_json": json.dumps(state.to_json())})
    return chat_id
