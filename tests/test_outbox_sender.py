"""The outbox sender outlives a database outage: delivery stops while the database is gone and goes on
by itself once it is back, with nothing lost or sent twice."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError

from bot.outbox import OutboxSender, Outcome, RateLimiter, Result
from storage.conversations import queue_replies
from storage.db import Database

pytest_plugins = ["tests.storage_fixtures"]


class Recorder:
    channel = "telegram"

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    async def send(self, chat_id: str, payload: dict[str, Any]) -> Result:
        self.sent.append((chat_id, str(payload["text"])))
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
