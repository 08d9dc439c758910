"""The SQL tables of DTI Assistant as SQLModel classes; the Alembic migrations must match them exactly.

Enumerated string columns (levels, roles, statuses, channels) are plain strings; the allowed values are
listed in the constants below and enforced by the code that writes them, not by the database, so new
values do not need a table rebuild on SQLite. Every timestamp is an aware UTC datetime (`UTCDateTime`).
"""

from datetime import date, datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from storage.db import UTCDateTime, utcnow


def table_of(model: type[SQLModel]) -> sa.Table:
    """A table model's Core `Table`, for the hot paths that skip the ORM."""
    table = model.__table__  # type: ignore[attr-defined]
    assert isinstance(table, sa.Table)
    return table


# Deterministic constraint names, identical on SQLite and PostgreSQL; SQLite batch migrations can only
# drop or alter constraints that have a name.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

UNIT_LEVELS = ("province", "department", "district", "commune")
CHANNELS = ("telegram", "zalo", "console")
ROLES = ("respondent", "leader", "reviewer", "admin")
ASSESSMENT_STATUSES = ("draft", "awaiting_leader", "submitted", "returned", "appraised")
EVIDENCE_KINDS = ("file", "citation", "link")
OUTBOX_STATUSES = ("pending", "sending", "sent", "failed")
OUTBOX_PRIORITY_INTERACTIVE = 0
OUTBOX_PRIORITY_REMINDER = 10


class Unit(SQLModel, table=True):
    """An administrative unit (province, department, district or commune)."""

    __tablename__ = "unit"
    __table_args__ = (sa.UniqueConstraint("code"),)

    id: int | None = Field(default=None, primary_key=True)
    code: str
    name: str
    level: str
    parent_id: int | None = Field(default=None, foreign_key="unit.id")
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


# A member an operator removed stays for the record (answers, evidence and audit rows refer to it) but
# no longer binds its chat: only one member per chat is not removed, and the chat can join again.
MEMBER_ACTIVE = sa.text("removed_at IS NULL")


class Member(SQLModel, table=True):
    """A chat account bound to one unit with one role (until an operator removes it)."""

    __tablename__ = "member"
    __table_args__ = (
        sa.Index(
            None,
            "channel",
            "chat_id",
            unique=True,
            sqlite_where=MEMBER_ACTIVE,
            postgresql_where=MEMBER_ACTIVE,
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    channel: str
    chat_id: str
    unit_id: int = Field(foreign_key="unit.id")
    role: str
    language: str = "vi"
    display_name: str | None = None
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    paused_reminders: bool = False
    blocked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)  # the user blocked the bot
    removed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)  # an operator removed it


class Period(SQLModel, table=True):
    """One yearly assessment campaign under one framework version, with its deadlines."""

    __tablename__ = "period"

    id: int | None = Field(default=None, primary_key=True)
    name: str
    year: int
    framework_id: str
    framework_version: str
    opened_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    self_assessment_due: datetime | None = Field(default=None, sa_type=UTCDateTime)
    supplement_due: datetime | None = Field(default=None, sa_type=UTCDateTime)
    appraisal_due: datetime | None = Field(default=None, sa_type=UTCDateTime)
    publication_due: datetime | None = Field(default=None, sa_type=UTCDateTime)
    reminder_policy_json: str | None = Field(default=None, sa_type=sa.Text)
    status: str = "open"


class Invite(SQLModel, table=True):
    """A one-time join code that binds a chat account to a unit and role. The code is a secret until
    used; records and exports name an invite by its id."""

    __tablename__ = "invite"
    __table_args__ = (sa.UniqueConstraint("code"),)

    id: int | None = Field(default=None, primary_key=True)
    code: str
    unit_id: int = Field(foreign_key="unit.id")
    role: str
    period_id: int | None = Field(default=None, foreign_key="period.id")
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    expires_at: datetime = Field(sa_type=UTCDateTime)
    used_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    used_by_member_id: int | None = Field(default=None, foreign_key="member.id")
    created_by: str | None = None
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)  # an operator withdrew it


class Assessment(SQLModel, table=True):
    """The self-assessment of one unit in one period."""

    __tablename__ = "assessment"
    __table_args__ = (sa.UniqueConstraint("period_id", "unit_id"),)

    id: int | None = Field(default=None, primary_key=True)
    period_id: int = Field(foreign_key="period.id")
    unit_id: int = Field(foreign_key="unit.id")
    status: str = "draft"
    submitted_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    submitted_by_member_id: int | None = Field(default=None, foreign_key="member.id")
    requested_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    requested_by_member_id: int | None = Field(default=None, foreign_key="member.id")
    appraised_at: datetime | None = Field(
        default=None, sa_type=UTCDateTime
    )  # the reviewer closed the appraisal
    appraised_by_member_id: int | None = Field(default=None, foreign_key="member.id")
    # answer revisions and evidence items recorded (`Snapshot.revision`), and reviewers' decisions
    revision: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    decided: int = Field(default=0, sa_column_kwargs={"server_default": "0"})


class AnswerRevision(SQLModel, table=True):
    """One answer to one indicator; append-only, the highest revision per indicator is current."""

    __tablename__ = "answer_revision"
    __table_args__ = (
        sa.UniqueConstraint("assessment_id", "indicator_code", "revision"),
        sa.Index(None, "assessment_id", "indicator_code"),
    )

    id: int | None = Field(default=None, primary_key=True)
    assessment_id: int = Field(foreign_key="assessment.id")
    indicator_code: str
    revision: int
    value_json: str | None = Field(default=None, sa_type=sa.Text)
    not_applicable: bool = False
    reason: str | None = Field(default=None, sa_type=sa.Text)
    author_member_id: int | None = Field(default=None, foreign_key="member.id")
    channel: str
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    previous_id: int | None = Field(default=None, foreign_key="answer_revision.id")


class Evidence(SQLModel, table=True):
    """Evidence attached to one indicator: a stored file, an official document citation or a link."""

    __tablename__ = "evidence"
    __table_args__ = (sa.Index(None, "assessment_id", "indicator_code"),)

    id: int | None = Field(default=None, primary_key=True)
    assessment_id: int = Field(foreign_key="assessment.id")
    indicator_code: str
    kind: str
    sha256: str | None = None
    size: int | None = None
    mime: str | None = None
    original_name: str | None = None
    citation_number: str | None = None
    citation_date: date | None = None
    citation_summary: str | None = Field(default=None, sa_type=sa.Text)
    url: str | None = Field(default=None, sa_type=sa.Text)
    note: str | None = Field(default=None, sa_type=sa.Text)  # a file's caption that is not a citation
    uploader_member_id: int | None = Field(default=None, foreign_key="member.id")
    channel: str
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    late: bool = False


class Conversation(SQLModel, table=True):
    """The dialogue state of one chat; `version` is bumped on every write (optimistic concurrency)."""

    __tablename__ = "conversation"

    channel: str = Field(primary_key=True)
    chat_id: str = Field(primary_key=True)
    member_id: int | None = Field(default=None, foreign_key="member.id")
    state_json: str = Field(sa_type=sa.Text)
    version: int = 0
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class ProcessedInbound(SQLModel, table=True):
    """Inbound message ids already handled, so redelivered updates are processed once."""

    __tablename__ = "processed_inbound"

    channel: str = Field(primary_key=True)
    inbound_id: str = Field(primary_key=True)
    processed_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class HeldUpdate(SQLModel, table=True):
    """An inbound update answered for before it was handled (an album part on a webhook, which waits
    for the album's other parts), kept until it is: a restart in between handles it from here."""

    __tablename__ = "held_update"

    channel: str = Field(primary_key=True)
    update_id: str = Field(primary_key=True)
    chat_id: str
    update_json: str = Field(sa_type=sa.Text)
    received_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class JoinAttempt(SQLModel, table=True):
    """Every invite-code attempt, for rate limiting guesses."""

    __tablename__ = "join_attempt"
    __table_args__ = (sa.Index(None, "channel", "chat_id", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    channel: str
    chat_id: str
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    ok: bool


class AuditLog(SQLModel, table=True):
    """Who changed what and when, with the old and new values as JSON text."""

    __tablename__ = "audit_log"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    actor_member_id: int | None = Field(default=None, foreign_key="member.id")
    channel: str | None = None
    operator: str | None = None  # who ran the `dtibot` command ($USER or --by), for changes made there
    action: str
    entity: str
    entity_id: str
    unit_id: int | None = Field(default=None, foreign_key="unit.id")
    assessment_id: int | None = Field(default=None, foreign_key="assessment.id")
    old_json: str | None = Field(default=None, sa_type=sa.Text)
    new_json: str | None = Field(default=None, sa_type=sa.Text)


class Outbox(SQLModel, table=True):
    """Messages waiting to be sent; lower `priority` first, then insertion order."""

    __tablename__ = "outbox"
    __table_args__ = (
        sa.UniqueConstraint("dedupe_key"),
        sa.Index(None, "status", "priority", "id"),
        sa.Index(None, "channel", "chat_id", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    channel: str
    chat_id: str
    member_id: int | None = Field(default=None, foreign_key="member.id")
    payload_json: str = Field(sa_type=sa.Text)
    priority: int = OUTBOX_PRIORITY_INTERACTIVE
    status: str = "pending"
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    not_before: datetime | None = Field(default=None, sa_type=UTCDateTime)
    attempts: int = 0
    last_error: str | None = Field(default=None, sa_type=sa.Text)
    sent_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    dedupe_key: str | None = None
    claimed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    external_id: str | None = None  # the channel's id for the sent message (Telegram message_id)
    # of a message that takes several calls (files, long text): how many went out, for a retry or a restart
    parts_sent: int = Field(default=0, sa_column_kwargs={"server_default": "0"})


class Extension(SQLModel, table=True):
    """A later deadline for one unit of a period (self_assessment_due, supplement_due, …)."""

    __tablename__ = "extension"
    __table_args__ = (sa.UniqueConstraint("period_id", "unit_id", "deadline"),)

    id: int | None = Field(default=None, primary_key=True)
    period_id: int = Field(foreign_key="period.id")
    unit_id: int = Field(foreign_key="unit.id")
    deadline: str
    due_at: datetime = Field(sa_type=UTCDateTime)
    reason: str = Field(sa_type=sa.Text)
    created_by: str | None = None
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


REMINDER_STATUSES = ("queued", "deferred", "undeliverable", "skipped", "superseded")


class Reminder(SQLModel, table=True):
    """The reminder ledger: one row per member, period, deadline and offset — sent exactly once."""

    __tablename__ = "reminder"
    __table_args__ = (
        sa.UniqueConstraint("member_id", "period_id", "deadline", "offset_key"),
        sa.Index(None, "period_id", "status"),
    )

    id: int | None = Field(default=None, primary_key=True)
    member_id: int = Field(foreign_key="member.id")
    period_id: int = Field(foreign_key="period.id")
    deadline: str
    offset_key: str  # "7d", "3d", "1d", "0d", "escalation"
    planned_at: datetime = Field(sa_type=UTCDateTime)  # when the policy wanted it
    send_at: datetime = Field(sa_type=UTCDateTime)  # when it may go (after quiet hours and weekends)
    status: str = "queued"
    outbox_id: int | None = Field(default=None, foreign_key="outbox.id")
    detail: str | None = Field(default=None, sa_type=sa.Text)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class AppraisalDecision(SQLModel, table=True):
    """A reviewer's decision on one indicator; append-only, one revision per decision."""

    __tablename__ = "appraisal_decision"
    __table_args__ = (sa.UniqueConstraint("assessment_id", "indicator_code", "revision"),)

    id: int | None = Field(default=None, primary_key=True)
    assessment_id: int = Field(foreign_key="assessment.id")
    indicator_code: str
    revision: int
    decision: str  # accept | adjust | return
    self_points: str | None = None  # decimals as text: exact
    appraised_points: str | None = None
    comment: str | None = Field(default=None, sa_type=sa.Text)
    supplement_due: datetime | None = Field(default=None, sa_type=UTCDateTime)
    reviewer_member_id: int | None = Field(default=None, foreign_key="member.id")
    previous_id: int | None = Field(default=None, foreign_key="appraisal_decision.id")
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class Result(SQLModel, table=True):
    """The latest computed result of one unit in one period (recomputed by `results compute`)."""

    __tablename__ = "result"
    __table_args__ = (sa.UniqueConstraint("period_id", "unit_id"),)

    id: int | None = Field(default=None, primary_key=True)
    period_id: int = Field(foreign_key="period.id")
    unit_id: int = Field(foreign_key="unit.id")
    computed_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    total: str
    max_points: str
    index_value: str
    band: str | None = None
    rank: int
    district_rank: int | None = None
    appraised: bool
    data_json: str = Field(sa_type=sa.Text)


class Publication(SQLModel, table=True):
    """A frozen copy of a period's results as published; later changes cannot alter it."""

    __tablename__ = "publication"

    id: int | None = Field(default=None, primary_key=True)
    period_id: int = Field(foreign_key="period.id")
    published_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    published_by: str | None = None
    data_json: str = Field(sa_type=sa.Text)


class ZaloToken(SQLModel, table=True):
    """The Zalo OA token pair (a single row, id 1)."""

    __tablename__ = "zalo_token"

    id: int | None = Field(default=None, primary_key=True)
    access_token: str = Field(sa_type=sa.Text)
    refresh_token: str = Field(sa_type=sa.Text)
    expires_at: datetime = Field(sa_type=UTCDateTime)
    refreshed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    failed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)  # the refresh token was refused
    error: str | None = Field(default=None, sa_type=sa.Text)


class Contact(SQLModel, table=True):
    """When a chat last wrote to us on a channel (Zalo's free-reply window starts there)."""

    __tablename__ = "contact"

    channel: str = Field(primary_key=True)
    chat_id: str = Field(primary_key=True)
    last_inbound_at: datetime = Field(sa_type=UTCDateTime)
    following: bool = True


class WebLink(SQLModel, table=True):
    """A single-use sign-in link to the web workspace, valid for minutes; only its token's SHA-256 is
    kept, so the table read by someone else opens nothing."""

    __tablename__ = "web_link"
    __table_args__ = (sa.UniqueConstraint("token_sha256"), sa.Index(None, "member_id", "created_at"))

    id: int | None = Field(default=None, primary_key=True)
    token_sha256: str
    member_id: int = Field(foreign_key="member.id")
    channel: str | None = None  # where it was asked for ("telegram", …); None: an operator's command
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    expires_at: datetime = Field(sa_type=UTCDateTime)
    used_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class WebSession(SQLModel, table=True):
    """A signed-in browser: the SHA-256 of its cookie's token, its CSRF token, when it was last seen
    (idle expiry) and whether it was signed out."""

    __tablename__ = "web_session"
    __table_args__ = (sa.UniqueConstraint("token_sha256"), sa.Index(None, "member_id"))

    id: int | None = Field(default=None, primary_key=True)
    token_sha256: str
    member_id: int = Field(foreign_key="member.id")
    csrf_token: str
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    last_seen_at: datetime = Field(sa_type=UTCDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


TABLES: tuple[type[SQLModel], ...] = (
    Unit,
    Member,
    Period,
    Invite,
    Assessment,
    AnswerRevision,
    Evidence,
    Conversation,
    ProcessedInbound,
    JoinAttempt,
    AuditLog,
    Outbox,
    Extension,
    Reminder,
    AppraisalDecision,
    Result,
    Publication,
    ZaloToken,
    Contact,
    WebLink,
    WebSession,
)
