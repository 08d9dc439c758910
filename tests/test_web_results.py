"""Results on the web through aiohttp's test client: computed and previewed by the CLI's own code,
published only after a confirmation that still matches the results, downloads as the CLI exports
them; only admins act, reviewers look, units see nothing; forged forms change nothing."""

from __future__ import annotations

import csv
import io
import re
import zipfile
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient
from openpyxl import load_workbook
from sqlmodel import col, select

from bot import catalog
from bot.web.appraise import _form_inbound
from storage.admin import UnitRow
from storage.db import Database
from storage.models import AuditLog, Publication, Result
from tests.e2e_support import next_line
from tests.web_support import UNITS, WebProvince, origin, sign_in, web_province

HOSTILE = '=1+2 <script>alert("x")</script>'


@pytest.fixture
def w(db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> WebProvince:
    """The two-district province (the other commune named with markup and a formula); the commune
    25840 has answered 1.1 with a PDF."""
    units = [u if u.code != "25843" else UnitRow("25843", HOSTILE, "commune", "701") for u in UNITS]
    monkeypatch.setattr("tests.web_support.UNITS", units)
    w = web_province(db, tmp_path)
    for line in ("70,4", f"/file {w.p.files}/bao-cao.pdf", "xong"):
        w.chats["leader"].say(line)
    return w


def results(w: WebProvince) -> list[Result]:
    with w.db.session() as s:
        return list(s.exec(select(Result)))


def publications(w: WebProvince) -> list[Publication]:
    with w.db.session() as s:
        return list(s.exec(select(Publication)))


def audited(w: WebProvince, action: str) -> list[AuditLog]:
    with w.db.session() as s:
        return list(s.exec(select(AuditLog).where(AuditLog.action == action).order_by(col(AuditLog.id))))


async def compute(client: TestClient[object, object], csrf: str) -> None:
    done = await client.post(
        "/results/compute", data={"csrf": csrf}, headers=origin(client), allow_redirects=False
    )
    assert done.status == 303, await done.text()


async def preview_fingerprint(client: TestClient[object, object]) -> str:
    page = await client.get("/results/publish")
    assert page.status == 200, await page.text()
    found = re.search(r'name="fingerprint" value="([0-9a-f]+)"', await page.text())
    assert found is not None
    return found.group(1)


async def test_an_admin_computes_and_sees_scores_ranks_and_the_rules(
    w: WebProvince, client: TestClient[object, object]
) -> None:
    csrf = await sign_in(w, client, "admin")
    assert "Chưa tính kết quả cho kỳ này" in await (await client.get("/results")).text()
    await compute(client, csrf)
    rows = results(w)
    assert {r.unit_id for r in rows} == {w.unit_id("25840"), w.unit_id("25843")}
    assert all(not r.appraised and r.total == "0" for r in rows)  # nobody appraised: 0, still ranked
    (made,) = audited(w, "results.compute")
    assert made.operator is not None and made.operator.startswith(f"web:{w.member_id('admin')}")
    page = await (await client.get("/results")).text()
    assert "Xã An Bình" in page and "Huyện Một" in page
    assert "Chưa thẩm định" in page  # what the rules did: not appraised → 0
    assert "&lt;script&gt;" in page and '<script>alert("x")' not in page
    assert "Đã tính kết quả cho 2 đơn vị" in page  # the flash after the redirect


async def test_only_admins_act_reviewers_look_units_are_refused(
    w: WebProvince, client: TestClient[object, object]
) -> None:
    admin_csrf = await sign_in(w, client, "admin")
    await compute(client, admin_csrf)
    client.session.cookie_jar.clear()
    csrf = await sign_in(w, client, "district_reviewer")
    page = await client.get("/results")
    assert page.status == 200
    text = await page.text()
    assert "Xã An Bình" in text and "&lt;script&gt;" not in text  # only the district's units
    assert "/results/compute" not in text
    form = {"csrf": csrf}
    assert (await client.post("/results/compute", data=form, headers=origin(client))).status == 403
    assert (await client.post("/results/publish", data=form, headers=origin(client))).status == 403
    for path in ("/results/publish", "/results/ket-qua.xlsx", "/results/audit.csv"):
        assert (await client.get(path)).status == 403, path
    other = w.unit_id("25843")
    assert (await client.get(f"/results/evidence/{other}.zip")).status == 404  # another district
    client.session.cookie_jar.clear()
    await sign_in(w, client, "leader")
    assert (await client.get("/results")).status == 403
    assert len(audited(w, "results.compute")) == 1 and publications(w) == []


async def test_a_forged_compute_or_publish_changes_nothing(
    w: WebProvince, client: TestClient[object, object]
) -> None:
    csrf = await sign_in(w, client, "admin")
    assert (await client.post("/results/compute", data={}, headers=origin(client))).status == 403
    assert results(w) == []
    cross = {"Origin": "https://evil.example"}
    assert (await client.post("/results/compute", data={"csrf": csrf}, headers=cross)).status == 403
    assert results(w) == []
    await compute(client, csrf)
    fp = await preview_fingerprint(client)
    forged = {"fingerprint": fp, "force": "yes"}
    assert (await client.post("/results/publish", data=forged, headers=origin(client))).status == 403
    assert publications(w) == []


async def test_publishing_takes_two_steps_and_is_refused_when_stale(
    w: WebProvince, client: TestClient[object, object]
) -> None:
    csrf = await sign_in(w, client, "admin")
    await compute(client, csrf)
    seen = await preview_fingerprint(client)
    # meanwhile the commune answers another indicator and the results are computed again
    framework = catalog.framework("tay-ninh-commune-2025")
    w.chats["leader"].say(next_line(framework, w.p.session_state("leader"), {}))
    await compute(client, csrf)
    stale = await client.post(
        "/results/publish", data={"csrf": csrf, "fingerprint": seen, "force": "yes"}, headers=origin(client)
    )
    assert stale.status == 409
    assert "đã thay đổi" in await stale.text()
    assert publications(w) == []
    # the new preview: early (nobody appraised), so it says why and wants the box ticked
    page = await (await client.get("/results/publish")).text()
    assert "chưa kết thúc thẩm định" in page and 'name="force"' in page
    fresh = await preview_fingerprint(client)
    assert fresh != seen
    early = await client.post(
        "/results/publish", data={"csrf": csrf, "fingerprint": fresh}, headers=origin(client)
    )
    assert early.status == 409 and publications(w) == []
    done = await client.post(
        "/results/publish",
        data={"csrf": csrf, "fingerprint": fresh, "force": "yes"},
        headers=origin(client),
        allow_redirects=False,
    )
    assert done.status == 303, await done.text()
    (pub,) = publications(w)
    assert pub.published_by is not None and pub.published_by.startswith("web:")
    (made,) = audited(w, "results.publish")
    assert made.operator == pub.published_by
    shown = await (await client.get("/results")).text()
    assert "Đã công bố" in shown


async def test_the_exports_download_as_the_cli_writes_them(
    w: WebProvince, client: TestClient[object, object]
) -> None:
    csrf = await sign_in(w, client, "admin")
    nothing = await client.get("/results/ket-qua.xlsx")
    assert nothing.status == 409  # nothing computed yet: said, not an empty workbook
    await compute(client, csrf)
    response = await client.get("/results/ket-qua.xlsx")
    assert response.status == 200
    assert response.headers["Content-Disposition"].startswith("attachment;")
    book = load_workbook(io.BytesIO(await response.read()))
    cells = [c for sheet in book.worksheets for row in sheet.iter_rows() for c in row]
    assert all(c.data_type != "f" for c in cells)
    assert "'" + HOSTILE in [c.value for c in cells]
    audit = await client.get("/results/audit.csv")
    assert audit.status == 200
    table = list(csv.reader(io.StringIO((await audit.read()).decode("utf-8-sig"))))
    assert any("results.compute" in row for row in table)
    zipped = await client.get(f"/results/evidence/{w.unit_id('25840')}.zip")
    assert zipped.status == 200
    names = zipfile.ZipFile(io.BytesIO(await zipped.read())).namelist()
    assert any(n.endswith(".pdf") for n in names)


async def test_the_board_after_decisions_in_two_units_one_already_counted(
    w: WebProvince, client: TestClient[object, object]
) -> None:
    """The board caches each unit's appraised points; a decision in a second unit, read while the
    first unit's total is cached, is counted (it once failed with a KeyError)."""
    w.chats["leader"].say("nộp")
    w.chats["leader"].say("có")
    for line in ("80", "để sau", "nộp", "có"):
        w.chats["other_leader"].say(line)
    service = w.p.service()
    service.handle_web(
        w.member_id("province_reviewer"), _form_inbound(1, w.unit_id("25843"), "1.1", "accept:0", {})
    )
    await sign_in(w, client, "admin")
    assert (await client.get("/board")).status == 200  # 25843's appraised points now cached
    service.handle_web(
        w.member_id("district_reviewer"),
        _form_inbound(1, w.unit_id("25840"), "1.1", "adjust:0", {"points": "6,5", "comment": "Số liệu cũ"}),
    )
    board = await client.get("/board")
    assert board.status == 200
    assert "6,5" in await board.text()
