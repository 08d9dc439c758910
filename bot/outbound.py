"""What the bot sends: one message as a frozen value.

The service renders the engine's replies into `Outbound` messages; the outbox stores them as JSON
(`to_json`) and the sender reads them back (`from_json`) for a channel's transport, which only does
the I/O. The JSON keeps the keys rows queued before this type existed were written with.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class OutButton:
    label: str
    payload: str


@dataclass(frozen=True, slots=True)
class Document:
    """A stored evidence file sent along (a reviewer looking at a unit's evidence)."""

    sha256: str
    name: str


@dataclass(frozen=True, slots=True)
class Outbound:
    text: str = ""
    buttons: tuple[OutButton, ...] = ()
    photo_png: bytes | None = None  # a chart, sent with the text as its caption
    documents: tuple[Document, ...] = ()  # sent before the text
    clear_keyboard_of: int | None = None  # only remove the buttons of this earlier message (Telegram)
    reminder: bool = False  # outside Zalo's reply window only reminders may go as a paid template

    def to_json(self) -> dict[str, object]:
        data: dict[str, object] = {
            "text": self.text,
            "buttons": [{"label": b.label, "payload": b.payload} for b in self.buttons],
        }
        if self.photo_png is not None:
            data["photo_png_b64"] = base64.b64encode(self.photo_png).decode("ascii")
        if self.documents:
            data["documents"] = [{"sha256": d.sha256, "name": d.name} for d in self.documents]
        if self.clear_keyboard_of is not None:
            data |= {"op": "clear_keyboard", "message_id": self.clear_keyboard_of}
        if self.reminder:
            data["reminder"] = True
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Outbound:
        photo = data.get("photo_png_b64")
        return cls(
            text=str(data.get("text", "")),
            buttons=tuple(OutButton(str(b["label"]), str(b["payload"])) for b in data.get("buttons") or ()),
            photo_png=base64.b64decode(photo) if photo else None,
            documents=tuple(Document(str(d["sha256"]), str(d["name"])) for d in data.get("documents") or ()),
            clear_keyboard_of=int(data["message_id"]) if data.get("op") == "clear_keyboard" else None,
            reminder=bool(data.get("reminder")),
        )
