"""An in-memory stand-in for storage: applies the engine's events to a snapshot, so whole
conversations can be tested on the pure engine alone, rendered in Vietnamese."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace

from bot.i18n import Translator
from bot.render.reply import Rendered, ReplyRenderer
from flows import step
from flows.model import (
    AddEvidence,
    AnswerView,
    AssessmentStatus,
    Decision,
    EvidenceView,
    FileInfo,
    Inbound,
    InboundKind,
    InviteView,
    JoinFailed,
    JoinUnit,
    MemberView,
    PeriodView,
    RequestSubmission,
    Role,
    SaveAnswer,
    SessionState,
    SetLanguage,
    Snapshot,
    Submit,
)
from scoring.answers import VIETNAM_TZ
from scoring.model import Framework

T0 = dt.datetime(2026, 12, 1, 9, 0, tzinfo=VIETNAM_TZ)


@dataclass
class Chat:
    framework: Framework
    role: Role = Role.RESPONDENT
    joined: bool = True
    invite: InviteView | None = None
    now: dt.datetime = T0
    snap: Snapshot = field(init=False)
    transcript: list[Rendered] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)

    def __post_init__(self) -> None:
        member = MemberView(1, self.role, 10, "25840", "Xã An Bình") if self.joined else None
        period = PeriodView(
            7, "Kỳ đánh giá 2025", self.framework, dt.datetime(2027, 1, 15, 17, 0, tzinfo=VIETNAM_TZ)
        )
        self.snap = Snapshot("console", "c1", SessionState(), member, period, invite=self.invite)

    @property
    def session(self) -> SessionState:
        return self.snap.session

    def send(self, inbound: Inbound) -> list[Rendered]:
        decision = step(self.snap, inbound, self.now)
        self.decisions.append(decision)
        self._apply(decision)
        lang = self.snap.member.language if self.snap.member else "vi"
        renderer = ReplyRenderer(Translator(lang))
        out = [renderer.reply(r) for r in decision.replies]
        if any(isinstance(e, JoinUnit) for e in decision.events):
            out += self.send(Inbound(InboundKind.RESUME))
        self.transcript += out
        self.now += dt.timedelta(seconds=30)
        return out

    def text(self, text: str) -> str:
        return "\n".join(r.text for r in self.send(Inbound(InboundKind.TEXT, text)))

    def press(self, label: str) -> str:
        """Press the button with this label on the last message that had buttons."""
        for rendered in reversed(self.transcript):
            for b in rendered.buttons:
                if b.label == label:
                    return "\n".join(
                        r.text for r in self.send(Inbound(InboundKind.BUTTON, payload=b.payload))
                    )
            if rendered.buttons:
                break
        raise AssertionError(f"no button {label!r} on the last keyboard")

    def file(self, name: str, size: int = 1000, mime: str = "application/pdf", caption: str = "") -> str:
        info = FileInfo("ab" * 32, size, mime, name)
        return "\n".join(
            r.text for r in self.send(Inbound(InboundKind.FILE, text=name, files=(info,), caption=caption))
        )

    def _apply(self, d: Decision) -> None:
        snap = replace(self.snap, session=d.session)
        answers = dict(snap.answers)
        for e in d.events:
            if isinstance(e, SaveAnswer | AddEvidence):
                snap = replace(snap, revision=snap.revision + 1)
            if isinstance(e, SaveAnswer):
                old = answers.get(e.code)
                answers[e.code] = AnswerView(
                    e.value,
                    e.not_applicable,
                    e.reason,
                    (old.revision + 1) if old else 1,
                    old.evidence if old else (),
                )
            elif isinstance(e, AddEvidence):
                old = answers[e.code]
                label = e.file.name if e.file else e.citation.number if e.citation else e.url or ""
                kind = "file" if e.file else "citation" if e.citation else "link"
                sha = e.file.sha256 if e.file else None
                view = EvidenceView(kind, label, self.now, e.late, sha, e.citation, e.note)
                answers[e.code] = replace(old, evidence=(*old.evidence, view))
            elif isinstance(e, Submit):
                snap = replace(snap, status=AssessmentStatus.SUBMITTED, submitted_at=self.now)
            elif isinstance(e, RequestSubmission):
                snap = replace(snap, status=AssessmentStatus.AWAITING_LEADER)
            elif isinstance(e, JoinUnit):
                assert snap.invite is not None
                snap = replace(
                    snap, member=MemberView(1, snap.invite.role, 10, "25840", snap.invite.unit_name)
                )
            elif isinstance(e, JoinFailed):
                snap = replace(snap, join_failures=(*snap.join_failures, self.now))
            elif isinstance(e, SetLanguage):
                assert snap.member is not None
                snap = replace(snap, member=replace(snap.member, language=e.language))
        self.snap = replace(snap, answers=answers)
