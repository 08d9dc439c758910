"""The Zalo OA client against recorded-shape answers (httpx.MockTransport): the request each call makes,
Zalo's HTTP-200 errors turned into `ZaloError` with the right meaning, long texts split at the limit,
the five-button cap, streamed downloads refused past the size limit, and the OAuth refresh exchange."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from bot.channels.zalo_client import (
    MAX_TEXT,
    FileTooLarge,
    ZaloClient,
    ZaloError,
    refresh_pair,
    split_text,
)

Handler = Callable[[httpx.Request], httpx.Response]


def client(handler: Handler, token: str = "AT") -> tuple[ZaloClient, httpx.AsyncClient]:
    async def current() -> str:
        return token

    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return ZaloClient(http, current, api_base="https://zalo.test/"), http


def ok(message_id: str = "m1") -> httpx.Response:
    return httpx.Response(200, json={"error": 0, "message": "Success", "data": {"message_id": message_id}})


async def test_send_text_posts_the_cs_message_with_the_current_token() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return ok("m42")

    zalo, http = client(handler, token="AT-current")
    async with http:
        assert await zalo.send_text("123", "Xin chào") == "m42"
    (request,) = seen
    assert str(request.url) == "https://zalo.test/v3.0/oa/message/cs"
    assert request.headers["access_token"] == "AT-current"
    assert json.loads(request.content) == {"recipient": {"user_id": "123"}, "message": {"text": "Xin chào"}}


async def test_a_long_text_is_split_at_line_breaks_under_the_limit() -> None:
    bodies: list[dict[str, object]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        return ok(f"m{len(bodies)}")

    text = "\n".join(f"Dòng {n}: " + "x" * 90 for n in range(60))  # about 6 000 characters
    zalo, http = client(handler)
    async with http:
        assert await zalo.send_text("1", text) == f"m{len(bodies)}"
    parts = [str(b["message"]["text"]) for b in bodies]  # type: ignore[index]
    assert len(parts) == 3 and all(len(p) <= MAX_TEXT for p in parts)
    assert "\n".join(parts) == text  # nothing lost, whole lines kept
    assert split_text("a" * 4500) == ["a" * 2000, "a" * 2000, "a" * 500]  # no break to cut at


async def test_buttons_are_capped_at_five_and_send_their_payload_back() -> None:
    bodies: list[dict[str, object]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        return ok()

    zalo, http = client(handler)
    async with http:
        await zalo.send_buttons("1", "Chọn:", [(f"Nút {n}", f"#dti:{n}") for n in range(7)])
    message = bodies[0]["message"]
    assert isinstance(message, dict)
    payload = message["attachment"]["payload"]
    assert payload["template_type"] == "button"
    assert [b["payload"] for b in payload["buttons"]] == [f"#dti:{n}" for n in range(5)]
    assert {b["type"] for b in payload["buttons"]} == {"oa.query.hide"}
    assert message["text"] == "Chọn:"


async def test_uploads_and_media_messages() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path.endswith("/upload/image"):
            return httpx.Response(200, json={"error": 0, "data": {"attachment_id": "att-1"}})
        if request.url.path.endswith("/upload/file"):
            return httpx.Response(200, json={"error": 0, "data": {"token": "tok-1"}})
        return ok()

    zalo, http = client(handler)
    async with http:
        assert await zalo.upload_image(b"\x89PNG...", "chart.png") == "att-1"
        assert await zalo.upload_file(b"PK...", "ket-qua.xlsx") == "tok-1"
        await zalo.send_image("1", "att-1", "Biểu đồ")
        await zalo.send_file("1", "tok-1")
    assert b'filename="chart.png"' in seen[0].content and b"\x89PNG..." in seen[0].content
    assert b'filename="ket-qua.xlsx"' in seen[1].content
    image = json.loads(seen[2].content)["message"]
    assert image["attachment"]["payload"]["elements"] == [{"media_type": "image", "attachment_id": "att-1"}]
    assert image["text"] == "Biểu đồ"
    assert json.loads(seen[3].content)["message"]["attachment"] == {
        "type": "file",
        "payload": {"token": "tok-1"},
    }


async def test_template_message_goes_to_the_template_endpoint() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"error": 0, "data": {"message_id": "t1"}})

    zalo, http = client(handler)
    async with http:
        assert await zalo.send_template("1", "TPL-9", {"noi_dung": "Còn 3 ngày"}) == "t1"
    assert seen[0].url.path == "/v3.0/oa/message/template"
    assert json.loads(seen[0].content) == {
        "recipient": {"user_id": "1"},
        "template_id": "TPL-9",
        "template_data": {"noi_dung": "Còn 3 ngày"},
    }


@pytest.mark.parametrize(
    ("code", "token_invalid", "outside_window", "rate_limited"),
    [
        (-216, True, False, False),
        (-124, True, False, False),
        (-230, False, True, False),
        (-32, False, False, True),
    ],
)
async def test_http_200_errors_raise_with_their_meaning(
    code: int, token_invalid: bool, outside_window: bool, rate_limited: bool
) -> None:
    zalo, http = client(lambda _r: httpx.Response(200, json={"error": code, "message": "nope"}))
    async with http:
        with pytest.raises(ZaloError) as caught:
            await zalo.send_text("1", "x")
    error = caught.value
    assert error.code == code and "nope" in str(error)
    assert (error.token_invalid, error.outside_window, error.rate_limited) == (
        token_invalid,
        outside_window,
        rate_limited,
    )


async def test_an_http_failure_is_not_mistaken_for_success() -> None:
    zalo, http = client(lambda _r: httpx.Response(502, text="Bad gateway"))
    async with http:
        with pytest.raises(httpx.HTTPStatusError):
            await zalo.send_text("1", "x")


async def test_download_streams_and_refuses_past_the_limit() -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(2):
            yield b"a" * 600

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/small":
            return httpx.Response(200, content=b"a" * 100)
        if request.url.path == "/declared":
            return httpx.Response(200, content=b"a" * 10, headers={"content-length": "999999"})
        return httpx.Response(200, content=chunks())  # chunked, no declared length

    zalo, http = client(handler)
    async with http:
        assert await zalo.download("https://files.test/small", 1000) == b"a" * 100
        with pytest.raises(FileTooLarge) as declared:
            await zalo.download("https://files.test/declared", 1000)
        assert declared.value.size == 999999
        with pytest.raises(FileTooLarge):
            await zalo.download("https://files.test/streamed", 1000)


def test_refresh_pair_exchanges_the_refresh_token() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(
            200, json={"access_token": "AT-2", "refresh_token": "RT-2", "expires_in": "90000"}
        )

    with httpx.Client(transport=httpx.MockTransport(handler)) as http:
        pair = refresh_pair(http, "3001", "secret", "RT-1", "https://oauth.test")
    assert (pair.access_token, pair.refresh_token, pair.expires_in) == ("AT-2", "RT-2", 90000)
    request = seen[0]
    assert str(request.url) == "https://oauth.test/v4/oa/access_token"
    assert request.headers["secret_key"] == "secret"
    assert dict(httpx.QueryParams(request.content.decode())) == {
        "app_id": "3001",
        "grant_type": "refresh_token",
        "refresh_token": "RT-1",
    }


def test_a_refused_refresh_raises_with_zalo_s_reason() -> None:
    answer = {"error": -14014, "error_description": "Invalid refresh token"}
    with (
        httpx.Client(transport=httpx.MockTransport(lambda _r: httpx.Response(200, json=answer))) as http,
        pytest.raises(ZaloError) as caught,
    ):
        refresh_pair(http, "3001", "secret", "RT-spent", "https://oauth.test")
    assert caught.value.code == -14014 and "Invalid refresh token" in str(caught.value)
    assert not caught.value.token_invalid
