"""Unicode digits at the channels' edge (issue 20 item 5): only ASCII digits are numbers. A Zalo `#²`,
`#①`, `#٣` (or 5 000 digits, past what int() reads) is text the engine answers, not a keyboard index;
a timestamp or an attachment size in other digits is unreadable, not a crash."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.channels.zalo import ZaloConfig
from bot.channels.zalo_app import ZaloApp
from bot.outbound import OutButton
from flows.model import InboundKind
from storage.db import Database
from storage.zalo import save_token
from tests.e2e_support import Province, make_province, pdf_bytes
from tests.fake_zalo import FakeZalo

USER = "8001000"


class ZaloHarness:
    def __init__(self, fake: FakeZalo, p: Province) -> None:
        self.fake, self.p = fake, p
        config = ZaloConfig(
            app_id=fake.app_id,
            app_secret=fake.app_secret,
            signature_secret=fake.signature_secret,
            api_base=fake.url,
            oauth_base=fake.url,
        )
        self.app = ZaloApp(p.db, p.store, config, per_second=500, chat_interval=0.0, remind_every=None)
        self.url = ""

    async def start(self) -> None:
        port = await self.app.start("127.0.0.1", 0, "/zalo", background=False)
        self.url = self.fake.webhook = f"http://127.0.0.1:{port}/zalo"

    async def send(self, event: dict[str, object]) -> str:
        before = len(self.fake.transcripts[USER])
        assert await self.fake.post(event) == 200
        await self.app.channel.flush()
        await self.app.sender.drain()
        return self.fake.said(USER, before)


@pytest.fixture
async def zalo() -> AsyncIterator[FakeZalo]:
    server = FakeZalo()
    await server.start()
    yield server
    await server.stop()


async def zalo_app(db: Database, tmp_path: Path, fake: FakeZalo) -> ZaloHarness:
    """A province, the OA's token and a started Zalo app (the caller stops it)."""
    p = make_province(db, tmp_path)
    with db.session() as s:
        now = dt.datetime.now(dt.UTC)
        save_token(s, fake.access_token, fake.refresh_token, now + dt.timedelta(hours=20), now)
    h = ZaloHarness(fake, p)
    await h.start()
    return h


def no_errors(caplog: pytest.LogCaptureFixture) -> None:
    bad = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not bad, [r.getMessage() for r in bad]


async def test_zalo_unicode_digits_are_text_not_a_button(
    db: Database, tmp_path: Path, zalo: FakeZalo, caplog: pytest.LogCaptureFixture
) -> None:
    h = await zalo_app(db, tmp_path, zalo)
    try:
        await h.send(zalo.text(USER, h.p.invite("25840", "respondent")))
        assert zalo.last_buttons(USER)  # a keyboard is on screen: "#1", "#2" … press its buttons
        pressed = await h.app.channel._inbound("user_send_text", USER, {"text": "#1"})
        assert pressed is not None and pressed.kind is InboundKind.BUTTON
        for typed in ("#²", "#①", "#٣", "#١", "#" + "9" * 5000, "#1²", "# 1"):
            inbound = await h.app.channel._inbound("user_send_text", USER, {"text": typed})
            assert inbound is not None and inbound.kind is InboundKind.TEXT and inbound.text == typed
        for typed in ("#²", "#①", "#³"):
            assert await h.send(zalo.text(USER, typed))  # the engine answered (it re-asks)
        no_errors(caplog)
    finally:
        await h.app.stop()


async def test_zalo_timestamp_and_file_size_in_unicode_digits(
    db: Database, tmp_path: Path, zalo: FakeZalo, caplog: pytest.LogCaptureFixture
) -> None:
    """A signed event whose timestamp is written in other digits has no readable time: refused as not
    fresh; an attachment whose size is so written is fetched and measured as it downloads."""
    h = await zalo_app(db, tmp_path, zalo)
    try:
        event = zalo.text(USER, "xin chào")
        event["timestamp"] = "١٧٠٠٠٠٠٠٠٠٠٠٠"
        assert await zalo.post(event) == 401
        upload = zalo.file(USER, "bao-cao.pdf", pdf_bytes("x"))
        upload["message"]["attachments"][0]["payload"]["size"] = "²"
        inbound = await h.app.channel._inbound("user_send_file", USER, upload["message"])
        assert inbound is not None and len(inbound.files) == 1 and not inbound.rejected
        no_errors(caplog)
    finally:
        await h.app.stop()


def test_console_button_numbers_are_ascii_digits(db: Database, tmp_path: Path) -> None:
    p = make_province(db, tmp_path)
    chat, _ = p.chat("con-1")
    chat.keyboard = tuple(OutButton(f"Mục {n}", f"pick:{n}") for n in range(1, 4))
    pressed = chat.inbound_for("#3")
    assert pressed is not None and pressed.kind is InboundKind.BUTTON and pressed.payload == "pick:3"
    for typed in ("#٣", "#³", "#③"):
        inbound = chat.inbound_for(typed)
        assert inbound is not None and inbound.kind is InboundKind.TEXT and inbound.text == typed
