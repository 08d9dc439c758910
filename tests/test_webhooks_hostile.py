"""Forged and malformed webhooks (issue 20 item 7): the signature or secret is checked on the raw bytes
before anything is parsed, and compared as bytes. A forged body however deeply nested, a signature or
secret header with non-ASCII characters, or a signed body that is not a JSON object gets 400/401 —
never an HTTP 500, and nothing is logged at ERROR or with a traceback."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from bot.channels.telegram import make_bot
from bot.channels.telegram_app import TelegramApp
from bot.channels.zalo import signature
from storage.db import Database
from tests.e2e_support import make_province
from tests.fake_telegram import FakeTelegram, Limits
from tests.fake_zalo import FakeZalo
from tests.test_channel_inputs import USER, no_errors, zalo_app

CHAT = 555001
DEPTH = 100_000


@pytest.fixture
async def zalo() -> AsyncIterator[FakeZalo]:
    server = FakeZalo()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def telegram() -> AsyncIterator[FakeTelegram]:
    server = FakeTelegram(limits=Limits(chat_interval=0.0, per_second=10_000))
    await server.start()
    yield server
    await server.stop()


async def post_raw(url: str, body: bytes, headers: dict[str, str]) -> int:
    async with aiohttp.ClientSession() as session, session.post(url, data=body, headers=headers) as resp:
        return resp.status


def nested(prefix: bytes) -> bytes:
    return prefix + b"[" * DEPTH + b"]" * DEPTH + b"}"


async def test_zalo_webhook_refuses_hostile_bodies_and_headers(
    db: Database, tmp_path: Path, zalo: FakeZalo, caplog: pytest.LogCaptureFixture
) -> None:
    h = await zalo_app(db, tmp_path, zalo)
    try:
        timestamp = "1700000000000"
        deep = nested(b'{"timestamp": "' + timestamp.encode() + b'", "a": ')
        # forged (or unsigned) and deeply nested: refused before it is parsed
        assert await post_raw(h.url, deep, {"X-ZEvent-Signature": "mac=" + "0" * 64}) == 401
        assert await post_raw(h.url, deep, {}) == 401
        # a signature header with non-ASCII characters: refused, not a 500
        assert await post_raw(h.url, b"{}", {"X-ZEvent-Signature": "mac=" + "é" * 64}) == 401
        assert await post_raw(h.url, deep, {"X-ZEvent-Signature": "mac=" + "ồ" * 64}) == 401
        # correctly signed, yet not JSON, nested past what a parser takes, or not an event
        for body in (
            deep,
            b'{"timestamp": "' + timestamp.encode() + b'", "x": \xff\xfe}',
            b'[{"timestamp": "' + timestamp.encode() + b'"}]',
            b'{"timestamp": "' + timestamp.encode() + b'", "sender": "8001000", "event_name": "follow"}',
            b'{"timestamp": "' + timestamp.encode() + b'", "message": [1], "event_name": "user_send_text"}',
        ):
            mac = signature(zalo.app_id, body, timestamp, zalo.signature_secret)
            assert await post_raw(h.url, body, {"X-ZEvent-Signature": mac}) == 400
        no_errors(caplog)
        assert "mã mời" in await h.send(zalo.follow(USER))  # a well-formed signed event still goes through
    finally:
        await h.app.stop()


async def test_zalo_signature_secret_with_non_ascii_characters(
    db: Database, tmp_path: Path, zalo: FakeZalo, caplog: pytest.LogCaptureFixture
) -> None:
    """An operator's secret with non-ASCII characters is compared as bytes: it works, nothing raises."""
    zalo.signature_secret = "bí-mật-ÖA"
    h = await zalo_app(db, tmp_path, zalo)
    try:
        assert "mã mời" in await h.send(zalo.follow(USER))
        assert await zalo.post(zalo.follow(USER), signature="mac=bí-mật") == 401
        no_errors(caplog)
    finally:
        await h.app.stop()


async def test_telegram_webhook_refuses_hostile_bodies_and_headers(
    db: Database, tmp_path: Path, telegram: FakeTelegram, caplog: pytest.LogCaptureFixture
) -> None:
    p = make_province(db, tmp_path)
    bot = make_bot(telegram.token, telegram.url, timeout=2.0)
    app = TelegramApp(p.db, bot, p.store, album_wait=0.2, remind_every=None)
    runner = await app.start_webhook("https://bot.example/tg", "/tg", "127.0.0.1", 0, "s3cret-token")
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/tg"
    try:
        update = json.dumps(telegram.text(CHAT, "xin chào")).encode()
        deep = nested(b'{"update_id": 1, "message": ')
        ok = {"X-Telegram-Bot-Api-Secret-Token": "s3cret-token", "Content-Type": "application/json"}
        for secret in ("s3cret-tokén", "é" * 12, "wrong", ""):
            headers = {"X-Telegram-Bot-Api-Secret-Token": secret, "Content-Type": "application/json"}
            assert await post_raw(url, update, headers) == 401
            assert await post_raw(url, deep, headers) == 401
        for body in (deep, b"\xff\xfe not json", b"[1]", b'{"update_id": "x"}', b"{}", b""):
            assert await post_raw(url, body, ok) == 400
        no_errors(caplog)
        assert await post_raw(url, update, ok) == 200
    finally:
        await app.stop()
        await runner.cleanup()
