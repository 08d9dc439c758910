"""The engine's plain data: what comes in, what it sees, what it decides.

Inbound (what the user sent), Snapshot (what storage knows about this chat), SessionState (where the
conversation stands, persisted as JSON with every decision), events (what to record) and replies
(what to say, as message keys). All frozen, all free of I/O types.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal
from enum import StrEnum
from typing import Any

from scoring.model import AnswerValue, Framework


class InboundKind(StrEnum):
    TEXT = "text"
    BUTTON = "button"
    FILE = "file"  # one file, or an album sent as one submission
    RESUME = "resume"  # the channel (re)opened the conversation: show where the user is
    UNSUPPORTED = "unsupported"  # a sticker, a voice note, a location…: nothing the engine can use
    EDITED = "edited"  # an earlier message was edited: answers are never changed behind the user's back


@dataclass(frozen=True, slots=True)
class FileInfo:
    """A file already stored in the evidence store by the channel adapter."""

    sha256: str
    size: int
    mime: str
    name: str


@dataclass(frozen=True, slots=True)
class Rejected:
    """A file the channel or the evidence store refused, and why: empty | too_large | unsupported_type |
    name_mismatch."""

    name: str
    reason: str


@dataclass(frozen=True, slots=True)
class Inbound:
    kind: InboundKind
    text: str = ""
    payload: str = ""
    files: tuple[FileInfo, ...] = ()
    rejected: tuple[Rejected, ...] = ()
    caption: str = ""


class Role(StrEnum):
    RESPONDENT = "respondent"
    LEADER = "leader"
    REVIEWER = "reviewer"
    ADMIN = "admin"


@dataclass(frozen=True, slots=True)
class MemberView:
    id: int
    role: Role
    unit_id: int
    unit_code: str
    unit_name: str
    language: str = "vi"


@dataclass(frozen=True, slots=True)
class PeriodView:
    id: int
    name: str
    framework: Framework
    self_assessment_due: dt.datetime | None = None
    supplement_due: dt.datetime | None = None


@dataclass(frozen=True, slots=True)
class Citation:
    """A document cited instead of uploaded: số hiệu – ngày – trích yếu."""

    number: str
    date: dt.date
    summary: str


@dataclass(frozen=True, slots=True)
class EvidenceView:
    kind: str  # file | citation | link
    label: str  # file name, citation number or URL, for display
    at: dt.datetime | None = None
    late: bool = False


@dataclass(frozen=True, slots=True)
class AnswerView:
    value: AnswerValue | None
    not_applicable: bool = False
    reason: str | None = None
    revision: int = 1
    evidence: tuple[EvidenceView, ...] = ()


@dataclass(frozen=True, slots=True)
class InviteView:
    code: str
    unit_name: str
    role: Role
    expires_at: dt.datetime
    used: bool


class AssessmentStatus(StrEnum):
    DRAFT = "draft"
    AWAITING_LEADER = "awaiting_leader"
    SUBMITTED = "submitted"


class Mode(StrEnum):
    JOIN = "join"  # not a member yet: waiting for an invite code
    ASK = "ask"  # waiting for the answer to `current`
    EVIDENCE = "evidence"  # waiting for evidence for `current`
    NA_REASON = "na_reason"  # waiting for the reason `current` does not apply
    CONFIRM_SUBMIT = "confirm_submit"
    DONE = "done"  # every indicator answered


@dataclass(frozen=True, slots=True)
class SessionState:
    mode: Mode = Mode.JOIN
    current: str | None = None
    misses: int = 0
    skipped: tuple[str, ...] = ()
    evidence_added: int = 0  # files/citations received for `current` in this evidence step

    def to_json(self) -> dict[str, Any]:
        return {
            "v": 1,
            "mode": self.mode.value,
            "current": self.current,
            "misses": self.misses,
            "skipped": list(self.skipped),
            "evidence_added": self.evidence_added,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> SessionState:
        """A stored session; anything unreadable starts over rather than failing the chat."""
        if not data:
            return cls()
        try:
            return cls(
                mode=Mode(data.get("mode", Mode.JOIN.value)),
                current=data.get("current") if isinstance(data.get("current"), str) else None,
                misses=int(data.get("misses", 0)),
                skipped=tuple(str(c) for c in data.get("skipped", ())),
                evidence_added=int(data.get("evidence_added", 0)),
            )
        except (ValueError, TypeError):
            return cls()

    def at(self, mode: Mode, current: str | None) -> SessionState:
        return replace(self, mode=mode, current=current, misses=0, evidence_added=0)


@dataclass(frozen=True, slots=True)
class Snapshot:
    channel: str
    chat_id: str
    session: SessionState
    member: MemberView | None = None
    period: PeriodView | None = None
    status: AssessmentStatus = AssessmentStatus.DRAFT
    answers: Mapping[str, AnswerView] = field(default_factory=dict)
    invite: InviteView | None = None  # the invite named in this message, looked up by the service
    join_failures: tuple[dt.datetime, ...] = ()  # recent failed join attempts of this chat
    submitted_at: dt.datetime | None = None


# -- what to record ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class JoinUnit:
    invite_code: str


@dataclass(frozen=True, slots=True)
class JoinFailed:
    reason: str  # unknown | expired | used | rate_limited


@dataclass(frozen=True, slots=True)
class SaveAnswer:
    code: str
    value: AnswerValue | None
    not_applicable: bool = False
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class AddEvidence:
    code: str
    file: FileInfo | None = None
    citation: Citation | None = None
    url: str | None = None


@dataclass(frozen=True, slots=True)
class RequestSubmission:
    pass


@dataclass(frozen=True, slots=True)
class Submit:
    pass


@dataclass(frozen=True, slots=True)
class SetLanguage:
    language: str


@dataclass(frozen=True, slots=True)
class SetReminders:
    enabled: bool


Event = (
    JoinUnit | JoinFailed | SaveAnswer | AddEvidence | RequestSubmission | Submit | SetLanguage | SetReminders
)


# -- what to say ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Msg:
    """A message key and its parameters; parameters may themselves be messages."""

    key: str
    params: Mapping[str, Param] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Fixed:
    """A number shown with exactly `places` decimals (the index: 0,6077; a whole percent: 43)."""

    value: Decimal
    places: int


Param = str | int | Decimal | Fixed | dt.date | dt.datetime | Msg | tuple[Msg, ...]


def msg(key: str, /, **params: Param) -> Msg:
    return Msg(key, params)


@dataclass(frozen=True, slots=True)
class Button:
    label: Msg
    payload: str


@dataclass(frozen=True, slots=True)
class ChartBar:
    label: str
    score: Decimal
    max: Decimal


@dataclass(frozen=True, slots=True)
class Chart:
    """A bar chart of points by group against the max; drawn by the renderer."""

    title: Msg
    bars: tuple[ChartBar, ...]


@dataclass(frozen=True, slots=True)
class Reply:
    lines: tuple[Msg, ...]
    buttons: tuple[Button, ...] = ()
    chart: Chart | None = None


@dataclass(frozen=True, slots=True)
class Notice:
    """A reply for the other members of the unit who hold `role` (e.g. its leaders)."""

    role: Role
    reply: Reply


@dataclass(frozen=True, slots=True)
class Decision:
    session: SessionState
    events: tuple[Event, ...] = ()
    replies: tuple[Reply, ...] = ()
    notices: tuple[Notice, ...] = ()
