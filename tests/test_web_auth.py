"""Signing in to the web workspace: a link asked for in the chat (through the service and engine,
audited, rate limited), used once within ten minutes, a session cookie found again in the database,
sign-out (here and everywhere), CSRF and cross-site refusal."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient
from sqlmodel import col, select

from bot.web.auth import COOKIE
from storage.db import Database
from storage.models import AuditLog, WebLink, WebSession
from tests.web_support import LINK, WebProvince, origin, sign_in, web_province


@pytest.fixture
def w(db: Database, tmp_path: Path) -> WebProvince:
    return web_province(db, tmp_path)


async def test_a_link_from_the_chat_signs_in_once(w: WebProvince, client: TestClient[object, object]) -> None:
    link = w.link("admin")
    path = "/login/" + link.rsplit("/login/", 1)[1]
    assert link.startswith("http://127.0.0.1")
    with w.db.session() as s:
        (row,) = s.exec(select(WebLink)).all()
        assert row.token_sha256 not in link  # only the hash is stored
        assert row.expires_at - row.created_at == dt.timedelta(minutes=10)
        audit = s.exec(select(AuditLog).where(AuditLog.action == "web.link_issued")).one()
        assert audit.channel == "console"
    page = await client.get(path)  # opening the link (a messenger's preview) does not use it
    assert "Đăng nhập" in await page.text()
    done = await client.post(path, headers=origin(client), allow_redirects=False)
    assert done.status == 303
    cookie = done.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie  # http base URL
    board = await client.get("/board")
    assert board.status == 200
    assert "Bảng tiến độ" in await board.text()
    again = await client.post(path, headers=origin(client), allow_redirects=False)  # reused
    assert again.status == 410
    assert "đã được dùng" in await again.text()
    with w.db.session() as s:
        assert len(s.exec(select(WebSession)).all()) == 1


async def test_an_expired_or_unknown_link_is_a_clear_page(
    w: WebProvince, client: TestClient[object, object]
) -> None:
    link = w.link("leader")
    path = "/login/" + link.rsplit("/login/", 1)[1]
    w.p.clock_value += dt.timedelta(minutes=11)
    expired = await client.post(path, headers=origin(client), allow_redirects=False)
    assert expired.status == 410
    text = await expired.text()
    assert "hết hạn" in text and "đăng nhập web" in text
    unknown = await client.get("/login/khong-co-that")
    assert unknown.status == 404
    assert "không đúng" in await unknown.text()
    with w.db.session() as s:
        assert s.exec(select(WebSession)).all() == []


async def test_links_are_rate_limited_and_the_refusal_audited(w: WebProvince) -> None:
    for _ in range(5):
        w.link("respondent")
    out = w.chats["respondent"].say("/web")
    assert "/login/" not in out and "5" in out
    with w.db.session() as s:
        assert len(s.exec(select(WebLink)).all()) == 5
        assert s.exec(select(AuditLog).where(AuditLog.action == "web.link_refused")).one()


async def test_without_the_cookie_the_workspace_asks_to_sign_in(
    w: WebProvince, client: TestClient[object, object]
) -> None:
    page = await client.get("/board")
    assert page.status == 401
    assert "đăng nhập web" in await page.text()
    client.session.cookie_jar.update_cookies({COOKIE: "mot-cookie-gia"})
    page = await client.get(f"/units/{w.unit_id('25840')}")
    assert page.status == 401


async def test_a_forged_or_cross_site_form_is_refused(
    w: WebProvince, client: TestClient[object, object]
) -> None:
    csrf = await sign_in(w, client, "admin")
    no_token = await client.post("/logout/everywhere", headers=origin(client), data={})
    assert no_token.status == 403
    assert "giả mạo" in await no_token.text() or "mã bảo vệ" in await no_token.text()
    wrong = await client.post("/logout/everywhere", headers=origin(client), data={"csrf": csrf + "x"})
    assert wrong.status == 403
    cross = await client.post(
        "/logout/everywhere", headers={"Origin": "https://evil.example"}, data={"csrf": csrf}
    )
    assert cross.status == 403
    assert (await client.get("/board")).status == 200  # still signed in: nothing changed


async def test_sign_out_everywhere_ends_every_session(
    w: WebProvince, client: TestClient[object, object]
) -> None:
    other = w.app_client()
    await other.start_server()
    try:
        await sign_in(w, other, "admin")
        csrf = await sign_in(w, client, "admin")
        assert (await other.get("/board")).status == 200
        out = await client.post("/logout/everywhere", headers=origin(client), data={"csrf": csrf})
        assert out.status == 200 and "đã đăng xuất" in (await out.text()).lower()
        assert (await other.get("/board")).status == 401
        assert (await client.get("/board")).status == 401
    finally:
        await other.close()
    with w.db.session() as s:
        assert all(r.revoked_at is not None for r in s.exec(select(WebSession)))
        assert s.exec(select(AuditLog).where(col(AuditLog.action) == "web.signout_everywhere")).one()


async def test_a_session_idle_too_long_ends(w: WebProvince, client: TestClient[object, object]) -> None:
    await sign_in(w, client, "leader")
    w.p.clock_value += dt.timedelta(hours=9)
    assert (await client.get("/")).status == 401


async def test_a_link_asked_for_on_telegram_signs_in(db: Database, tmp_path: Path) -> None:
    """The same request over Telegram (the aiogram channel and the fake Bot API): the link arrives in
    the chat and opens the member's unit in the browser."""
    from tests.e2e_support import make_province
    from tests.fake_telegram import FakeTelegram, Limits
    from tests.test_telegram import Harness

    fake = FakeTelegram(limits=Limits(chat_interval=0.0, per_second=10_000))
    await fake.start()
    p = make_province(db, tmp_path)
    h = Harness(fake, p, "polling")
    await h.start()
    try:
        await h.text(f"/start {p.invite('25840', 'leader')}")
        out = await h.text("đăng nhập web")
    finally:
        await h.stop()
        await fake.stop()
    found = LINK.search(out)
    assert found is not None, out
    w = WebProvince(p)
    client = w.app_client()
    await client.start_server()
    try:
        path = "/login/" + found.group(1).rsplit("/login/", 1)[1]
        done = await client.post(path, headers=origin(client))
        assert done.status == 200 and "Xã An Bình" in await done.text()  # their unit's page
        with db.session() as s:
            audit = s.exec(select(AuditLog).where(AuditLog.action == "web.link_issued")).one()
            assert audit.channel == "telegram"
    finally:
        await client.close()
