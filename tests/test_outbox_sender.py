"""The outbox sender outlives a database outage (delivery stops while the database is gone and goes on
by itself once it is back), and a message that takes several calls is never repeated in part: a retry
sends only what had not gone out, and a process that takes over after a crash does the same."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError
from sqlmodel import select

from bot.outbound import Outbound
from bot.outbox import OutboxSender, Outcome, Parts, RateLimiter, Result
from storage import migrate
from storage.db import Database
from storage.record import queue_replies

pytest_plugins = ["tests.storage_fixtures"]


class Recorder:
    channel = "telegram"

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    async def send(self, chat_id: str, message: Outbound, parts: Parts) -> Result:
        self.sent.append((chat_id, message.text))
        return Result(Outcome.SENT, external_id=str(len(self.sent)))


async def test_the_sender_keeps_going_through_a_database_outage(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    with db.session() as s:
        queue_replies(s, "telegram", "c1", None, [{"text": "một"}, {"text": "hai"}], now)
    transport = Recorder()
    sender = OutboxSender(db, transport, RateLimiter(1000, 0.0))
    real_claim = sender._claim
    outage = {"left": 3}

    def claim() -> Any:
        if outage["left"]:
            outage["left"] -= 1
            raise OperationalError("SELECT", {}, Exception("the database system is starting up"))
        return real_claim()

    monkeypatch.setattr(sender, "_claim", claim)
    stop = asyncio.Event()
    running = asyncio.create_task(sender.run(stop, idle=0.01))
    for _ in range(500):
        if len(transport.sent) == 2 or running.done():
            break
        await asyncio.sleep(0.01)
    stop.set()
    sender.wake()
    await asyncio.wait_for(running, 5)
    assert outage["left"] == 0
    assert transport.sent == [("c1", "một"), ("c1", "hai")]


async def test_a_long_message_cut_short_by_a_fault_is_finished_not_repeated(tmp_path: Path) -> None:
    """Telegram takes 4,096 characters a message: a longer text goes in pieces. The second piece
    fails (502, then a dropped connection); the retries send it and the last piece, never the first
    again."""
    from bot.channels.telegram import TelegramTransport, make_bot
    from tests.fake_telegram import FakeTelegram, Limits

    url = f"sqlite:///{tmp_path / 'dti.db'}"
    migrate.upgrade(url)
    db = Database(url)
    fake = FakeTelegram(limits=Limits(chat_interval=0.0, per_second=1000.0))
    fake.scripted_faults = [None, "500", "drop"]
    await fake.start()
    bot = make_bot(fake.token, fake.url, timeout=2.0)
    try:
        pieces = ["một " * 1000, "hai " * 1000, "ba " * 1000]  # about 4,000 characters each
        with db.session() as s:
            queue_replies(s, "telegram", "42", None, [{"text": "\n".join(pieces)}], dt.datetime.now(dt.UTC))
        sender = OutboxSender(db, TelegramTransport(bot), RateLimiter(1000, 0.0), backoff=(0,))
        for _ in range(10):
            await sender.cycle()
            if sender.sent:
                break
        assert sender.sent == 1 and sender.retried == 2 and fake.faults == 2
        assert [m.text for m in fake.transcripts[42]] == pieces  # each piece once, in order
    finally:
        await bot.session.close()
        await fake.stop()
        db.dispose()


async def test_a_long_message_cut_short_by_a_crash_is_finished_by_the_next_process(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The process dies while the second of three pieces is on its way. The next process (a new
    sender, nothing in memory) takes the row over once its claim is stale and sends the second and
    third pieces: the first, which the user has, is not sent again."""
    from bot.channels.telegram import TelegramTransport, make_bot
    from storage.models import Outbox
    from storage.outbox import STALE_CLAIM
    from tests.fake_telegram import FakeTelegram, Limits

    fake = FakeTelegram(limits=Limits(chat_interval=0.0, per_second=1000.0))
    fake.scripted_faults = [None, "timeout"]  # the first piece goes out, the second hangs
    fake.timeout_seconds = 30.0
    await fake.start()
    bot = make_bot(fake.token, fake.url, timeout=60.0)
    try:
        pieces = ["một " * 1000, "hai " * 1000, "ba " * 1000]
        now = dt.datetime.now(dt.UTC)
        with db.session() as s:
            queue_replies(s, "telegram", "42", None, [{"text": "\n".join(pieces)}], now)
        first = OutboxSender(db, TelegramTransport(bot), RateLimiter(1000, 0.0))
        dying = asyncio.create_task(first.cycle())
        for _ in range(500):
            if fake.calls.count("sendmessage") == 2:
                break
            await asyncio.sleep(0.01)
        dying.cancel()  # as a SIGKILL would stop it: nothing more recorded
        with pytest.raises(asyncio.CancelledError):
            await dying
        with db.session() as s:
            row = s.exec(select(Outbox)).one()
            assert (row.status, row.parts_sent) == ("sending", 1)
        later = now + STALE_CLAIM + dt.timedelta(seconds=1)
        monkeypatch.setattr(fake, "scripted_faults", [])
        second = OutboxSender(db, TelegramTransport(bot), RateLimiter(1000, 0.0), clock=lambda: later)
        second._requeue()
        assert await second.cycle() >= 1
        assert second.sent == 1
        assert [m.text for m in fake.transcripts[42]] == pieces  # each piece once, in order
    finally:
        await bot.session.close()
        await fake.stop()


class Echo:
    """Sends every message after a moment on the network; its id says which row it was."""

    channel = "telegram"

    async def send(self, chat_id: str, message: Outbound, parts: Parts) -> Result:
        await asyncio.sleep(0.001)
        return Result(Outcome.SENT, external_id=f"msg-{message.text}")


async def test_rows_sent_to_many_chats_at_once_are_recorded_together(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Forty chats, two messages each, delivered concurrently: every row is recorded sent with its
    own message id, in far fewer transactions than rows, and each chat's second message goes out only
    once its first is recorded."""
    from storage.models import Outbox

    now = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    with db.session() as s:
        for chat in range(40):
            queue_replies(
                s, "telegram", f"c{chat}", None, [{"text": f"{chat}-1"}, {"text": f"{chat}-2"}], now
            )
    sender = OutboxSender(db, Echo(), RateLimiter(10_000, 0.0), clock=lambda: now)
    transactions: list[int] = []
    record = sender._record_sent

    def counted(sent: list[tuple[int, str | None]]) -> None:
        transactions.append(len(sent))
        with db.session() as s:  # a chat's second message is not out before its first is recorded
            recorded = {r.external_id for r in s.exec(select(Outbox).where(Outbox.status == "sent"))}
        for _, external_id in sent:
            assert external_id is not None
            if external_id.endswith("-2"):
                assert external_id[:-1] + "1" in recorded
        record(sent)

    monkeypatch.setattr(sender, "_record_sent", counted)
    await sender.drain()
    with db.session() as s:
        rows = s.exec(select(Outbox)).all()
    assert {r.status for r in rows} == {"sent"} and sender.sent == 80
    assert all(r.external_id == "msg-" + json.loads(r.payload_json)["text"] for r in rows)
    assert all(r.sent_at == now for r in rows)
    assert sum(transactions) == 80 and len(transactions) <= 20


async def test_a_failed_record_of_sent_rows_leaves_them_claimed(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database goes away after the messages went out: the sender stops with the error (its loop
    tries again later), and the rows stay claimed until a lease runs out, never marked half."""
    from storage.models import Outbox

    with db.session() as s:
        for chat in range(5):
            queue_replies(s, "telegram", f"c{chat}", None, [{"text": f"{chat}"}], dt.datetime.now(dt.UTC))
    sender = OutboxSender(db, Echo(), RateLimiter(10_000, 0.0))

    def down(sent: list[tuple[int, str | None]]) -> None:
        raise OperationalError("UPDATE", {}, Exception("server closed the connection unexpectedly"))

    monkeypatch.setattr(sender, "_record_sent", down)
    with pytest.raises(OperationalError):
        await sender.cycle()
    with db.session() as s:
        assert {r.status for r in s.exec(select(Outbox))} == {"sending"}
    assert sender.sent == 0


async def test_a_user_who_blocked_the_bot_is_recorded_by_the_sender_not_the_transport(tmp_path: Path) -> None:
    """Telegram refuses a message with 403: the transport only says so (`Outcome.BLOCKED`), and the
    sender marks the row failed and the member blocked, in one transaction."""
    from bot.channels.telegram import TelegramTransport, make_bot
    from storage.models import Member, Outbox, Unit
    from tests.fake_telegram import FakeTelegram, Limits

    url = f"sqlite:///{tmp_path / 'dti.db'}"
    migrate.upgrade(url)
    db = Database(url)
    fake = FakeTelegram(limits=Limits(chat_interval=0.0, per_second=1000.0))
    fake.scripted_faults = ["blocked"]
    await fake.start()
    bot = make_bot(fake.token, fake.url, timeout=2.0)
    try:
        with db.session() as s:
            unit = Unit(code="25840", name="Xã An Bình", level="commune")
            s.add(unit)
            s.flush()
            assert unit.id is not None
            s.add(Member(channel="telegram", chat_id="42", unit_id=unit.id, role="respondent"))
            queue_replies(s, "telegram", "42", None, [{"text": "xin chào"}], dt.datetime.now(dt.UTC))
        transport = TelegramTransport(bot)
        assert not hasattr(transport, "service")  # no database of its own
        sender = OutboxSender(db, transport, RateLimiter(1000, 0.0), backoff=(0,))
        await sender.cycle()
        with db.session() as s:
            assert s.exec(select(Outbox.status)).one() == "failed"
            assert s.exec(select(Member.blocked_at)).one() is not None
    finally:
        await bot.session.close()
        await fake.stop()
        db.dispose()
