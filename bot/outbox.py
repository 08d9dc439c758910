"""Delivering the outbox at each channel's pace, in order, without dropping or doubling a message.

A sender claims batches of rows for its channel and hands each to the channel's `Transport`. The
rate limiter keeps the overall pace (Telegram: about 30 per second) and the spacing within one chat
(about one per second); messages of one chat go out strictly in order, several chats in parallel.
A 429 waits exactly the `retry_after` the API gave; network errors and 5xx back off and retry; a
permanent refusal (the user blocked the bot) marks the row failed. Rows are marked sent only after
the API accepted them.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from sqlalchemy.exc import SQLAlchemyError

from bot.coalesce import Coalescer
from bot.outbound import Outbound
from storage.db import Database
from storage.outbox import (
    STALE_CLAIM,
    Claimed,
    claim,
    mark_each_sent,
    mark_failed,
    record_parts,
    release,
    renew,
    requeue_stale,
    retry_later,
    set_blocked,
)

log = logging.getLogger(__name__)


class Outcome(StrEnum):
    SENT = "sent"
    RETRY = "retry"
    FAILED = "failed"
    BLOCKED = "blocked"  # the user blocked the bot: failed, and the sender records the member blocked


@dataclass(frozen=True)
class Result:
    outcome: Outcome
    retry_after: float | None = None  # what the API asked for (429), in seconds
    error: str = ""
    external_id: str | None = None
    parts: int = 0  # of a message sent in several calls (files, long text): how many went out


@dataclass
class Parts:
    """The calls one outbox message takes (its files, then its text in pieces), and how many of them
    went out. Each part but the last is recorded with the message as soon as it went out (`save`), so
    that a retry, or another process after a crash, sends only the rest instead of repeating what the
    user already has. A message sent in one call records nothing."""

    sent: int = 0  # already delivered by earlier attempts, then counted on
    save: Callable[[int], Awaitable[None]] | None = None
    _seen: int = 0

    def due(self) -> bool:
        """Whether the next part still has to go out (call once before each part)."""
        self._seen += 1
        return self._seen > self.sent

    async def done(self) -> None:
        """The part `due` allowed went out."""
        self.sent = self._seen
        if self.save is not None:
            await self.save(self.sent)

    def restart(self) -> None:
        """The message is attempted again from its first part (those already sent are skipped)."""
        self._seen = 0


class Transport(Protocol):
    channel: str

    async def send(self, chat_id: str, message: Outbound, parts: Parts) -> Result:
        """Only the I/O: send `message` and say what happened; the sender records it."""
        ...


CATCH_UP = 3


@dataclass
class Pace:
    """Telegram's documented limits: about 30 messages a second, about one a second per chat."""

    per_second: float = 30.0
    chat_interval: float = 1.0


class RateLimiter:
    """At most `per_second` sends overall and one per `chat_interval` seconds in any one chat."""

    def __init__(
        self,
        per_second: float,
        chat_interval: float,
        now: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.gap = 1.0 / per_second
        self.chat_interval = chat_interval
        self._now = now
        self._sleep = sleep
        self._next = 0.0
        self._chat_next: dict[str, float] = {}
        self._paused_until = 0.0

    async def acquire(self, chat_id: str) -> None:
        while True:
            t = self._now()
            wait = max(self._next - t, self._chat_next.get(chat_id, 0.0) - t, self._paused_until - t)
            if wait <= 0:
                # a slot missed by a late waker may be made up, but never more than CATCH_UP of them:
                # the pace over any second stays within the limit
                self._next = max(self._next, t - CATCH_UP * self.gap) + self.gap
                self._chat_next[chat_id] = t + self.chat_interval
                return
            await self._sleep(wait)

    def pause(self, seconds: float, chat_id: str | None = None) -> None:
        """Hold one chat (or everything) back for `seconds`, as a 429 demands."""
        until = self._now() + seconds
        if chat_id is None:
            self._paused_until = max(self._paused_until, until)
        else:
            self._chat_next[chat_id] = max(self._chat_next.get(chat_id, 0.0), until)


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class OutboxSender:
    def __init__(
        self,
        db: Database,
        transport: Transport,
        limiter: RateLimiter,
        *,
        clock: Callable[[], dt.datetime] = utc_now,
        backoff: tuple[float, ...] = (1, 2, 5, 15, 60, 300),
        max_attempts: int = 12,
        concurrency: int = 32,
        batch: int = 200,
        send_timeout: float = 30.0,
        lease: dt.timedelta = STALE_CLAIM,
    ) -> None:
        self.db = db
        self.transport = transport
        self.limiter = limiter
        self.clock = clock
        self.backoff = backoff
        self.max_attempts = max_attempts
        self.batch = batch
        self.send_timeout = send_timeout
        self.lease = lease  # a claim not renewed for this long was left by a dead sender
        self._held: set[int] = set()
        # rows sent to many chats at once are recorded together (one transaction, one statement)
        self._sent: Coalescer[tuple[int, str | None]] = Coalescer(lambda sent: self._record_sent(sent))
        self._slots = asyncio.Semaphore(concurrency)
        self._wake = asyncio.Event()
        self.sent = 0
        self.retried = 0
        self.failed = 0

    def wake(self) -> None:
        self._wake.set()

    async def run(self, stop: asyncio.Event, idle: float = 1.0) -> None:
        keeper = asyncio.create_task(self._keep_claims(stop))
        try:
            while not stop.is_set():
                try:
                    done = await self.cycle()
                except Exception:  # the database down or restarting: the rows wait, the sender too
                    log.exception("outbox delivery failed; trying again in %.1f s", idle)
                    done = 0
                if done == 0:
                    self._wake.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), timeout=idle)
        finally:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper

    async def _keep_claims(self, stop: asyncio.Event) -> None:
        """Every third of the lease: renew the claims this sender holds, put back those of dead ones."""
        while not stop.is_set():
            try:
                await asyncio.to_thread(self._requeue)
            except Exception:  # the database may be down for a while: try again next time
                log.exception("outbox claim upkeep failed")
            else:
                self.wake()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.lease.total_seconds() / 3)

    async def drain(self, timeout: float = 30.0) -> None:
        """Send until nothing is due (tests and one-shot tools)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if await self.cycle() == 0:
                return
        raise TimeoutError("outbox not drained")

    def _requeue(self) -> None:
        with self.db.session() as s:
            now = self.clock()
            renew(s, list(self._held), now)
            requeue_stale(s, self.transport.channel, now, self.lease)

    async def cycle(self) -> int:
        """Claim one batch and deliver it; returns how many rows it handled."""
        rows = await asyncio.to_thread(self._claim)
        if not rows:
            return 0
        ids = {row.id for row in rows}
        self._held |= ids
        by_chat: dict[str, list[Claimed]] = {}
        for row in rows:
            by_chat.setdefault(row.chat_id, []).append(row)
        try:
            await asyncio.gather(*(self._chat(chat_rows) for chat_rows in by_chat.values()))
        finally:
            self._held -= ids
        return len(rows)

    def _claim(self) -> list[Claimed]:
        with self.db.session() as s:
            return claim(s, self.transport.channel, self.clock(), self.batch)

    async def _chat(self, rows: list[Claimed]) -> None:
        """One chat's rows, strictly in order; a row that must wait holds back the ones after it."""
        async with self._slots:
            for i, row in enumerate(rows):
                if not await self._one(row):
                    later = rows[i + 1 :]
                    if later:
                        await asyncio.to_thread(self._release, later)
                    return

    def _release(self, rows: list[Claimed]) -> None:
        with self.db.session() as s:
            release(s, [r.id for r in rows])

    async def _one(self, row: Claimed) -> bool:
        await self.limiter.acquire(row.chat_id)
        parts = Parts(row.parts_sent, functools.partial(self._save_parts, row.id))
        try:
            message = Outbound.from_json(json.loads(row.payload_json))
            send = self.transport.send(row.chat_id, message, parts)
            result = await asyncio.wait_for(send, self.send_timeout)
        except TimeoutError:
            result = Result(Outcome.RETRY, error="timeout", parts=parts.sent)
        except Exception as exc:  # a transport bug must not stop delivery to everyone else
            log.exception("sending outbox row %s failed", row.id)
            result = Result(Outcome.RETRY, error=f"{type(exc).__name__}: {exc}", parts=parts.sent)
        if result.outcome is Outcome.SENT:
            await self._sent.submit((row.id, result.external_id))  # before the chat's next message
            self.sent += 1
        else:
            await asyncio.to_thread(self._record, row, result, max(result.parts, parts.sent))
        return result.outcome is Outcome.SENT

    def _record_sent(self, sent: list[tuple[int, str | None]]) -> None:
        with self.db.session() as s:
            mark_each_sent(s, sent, self.clock())

    async def _save_parts(self, row_id: int, sent: int) -> None:
        try:
            await asyncio.to_thread(self._record_parts, row_id, sent)
        except SQLAlchemyError:  # the database away: the count goes with the retry, if it can
            log.warning("could not record that %d parts of outbox row %s went out", sent, row_id)

    def _record_parts(self, row_id: int, sent: int) -> None:
        with self.db.session() as s:
            record_parts(s, row_id, sent)

    def _record(self, row: Claimed, result: Result, parts_sent: int) -> None:
        now = self.clock()
        with self.db.session() as s:
            if result.outcome is Outcome.BLOCKED:
                set_blocked(s, self.transport.channel, row.chat_id, now)
            if result.outcome in (Outcome.FAILED, Outcome.BLOCKED) or row.attempts + 1 >= self.max_attempts:
                mark_failed(s, row.id, result.error)
                self.failed += 1
            else:
                wait = result.retry_after
                if wait is not None:
                    self.limiter.pause(wait, row.chat_id)
                else:
                    wait = self.backoff[min(row.attempts, len(self.backoff) - 1)]
                retry_later(s, row.id, now + dt.timedelta(seconds=wait), result.error, parts_sent)
                self.retried += 1
