"""A province with two districts for the web workspace's tests, its members joined through the
console chat, and a browser (aiohttp's test client) signed in the way a member signs in: asking the
chat for a link, opening it and pressing its button."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer
from sqlmodel import select

from bot.web.app import make_app
from scoring.answers import VIETNAM_TZ
from storage.admin import UnitRow
from storage.db import Database
from storage.evidence import EvidenceStore
from storage.models import Member, Unit
from tests.e2e_support import Province, open_province, pdf_bytes, png_bytes
from tests.test_state_rules_storage import Chat

BASE_URL = "http://127.0.0.1"
UNITS = [
    UnitRow("70000", "Tỉnh Tây Ninh", "province", None),
    UnitRow("700", "Huyện Một", "district", "70000"),
    UnitRow("701", "Huyện Hai", "district", "70000"),
    UnitRow("25840", "Xã An Bình", "commune", "700"),
    UnitRow("25843", "Xã Hòa Thành", "commune", "701"),
]
# who, their unit and role: a province admin, a province reviewer, a district reviewer (of 700), a
# commune's leader and respondent (25840), and the other district's commune leader (25843)
PEOPLE = {
    "admin": ("70000", "admin"),
    "province_reviewer": ("70000", "reviewer"),
    "district_reviewer": ("700", "reviewer"),
    "leader": ("25840", "leader"),
    "respondent": ("25840", "respondent"),
    "other_leader": ("25843", "leader"),
}
LINK = re.compile(r"(https?://\S+/login/[A-Za-z0-9_\-]+)")


@dataclass
class WebProvince:
    p: Province
    chats: dict[str, Chat] = field(default_factory=dict)

    @property
    def db(self) -> Database:
        return self.p.db

    def unit_id(self, code: str) -> int:
        with self.db.session() as s:
            found = s.exec(select(Unit.id).where(Unit.code == code)).one()
            assert found is not None
            return found

    def member_id(self, who: str) -> int:
        with self.db.session() as s:
            found = s.exec(select(Member.id).where(Member.chat_id == who)).one()
            assert found is not None
            return found

    def link(self, who: str) -> str:
        """A sign-in link asked for in the member's chat."""
        out = self.chats[who].say("đăng nhập web")
        found = LINK.search(out)
        assert found is not None, out
        return found.group(1)

    def app_client(self) -> TestClient[object, object]:
        app = make_app(self.db, self.p.store, self.p.service(), self.p.clock, BASE_URL)
        return TestClient(TestServer(app))  # type: ignore[return-value]


def web_province(db: Database, tmp: Path, people: dict[str, tuple[str, str]] = PEOPLE) -> WebProvince:
    store = EvidenceStore(tmp / "evidence")
    files = tmp / "files"
    files.mkdir()
    (files / "bao-cao.pdf").write_bytes(pdf_bytes("bao cao"))
    (files / "anh-chup.png").write_bytes(png_bytes())
    open_province(db, UNITS, dt.datetime(2027, 1, 15, 17, 0, tzinfo=VIETNAM_TZ))
    p = Province(db, store, files)
    w = WebProvince(p)
    for who, (unit, role) in people.items():
        w.chats[who] = Chat(p, who, p.invite(unit, role))
    return w


def origin(client: TestClient[object, object]) -> dict[str, str]:
    url = client.make_url("/")
    return {"Origin": f"{url.scheme}://{url.host}:{url.port}"}


async def sign_in(w: WebProvince, client: TestClient[object, object], who: str) -> str:
    """Sign the browser in as `who`; the session's CSRF token."""
    path = "/login/" + w.link(who).rsplit("/login/", 1)[1]
    page = await client.get(path)
    assert page.status == 200, await page.text()
    done = await client.post(path, headers=origin(client), allow_redirects=False)
    assert done.status == 303, await done.text()
    return await csrf_of(client)


async def csrf_of(client: TestClient[object, object]) -> str:
    page = await client.get("/signed-in-check-csrf")  # any page with the layout: a 404 page has it too
    text = await page.text()
    found = re.search(r'name="csrf" value="([^"]+)"', text)
    assert found is not None, text
    return found.group(1)
