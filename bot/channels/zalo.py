"""Zalo Official Account: the same assessment where most officials already are.

Webhook in: `X-ZEvent-Signature` is checked on the raw body before it is parsed (mac = sha256(app_id +
raw body + timestamp + secret), compared as bytes in constant time: 401 otherwise), a signed body that
is not an event gets 400, stale timestamps are refused, Zalo gets its answer as soon as the event is
held in the database (storage/held.py) and the event is handled in the background, then released; a
process that dies in between leaves it held, and a live one handles it later. A repeated delivery (same
msg_id) is applied once. Text, button payloads
(sent back by Zalo as the user's message), images and files (downloaded at once: their URLs expire),
links, follow and unfollow are understood; anything else is logged and ignored.

Outbox out: replies and reminders go only inside the free-reply window after the user's last message; a
reminder outside it takes the configured template (ZNS) path, or is recorded as not deliverable. The
access token is refreshed before it expires by one process at a time, the new pair stored before it is
used; a refused refresh token raises an operator alert with the re-authorisation steps.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import itertools
import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from aiohttp import web
from sqlalchemy.exc import SQLAlchemyError

from bot.channels.held_replay import HeldUpdates
from bot.channels.wire import ascii_int, same_secret
from bot.channels.zalo_client import (
    MAX_BUTTONS,
    FileTooLarge,
    ZaloClient,
    ZaloError,
    refresh_pair,
    split_text,
)
from bot.i18n import Translator
from bot.outbound import Outbound
from bot.outbox import OutboxSender, Outcome, Parts, Result
from bot.service import Service, Unavailable, utc_now
from flows.model import FileInfo, Inbound, InboundKind, Rejected
from storage.evidence import EvidenceRejected, EvidenceStore, download_name, sanitize_name
from storage.held import HELD_STALE
from storage.outbox import last_keyboard, set_blocked
from storage.zalo import last_inbound, refresh_failed, save_token, token, touch

log = logging.getLogger(__name__)

CHANNEL = "zalo"
VN = ZoneInfo("Asia/Ho_Chi_Minh")
WINDOW = dt.timedelta(days=7)  # free replies after the user's last message
MAX_DOWNLOAD = 20 * 1024 * 1024
BUTTON_PREFIX = "#dti:"
# for the log and the outbox; `dtibot zalo status` gives the operator the steps in their language
AUTH_LOST = "Zalo refused the OA refresh token: re-authorise the OA (steps: dtibot zalo status)"


class ZaloAuthLost(RuntimeError):
    """No usable token: an operator must re-authorise the OA."""


@dataclass
class ZaloConfig:
    app_id: str
    app_secret: str  # the app's secret key (OAuth)
    signature_secret: str  # the OA secret key or the app secret, as the OA's webhook settings say
    api_base: str = "https://openapi.zalo.me"
    oauth_base: str = "https://oauth.zaloapp.com"
    template_id: str | None = None  # the ZNS template reminders outside the window use
    template_param: str = "content"  # the template parameter that receives the reminder text
    max_age: dt.timedelta = dt.timedelta(minutes=5)


@dataclass
class TokenManager:
    db: Any
    config: ZaloConfig
    clock: Callable[[], dt.datetime] = utc_now
    margin: dt.timedelta = dt.timedelta(hours=1)
    http: Callable[[], httpx.Client] = lambda: httpx.Client(timeout=15)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def access_token(self) -> str:
        row = await asyncio.to_thread(self._current)
        if row is None:
            raise ZaloAuthLost("no Zalo token: run `dtibot zalo token`")
        access, expires_at, failed = row
        if failed:
            raise ZaloAuthLost(AUTH_LOST)
        if expires_at - self.clock() < self.margin:
            return await self.refresh()
        return access

    def _current(self) -> tuple[str, dt.datetime, bool] | None:
        with self.db.session() as s:
            row = token(s)
            return (row.access_token, row.expires_at, row.failed_at is not None) if row is not None else None

    async def refresh(self, stale: str | None = None) -> str:
        """A new pair, unless another process already got one (then that one)."""
        async with self._lock:
            return await asyncio.to_thread(self._refresh, stale)

    def _refresh(self, stale: str | None) -> str:
        error = None
        with self.db.session() as s:
            row = token(s, lock=True)  # the other processes wait here
            if row is None:
                raise ZaloAuthLost("no Zalo token")
            now = self.clock()
            fresh = row.expires_at - now >= self.margin
            if row.failed_at is None and (
                (stale is None and fresh) or (stale is not None and row.access_token != stale)
            ):
                return row.access_token
            try:
                with self.http() as http:
                    pair = refresh_pair(
                        http,
                        self.config.app_id,
                        self.config.app_secret,
                        row.refresh_token,
                        self.config.oauth_base,
                    )
            except (ZaloError, httpx.HTTPError) as exc:
                error = str(exc)
            else:
                save_token(
                    s, pair.access_token, pair.refresh_token, now + dt.timedelta(seconds=pair.expires_in), now
                )
                return pair.access_token
        with self.db.session() as s:  # recorded after the failed transaction, for `dtibot zalo status`
            refresh_failed(s, error or "refresh failed", self.clock())
        log.error("%s (%s)", AUTH_LOST, error)
        raise ZaloAuthLost(AUTH_LOST)


@dataclass
class ZaloTransport:
    client: ZaloClient
    tokens: TokenManager
    service: Service
    store: EvidenceStore
    config: ZaloConfig
    channel: str = CHANNEL

    async def send(self, chat_id: str, message: Outbound, parts: Parts) -> Result:
        last = await asyncio.to_thread(self._last_inbound, chat_id)
        if last is None or self.service.clock() - last > WINDOW:
            return await self._outside_window(chat_id, message)
        try:
            return await self._with_token(chat_id, message, parts)
        except ZaloError as exc:
            if exc.outside_window:
                return await self._outside_window(chat_id, message)
            if exc.rate_limited:
                return Result(Outcome.RETRY, retry_after=1.0, error=str(exc), parts=parts.sent)
            return Result(Outcome.FAILED, error=str(exc))
        except ZaloAuthLost as exc:  # kept until the OA is re-authorised
            return Result(Outcome.RETRY, error=str(exc), parts=parts.sent)
        except (httpx.HTTPError, OSError) as exc:
            return Result(Outcome.RETRY, error=f"{type(exc).__name__}: {exc}", parts=parts.sent)

    async def _with_token(self, chat_id: str, message: Outbound, parts: Parts) -> Result:
        try:
            return await self._deliver(chat_id, message, parts)
        except ZaloError as exc:
            if not exc.token_invalid:
                raise
            await self.tokens.refresh(stale=await self.tokens.access_token())
            parts.restart()  # what went out before the token lapsed stays out
            return await self._deliver(chat_id, message, parts)

    async def _deliver(self, chat_id: str, message: Outbound, parts: Parts) -> Result:
        for doc in message.documents:
            if parts.due() and self.store.exists(doc.sha256):
                data, name = await asyncio.to_thread(self.store.document, doc.sha256, doc.name)
                await self.client.send_file(chat_id, await self.client.upload_file(data, name))
                await parts.done()
        text = message.text
        if message.photo_png is not None:
            attachment = await self.client.upload_image(message.photo_png, "bieu-do.png")
            return Result(Outcome.SENT, external_id=await self.client.send_image(chat_id, attachment, text))
        buttons = message.buttons
        if len(buttons) > MAX_BUTTONS:  # the rest can be typed: "#6", "#7", …
            text += "\n" + "  ".join(f"#{i} {b.label}" for i, b in enumerate(buttons, 1) if i > MAX_BUTTONS)
        pieces = split_text(text)  # a long text in pieces, each counted as a part; the buttons go last
        for piece in pieces[:-1]:
            if parts.due():
                await self.client.send_text(chat_id, piece)
                await parts.done()
        if not buttons:
            return Result(Outcome.SENT, external_id=await self.client.send_text(chat_id, pieces[-1]))
        pairs = [(b.label, BUTTON_PREFIX + b.payload) for b in buttons]
        return Result(Outcome.SENT, external_id=await self.client.send_buttons(chat_id, pieces[-1], pairs))

    async def _outside_window(self, chat_id: str, message: Outbound) -> Result:
        if message.reminder and self.config.template_id:
            data = {self.config.template_param: message.text[:400]}
            try:
                message_id = await self.client.send_template(chat_id, self.config.template_id, data)
            except ZaloError as exc:
                return Result(Outcome.FAILED, error=f"template: {exc}")
            return Result(Outcome.SENT, external_id=message_id)
        return Result(Outcome.FAILED, error="outside Zalo's free-reply window (not deliverable)")

    def _last_inbound(self, chat_id: str) -> dt.datetime | None:
        with self.service.db.session() as s:
            return last_inbound(s, CHANNEL, chat_id)


def photo_name(now: dt.datetime, n: int, count: int) -> str:
    """Zalo sends photos without a name: named by when they arrived (Vietnam time), so an indicator's
    photos stay apart in its evidence list."""
    local = now.astimezone(VN)
    return f"anh-{local:%d%m%Y-%H%M%S}" + (f"-{n}" if count > 1 else "") + ".jpg"


def signature(app_id: str, body: bytes, timestamp: str, secret: str) -> str:
    return "mac=" + hashlib.sha256(app_id.encode() + body + timestamp.encode() + secret.encode()).hexdigest()


# The event's time, which its signature covers, read from the raw body: the signature is checked
# before the body is parsed. A key further in (a message's text cannot hold one: its quotes are
# escaped) is a candidate too; the one the signature matches is checked against the parsed event.
_TIMESTAMP = re.compile(rb'"timestamp"\s*:\s*"?([0-9]{1,18})"?')
_CANDIDATES = 4


def signed_timestamp(raw: bytes, given: str, config: ZaloConfig) -> str | None:
    """The timestamp with which `given` signs `raw`, or None: a forged, unsigned or unreadable body."""
    for found in itertools.islice(_TIMESTAMP.finditer(raw), _CANDIDATES):
        timestamp = found.group(1).decode("ascii")
        if same_secret(given, signature(config.app_id, raw, timestamp, config.signature_secret)):
            return timestamp
    return None


def parse_event(raw: bytes, timestamp: str) -> dict[str, Any] | None:
    """A signed body as an event, if it is one of the shape the channel reads (else None): an object
    with the signed timestamp, its sender, message and attachments objects where present."""
    try:
        event = json.loads(raw)
    except (ValueError, RecursionError):  # not UTF-8 JSON, or nested deeper than the parser goes
        return None
    if not isinstance(event, dict) or str(event.get("timestamp")) != timestamp:
        return None
    message = event.get("message")
    attachments = message.get("attachments") if isinstance(message, dict) else None
    shapes = [
        isinstance(event.get("sender"), dict | None),
        isinstance(message, dict | None),
        isinstance(attachments, list | None),
        *(isinstance(a, dict) and isinstance(a.get("payload"), dict | None) for a in attachments or []),
    ]
    return event if all(shapes) else None


def event_id(event: dict[str, Any]) -> str:
    """The event's id, by which a repeated delivery is recognised: the message's, or for events
    without one (follow, unfollow) the event, its sender and its time."""
    user = str((event.get("sender") or {}).get("id", ""))
    message = event.get("message") or {}
    return str(message.get("msg_id") or f"{event.get('event_name', '')}:{user}:{event.get('timestamp')}")


class ZaloChannel:
    def __init__(
        self,
        service: Service,
        store: EvidenceStore,
        client: ZaloClient,
        config: ZaloConfig,
        sender: OutboxSender | None = None,
    ) -> None:
        self.service = service
        self.store = store
        self.client = client
        self.config = config
        self.sender = sender
        self._tasks: set[asyncio.Task[None]] = set()
        self._users: dict[str, tuple[asyncio.Lock, int]] = {}  # per user: lock, events holding or waiting
        self.held = HeldUpdates(service.db, CHANNEL, service.clock)

    def app(self, path: str) -> web.Application:
        application = web.Application(client_max_size=2 * 1024 * 1024)
        application.router.add_post(path, self.handle)
        return application

    async def handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        timestamp = signed_timestamp(raw, request.headers.get("X-ZEvent-Signature", ""), self.config)
        if timestamp is None:  # nothing a forger sent is parsed
            log.warning("Zalo webhook with a bad signature refused")
            return web.json_response({"error": "bad signature"}, status=401)
        event = parse_event(raw, timestamp)
        if event is None:
            log.warning("signed Zalo webhook that is not an event refused")
            return web.json_response({"error": "bad request"}, status=400)
        sent = int(timestamp)  # milliseconds; arithmetic only: any year would overflow a datetime
        if abs(self.service.clock().timestamp() - sent / 1000) > self.config.max_age.total_seconds():
            log.warning("stale Zalo webhook refused (timestamp %s)", timestamp)
            return web.json_response({"error": "stale"}, status=401)
        key = event_id(event)
        try:  # answered before it is handled (Zalo wants an answer within ~2 s): held until then
            user = str((event.get("sender") or {}).get("id", ""))
            await self.held.hold(key, user, json.dumps(event, ensure_ascii=False))
        except SQLAlchemyError:  # handled all the same: it retries, then asks the user to send again
            log.error("database unavailable: Zalo event %s answered without being held", key)
            self._start(event, None)
        else:
            self._start(event, key)
        return web.json_response({"error": 0})

    def _start(self, event: dict[str, Any], held: str | None) -> None:
        """Handle the event in the background; `held`: its id in storage/held.py, released once done."""
        task = asyncio.create_task(self._handle(event, held))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _handle(self, event: dict[str, Any], held: str | None) -> None:
        if await self.process(event) and held is not None:  # else held, for a later process
            await self.held.release([held])

    async def replay_held(self, stale: dt.timedelta = HELD_STALE) -> int:
        """Handle the events held for longer than `stale` by a process that did not get to handle them
        (it stopped in between), in the order they came; returns how many."""
        rows = await self.held.stale(stale)
        for row in rows:
            self._start(json.loads(row.update_json), row.update_id)
        return len(rows)

    async def flush(self) -> None:
        while self._tasks:
            await asyncio.gather(*list(self._tasks))

    async def process(self, event: dict[str, Any]) -> bool:
        """One event; a user's events are handled one at a time in the order they arrived (a photo
        still downloading is not overtaken by the text sent after it). False if the database was
        unavailable (the user is asked to send it again)."""
        user = str((event.get("sender") or {}).get("id", ""))
        lock, users = self._users.get(user, (asyncio.Lock(), 0))
        self._users[user] = (lock, users + 1)
        try:
            async with lock:
                return await self._process(event, user)
        finally:
            lock, users = self._users[user]
            if users == 1:
                del self._users[user]
            else:
                self._users[user] = (lock, users - 1)

    async def _process(self, event: dict[str, Any], user: str) -> bool:
        name = str(event.get("event_name", ""))
        message = event.get("message") or {}
        msg_id = event_id(event)
        if not user:
            log.info("Zalo event %s without a sender ignored", name)
            return True
        now = self.service.clock()
        if name == "unfollow":
            await asyncio.to_thread(self._contact, user, now, False)
            return True
        if name in ("follow",) or name.startswith("user_send_"):
            await asyncio.to_thread(self._contact, user, now, True)
        inbound = await self._inbound(name, user, message)
        if inbound is None:
            log.info("Zalo event %s ignored", name)
            return True
        # in the chat's order by the time it was sent: an event replayed after newer ones is not applied
        # to whatever question is open by then (flows/engine.py `_late`)
        inbound = replace(inbound, seq=ascii_int(str(event.get("timestamp", ""))))
        try:
            await self.service.handle_async(CHANNEL, user, msg_id, inbound)
        except Unavailable:
            log.error("database unavailable: Zalo event %s not stored, the user is asked to resend", msg_id)
            t = Translator("vi")
            with contextlib.suppress(Exception):  # best effort: the outbox needs the database too
                await self.client.send_text(user, t("service.unavailable"))
            return False
        if self.sender is not None:
            self.sender.wake()
        return True

    def _contact(self, user: str, now: dt.datetime, following: bool) -> None:
        with self.service.db.session() as s:
            touch(s, CHANNEL, user, now, following=following)
            set_blocked(s, CHANNEL, user, None if following else now)

    async def _inbound(self, name: str, user: str, message: dict[str, Any]) -> Inbound | None:
        if name == "follow":
            return Inbound(InboundKind.RESUME)
        if name == "user_send_text":
            text = str(message.get("text", ""))
            if text.startswith(BUTTON_PREFIX):
                return Inbound(InboundKind.BUTTON, payload=text[len(BUTTON_PREFIX) :])
            number = ascii_int(text.strip()[1:]) if text.strip().startswith("#") else None
            if number is not None:  # "#6": the sixth button of the keyboard on screen
                keyboard = await asyncio.to_thread(self._keyboard, user)
                if 0 < number <= len(keyboard):
                    return Inbound(InboundKind.BUTTON, payload=keyboard[number - 1]["payload"])
            return Inbound(InboundKind.TEXT, text=text)
        if name == "user_send_link":
            links = [str((a.get("payload") or {}).get("url", "")) for a in message.get("attachments") or []]
            return Inbound(InboundKind.TEXT, text=next((u for u in links if u), str(message.get("text", ""))))
        if name in ("user_send_image", "user_send_file"):
            return await self._files(message)
        if name.startswith("user_send_"):
            return Inbound(InboundKind.UNSUPPORTED)  # stickers, gifs, locations, audio…
        return None

    async def _files(self, message: dict[str, Any]) -> Inbound:
        files: list[FileInfo] = []
        rejected: list[Rejected] = []
        attachments = message.get("attachments") or []
        for n, attachment in enumerate(attachments, start=1):
            data = attachment.get("payload") or {}
            url = str(data.get("url", ""))
            given = str(data.get("name") or "")
            name = sanitize_name(given or photo_name(self.service.clock(), n, len(attachments)))
            size = ascii_int(str(data.get("size") or "0"))  # else measured as it downloads
            if size is not None and size > MAX_DOWNLOAD:
                rejected.append(Rejected(name, "too_large"))
                continue
            try:
                blob = await self._download(url)
            except FileTooLarge:
                rejected.append(Rejected(name, "too_large"))
                continue
            except httpx.HTTPError as exc:
                log.warning("Zalo file %s not downloaded: %s", name, exc)
                rejected.append(Rejected(name, "download_failed"))
                continue
            try:
                stored = await asyncio.to_thread(self.store.put, blob, name)
            except EvidenceRejected as exc:
                rejected.append(Rejected(name, exc.reason))
                continue
            files.append(
                FileInfo(stored.sha256, stored.size, stored.mime, download_name(name, stored.extension))
            )
        caption = str(message.get("text", ""))
        return Inbound(InboundKind.FILE, files=tuple(files), rejected=tuple(rejected), caption=caption)

    async def _download(self, url: str) -> bytes:
        """The file behind a Zalo URL, now (it expires); one more try after a network hiccup."""
        try:
            return await self.client.download(url, MAX_DOWNLOAD)
        except (httpx.TransportError, httpx.HTTPStatusError) as exc:
            if isinstance(exc, httpx.HTTPStatusError) and exc.response.status_code < 500:
                raise
            await asyncio.sleep(0.5)
            return await self.client.download(url, MAX_DOWNLOAD)

    def _keyboard(self, user: str) -> list[dict[str, str]]:
        with self.service.db.session() as s:
            return last_keyboard(s, CHANNEL, user)
