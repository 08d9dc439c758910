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
from typing import Any, ClassVar

from scoring.model import AnswerValue, Framework


class InboundKind(StrEnum):
    TEXT = "text"
    BUTTON = "button"
    FILE = "file"  # one file, or an album sent as one submission
    RESUME = "resume"  # the channel (re)opened the conversation: show where the user is
    UNSUPPORTED = "unsupported"  # a sticker, a voice note, a location…: nothing the engine can use
    EDITED = "edited"  # an earlier message was edited: answers are never changed behind the user's back
    FORM = "form"  # a web form: an action (`payload`, as a button's) with its fields filled in at once


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
    name_mismatch | download_failed (the channel could not fetch it)."""

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
    # The channel's order of the chat's messages (Telegram's update id, Zalo's event time in ms), None
    # where the channel has none. A message older than one already applied to the chat came late (a
    # held update replayed after newer ones) and is never applied to whatever question is current now.
    seq: int | None = None
    fields: tuple[tuple[str, str], ...] = ()  # a web form's fields; a file's indicator ("code")

    def field(self, name: str) -> str:
        return next((value for key, value in self.fields if key == name), "")


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
    published_at: dt.datetime | None = None  # the period's results were published


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
    sha256: str | None = None  # a stored file, so a reviewer can be sent it again
    citation: Citation | None = None  # the document cited, or the one a file is (from its caption)
    note: str | None = None  # a file's caption that is not a citation


class Verdict(StrEnum):
    """A reviewer's decision on one indicator."""

    ACCEPT = "accept"
    ADJUST = "adjust"  # appraised points of the reviewer's own, with a reason
    RETURN = "return"  # more evidence asked for, by a deadline


FINAL = (Verdict.ACCEPT, Verdict.ADJUST)  # what closing the appraisal needs on every indicator


class JoinFailure(StrEnum):
    UNKNOWN = "unknown"
    EXPIRED = "expired"
    USED = "used"
    RATE_LIMITED = "rate_limited"  # not a guess: does not count towards the limit


@dataclass(frozen=True, slots=True)
class DecisionView:
    """The latest appraisal decision on one indicator."""

    decision: Verdict
    points: Decimal | None
    comment: str | None
    revision: int
    supplement_due: dt.datetime | None = None
    at: dt.datetime | None = None


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
    unit_id: int = 0
    unit_code: str = ""


class AssessmentStatus(StrEnum):
    DRAFT = "draft"
    AWAITING_LEADER = "awaiting_leader"
    SUBMITTED = "submitted"
    RETURNED = "returned"  # the reviewer asked for more evidence on some indicators
    APPRAISED = "appraised"  # the reviewer closed the appraisal


# The legal moves of an assessment. The engine decides a move from the state it was shown; storage
# writes it only over that very state (compare-and-set), so a stale confirmation changes nothing.
TRANSITIONS: Mapping[AssessmentStatus, frozenset[AssessmentStatus]] = {
    AssessmentStatus.DRAFT: frozenset({AssessmentStatus.AWAITING_LEADER, AssessmentStatus.SUBMITTED}),
    AssessmentStatus.AWAITING_LEADER: frozenset({AssessmentStatus.SUBMITTED}),
    AssessmentStatus.SUBMITTED: frozenset({AssessmentStatus.RETURNED, AssessmentStatus.APPRAISED}),
    AssessmentStatus.RETURNED: frozenset({AssessmentStatus.SUBMITTED, AssessmentStatus.APPRAISED}),
    AssessmentStatus.APPRAISED: frozenset(),
}


def can_move(old: AssessmentStatus, new: AssessmentStatus) -> bool:
    return new in TRANSITIONS[old]


class IllegalTransition(ValueError):
    """A move the table above does not allow: a bug in whoever asked for it, never user input."""

    def __init__(self, old: AssessmentStatus, new: AssessmentStatus) -> None:
        super().__init__(f"assessment cannot move from {old.value} to {new.value}")
        self.old, self.new = old, new


@dataclass(frozen=True, slots=True)
class QueueItem:
    unit_id: int
    unit_name: str
    status: AssessmentStatus
    submitted_at: dt.datetime | None
    decided: int
    returned: int


@dataclass(frozen=True, slots=True)
class ReviewedUnit:
    unit_id: int
    unit_name: str
    assessment_id: int
    status: AssessmentStatus
    answers: Mapping[str, AnswerView]
    decisions: Mapping[str, DecisionView]
    submitted_at: dt.datetime | None = None  # the latest (re)submission

    @property
    def decided(self) -> int:
        """How many decisions were recorded on the unit (revisions count from 1 per indicator)."""
        return sum(d.revision for d in self.decisions.values())


@dataclass(frozen=True, slots=True)
class Review:
    """What a reviewer sees: the units waiting for appraisal and the one under review."""

    queue: tuple[QueueItem, ...] = ()
    unit: ReviewedUnit | None = None


class Mode(StrEnum):
    JOIN = "join"  # not a member yet: waiting for an invite code
    ASK = "ask"  # waiting for the answer to `current`
    EVIDENCE = "evidence"  # waiting for evidence for `current`
    NA_REASON = "na_reason"  # waiting for the reason `current` does not apply
    CONFIRM_SUBMIT = "confirm_submit"
    DONE = "done"  # every indicator answered
    REVIEW = "review"  # a reviewer deciding on `current` of the unit under review
    REVIEW_POINTS = "review_points"  # waiting for the appraised points
    REVIEW_COMMENT = "review_comment"  # waiting for the reason of an adjustment
    REVIEW_RETURN = "review_return"  # waiting for what evidence is asked for
    REVIEW_DUE = "review_due"  # waiting for the supplement deadline


@dataclass(frozen=True, slots=True)
class SessionState:
    mode: Mode = Mode.JOIN
    current: str | None = None
    misses: int = 0
    skipped: tuple[str, ...] = ()
    evidence_added: int = 0  # files/citations received for `current` in this evidence step
    unit: int | None = None  # the unit a reviewer is appraising
    # a reviewer's decision being composed (points, then comment), or a ratio's a ("1.3=12") waiting for b
    draft: str | None = None
    # what the member was shown and confirms: the decision revision of the reviewer's item, or the
    # assessment's revision in the submission summary
    seen: int = 0
    seq: int = 0  # the newest `Inbound.seq` applied to this chat

    def to_json(self) -> dict[str, Any]:
        return {
            "v": 1,
            "mode": self.mode.value,
            "current": self.current,
            "misses": self.misses,
            "skipped": list(self.skipped),
            "evidence_added": self.evidence_added,
            "unit": self.unit,
            "draft": self.draft,
            "seen": self.seen,
            "seq": self.seq,
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
                unit=int(data["unit"]) if data.get("unit") is not None else None,
                draft=str(data["draft"]) if data.get("draft") is not None else None,
                seen=int(data.get("seen", 0)),
                seq=int(data.get("seq", 0)),
            )
        except (ValueError, TypeError):
            return cls()

    def at(self, mode: Mode, current: str | None) -> SessionState:
        return replace(self, mode=mode, current=current, misses=0, evidence_added=0, draft=None)


@dataclass(frozen=True, slots=True)
class WebLinkOffer:
    """What a member asking for a web sign-in link may be given: a fresh token (drawn by the service,
    the engine has no randomness), the workspace's public address and how many links the member was
    given in the last hour (the limit)."""

    token: str
    base_url: str
    recent: int


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
    decisions: Mapping[str, DecisionView] = field(default_factory=dict)  # the reviewer's, on this assessment
    review: Review | None = None  # reviewers only
    # The assessment's revision: how many answer revisions and evidence items it holds. It grows with
    # every change, so a confirmation bound to it is refused once the assessment has moved on.
    revision: int = 0
    # A chat naming a usable invite: what it sees once joined (read by storage), so the engine goes on
    # with the first question, or the reviewer's queue, in the same step.
    joined: Snapshot | None = None
    web_link: WebLinkOffer | None = None  # the member asked for a web sign-in link


# -- what to record ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class JoinUnit:
    invite_code: str


@dataclass(frozen=True, slots=True)
class JoinFailed:
    reason: JoinFailure


@dataclass(frozen=True, slots=True)
class SaveAnswer:
    code: str
    value: AnswerValue | None
    not_applicable: bool = False
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class AddEvidence:
    """A file (with the document it is, or a note, from its caption), a cited document or a link;
    `late`: sent after its deadline, kept but scoring 0 (decided by the engine, recorded as told)."""

    code: str
    file: FileInfo | None = None
    citation: Citation | None = None
    url: str | None = None
    note: str | None = None
    late: bool = False


@dataclass(frozen=True, slots=True)
class RequestSubmission:
    """A respondent asks the leader to confirm the assessment as shown (`revision`) in `expected`."""

    expected: AssessmentStatus
    revision: int
    to: ClassVar[AssessmentStatus] = AssessmentStatus.AWAITING_LEADER


@dataclass(frozen=True, slots=True)
class Submit:
    """The leader submits the assessment as shown (`revision`) in `expected`."""

    expected: AssessmentStatus
    revision: int
    to: ClassVar[AssessmentStatus] = AssessmentStatus.SUBMITTED


@dataclass(frozen=True, slots=True)
class SetLanguage:
    language: str


@dataclass(frozen=True, slots=True)
class SetReminders:
    enabled: bool


@dataclass(frozen=True, slots=True)
class IssueWebLink:
    """A single-use web sign-in link for the member, by its token's SHA-256 (the token itself is only
    in the reply); `token_sha256` None: refused, the member asked too often."""

    token_sha256: str | None
    expires_at: dt.datetime


@dataclass(frozen=True, slots=True)
class Decide:
    """A reviewer's decision on one indicator, made against the revision they were shown, while the
    assessment was in `expected`."""

    assessment_id: int
    code: str
    decision: Verdict
    points: Decimal | None
    self_points: Decimal | None
    comment: str | None
    supplement_due: dt.datetime | None
    expected_revision: int
    expected: AssessmentStatus = AssessmentStatus.SUBMITTED


@dataclass(frozen=True, slots=True)
class SendReturns:
    """The reviewer sends the returned indicators to the unit, as shown: `decisions` is the sum of the
    decision revisions they saw (`ReviewedUnit.decided`)."""

    assessment_id: int
    expected: AssessmentStatus
    decisions: int
    to: ClassVar[AssessmentStatus] = AssessmentStatus.RETURNED


@dataclass(frozen=True, slots=True)
class CloseAppraisal:
    """The reviewer closes the appraisal on the decisions they saw (`decisions`, as for SendReturns)."""

    assessment_id: int
    expected: AssessmentStatus
    decisions: int
    to: ClassVar[AssessmentStatus] = AssessmentStatus.APPRAISED


@dataclass(frozen=True, slots=True)
class Resubmit:
    """The unit has supplemented what the reviewer returned and sends it back."""

    expected: AssessmentStatus
    revision: int
    to: ClassVar[AssessmentStatus] = AssessmentStatus.SUBMITTED


StatusChange = RequestSubmission | Submit | SendReturns | CloseAppraisal | Resubmit


Event = (
    JoinUnit
    | JoinFailed
    | SaveAnswer
    | AddEvidence
    | RequestSubmission
    | Submit
    | SetLanguage
    | SetReminders
    | IssueWebLink
    | Decide
    | SendReturns
    | CloseAppraisal
    | Resubmit
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
class Attachment:
    """A stored evidence file to send along (a reviewer looking at a unit's evidence)."""

    sha256: str
    name: str


@dataclass(frozen=True, slots=True)
class Reply:
    lines: tuple[Msg, ...]
    buttons: tuple[Button, ...] = ()
    chart: Chart | None = None
    files: tuple[Attachment, ...] = ()


@dataclass(frozen=True, slots=True)
class Notice:
    """A reply for other members: those holding `role` in `unit_id` (None: the sender's own unit),
    or, with `reviewers`, the reviewers over the sender's unit."""

    role: Role
    reply: Reply
    unit_id: int | None = None
    reviewers: bool = False


@dataclass(frozen=True, slots=True)
class Decision:
    session: SessionState
    events: tuple[Event, ...] = ()
    replies: tuple[Reply, ...] = ()
    notices: tuple[Notice, ...] = ()
