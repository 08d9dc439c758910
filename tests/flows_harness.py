"""An in-memory stand-in for storage: applies the engine's events to a snapshot, so whole
conversations can be tested on the pure engine alone, rendered in Vietnamese."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace

from bot.i18n import Translator
from bot.render.reply import Rendered, ReplyRenderer
from flows import step
from flows.apply import apply
from flows.model import (
    Decision,
    FileInfo,
    Inbound,
    InboundKind,
    InviteView,
    MemberView,
    PeriodView,
    Role,
    SessionState,
    Snapshot,
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
        self.transcript += out
        self.now += dt.timedelta(seconds=30)
        return out

    def send_decision(self, inbound: Inbound) -> Decision:
        self.send(inbound)
        return self.decisions[-1]

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
        self.snap = apply(replace(self.snap, session=d.session), d.events, self.now)
