"""Telegram (aiogram 3): updates in, the outbox out — the whole assessment on a phone.

Inbound: text and commands (a deep link `t.me/<bot>?start=CODE` arrives as "/start CODE"), button
presses (answered at once, so nothing spins, and their keyboard removed so an old button cannot be
pressed twice), documents and photos (the largest size), albums gathered into one submission (on a
webhook each part held in the database from its answer until the album is handled, see storage/held.py),
captions read as document citations; files over Telegram's 20 MB download limit are refused with the
alternatives. Files are downloaded and stored in the evidence store before the engine sees them, so an
answer is only acknowledged with its evidence safe. Edited messages, stickers, voice notes and the
like get a short reply; a user blocking the bot stops further sends to them.

Outbound: `TelegramTransport` sends outbox rows with HTML parse mode (every user- or framework-supplied
text is escaped by the renderer), inline keyboards whose callback data fits 64 bytes, and the score
chart as a photo; Telegram's errors become retry-after, retry or failed for the `OutboxSender`.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from aiogram import Bot, Dispatcher, Router
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ChatMemberStatus, ChatType, ParseMode
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramNotFound,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.methods import (
    AnswerCallbackQuery,
    DeleteWebhook,
    EditMessageReplyMarkup,
    GetFile,
    GetUpdates,
    SendDocument,
    SendMessage,
    SendPhoto,
    SetMyCommands,
    SetWebhook,
    TelegramMethod,
)
from aiogram.methods.base import Response
from aiogram.types import (
    BotCommand,
    BufferedInputFile,
    CallbackQuery,
    ChatMemberUpdated,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    Update,
)
from pydantic import BaseModel

from bot.channels import aiogram_schemas
from bot.channels.held_replay import HeldUpdates
from bot.i18n import Translator
from bot.outbound import Outbound, OutButton
from bot.outbox import OutboxSender, Outcome, Parts, Result
from bot.render.reply import escape_html
from bot.service import Service, Unavailable
from flows.model import FileInfo, Inbound, InboundKind, Rejected
from scoring.messages import N_
from storage.evidence import EvidenceRejected, EvidenceStore, download_name, sanitize_name
from storage.held import HELD_STALE
from storage.outbox import set_blocked

log = logging.getLogger(__name__)

CHANNEL = "telegram"
MAX_DOWNLOAD = 20 * 1024 * 1024  # the Bot API cannot hand bots larger files
MAX_TEXT = 4096
MAX_CAPTION = 1024
ALBUM_WAIT = 1.0  # seconds to wait for the other parts of an album

COMMANDS: tuple[tuple[str, str], ...] = (
    ("start", N_("command.start")),
    ("tieptuc", N_("command.continue")),
    ("xemdiem", N_("command.score")),
    ("tiendo", N_("command.progress")),
    ("conthieu", N_("command.missing")),
    ("nop", N_("command.submit")),
    ("trogiup", N_("command.help")),
    ("ngonngu", N_("command.language")),
)

# The Bot API calls this bot makes; their schemas (and their answers') are built at start-up.
METHODS: tuple[type[TelegramMethod[Any]], ...] = (
    AnswerCallbackQuery,
    DeleteWebhook,
    EditMessageReplyMarkup,
    GetFile,
    GetUpdates,
    SendDocument,
    SendMessage,
    SendPhoto,
    SetMyCommands,
    SetWebhook,
)


def schemas() -> list[type[BaseModel]]:
    """Every aiogram model the channel validates: updates, its calls, their answers, its keyboards."""
    answers: list[type[BaseModel]] = [Response[m.__returning__] for m in METHODS]  # type: ignore[name-defined]
    return [Update, *METHODS, *answers, BotCommand, InlineKeyboardButton, InlineKeyboardMarkup]


escape = escape_html  # HTML parse mode; the function lives where a database process can load it lightly


# What @BotFather issues: the bot's id, a colon, a secret of letters, digits, "_" and "-". aiogram's own
# check lets "²:abc" and "1:ábc" through, to fail later with a traceback.
_TOKEN = re.compile(r"[0-9]{1,20}:[A-Za-z0-9_-]{1,200}")


class BadToken(ValueError):
    """The bot token is not of the form Telegram issues (never repeated in the message: it is a secret)."""


def make_bot(token: str, api_url: str | None = None, timeout: float = 30.0) -> Bot:
    if not _TOKEN.fullmatch(token):
        raise BadToken("TELEGRAM_BOT_TOKEN is malformed")
    session = AiohttpSession(api=TelegramAPIServer.from_base(api_url)) if api_url else AiohttpSession()
    session.timeout = timeout
    return Bot(token, session=session, default=DefaultBotProperties(parse_mode=ParseMode.HTML))


def keyboard(buttons: Sequence[OutButton]) -> InlineKeyboardMarkup | None:
    """Short labels share a row (yes / no), long ones (choices) get a row each."""
    if not buttons:
        return None
    rows: list[list[InlineKeyboardButton]] = []
    row: list[InlineKeyboardButton] = []
    for b in buttons:
        button = InlineKeyboardButton(text=b.label, callback_data=b.payload)
        if len(b.label) > 18:
            if row:
                rows.append(row)
                row = []
            rows.append([button])
            continue
        row.append(button)
        if len(row) == 3:
            rows.append(row)
            row = []
    if row:
        rows.append(row)
    return InlineKeyboardMarkup(inline_keyboard=rows)


def split_text(text: str, limit: int = MAX_TEXT) -> list[str]:
    """Telegram's 4096-character limit, cut at line ends where possible."""
    parts: list[str] = []
    while len(text) > limit:
        cut = text.rfind("\n", 0, limit)
        cut = cut if cut > limit // 2 else limit
        parts.append(text[:cut])
        text = text[cut:].lstrip("\n")
    parts.append(text)
    return parts


@dataclass
class TelegramTransport:
    bot: Bot
    store: EvidenceStore | None = None  # to send stored evidence files (a reviewer's view)
    channel: str = CHANNEL

    async def send(self, chat_id: str, message: Outbound, parts: Parts) -> Result:
        try:
            return await self._send(int(chat_id), message, parts)
        except TelegramRetryAfter as exc:
            return Result(
                Outcome.RETRY, retry_after=float(exc.retry_after), error=exc.message, parts=parts.sent
            )
        except TelegramForbiddenError as exc:
            return Result(Outcome.BLOCKED, error=f"forbidden: {exc.message}")
        except TelegramBadRequest as exc:
            if "not modified" in exc.message or message.clear_keyboard_of is not None:
                return Result(Outcome.SENT)  # a keyboard already gone is what we wanted
            return Result(Outcome.FAILED, error=f"bad request: {exc.message}")
        except TelegramNotFound as exc:
            return Result(Outcome.FAILED, error=f"not found: {exc.message}")
        except (TelegramServerError, TelegramNetworkError) as exc:
            return Result(Outcome.RETRY, error=f"{type(exc).__name__}: {exc.message}", parts=parts.sent)

    async def _send(self, chat: int, message: Outbound, parts: Parts) -> Result:
        if message.clear_keyboard_of is not None:
            await self.bot.edit_message_reply_markup(
                chat_id=chat, message_id=message.clear_keyboard_of, reply_markup=None
            )
            return Result(Outcome.SENT)
        for doc in message.documents:
            if parts.due() and self.store is not None and self.store.exists(doc.sha256):
                data, name = await asyncio.to_thread(self.store.document, doc.sha256, doc.name)
                await self.bot.send_document(chat, BufferedInputFile(data, name))
                await parts.done()
        markup = keyboard(message.buttons)
        text = message.text
        if message.photo_png is not None:
            sent = await self.bot.send_photo(
                chat,
                BufferedInputFile(message.photo_png, "bieu-do.png"),
                caption=text[:MAX_CAPTION],
                reply_markup=markup,
            )
            return Result(Outcome.SENT, external_id=str(sent.message_id))
        pieces = split_text(text)
        for piece in pieces[:-1]:
            if parts.due():
                await self.bot.send_message(chat, piece)
                await parts.done()
        sent = await self.bot.send_message(chat, pieces[-1], reply_markup=markup)
        return Result(Outcome.SENT, external_id=str(sent.message_id))


@dataclass
class _Album:
    messages: list[Message] = field(default_factory=list)
    held: list[str] = field(default_factory=list)  # update ids of its parts in storage/held.py
    timer: asyncio.TimerHandle | None = None
    # each part's update counts as handled once the whole album is: until then Telegram keeps it
    handled: asyncio.Future[None] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class TelegramChannel:
    def __init__(
        self,
        bot: Bot,
        service: Service,
        store: EvidenceStore,
        sender: OutboxSender | None = None,
        *,
        album_wait: float = ALBUM_WAIT,
    ) -> None:
        self.bot = bot
        self.service = service
        self.store = store
        self.sender = sender
        self.album_wait = album_wait
        # Polling: an album part's update is confirmed to Telegram once the whole album is handled.
        # Webhook: not, since Telegram may wait for one part's answer before sending the next.
        self.albums_before_confirming = False
        self._albums: dict[tuple[int, str], _Album] = {}
        self.held = HeldUpdates(service.db, CHANNEL, service.clock)  # album parts on a webhook
        self._tasks: set[asyncio.Task[None]] = set()
        router = Router(name="dti")
        router.message.register(self.on_message)
        router.edited_message.register(self.on_edited)
        router.callback_query.register(self.on_callback)
        router.my_chat_member.register(self.on_member_status)
        self.dispatcher = Dispatcher(disable_fsm=True)  # the dialogue state is ours (flows/), in the database
        self.dispatcher.include_router(router)
        aiogram_schemas.warm(schemas())

    # -- inbound ---------------------------------------------------------------------------------

    async def process(
        self, chat_id: int, inbound_id: str, inbound: Inbound, prepend: Sequence[Outbound] = ()
    ) -> bool:
        """Handle an inbound message; False if the database was unavailable (the user is told)."""
        try:
            await self.service.handle_async(CHANNEL, str(chat_id), inbound_id, inbound, prepend=prepend)
        except Unavailable:
            log.error("database unavailable: update %s not stored, the user is asked to resend", inbound_id)
            t = Translator("vi")
            with contextlib.suppress(Exception):  # best effort: the outbox needs the database too
                await self.bot.send_message(chat_id, escape(t("service.unavailable")))
            return False
        if self.sender is not None:
            self.sender.wake()
        return True

    async def on_message(self, message: Message, event_update: Update) -> None:
        if message.chat.type != ChatType.PRIVATE:
            return  # the assistant works in private chats only
        inbound_id = str(event_update.update_id)
        if message.media_group_id is not None:
            held = inbound_id in self.held.here
            if not self.albums_before_confirming and not held:
                # answered before it is handled: kept until then (a database error answers 500 instead,
                # and Telegram delivers the part again)
                raw = event_update.model_dump_json(by_alias=True, exclude_none=True)
                await self.held.hold(inbound_id, str(message.chat.id), raw)
                held = True
            handled = self._collect_album(message, inbound_id if held else None)
            if self.albums_before_confirming:
                await asyncio.shield(handled)
            return
        if message.text is not None:
            text = Inbound(InboundKind.TEXT, text=_command_text(message.text), seq=message.message_id)
            await self.process(message.chat.id, inbound_id, text)
            return
        if message.document is not None or message.photo:
            inbound = await self._files([message])
            await self.process(message.chat.id, inbound_id, inbound)
            return
        await self.process(message.chat.id, inbound_id, Inbound(InboundKind.UNSUPPORTED))

    async def on_edited(self, message: Message, event_update: Update) -> None:
        if message.chat.type == ChatType.PRIVATE:
            await self.process(message.chat.id, str(event_update.update_id), Inbound(InboundKind.EDITED))

    async def on_callback(self, query: CallbackQuery, event_update: Update) -> None:
        await query.answer()  # first: the button stops spinning whatever happens next
        message = query.message
        if not isinstance(message, Message) or query.data is None:
            return
        clear = Outbound(clear_keyboard_of=message.message_id)
        await self.process(
            message.chat.id,
            str(event_update.update_id),
            Inbound(InboundKind.BUTTON, payload=query.data),
            prepend=[clear],
        )

    async def on_member_status(self, update: ChatMemberUpdated) -> None:
        status = update.new_chat_member.status
        blocked = status in (ChatMemberStatus.KICKED, ChatMemberStatus.LEFT)
        at = self.service.clock() if blocked else None
        await asyncio.to_thread(self._set_blocked, str(update.chat.id), at)

    def _set_blocked(self, chat_id: str, at: Any) -> None:
        with self.service.db.session() as s:
            set_blocked(s, CHANNEL, chat_id, at)

    # -- albums and files ------------------------------------------------------------------------

    def _collect_album(self, message: Message, held: str | None) -> asyncio.Future[None]:
        """Add a part to its album (`held`: its update id, if held); the future completes when the
        album has been handled."""
        key = (message.chat.id, str(message.media_group_id))
        album = self._albums.setdefault(key, _Album())
        if held is not None and held not in album.held:
            album.held.append(held)
        if any(m.message_id == message.message_id for m in album.messages):
            return album.handled  # the same part delivered again
        album.messages.append(message)
        if album.timer is not None:
            album.timer.cancel()
        loop = asyncio.get_running_loop()
        album.timer = loop.call_later(self.album_wait, self._flush_album, key)
        return album.handled

    def _flush_album(self, key: tuple[int, str]) -> None:
        album = self._albums.pop(key, None)
        if album is None:
            return
        task = asyncio.get_running_loop().create_task(self._submit_album(key, album))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _submit_album(self, key: tuple[int, str], album: _Album) -> None:
        stored = False
        try:
            messages = sorted(album.messages, key=lambda m: m.message_id)
            inbound = await self._files(messages)
            stored = await self.process(key[0], f"album:{key[0]}:{key[1]}", inbound)
        finally:
            if not album.handled.done():
                album.handled.set_result(None)
        if stored and album.held:  # otherwise a live process handles it later from what is held
            await self.held.release(album.held)

    async def replay_held(self, stale: dt.timedelta = HELD_STALE) -> int:
        """Handle the updates held for longer than `stale` by a process that did not get to handle
        them (it stopped in between); returns how many. All at once, so an album's parts meet again."""
        rows = await self.held.stale(stale)
        updates = [Update.model_validate_json(r.update_json, context={"bot": self.bot}) for r in rows]
        await asyncio.gather(*(self.dispatcher.feed_update(self.bot, u) for u in updates))
        return len(rows)

    async def flush(self) -> None:
        """Submit albums still waiting for parts, and wait for every submission (tests, shutdown)."""
        for key in list(self._albums):
            album = self._albums[key]
            if album.timer is not None:
                album.timer.cancel()
            self._flush_album(key)
        while self._tasks:
            await asyncio.gather(*list(self._tasks))

    async def _files(self, messages: Sequence[Message]) -> Inbound:
        files: list[FileInfo] = []
        rejected: list[Rejected] = []
        caption = ""
        for m in messages:
            caption = caption or (m.caption or "")
            if m.document is not None:
                doc = m.document
                name = sanitize_name(doc.file_name or "tep")
                file_id, size = doc.file_id, doc.file_size
            elif m.photo:
                best = max(m.photo, key=lambda p: (p.file_size or 0, p.width * p.height))
                name = sanitize_name(f"anh-{best.file_unique_id}.jpg")
                file_id, size = best.file_id, best.file_size
            else:
                rejected.append(Rejected("-", "unsupported_type"))
                continue
            if size is not None and size > MAX_DOWNLOAD:
                rejected.append(Rejected(name, "too_large"))
                continue
            try:
                data = await self._download(file_id)
            except TelegramBadRequest:
                rejected.append(
                    Rejected(name, "too_large")
                )  # "file is too big": Telegram refuses bots > 20 MB
                continue
            try:
                stored = await asyncio.to_thread(self.store.put, data, name)
            except EvidenceRejected as exc:
                rejected.append(Rejected(name, exc.reason))
                continue
            files.append(
                FileInfo(stored.sha256, stored.size, stored.mime, download_name(name, stored.extension))
            )
        # in the chat's order from its first part: a file that comes after newer messages is not filed
        # under whatever question is open by then (flows/engine.py `_late`)
        seq = min(m.message_id for m in messages)
        return Inbound(
            InboundKind.FILE, files=tuple(files), rejected=tuple(rejected), caption=caption, seq=seq
        )

    async def _download(self, file_id: str) -> bytes:
        file = await self.bot.get_file(file_id)
        if file.file_path is None:
            raise TelegramBadRequest(method=None, message="no file path")  # type: ignore[arg-type]
        buffer = await self.bot.download_file(file.file_path)
        assert buffer is not None
        return buffer.read()

    # -- setup -----------------------------------------------------------------------------------

    async def set_commands(self) -> None:
        """The command menu in Vietnamese (the default) and English."""
        for lang in ("vi", "en"):
            t = Translator(lang)
            commands = [BotCommand(command=name, description=t(key)) for name, key in COMMANDS]
            await self.bot.set_my_commands(commands, language_code=None if lang == "vi" else lang)


def _command_text(text: str) -> str:
    """ "/xemdiem@DtiBot" → "/xemdiem": commands work the same typed or picked from the menu."""
    if text.startswith("/"):
        head, _, rest = text.partition(" ")
        head = head.split("@", 1)[0]
        return f"{head} {rest}".strip()
    return text
