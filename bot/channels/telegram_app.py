"""Running the Telegram bot: long polling by default, or an aiohttp webhook.

One process holds the aiogram dispatcher (updates in), the outbox sender (messages out at Telegram's
pace) and the service between them. Telegram forgets an update once the bot has confirmed it, so the
bot confirms an update only after handling it (stored, replies queued): if the process dies first,
Telegram delivers the update again and its id makes the second handling a no-op.

- Webhook: Telegram's secret-token header is checked before the body is read (401 otherwise; a body
  that is not an update gets 400), and the 200 is answered when the update has been handled (a few
  milliseconds). An album part is answered once it is held in the
  database (storage/held.py), as Telegram may wait for that answer before sending the next part; the
  album is handled when its parts stop coming. Parts a crashed process held are handled by any live
  process once they are older than an album could still be waiting (`held_stale`), checked at start and
  every `held_every` seconds.
- Start: the Bot API calls the start needs (getMe, deleteWebhook, setMyCommands, setWebhook) are
  retried while Telegram is unreachable, each try logged, waiting 1, 2, 4 … 60 seconds between them; a
  token or address Telegram refuses stops the start (`StartRefused`).
- Polling: `Poller` handles updates concurrently but never moves getUpdates' offset past the oldest
  one still being handled (aiogram's own loop confirms each update as soon as it starts it, which
  loses what is in flight at a crash).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import itertools
import json
import logging
import math
import secrets
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import InitVar, dataclass, field
from typing import Any

from aiogram import Bot, Dispatcher
from aiogram.exceptions import (
    ClientDecodeError,
    TelegramNetworkError,
    TelegramNotFound,
    TelegramRetryAfter,
    TelegramServerError,
    TelegramUnauthorizedError,
)
from aiogram.methods import GetUpdates, TelegramMethod
from aiogram.types import Update
from aiogram.webhook.aiohttp_server import SimpleRequestHandler
from aiohttp import web
from apscheduler.schedulers.asyncio import AsyncIOScheduler  # type: ignore[import-untyped]

from bot.channels.held_replay import replay_held
from bot.channels.telegram import TelegramChannel, TelegramTransport, escape
from bot.channels.wire import same_secret
from bot.outbox import OutboxSender, Pace, RateLimiter
from bot.scheduler import ReminderScheduler
from bot.scheduler import start as start_reminders
from bot.service import Service
from storage.db import Database
from storage.evidence import EvidenceStore
from storage.held import HELD_STALE
from storage.outbox import STALE_CLAIM

log = logging.getLogger(__name__)


class WebhookHandler(SimpleRequestHandler):
    """aiogram's webhook handler with the secret compared as bytes (aiogram compares the `str`s, which
    raises on non-ASCII ones) and the body read before it is handled: a request that is not a Telegram
    update gets 400, not a 500 and a traceback. A database error while handling still answers 500, so
    that Telegram delivers the update again."""

    def verify_secret(self, telegram_secret_token: str, bot: Bot) -> bool:
        return same_secret(telegram_secret_token, self.secret_token or "")

    async def _handle_request(self, bot: Bot, request: web.Request) -> web.Response:
        try:  # the secret was right: the body is Telegram's, parsed once it is known to be
            update = Update.model_validate(json.loads(await request.read()), context={"bot": bot})
        except (ValueError, RecursionError):  # not JSON, nested past the parser, or not an update
            log.warning("Telegram webhook body that is not an update refused")
            return web.Response(body="Bad Request", status=400)
        result: TelegramMethod[Any] | None = await self.dispatcher.feed_webhook_update(
            bot, update, **self.data
        )
        return web.Response(body=self._build_response_writer(bot=bot, result=result))


class StartRefused(RuntimeError):
    """Telegram refused the bot at start — its token (401) or the API address (404): waiting cannot
    help, an operator must fix the setting."""


def start_delays(first: float, cap: float) -> Iterator[float]:
    """Seconds between tries to reach Telegram at start: doubling from `first`, at most `cap`."""
    delay = first
    while True:
        yield min(delay, cap)
        delay *= 2


@dataclass
class Poller:
    """getUpdates long polling that confirms an update only once it, and every earlier one, is handled.

    Updates are handled as concurrent tasks. The offset sent to Telegram is the oldest update still
    being handled, so Telegram keeps answering with those until they finish (they are skipped, not
    started twice). So that one slow update (a large file on a bad connection) cannot hold back
    everyone else's, an update is confirmed anyway once it has been running for `hold` seconds.

    Since Telegram answers with the updates from the offset on, a call made while updates are in hand
    first returns the whole window in hand (the oldest unfinished one up to the newest received) again,
    and only then new ones, up to `limit` in all. So while updates are in hand the next call waits
    until that window is at most half a call (as many new updates can come back as old ones) and
    `pause` has passed since the last call; if the oldest one is stuck (the offset has not moved for
    `stuck` seconds), it asks every `stuck` seconds while new updates can still fit. With nothing in
    hand it long-polls at once.
    """

    bot: Bot
    dispatcher: Dispatcher
    timeout: int = 25  # seconds Telegram may hold a getUpdates call open when there is nothing new
    hold: float = 30.0
    limit: int = 100  # updates one call returns at most (Telegram's maximum)
    pause: float = 0.1  # seconds at least between two calls while updates are in hand
    stuck: float = 1.0  # seconds without the offset moving, after which the window may be asked for
    _running: dict[int, tuple[asyncio.Task[object], float]] = field(default_factory=dict)
    _newest: int = -1
    _last_call: float = -math.inf
    _offset: int | None = None
    _moved: float = 0.0  # when the offset last moved

    def offset(self, now: float) -> int | None:
        waiting = [uid for uid, (_, started) in self._running.items() if now - started < self.hold]
        if waiting:
            return min(waiting)
        return self._newest + 1 if self._newest >= 0 else None

    def wait(self, offset: int | None, now: float) -> float:
        """Seconds until the next getUpdates call is worth making (0: now), given the offset it would
        send; an update finishing sooner is a reason to look again."""
        if offset is None or offset > self._newest:
            return 0.0  # nothing in hand: the call returns only new updates
        window = self._newest - offset + 1  # returned again before any new update
        since = now - self._last_call
        if window <= self.limit // 2:
            return max(0.0, self.pause - since)
        if window < self.limit and now - self._moved >= self.stuck:
            return max(0.0, self.stuck - since)
        return self.pause

    def _reap(self) -> None:
        for uid, (task, _) in list(self._running.items()):
            if task.done():
                del self._running[uid]
                if not task.cancelled() and task.exception() is not None:
                    log.error("update %s failed", uid, exc_info=task.exception())

    def _start(self, updates: list[Update]) -> None:
        for update in updates:
            if update.update_id <= self._newest:
                continue  # still in hand: Telegram sends it until it is confirmed
            self._newest = update.update_id
            task = asyncio.create_task(self.dispatcher.feed_update(self.bot, update))
            self._running[update.update_id] = (task, time.monotonic())

    async def run(self, stop: asyncio.Event) -> None:
        failures = 0
        while not stop.is_set():
            self._reap()
            now = time.monotonic()
            offset = self.offset(now)
            if offset != self._offset:
                self._offset, self._moved = offset, now
            wait = self.wait(offset, now)
            if wait > 0:  # updates are in hand (being handled): one finishing may make a call worth it
                tasks = [task for task, _ in self._running.values()]
                await asyncio.wait(tasks, timeout=wait, return_when=asyncio.FIRST_COMPLETED)
                continue
            holding = offset is not None and offset <= self._newest  # Telegram answers at once anyway
            request = GetUpdates(offset=offset, limit=self.limit, timeout=0 if holding else self.timeout)
            patience = int(self.bot.session.timeout) + self.timeout
            self._last_call = now
            try:
                updates = await self.bot(request, request_timeout=patience)
            except Exception as exc:  # network, 5xx, 429: wait and ask again, as aiogram does
                failures += 1
                delay = min(30.0, 0.5 * 2 ** min(failures, 6))
                log.warning("getUpdates failed (%s: %s); again in %.1f s", type(exc).__name__, exc, delay)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
                continue
            failures = 0
            self._start(updates)

    async def drain(self) -> None:
        """At shutdown: finish the updates being handled, then confirm them to Telegram."""
        tasks = [task for task, _ in self._running.values()]
        if tasks:
            await asyncio.wait(tasks, timeout=10)
        self._reap()
        if self._newest < 0:
            return  # nothing was received: nothing to confirm
        with contextlib.suppress(Exception):  # best effort: unconfirmed ones come again, applied once
            confirm = GetUpdates(offset=self.offset(time.monotonic()), timeout=0, limit=1)
            await self.bot(confirm, request_timeout=2)


@dataclass
class TelegramApp:
    db: Database
    bot: Bot
    store: EvidenceStore
    pace: Pace = field(default_factory=Pace)
    album_wait: float = 1.0
    send_timeout: float = 30.0
    remind_every: int | None = 60  # seconds between reminder ticks; None: no reminders from this process
    poll_timeout: int = 25  # long polling: seconds a getUpdates call may wait for something new
    lease: dt.timedelta = STALE_CLAIM  # an outbox claim not renewed for this long: its sender died
    held_stale: dt.timedelta = HELD_STALE  # an album part held this long was left by a dead process
    held_every: float = 10.0  # seconds between looks for such parts
    db_process: bool = False  # batches in a process of their own (bot/db_process.py)
    # a service made (and its database process started) before aiogram was imported: `dtibot run`
    given_service: InitVar[Service | None] = None
    service: Service = field(init=False)
    sender: OutboxSender = field(init=False)
    channel: TelegramChannel = field(init=False)
    start_backoff: tuple[float, float] = (1.0, 60.0)  # seconds: the first wait for Telegram at start, the cap
    stopping: asyncio.Event = field(
        default_factory=asyncio.Event
    )  # set: the app stops (or gives up starting)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _aps: AsyncIOScheduler | None = None
    _poller: Poller | None = None
    _polling: asyncio.Task[None] | None = None

    def __post_init__(self, given_service: Service | None) -> None:
        self.service = (
            given_service
            if given_service is not None
            else Service(self.db, escapes={"telegram": escape}, db_process=self.db_process)
        )
        transport = TelegramTransport(self.bot, self.store)
        limiter = RateLimiter(self.pace.per_second, self.pace.chat_interval)
        self.sender = OutboxSender(
            self.db, transport, limiter, send_timeout=self.send_timeout, lease=self.lease
        )
        self.channel = TelegramChannel(
            self.bot, self.service, self.store, self.sender, album_wait=self.album_wait
        )

    async def _at_start(self, what: str, call: Callable[[], Awaitable[object]]) -> None:
        """A Bot API call the start needs, made until Telegram answers it: a network error, a 5xx or a
        429 is waited out (`start_delays`) and logged; a refused token or address raises
        `StartRefused` at once. Returns without calling once the app is stopping."""
        delays = start_delays(*self.start_backoff)
        for attempt in itertools.count(1):
            if self.stopping.is_set():
                return
            try:
                await call()
                return
            except (TelegramUnauthorizedError, TelegramNotFound) as exc:
                raise StartRefused(f"{what}: {exc.message}") from exc
            except (TelegramNetworkError, TelegramServerError, TelegramRetryAfter, ClientDecodeError) as exc:
                delay = max(next(delays), float(getattr(exc, "retry_after", 0)))
                problem = f"{type(exc).__name__}: {getattr(exc, 'message', exc)}"
                log.warning(
                    "Telegram Bot API unreachable at start (%s: %s); retry %d in %g s",
                    what,
                    problem,
                    attempt,
                    delay,
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stopping.wait(), delay)

    async def start_sender(self) -> None:
        if self.service.db_process:
            self.service.database_process().start()  # its imports overlap with the calls below
        await self._at_start("setMyCommands", self.channel.set_commands)
        if self.stopping.is_set():
            return  # stopped while waiting for Telegram: nothing to run
        self._tasks.append(asyncio.create_task(self.sender.run(self.stopping)))
        replay = functools.partial(self.channel.replay_held, self.held_stale)
        self._tasks.append(asyncio.create_task(replay_held(replay, self.stopping, self.held_every)))
        if self.remind_every is not None:
            reminders = ReminderScheduler(self.db, escapes={"telegram": escape})
            self._aps = start_reminders(reminders, self.remind_every, self.sender.wake)

    async def start_polling(self) -> None:
        """Poll in the background (tests and `dtibot run telegram`)."""
        await self._at_start("getMe", self.bot.get_me)  # the token, before anything else
        await self._at_start(
            "deleteWebhook", functools.partial(self.bot.delete_webhook, drop_pending_updates=False)
        )
        await self.start_sender()
        if self.stopping.is_set():
            return  # stopped while waiting for Telegram
        self.channel.albums_before_confirming = True
        self._poller = Poller(self.bot, self.channel.dispatcher, timeout=self.poll_timeout)
        self._polling = asyncio.create_task(self._poller.run(self.stopping))

    def webhook_app(self, path: str, secret: str) -> web.Application:
        app = web.Application(client_max_size=25 * 1024 * 1024)
        WebhookHandler(
            self.channel.dispatcher, self.bot, secret_token=secret, handle_in_background=False
        ).register(app, path=path)
        return app

    async def start_webhook(
        self, url: str, path: str, host: str, port: int, secret: str | None = None
    ) -> web.AppRunner:
        secret = secret or secrets.token_urlsafe(32)
        await self._at_start("getMe", self.bot.get_me)
        await self.start_sender()
        runner = web.AppRunner(self.webhook_app(path, secret))
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port).start()
            register = functools.partial(
                self.bot.set_webhook, url, secret_token=secret, drop_pending_updates=False
            )
            await self._at_start("setWebhook", register)
        except BaseException:
            await runner.cleanup()
            raise
        return runner

    async def stop(self) -> None:
        if self._aps is not None:
            self._aps.shutdown(wait=False)
            self._aps = None
        self.stopping.set()
        if self._polling is not None:
            self._polling.cancel()  # it may be inside a long getUpdates call
            with contextlib.suppress(asyncio.CancelledError):
                await self._polling
            self._polling = None
        if self._poller is not None:
            await self._poller.drain()
        await self.channel.flush()
        await asyncio.to_thread(self.service.close)
        self.sender.wake()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(task, timeout=10)
        self._tasks.clear()
        await self.bot.session.close()
