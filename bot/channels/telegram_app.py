"""Running the Telegram bot: long polling by default, or an aiohttp webhook that answers at once.

One process holds the aiogram dispatcher (updates in), the outbox sender (messages out at Telegram's
pace) and the service between them. In webhook mode Telegram's secret-token header is checked
(401 otherwise) and the update is handled in the background, so Telegram gets its 200 immediately;
a redelivered update is then recognised by its id and applied once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from dataclasses import dataclass, field

from aiogram import Bot
from aiogram.webhook.aiohttp_server import SimpleRequestHandler
from aiohttp import web
from apscheduler.schedulers.asyncio import AsyncIOScheduler  # type: ignore[import-untyped]

from bot.channels.telegram import TelegramChannel, TelegramTransport, escape
from bot.outbox import OutboxSender, RateLimiter
from bot.scheduler import ReminderScheduler
from bot.scheduler import start as start_reminders
from bot.service import Service
from storage.db import Database
from storage.evidence import EvidenceStore

log = logging.getLogger(__name__)


@dataclass
class Pace:
    """Telegram's documented limits: about 30 messages a second, about one a second per chat."""

    per_second: float = 30.0
    chat_interval: float = 1.0


@dataclass
class TelegramApp:
    db: Database
    bot: Bot
    store: EvidenceStore
    pace: Pace = field(default_factory=Pace)
    album_wait: float = 1.0
    send_timeout: float = 30.0
    remind_every: int | None = 60  # seconds between reminder ticks; None: no reminders from this process
    service: Service = field(init=False)
    sender: OutboxSender = field(init=False)
    channel: TelegramChannel = field(init=False)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _aps: AsyncIOScheduler | None = None

    def __post_init__(self) -> None:
        self.service = Service(self.db, escapes={"telegram": escape})
        transport = TelegramTransport(self.bot, self.service, self.store)
        limiter = RateLimiter(self.pace.per_second, self.pace.chat_interval)
        self.sender = OutboxSender(self.db, transport, limiter, send_timeout=self.send_timeout)
        self.channel = TelegramChannel(
            self.bot, self.service, self.store, self.sender, album_wait=self.album_wait
        )

    async def start_sender(self) -> None:
        await self.channel.set_commands()
        self._tasks.append(asyncio.create_task(self.sender.run(self._stop)))
        if self.remind_every is not None:
            reminders = ReminderScheduler(self.db, escapes={"telegram": escape})
            self._aps = start_reminders(reminders, self.remind_every, self.sender.wake)

    async def start_polling(self) -> None:
        """Poll in the background (tests and `dtibot run telegram`)."""
        await self.bot.delete_webhook(drop_pending_updates=False)
        await self.start_sender()
        self._tasks.append(
            asyncio.create_task(
                self.channel.dispatcher.start_polling(self.bot, handle_signals=False, polling_timeout=1)
            )
        )

    def webhook_app(self, path: str, secret: str) -> web.Application:
        app = web.Application(client_max_size=25 * 1024 * 1024)
        SimpleRequestHandler(
            self.channel.dispatcher, self.bot, secret_token=secret, handle_in_background=True
        ).register(app, path=path)
        return app

    async def start_webhook(
        self, url: str, path: str, host: str, port: int, secret: str | None = None
    ) -> web.AppRunner:
        secret = secret or secrets.token_urlsafe(32)
        await self.start_sender()
        runner = web.AppRunner(self.webhook_app(path, secret))
        await runner.setup()
        await web.TCPSite(runner, host, port).start()
        await self.bot.set_webhook(url, secret_token=secret, drop_pending_updates=False)
        return runner

    async def stop(self) -> None:
        if self._aps is not None:
            self._aps.shutdown(wait=False)
            self._aps = None
        with contextlib.suppress(RuntimeError):
            await self.channel.dispatcher.stop_polling()
        await self.channel.flush()
        self._stop.set()
        self.sender.wake()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(task, timeout=10)
        self._tasks.clear()
        await self.bot.session.close()
