"""A fake Telegram Bot API on 127.0.0.1 for tests: the real aiogram `Bot` is pointed at it.

It implements what the bot calls (getMe, getUpdates, sendMessage, sendPhoto, sendDocument, editMessageText,
editMessageReplyMarkup, answerCallbackQuery, getFile and the file download, setMyCommands,
setWebhook, deleteWebhook), keeps every chat's transcript, enforces Telegram's pace (about one
message per second in a chat, about 30 per second overall) by answering 429 with `retry_after`, and
can be told to answer 5xx, time out or drop the connection. It also makes the updates a user's phone
would cause, in the shapes Telegram sends them.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import multiprocessing
import random
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

BOT_USER = {"id": 7000000001, "is_bot": True, "first_name": "DTI", "username": "dti_test_bot"}


@dataclass
class Sent:
    message_id: int
    chat_id: int
    text: str
    buttons: list[dict[str, str]]
    photo: bytes | None = None
    keyboard_removed: bool = False
    document: bytes | None = None
    document_name: str | None = None
    at: float = field(default_factory=time.monotonic)  # when the fake accepted it


@dataclass
class Limits:
    chat_interval: float = 1.0  # seconds between two messages to one chat
    per_second: float = 30.0  # messages overall
    retry_after: int = 1


@dataclass
class FakeTelegram:
    token: str = "123456:TEST"
    limits: Limits = field(default_factory=Limits)
    fault_rate: float = 0.0  # share of send calls that fail (5xx, timeout or a dropped connection)
    fault_kinds: tuple[str, ...] = ("500", "timeout", "drop")
    scripted_faults: list[str | None] = field(default_factory=list)  # the next send calls' fates, in order
    timeout_seconds: float = 3.0
    unavailable: int = 0  # the next calls, of any method, answer 502 (Telegram unreachable for a while)
    seed: int = 1
    url: str = ""
    transcripts: dict[int, list[Sent]] = field(default_factory=lambda: defaultdict(list))
    commands: dict[str | None, list[dict[str, str]]] = field(default_factory=dict)
    webhook: dict[str, str] = field(default_factory=dict)
    answered_callbacks: list[str] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)
    too_many: int = 0
    faults: int = 0
    get_updates_calls: int = 0  # answered getUpdates calls
    updates_returned: int = 0  # updates in their answers, counted again each time one is sent again
    files: dict[str, bytes] = field(default_factory=dict)
    _updates: list[dict[str, Any]] = field(default_factory=list)
    first_update_id: int = 100  # a fresh fake over a database that saw earlier ids needs new ones
    _message_ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _new_update: asyncio.Event = field(default_factory=asyncio.Event)
    _last_sent: dict[int, float] = field(default_factory=dict)
    _window: list[float] = field(default_factory=list)
    _runner: web.AppRunner | None = None
    _rnd: random.Random = field(init=False)
    _update_ids: itertools.count[int] = field(init=False)

    def __post_init__(self) -> None:
        self._rnd = random.Random(self.seed)
        self._update_ids = itertools.count(self.first_update_id)

    # -- server ----------------------------------------------------------------------------------

    async def start(self, port: int = 0) -> str:
        """Serve on `port` (0: a free one); returns the URL the bot is pointed at."""
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._api)
        app.router.add_get("/file/bot{token}/{path:.*}", self._file)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5)  # a hung fault ends with the fake
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _file(self, request: web.Request) -> web.StreamResponse:
        data = self.files.get(request.match_info["path"])
        if data is None:
            return web.Response(status=404)
        return web.Response(body=data)

    def _ok(self, result: Any) -> web.Response:
        return web.json_response({"ok": True, "result": result})

    def _error(self, code: int, description: str, **parameters: Any) -> web.Response:
        body: dict[str, Any] = {"ok": False, "error_code": code, "description": description}
        if parameters:
            body["parameters"] = parameters
        return web.json_response(body, status=code)

    async def _api(self, request: web.Request) -> web.StreamResponse:
        if request.match_info["token"] != self.token:
            return self._error(401, "Unauthorized")
        method = request.match_info["method"].lower()
        form = await request.post()
        data: dict[str, Any] = dict(form.items())
        self.calls.append(method)
        if self.unavailable:
            self.unavailable -= 1
            return self._error(502, "Bad Gateway")
        handler = getattr(self, f"m_{method}", None)
        if handler is None:
            return self._error(404, f"Not Found: method {method}")
        if method in (
            "sendmessage",
            "sendphoto",
            "senddocument",
            "editmessagereplymarkup",
            "editmessagetext",
        ):
            fault = self._fault()
            if fault == "500":
                return self._error(502, "Bad Gateway")
            if fault == "timeout":
                await asyncio.sleep(self.timeout_seconds)
                return self._error(504, "Gateway Timeout")
            if fault == "blocked":
                return self._error(403, "Forbidden: bot was blocked by the user")
            if fault == "drop":
                assert request.transport is not None
                request.transport.close()
                return web.Response(status=500)
            limited = self._rate_limited(int(data["chat_id"]))
            if limited is not None:
                return limited
        result: web.StreamResponse = await handler(data)
        return result

    def _fault(self) -> str | None:
        if self.scripted_faults:
            fault = self.scripted_faults.pop(0)
            self.faults += fault is not None
            return fault
        if self.fault_rate and self._rnd.random() < self.fault_rate:
            self.faults += 1
            return self._rnd.choice(self.fault_kinds)
        return None

    def _rate_limited(self, chat_id: int) -> web.Response | None:
        now = time.monotonic()
        self._window = [t for t in self._window if now - t < 1.0]
        last = self._last_sent.get(chat_id)
        too_fast_chat = last is not None and now - last < self.limits.chat_interval * 0.9
        too_fast_all = len(self._window) >= self.limits.per_second * 1.05
        if too_fast_chat or too_fast_all:
            self.too_many += 1
            return self._error(
                429,
                f"Too Many Requests: retry after {self.limits.retry_after}",
                retry_after=self.limits.retry_after,
            )
        self._last_sent[chat_id] = now
        self._window.append(now)
        return None

    # -- methods ---------------------------------------------------------------------------------

    async def m_getme(self, data: dict[str, Any]) -> web.Response:
        return self._ok(BOT_USER)

    async def m_getupdates(self, data: dict[str, Any]) -> web.Response:
        """As Telegram: an offset confirms every update below it, which is then gone for good; the
        answer is the oldest `limit` (1 – 100) updates still there, waiting up to `timeout` seconds
        (at most one here) when there are none."""
        offset = int(data.get("offset", 0) or 0)
        limit = max(1, min(100, int(data.get("limit", 100) or 100)))
        timeout = min(float(data.get("timeout", 0) or 0), 1.0)
        if offset:
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
        if not self._updates and timeout:
            self._new_update.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._new_update.wait(), timeout)
        answer = self._updates[:limit]
        self.get_updates_calls += 1
        self.updates_returned += len(answer)
        return self._ok(answer)

    @property
    def pending(self) -> int:
        """Updates not yet confirmed by the bot."""
        return len(self._updates)

    async def m_sendmessage(self, data: dict[str, Any]) -> web.Response:
        return self._ok(self._record(data, str(data.get("text", ""))))

    async def m_sendphoto(self, data: dict[str, Any]) -> web.Response:
        photo = data["photo"]
        if isinstance(photo, str) and photo.startswith("attach://"):
            photo = data[photo.removeprefix("attach://")]  # the upload travels in its own form field
        raw = b""
        if hasattr(photo, "file"):
            photo.file.seek(0)
            raw = photo.file.read()
        message = self._record(data, str(data.get("caption", "")), raw)
        message["photo"] = [
            {"file_id": "p1", "file_unique_id": "p1u", "width": 1080, "height": 1350, "file_size": len(raw)}
        ]
        return self._ok(message)

    async def m_senddocument(self, data: dict[str, Any]) -> web.Response:
        document = data["document"]
        if isinstance(document, str) and document.startswith("attach://"):
            document = data[document.removeprefix("attach://")]
        if not hasattr(document, "file"):
            return self._error(400, "Bad Request: there is no document in the request")
        document.file.seek(0)
        raw = document.file.read()
        message = self._record(data, str(data.get("caption", "")))
        sent = self.transcripts[int(data["chat_id"])][-1]
        sent.document, sent.document_name = raw, str(document.filename)
        message.pop("text", None)
        message["document"] = {
            "file_id": f"sent{message['message_id']}",
            "file_unique_id": f"sent{message['message_id']}u",
            "file_name": sent.document_name,
            "file_size": len(raw),
        }
        return self._ok(message)

    def _record(self, data: dict[str, Any], text: str, photo: bytes | None = None) -> dict[str, Any]:
        chat_id = int(data["chat_id"])
        markup = json.loads(data["reply_markup"]) if data.get("reply_markup") else {}
        buttons = [
            {"label": b["text"], "payload": b["callback_data"]}
            for row in markup.get("inline_keyboard", [])
            for b in row
        ]
        message_id = next(self._message_ids)
        self.transcripts[chat_id].append(Sent(message_id, chat_id, text, buttons, photo))
        message: dict[str, Any] = {
            "message_id": message_id,
            "date": int(time.time()),
            "chat": {"id": chat_id, "type": "private", "first_name": "Cán bộ"},
            "from": BOT_USER,
        }
        if photo is None:
            message["text"] = text
        else:
            message["caption"] = text
        if markup:
            message["reply_markup"] = markup
        return message

    async def m_editmessagereplymarkup(self, data: dict[str, Any]) -> web.Response:
        chat_id, message_id = int(data["chat_id"]), int(data["message_id"])
        for sent in self.transcripts[chat_id]:
            if sent.message_id == message_id:
                if sent.keyboard_removed or not sent.buttons:
                    return self._error(400, "Bad Request: message is not modified")
                sent.keyboard_removed = True
                return self._ok(
                    {
                        "message_id": message_id,
                        "date": 0,
                        "chat": {"id": chat_id, "type": "private"},
                        "text": sent.text,
                    }
                )
        return self._error(400, "Bad Request: message to edit not found")

    async def m_editmessagetext(self, data: dict[str, Any]) -> web.Response:
        return await self.m_editmessagereplymarkup(data)

    async def m_answercallbackquery(self, data: dict[str, Any]) -> web.Response:
        self.answered_callbacks.append(str(data["callback_query_id"]))
        return self._ok(True)

    async def m_getfile(self, data: dict[str, Any]) -> web.Response:
        file_id = str(data["file_id"])
        if file_id not in self.files:
            return self._error(400, "Bad Request: file is too big")
        return self._ok(
            {
                "file_id": file_id,
                "file_unique_id": file_id + "u",
                "file_size": len(self.files[file_id]),
                "file_path": file_id,
            }
        )

    async def m_setmycommands(self, data: dict[str, Any]) -> web.Response:
        self.commands[data.get("language_code") or None] = json.loads(data["commands"])
        return self._ok(True)

    async def m_setwebhook(self, data: dict[str, Any]) -> web.Response:
        self.webhook = {"url": str(data["url"]), "secret_token": str(data.get("secret_token", ""))}
        return self._ok(True)

    async def m_deletewebhook(self, data: dict[str, Any]) -> web.Response:
        self.webhook = {}
        return self._ok(True)

    # -- what a user's phone causes --------------------------------------------------------------

    def user(self, chat_id: int) -> dict[str, Any]:
        return {"id": chat_id, "is_bot": False, "first_name": "Cán bộ", "language_code": "vi"}

    def _message(self, chat_id: int, **content: Any) -> dict[str, Any]:
        return {
            "message_id": next(self._message_ids),
            "date": int(time.time()),
            "chat": {"id": chat_id, "type": "private", "first_name": "Cán bộ"},
            "from": self.user(chat_id),
            **content,
        }

    def update(self, **content: Any) -> dict[str, Any]:
        return {"update_id": next(self._update_ids), **content}

    def text(self, chat_id: int, text: str) -> dict[str, Any]:
        content: dict[str, Any] = {"text": text}
        if text.startswith("/"):
            content["entities"] = [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}]
        return self.update(message=self._message(chat_id, **content))

    def document(
        self,
        chat_id: int,
        name: str,
        data: bytes,
        mime: str = "application/pdf",
        *,
        size: int | None = None,
        caption: str | None = None,
        media_group: str | None = None,
    ) -> dict[str, Any]:
        file_id = f"doc{next(self._message_ids)}"
        if size is None or size <= 20 * 1024 * 1024:
            self.files[file_id] = data
        content: dict[str, Any] = {
            "document": {
                "file_id": file_id,
                "file_unique_id": file_id + "u",
                "file_name": name,
                "mime_type": mime,
                "file_size": size if size is not None else len(data),
            }
        }
        if caption:
            content["caption"] = caption
        if media_group:
            content["media_group_id"] = media_group
        return self.update(message=self._message(chat_id, **content))

    def photo(
        self, chat_id: int, data: bytes, *, media_group: str | None = None, caption: str | None = None
    ) -> dict[str, Any]:
        n = next(self._message_ids)
        sizes = []
        for i, (w, h) in enumerate(((90, 67), (320, 240), (1280, 960))):
            file_id = f"ph{n}_{i}"
            blob = data if i == 2 else b"\xff\xd8\xff\xe0small" + bytes(i)
            self.files[file_id] = blob
            sizes.append(
                {
                    "file_id": file_id,
                    "file_unique_id": f"ph{n}u{i}",
                    "width": w,
                    "height": h,
                    "file_size": len(blob),
                }
            )
        content: dict[str, Any] = {"photo": sizes}
        if media_group:
            content["media_group_id"] = media_group
        if caption:
            content["caption"] = caption
        return self.update(message=self._message(chat_id, **content))

    def press(
        self, chat_id: int, sent: Sent, label: str | None = None, data: str | None = None
    ) -> dict[str, Any]:
        payload = (
            data if data is not None else next(b["payload"] for b in sent.buttons if b["label"] == label)
        )
        message = {
            "message_id": sent.message_id,
            "date": int(time.time()),
            "chat": {"id": chat_id, "type": "private"},
            "from": BOT_USER,
            "text": sent.text,
        }
        return self.update(
            callback_query={
                "id": f"cb{next(self._message_ids)}",
                "from": self.user(chat_id),
                "chat_instance": "ci",
                "message": message,
                "data": payload,
            }
        )

    def edited(self, chat_id: int, text: str) -> dict[str, Any]:
        return self.update(
            edited_message={**self._message(chat_id, text=text), "edit_date": int(time.time())}
        )

    def sticker(self, chat_id: int) -> dict[str, Any]:
        sticker = {
            "file_id": "st1",
            "file_unique_id": "st1u",
            "type": "regular",
            "width": 512,
            "height": 512,
            "is_animated": False,
            "is_video": False,
        }
        return self.update(message=self._message(chat_id, sticker=sticker))

    def voice(self, chat_id: int) -> dict[str, Any]:
        return self.update(
            message=self._message(chat_id, voice={"file_id": "v1", "file_unique_id": "v1u", "duration": 3})
        )

    def blocked(self, chat_id: int, status: str = "kicked") -> dict[str, Any]:
        member = {"status": status, "user": BOT_USER}
        if status == "kicked":
            member["until_date"] = 0
        return self.update(
            my_chat_member={
                "chat": {"id": chat_id, "type": "private", "first_name": "Cán bộ"},
                "from": self.user(chat_id),
                "date": int(time.time()),
                "old_chat_member": {"status": "member", "user": BOT_USER},
                "new_chat_member": member,
            }
        )

    def push(self, update: dict[str, Any]) -> dict[str, Any]:
        """Queue an update for getUpdates (polling mode)."""
        self._updates.append(update)
        self._new_update.set()
        return update

    def last(self, chat_id: int) -> Sent:
        return self.transcripts[chat_id][-1]

    def last_with_buttons(self, chat_id: int) -> Sent:
        return next(s for s in reversed(self.transcripts[chat_id]) if s.buttons and not s.keyboard_removed)

    def text_of(self, chat_id: int, since: int = 0) -> str:
        return "\n".join(s.text for s in self.transcripts[chat_id][since:])


def _serve(token: str, limits: Limits, files: dict[str, bytes], ready: Any, stop: Any) -> None:
    async def serve() -> None:
        fake = FakeTelegram(token=token, limits=limits, files=files)
        ready.put(await fake.start())
        await asyncio.get_running_loop().run_in_executor(None, stop.wait)
        ready.put(len(fake.calls))
        await fake.stop()

    asyncio.run(serve())


@contextlib.contextmanager
def fake_telegram_process(
    token: str, limits: Limits, files: dict[str, bytes]
) -> Iterator[tuple[str, Callable[[], int]]]:
    """A fake Bot API serving `files` from a process of its own, as Telegram's servers are not in the
    bot's process: a benchmark then charges the bot only for its own work. Yields the URL and a
    function that, once the block is left, gives the number of calls the fake answered."""
    context = multiprocessing.get_context("spawn")  # a fork would copy the caller's threads and loop
    ready = context.Queue()
    stop = context.Event()
    process = context.Process(target=_serve, args=(token, limits, files, ready, stop), daemon=True)
    process.start()
    calls: list[int] = []
    try:
        yield str(ready.get(timeout=60)), lambda: calls[0]
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            calls.append(int(ready.get(timeout=10)))
        process.join(10)
        if process.is_alive():
            process.kill()
            process.join()
