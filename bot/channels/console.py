"""The console channel: the same assessment in a terminal, and the embedded default.

Bot messages are printed with numbered buttons ("[#1 Có]"); a typed line is a message; "#2" presses
button 2 of the last keyboard; "/file PATH" sends a file as evidence. When standard input is not a
terminal the script is read line by line and every line is echoed before its replies, so a whole
conversation can be piped in and read back as a transcript.
"""

from __future__ import annotations

import io
import json
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from sqlalchemy.exc import OperationalError

from bot.i18n import Translator
from bot.outbound import Outbound, OutButton
from bot.service import Service, Unavailable
from flows.model import FileInfo, Inbound, InboundKind, Rejected
from storage.evidence import EvidenceRejected, EvidenceStore, download_name, sanitize_name
from storage.outbox import mark_sent, pending

CHANNEL = "console"
_BUTTON = re.compile(r"^#([0-9]{1,2})$")  # ASCII digits only: "#²" is text


@dataclass
class ConsoleChannel:
    service: Service
    store: EvidenceStore
    chat_id: str
    out: TextIO
    echo: bool = False
    language: str = "vi"
    keyboard: tuple[OutButton, ...] = ()

    def deliver(self) -> int:
        """Print what the outbox holds for this chat, in order, once it is marked sent (a locked
        database leaves it pending, printed by the next delivery)."""
        text = io.StringIO()
        try:
            with self.service.db.session() as s:
                rows = pending(s, CHANNEL, self.chat_id)
                for row in rows:
                    self._print(Outbound.from_json(json.loads(row.payload_json)), row.id, text)
                if rows:
                    mark_sent(s, [r.id for r in rows if r.id is not None], self.service.clock())
        except OperationalError:
            return 0
        self.out.write(text.getvalue())
        self.out.flush()
        return len(rows)

    def _print(self, message: Outbound, row_id: int | None, out: TextIO) -> None:
        print(message.text, file=out)
        if message.photo_png is not None:
            print(self._save_picture(row_id, message.photo_png), file=out)
        for doc in message.documents:
            t = Translator(self.language)
            stored = self.store.exists(doc.sha256)
            name = self.store.document(doc.sha256, doc.name)[1] if stored else doc.name
            print(t("console.document", name=name, path=str(self.store.path_for(doc.sha256))), file=out)
        if message.buttons:
            self.keyboard = message.buttons
            print("   " + "  ".join(f"[#{i} {b.label}]" for i, b in enumerate(message.buttons, 1)), file=out)
        print(file=out)

    def _save_picture(self, row_id: int | None, data: bytes) -> str:
        """A terminal cannot show a picture: save it next to the evidence and say where."""
        folder = self.store.root / "charts"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"chart-{self.chat_id}-{row_id}.png"
        path.write_bytes(data)
        t = Translator(self.language)
        return t("console.picture_saved", path=str(path))

    def inbound_for(self, line: str) -> Inbound | None:
        m = _BUTTON.match(line.strip())
        if m is not None:
            index = int(m.group(1)) - 1
            if 0 <= index < len(self.keyboard):
                return Inbound(InboundKind.BUTTON, payload=self.keyboard[index].payload)
            t = Translator(self.language)
            print(t("console.no_such_button", number=index + 1, count=len(self.keyboard)), file=self.out)
            return None
        if line.startswith("/file "):
            return self.file_inbound(Path(line[len("/file ") :].strip()))
        return Inbound(InboundKind.TEXT, text=line)

    def file_inbound(self, path: Path) -> Inbound | None:
        name = sanitize_name(path.name)
        try:
            data = path.read_bytes()
        except OSError as exc:
            t = Translator(self.language)
            print(t("console.cannot_read", path=str(path), problem=exc.strerror or str(exc)), file=self.out)
            return None
        try:
            stored = self.store.put(data, name)
        except EvidenceRejected as exc:
            return Inbound(InboundKind.FILE, text=name, rejected=(Rejected(name, exc.reason),))
        info = FileInfo(stored.sha256, stored.size, stored.mime, download_name(name, stored.extension))
        return Inbound(InboundKind.FILE, text=name, files=(info,))

    def send(self, inbound: Inbound) -> None:
        try:
            self.service.handle(CHANNEL, self.chat_id, uuid.uuid4().hex, inbound)
        except Unavailable:
            t = Translator(self.language)
            print(t("service.unavailable"), file=self.out)
            self.out.flush()
            return
        self.deliver()

    def run(self, lines: Iterable[str], join: str | None = None) -> None:
        self.deliver()  # anything a crash left undelivered goes out first
        self.send(Inbound(InboundKind.TEXT, text=f"/start {join}") if join else Inbound(InboundKind.RESUME))
        for raw in lines:
            line = raw.rstrip("\n")
            if self.echo:
                print(f"> {line}", file=self.out)
            if not line.strip():
                continue
            if line.strip() in ("/quit", "/thoat"):
                break
            inbound = self.inbound_for(line)
            if inbound is not None:
                self.send(inbound)
