"""An async client for the Zalo Official Account Open API (v3 messages, v2 uploads, v4 OAuth), on httpx.

There is no maintained Python SDK. Zalo reports errors as HTTP 200 with `error != 0`; every call checks
it and raises `ZaloError`, which says whether the token expired, the user is outside the free-reply
window, or the OA is rate limited. The access token comes from a provider (the token manager), so a
call always uses the current one.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from bot.channels.wire import ascii_int

API_BASE = "https://openapi.zalo.me"
OAUTH_BASE = "https://oauth.zaloapp.com"
MAX_TEXT = 2000  # Zalo's limit for the text of one message
MAX_BUTTONS = 5

TOKEN_ERRORS = frozenset({-216, -124, -118})  # invalid / expired access token
OUTSIDE_WINDOW = -230
RATE_LIMITED = -32


class ZaloError(RuntimeError):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"Zalo error {code}: {message}")
        self.code = code
        self.message = message

    @property
    def token_invalid(self) -> bool:
        return self.code in TOKEN_ERRORS

    @property
    def outside_window(self) -> bool:
        return self.code == OUTSIDE_WINDOW

    @property
    def rate_limited(self) -> bool:
        return self.code == RATE_LIMITED


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int  # seconds


def split_text(text: str, limit: int = MAX_TEXT) -> list[str]:
    parts: list[str] = []
    while len(text) > limit:
        cut = text.rfind("\n", 0, limit)
        cut = cut if cut > limit // 2 else limit
        parts.append(text[:cut])
        text = text[cut:].lstrip("\n")
    parts.append(text)
    return parts


def _check(response: httpx.Response) -> dict[str, Any]:
    response.raise_for_status()
    data: dict[str, Any] = response.json()
    code = int(data.get("error", 0) or 0)
    if code != 0:
        raise ZaloError(code, str(data.get("message", "")))
    return data


class ZaloClient:
    def __init__(
        self,
        http: httpx.AsyncClient,
        access_token: Callable[[], Awaitable[str]],
        *,
        api_base: str = API_BASE,
    ) -> None:
        self.http = http
        self.access_token = access_token
        self.api_base = api_base.rstrip("/")

    async def _post(
        self, path: str, *, json_body: dict[str, Any] | None = None, files: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        headers = {"access_token": await self.access_token()}
        response = await self.http.post(
            f"{self.api_base}{path}", json=json_body, files=files, headers=headers
        )
        return _check(response)

    async def _message(self, user_id: str, message: dict[str, Any]) -> str:
        data = await self._post(
            "/v3.0/oa/message/cs", json_body={"recipient": {"user_id": user_id}, "message": message}
        )
        return str(data.get("data", {}).get("message_id", ""))

    async def send_text(self, user_id: str, text: str) -> str:
        """Text cut at Zalo's length limit; returns the last message id."""
        message_id = ""
        for part in split_text(text):
            message_id = await self._message(user_id, {"text": part})
        return message_id

    async def send_buttons(self, user_id: str, text: str, buttons: Sequence[tuple[str, str]]) -> str:
        """Text with up to five buttons; a press sends `payload` back to the OA as the user's message."""
        parts = split_text(text)
        for part in parts[:-1]:
            await self._message(user_id, {"text": part})
        template = {
            "type": "template",
            "payload": {
                "template_type": "button",
                "buttons": [
                    {"title": title[:100], "type": "oa.query.hide", "payload": payload}
                    for title, payload in buttons[:MAX_BUTTONS]
                ],
            },
        }
        return await self._message(user_id, {"text": parts[-1], "attachment": template})

    async def upload_image(self, data: bytes, name: str) -> str:
        result = await self._post("/v2.0/oa/upload/image", files={"file": (name, data, "image/png")})
        return str(result["data"]["attachment_id"])

    async def upload_file(self, data: bytes, name: str) -> str:
        result = await self._post(
            "/v2.0/oa/upload/file", files={"file": (name, data, "application/octet-stream")}
        )
        return str(result["data"]["token"])

    async def send_image(self, user_id: str, attachment_id: str, caption: str = "") -> str:
        attachment = {
            "type": "template",
            "payload": {
                "template_type": "media",
                "elements": [{"media_type": "image", "attachment_id": attachment_id}],
            },
        }
        return await self._message(user_id, {"text": caption[:MAX_TEXT], "attachment": attachment})

    async def send_file(self, user_id: str, file_token: str) -> str:
        return await self._message(
            user_id, {"attachment": {"type": "file", "payload": {"token": file_token}}}
        )

    async def send_template(self, user_id: str, template_id: str, data: dict[str, str]) -> str:
        """A template (ZNS / transaction) message: allowed outside the free-reply window."""
        body = {"recipient": {"user_id": user_id}, "template_id": template_id, "template_data": data}
        result = await self._post("/v3.0/oa/message/template", json_body=body)
        return str(result.get("data", {}).get("message_id", ""))

    async def download(self, url: str, max_size: int) -> bytes:
        """A file the user sent (its URL expires): streamed, refused past `max_size`."""
        chunks: list[bytes] = []
        size = 0
        async with self.http.stream("GET", url) as response:
            response.raise_for_status()
            declared = ascii_int(response.headers.get("content-length", ""))
            if declared is not None and declared > max_size:
                raise FileTooLarge(declared)
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > max_size:
                    raise FileTooLarge(size)
                chunks.append(chunk)
        return b"".join(chunks)


class FileTooLarge(ValueError):
    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.size = size


def refresh_pair(
    http: httpx.Client, app_id: str, app_secret: str, refresh_token: str, oauth_base: str = OAUTH_BASE
) -> TokenPair:
    """Exchange the single-use refresh token for a new pair (synchronous: it runs under a row lock)."""
    response = http.post(
        f"{oauth_base.rstrip('/')}/v4/oa/access_token",
        data={"app_id": app_id, "grant_type": "refresh_token", "refresh_token": refresh_token},
        headers={"secret_key": app_secret},
    )
    response.raise_for_status()
    data = response.json()
    if "access_token" not in data:
        raise ZaloError(
            int(data.get("error", -1) or -1),
            str(data.get("error_description") or data.get("message") or json.dumps(data)),
        )
    return TokenPair(
        str(data["access_token"]), str(data["refresh_token"]), int(data.get("expires_in", 90000))
    )
