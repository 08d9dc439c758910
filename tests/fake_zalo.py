"""A fake Zalo Official Account API and file host on 127.0.0.1 for tests.

It serves the OA message, upload, template and OAuth endpoints with Zalo's answers — HTTP 200 and
`error != 0` when something is wrong: -216 for an invalid or expired access token, -230 outside the
free-reply window, -32 when rate limited; single-use refresh tokens — keeps every user's transcript,
hosts the files users send (at URLs, as Zalo does), and signs and posts webhook events to the bot.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import itertools
import json
import random
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

WINDOW = dt.timedelta(days=7)


@dataclass
class Sent:
    kind: str  # text | buttons | image | file | template
    text: str = ""
    buttons: list[dict[str, str]] = field(default_factory=list)
    data: bytes = b""
    name: str = ""  # a file's, as uploaded


@dataclass
class FakeZalo:
    app_id: str = "3001"
    app_secret: str = "app-secret"
    signature_secret: str = "oa-secret"
    access_token: str = "AT-1"
    refresh_token: str = "RT-1"
    rate_limit_share: float = 0.0
    scripted_faults: list[str | None] = field(default_factory=list)  # next messages' fates: None, "rate"
    refuse_refresh: bool = False
    oauth_delay: float = 0.0  # seconds the token endpoint takes
    file_delay: float = 0.0  # seconds a file download takes
    seed: int = 3
    url: str = ""
    webhook: str = ""
    transcripts: dict[str, list[Sent]] = field(default_factory=lambda: defaultdict(list))
    last_inbound: dict[str, dt.datetime] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)
    refreshes: int = 0
    token_errors: int = 0
    rate_limited: int = 0
    window_errors: int = 0
    _tokens: itertools.count[int] = field(default_factory=lambda: itertools.count(2))
    _msg_ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _uploads: dict[str, bytes] = field(default_factory=dict)
    _upload_names: dict[str, str] = field(default_factory=dict)
    _runner: web.AppRunner | None = None
    _rnd: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self._rnd = random.Random(self.seed)

    async def start(self) -> str:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v3.0/oa/message/cs", self._cs)
        app.router.add_post("/v3.0/oa/message/template", self._template)
        app.router.add_post("/v2.0/oa/upload/image", self._upload)
        app.router.add_post("/v2.0/oa/upload/file", self._upload)
        app.router.add_post("/v4/oa/access_token", self._oauth)
        app.router.add_get("/files/{name}", self._file)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5)  # a hung fault ends with the fake
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    # -- API -------------------------------------------------------------------------------------

    def _error(self, code: int, message: str) -> web.Response:
        return web.json_response({"error": code, "message": message})  # Zalo answers 200 even so

    def _auth(self, request: web.Request) -> web.Response | None:
        if request.headers.get("access_token") != self.access_token:
            self.token_errors += 1
            return self._error(-216, "Access token is invalid")
        if self.rate_limit_share and self._rnd.random() < self.rate_limit_share:
            self.rate_limited += 1
            return self._error(-32, "Exceed the request rate limit")
        return None

    async def _cs(self, request: web.Request) -> web.Response:
        refused = self._auth(request)
        if refused is not None:
            return refused
        if self.scripted_faults and self.scripted_faults.pop(0) == "rate":
            self.rate_limited += 1
            return self._error(-32, "Exceed the request rate limit")
        body = await request.json()
        user = str(body["recipient"]["user_id"])
        last = self.last_inbound.get(user)
        if last is None or dt.datetime.now(dt.UTC) - last > WINDOW:
            self.window_errors += 1
            return self._error(-230, "User has not interacted with the OA in the last 7 days")
        message = body["message"]
        attachment = message.get("attachment") or {}
        payload = attachment.get("payload") or {}
        if payload.get("template_type") == "button":
            sent = Sent(
                "buttons",
                message.get("text", ""),
                [{"title": b["title"], "payload": b["payload"]} for b in payload["buttons"]],
            )
        elif payload.get("template_type") == "media":
            sent = Sent(
                "image",
                message.get("text", ""),
                data=self._uploads.get(payload["elements"][0]["attachment_id"], b""),
            )
        elif attachment.get("type") == "file":
            token = payload["token"]
            sent = Sent("file", data=self._uploads.get(token, b""), name=self._upload_names.get(token, ""))
        else:
            sent = Sent("text", message.get("text", ""))
        if len(sent.text) > 2000:
            return self._error(-201, "Text is too long")
        self.transcripts[user].append(sent)
        return web.json_response(
            {
                "error": 0,
                "message": "Success",
                "data": {"message_id": f"m{next(self._msg_ids)}", "user_id": user},
            }
        )

    async def _template(self, request: web.Request) -> web.Response:
        refused = self._auth(request)
        if refused is not None:
            return refused
        body = await request.json()
        user = str(body["recipient"]["user_id"])
        self.transcripts[user].append(Sent("template", json.dumps(body["template_data"], ensure_ascii=False)))
        return web.json_response({"error": 0, "data": {"message_id": f"t{next(self._msg_ids)}"}})

    async def _upload(self, request: web.Request) -> web.Response:
        refused = self._auth(request)
        if refused is not None:
            return refused
        form = await request.post()
        upload = form["file"]
        data = upload.file.read() if hasattr(upload, "file") else b""
        key = f"u{next(self._msg_ids)}"
        self._uploads[key] = data
        self._upload_names[key] = str(getattr(upload, "filename", "") or "")
        return web.json_response({"error": 0, "data": {"attachment_id": key, "token": key}})

    async def _oauth(self, request: web.Request) -> web.Response:
        form = await request.post()
        await asyncio.sleep(self.oauth_delay)
        if request.headers.get("secret_key") != self.app_secret or form.get("app_id") != self.app_id:
            return web.json_response({"error": -14002, "error_description": "Invalid app"})
        if self.refuse_refresh or form.get("refresh_token") != self.refresh_token:
            return web.json_response({"error": -14014, "error_description": "Invalid refresh token"})
        n = next(self._tokens)
        self.access_token, self.refresh_token = f"AT-{n}", f"RT-{n}"  # the old refresh token is now spent
        self.refreshes += 1
        return web.json_response(
            {"access_token": self.access_token, "refresh_token": self.refresh_token, "expires_in": "90000"}
        )

    async def _file(self, request: web.Request) -> web.Response:
        await asyncio.sleep(self.file_delay)
        data = self.files.get(request.match_info["name"])
        return web.Response(body=data) if data is not None else web.Response(status=404)

    # -- what a user's phone causes --------------------------------------------------------------

    def event(
        self, user: str, name: str, message: dict[str, Any] | None = None, *, timestamp: int | None = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "app_id": self.app_id,
            "user_id_by_app": f"app-{user}",
            "event_name": name,
            "timestamp": str(timestamp if timestamp is not None else int(time.time() * 1000)),
            "sender": {"id": user},
            "recipient": {"id": "oa-1"},
        }
        if message is not None:
            body["message"] = {"msg_id": f"msg{next(self._msg_ids)}", **message}
        return body

    def text(self, user: str, text: str) -> dict[str, Any]:
        return self.event(user, "user_send_text", {"text": text})

    def press(self, user: str, payload: str) -> dict[str, Any]:
        return self.text(
            user, payload
        )  # a button of type oa.query.hide sends its payload as the user's message

    def image(self, user: str, data: bytes, name: str = "anh.jpg") -> dict[str, Any]:
        self.files[name] = data
        url = f"{self.url}/files/{name}"
        return self.event(
            user,
            "user_send_image",
            {"text": "", "attachments": [{"type": "image", "payload": {"url": url, "thumbnail": url}}]},
        )

    def file(self, user: str, name: str, data: bytes, *, size: int | None = None) -> dict[str, Any]:
        self.files[name] = data
        payload = {
            "url": f"{self.url}/files/{name}",
            "name": name,
            "size": str(size if size is not None else len(data)),
            "type": name.rsplit(".", 1)[-1],
        }
        return self.event(user, "user_send_file", {"attachments": [{"type": "file", "payload": payload}]})

    def link(self, user: str, url: str) -> dict[str, Any]:
        return self.event(
            user, "user_send_link", {"text": url, "attachments": [{"type": "link", "payload": {"url": url}}]}
        )

    def sticker(self, user: str) -> dict[str, Any]:
        return self.event(
            user, "user_send_sticker", {"attachments": [{"type": "sticker", "payload": {"id": "st"}}]}
        )

    def follow(self, user: str) -> dict[str, Any]:
        return self.event(user, "follow", None)

    def sign(self, body: bytes, timestamp: str) -> str:
        return (
            "mac="
            + hashlib.sha256(
                self.app_id.encode() + body + timestamp.encode() + self.signature_secret.encode()
            ).hexdigest()
        )

    async def post(self, event: dict[str, Any], *, signature: str | None = None) -> int:
        """Deliver an event to the bot's webhook, signed as Zalo signs it (unless told otherwise)."""
        if event["event_name"].startswith("user_send_") or event["event_name"] == "follow":
            self.last_inbound[event["sender"]["id"]] = dt.datetime.now(dt.UTC)
        raw = json.dumps(event, ensure_ascii=False).encode()
        headers = {
            "Content-Type": "application/json",
            "X-ZEvent-Signature": signature if signature is not None else self.sign(raw, event["timestamp"]),
        }
        async with (
            aiohttp.ClientSession() as session,
            session.post(self.webhook, data=raw, headers=headers) as response,
        ):
            return response.status

    def said(self, user: str, since: int = 0) -> str:
        return "\n".join(s.text for s in self.transcripts[user][since:])

    def last_buttons(self, user: str) -> list[dict[str, str]]:
        return next(s.buttons for s in reversed(self.transcripts[user]) if s.buttons)
