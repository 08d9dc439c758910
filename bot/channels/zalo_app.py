"""Running the Zalo OA bot: the webhook server, the outbox sender at Zalo's pace, reminders, and the
events a crashed process held (bot/channels/held_replay.py)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
from dataclasses import InitVar, dataclass, field

import httpx
from aiohttp import web
from apscheduler.schedulers.asyncio import AsyncIOScheduler  # type: ignore[import-untyped]

from bot.channels.held_replay import replay_held
from bot.channels.zalo import TokenManager, ZaloChannel, ZaloConfig, ZaloTransport
from bot.channels.zalo_client import ZaloClient
from bot.outbox import OutboxSender, RateLimiter
from bot.scheduler import ReminderScheduler
from bot.scheduler import start as start_reminders
from bot.service import Service
from storage.db import Database
from storage.evidence import EvidenceStore
from storage.held import HELD_STALE
from storage.outbox import STALE_CLAIM


@dataclass
class ZaloApp:
    db: Database
    store: EvidenceStore
    config: ZaloConfig
    per_second: float = 10.0  # the OA's sending pace
    chat_interval: float = 0.2
    remind_every: int | None = 60
    lease: dt.timedelta = STALE_CLAIM  # an outbox claim not renewed for this long was left by a dead sender
    held_stale: dt.timedelta = HELD_STALE  # an event held this long was left by a dead process
    held_every: float = 10.0  # seconds between looks for such events
    db_process: bool = False  # batches in a process of their own (bot/db_process.py)
    # a service made (and its database process started) before the channel's imports: `dtibot run`
    given_service: InitVar[Service | None] = None
    http: httpx.AsyncClient = field(default_factory=lambda: httpx.AsyncClient(timeout=20))
    service: Service = field(init=False)
    tokens: TokenManager = field(init=False)
    sender: OutboxSender = field(init=False)
    channel: ZaloChannel = field(init=False)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _aps: AsyncIOScheduler | None = None
    _runner: web.AppRunner | None = None

    def __post_init__(self, given_service: Service | None) -> None:
        if given_service is None:
            given_service = Service(self.db, db_process=self.db_process)
        self.service = given_service
        self.tokens = TokenManager(self.db, self.config, clock=self.service.clock)
        client = ZaloClient(self.http, self.tokens.access_token, api_base=self.config.api_base)
        transport = ZaloTransport(client, self.tokens, self.service, self.store, self.config)
        limiter = RateLimiter(self.per_second, self.chat_interval)
        self.sender = OutboxSender(self.db, transport, limiter, lease=self.lease)
        self.channel = ZaloChannel(self.service, self.store, client, self.config, self.sender)

    async def start(self, host: str, port: int, path: str, *, background: bool = True) -> int:
        """Serve the webhook; returns the port (0 picks a free one). Without `background` the sender
        loop and reminders are left to the caller (tests drive them step by step)."""
        if self.service.db_process:
            self.service.database_process().start()  # its imports overlap with the server's start
        self._runner = web.AppRunner(self.channel.app(path))
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        if background:
            self._tasks.append(asyncio.create_task(self.sender.run(self._stop)))
            replay = functools.partial(self.channel.replay_held, self.held_stale)
            self._tasks.append(asyncio.create_task(replay_held(replay, self._stop, self.held_every)))
        if background and self.remind_every is not None:
            self._aps = start_reminders(ReminderScheduler(self.db), self.remind_every, self.sender.wake)
        address = self._runner.addresses[0]
        return int(address[1])

    async def stop(self) -> None:
        if self._aps is not None:
            self._aps.shutdown(wait=False)
        await self.channel.flush()
        self._stop.set()
        self.sender.wake()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(task, timeout=10)
        if self._runner is not None:
            await self._runner.cleanup()
        await asyncio.to_thread(self.service.close)
        await self.http.aclose()
