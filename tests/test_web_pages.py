"""The web workspace's pages end to end through aiohttp's test client: who sees what (every role ×
every page × own and other unit or district), the board and its xlsx, a unit and its evidence files,
uploads, appraisal through the chat's engine (racing the chat), escaping, and a database that is down."""

from __future__ import annotations

import io
from decimal import Decimal
from pathlib import Path

import pytest
from aiohttp import FormData
from aiohttp.test_utils import TestClient
from openpyxl import load_workbook
from sqlalchemy.exc import OperationalError
from sqlmodel import select

from bot.service import resolve_framework
from storage.admin import UnitRow
from storage.db import Database
from storage.models import AppraisalDecision, AuditLog, Outbox, Reminder
from tests.e2e_support import pdf_bytes
from tests.test_state_rules_storage import status
from tests.web_support import PEOPLE, UNITS, WebProvince, origin, sign_in, web_province

HOSTILE = '=1+2 <script>alert("x")</script>'


@pytest.fixture
def w(db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> WebProvince:
    """The two-district province, the other district's commune named with markup and a formula; the
    commune 25840 has answered 1.1 with a file and submitted."""
    units = [u if u.code != "25843" else UnitRow("25843", HOSTILE, "commune", "701") for u in UNITS]
    monkeypatch.setattr("tests.web_support.UNITS", units)
    w = web_province(db, tmp_path)
    leader = w.chats["leader"]
    for line in ("70,4", f"/file {w.p.files}/bao-cao.pdf", "xong", "nộp", "có"):
        leader.say(line)
    return w


def the_file(w: WebProvince) -> str:
    (ev,) = w.p.evidence("25840")
    assert ev.sha256 is not None
    return ev.sha256


# role -> what they may open: "own" is the commune 25840 (district 700), "other" 25843 (district 701)
ALLOWED = {
    "admin": {"board", "own", "other"},
    "province_reviewer": {"board", "own", "other", "appraise", "appraise_other"},
    "district_reviewer": {"board", "own", "appraise", "appraise_own"},
    "leader": {"own"},
    "respondent": {"own"},
    "other_leader": {"other"},
}


async def test_every_role_sees_only_its_units(w: WebProvince) -> None:
    own, other, sha = w.unit_id("25840"), w.unit_id("25843"), the_file(w)
    pages = {
        "/board": "board",
        "/board.xlsx": "board",
        "/board/chart.png": "board",
        f"/units/{own}": "own",
        f"/units/{own}/indicators/1.1": "own",
        f"/units/{own}/files/{sha}": "own",
        f"/units/{other}": "other",
        f"/units/{other}/indicators/1.1": "other",
        f"/units/{other}/files/{sha}": "other",  # a file of another unit, named under this one
        "/appraise": "appraise",
        f"/appraise/{own}/1.1": "appraise_own",
        f"/appraise/{other}/1.1": "appraise_other",
    }
    for who in PEOPLE:
        client = w.app_client()
        await client.start_server()
        try:
            await sign_in(w, client, who)
            for path, needs in pages.items():
                response = await client.get(path)
                allowed = needs in ALLOWED[who]
                if path == f"/units/{other}/files/{sha}" and allowed:
                    assert response.status == 404, (who, path)  # not that unit's evidence
                elif allowed:
                    assert response.status == 200, (who, path, await response.text())
                else:
                    assert response.status == 403, (who, path, response.status)
                    assert "Không có quyền" in await response.text()
            assert (await client.get("/units/999999")).status == 403
            assert (await client.get("/units/abc")).status == 404
        finally:
            await client.close()


async def test_the_board_shows_progress_and_filters(
    w: WebProvince, client: TestClient[object, object]
) -> None:
    await sign_in(w, client, "admin")
    page = await (await client.get("/board")).text()
    assert "Xã An Bình" in page and "1/62" in page and "Đã nộp" in page
    assert "&lt;script&gt;" in page and '<script>alert("x")' not in page  # escaped
    only = await (await client.get("/board?state=submitted")).text()
    assert "Xã An Bình" in only and "&lt;script&gt;" not in only
    searched = await client.get("/board?q=an+b%C3%ACnh", headers={"HX-Request": "true"})
    part = await searched.text()
    assert "<table" in part and "<html" not in part and "Xã An Bình" in part  # htmx gets the table only
    district = await (await client.get(f"/board?district={w.unit_id('701')}")).text()
    assert "Xã An Bình" not in district and "&lt;script&gt;" in district
    chart = await client.get("/board/chart.png")
    assert chart.content_type == "image/png" and (await chart.read()).startswith(b"\x89PNG")


async def test_the_board_counts_points_and_reminders(
    w: WebProvince, client: TestClient[object, object]
) -> None:
    from bot import catalog
    from storage.board import board, periods

    own = w.unit_id("25840")
    leader = w.member_id("leader")
    with w.db.session() as s:
        sent = Outbox(channel="console", chat_id="leader", payload_json="{}", status="sent")
        s.add(sent)
        s.flush()
        due = w.p.clock_value
        for n, status in enumerate(("queued", "queued", "deferred", "undeliverable")):
            row = Reminder(
                member_id=leader,
                period_id=1,
                deadline="self_assessment_due",
                offset_key=f"{n}d",
                planned_at=due,
                send_at=due,
                status=status,
                outbox_id=sent.id if n == 0 else None,
            )
            s.add(row)
    csrf = await sign_in(w, client, "district_reviewer")
    await client.post(
        f"/appraise/{own}/1.1/decide",
        data={"csrf": csrf, "action": "adjust", "revision": "0", "points": "6,5", "comment": "Số liệu cũ"},
        headers=origin(client),
    )
    indicator = catalog.framework("tay-ninh-commune-2025").indicator("1.1")
    assert indicator is not None
    with w.db.session() as s:
        (row,) = [r for r in board(s, periods(s, resolve_framework)[0], None) if r.unit_id == own]
    assert row.claimed == indicator.points(Decimal("70.4")) and row.appraised == Decimal("6.5")
    assert row.reminders == {"sent": 1, "queued": 1, "deferred": 1, "undeliverable": 1}
    assert (row.answered, row.evidence_missing, row.status) == (1, 0, "submitted")
    page = await (await client.get("/board")).text()
    assert "1 / 1 / 1 / 1" in page and "6,5" in page


async def test_the_board_download_is_text_never_formulas(
    w: WebProvince, client: TestClient[object, object]
) -> None:
    await sign_in(w, client, "admin")
    response = await client.get("/board.xlsx")
    assert response.status == 200
    sheet = load_workbook(io.BytesIO(await response.read())).active
    assert sheet is not None
    rows = [[c.value for c in row] for row in sheet.iter_rows()]
    cells = [c for row in sheet.iter_rows() for c in row]
    assert all(c.data_type != "f" for c in cells)
    assert rows[1][:2] == ["25840", "Xã An Bình"] and rows[1][4] == 1
    assert rows[2][1] == "'" + HOSTILE


async def test_a_unit_and_its_evidence_in_the_browser(
    w: WebProvince, client: TestClient[object, object]
) -> None:
    await sign_in(w, client, "district_reviewer")
    own = w.unit_id("25840")
    page = await (await client.get(f"/units/{own}")).text()
    assert "st-answered" in page and "Đã nộp" in page
    assert (
        "Trả lời chỉ tiêu" in page and "Thêm minh chứng" in page and "assessment.status" in page
    )  # audit trail
    detail = await (await client.get(f"/units/{own}/indicators/1.1")).text()
    sha = the_file(w)
    assert f"/units/{own}/files/{sha}" in detail and "70,4" in detail and "<object" in detail
    pdf = await client.get(f"/units/{own}/files/{sha}")
    assert pdf.content_type == "application/pdf"
    assert pdf.headers["Content-Disposition"].startswith("inline;")
    assert (await pdf.read()) == pdf_bytes("bao cao")
    assert (await client.get(f"/units/{own}/files/{'0' * 64}")).status == 404


async def test_a_member_uploads_evidence_and_a_refused_type_changes_nothing(
    w: WebProvince, client: TestClient[object, object]
) -> None:
    csrf = await sign_in(w, client, "respondent")
    own = w.unit_id("25840")
    form = FormData(quote_fields=False)  # as a browser sends a name
    form.add_field("csrf", csrf)
    form.add_field(
        "file",
        pdf_bytes("tu may tinh"),
        filename="<img src=x onerror=alert(1)>.pdf",
        content_type="application/pdf",
    )
    done = await client.post(f"/units/{own}/indicators/1.1/evidence", data=form, headers=origin(client))
    assert done.status == 200  # followed the redirect to the indicator
    text = await done.text()
    assert "Đã nhận tệp" in text and "<img src=x" not in text and "&lt;img src=x onerror" in text
    assert len(w.p.evidence("25840")) == 2
    assert w.p.evidence("25840")[-1].channel == "web"
    bad = FormData()
    bad.add_field("csrf", csrf)
    bad.add_field("file", b"MZ\x90\x00" + b"\x00" * 60, filename="virus.pdf", content_type="application/pdf")
    refused = await client.post(f"/units/{own}/indicators/1.1/evidence", data=bad, headers=origin(client))
    assert refused.status == 415
    assert "không phải PDF" in await refused.text()
    assert len(w.p.evidence("25840")) == 2
    other = w.unit_id("25843")
    elsewhere = FormData()
    elsewhere.add_field("csrf", csrf)
    elsewhere.add_field("file", pdf_bytes("x"), filename="x.pdf", content_type="application/pdf")
    forbidden = await client.post(
        f"/units/{other}/indicators/1.1/evidence", data=elsewhere, headers=origin(client)
    )
    assert forbidden.status == 403
    assert len(w.p.evidence("25843")) == 0


async def test_web_and_chat_appraisal_of_one_indicator_race(
    w: WebProvince, client: TestClient[object, object]
) -> None:
    csrf = await sign_in(w, client, "district_reviewer")
    own = w.unit_id("25840")
    page = await (await client.get(f"/appraise/{own}/1.1")).text()
    assert "Chấp nhận" in page and "Điều chỉnh điểm" in page and "Yêu cầu bổ sung" in page
    chat = w.chats["district_reviewer"]
    chat.say("danh sách")
    chat.say("#1")  # the chat shows 1.1 at revision 0
    decided = await client.post(
        f"/appraise/{own}/1.1/decide",
        data={"csrf": csrf, "action": "adjust", "revision": "0", "points": "6,5", "comment": "Số liệu cũ"},
        headers=origin(client),
    )
    assert decided.status == 200 and str(decided.url.path).endswith("/1.2")  # recorded: on to the next one
    assert "1.1: điều chỉnh" in await decided.text()
    out = chat.say("#1")  # Chấp nhận, on what the chat still shows
    assert "vừa được người thẩm định khác quyết định" in out
    stale = await client.post(
        f"/appraise/{own}/1.1/decide",
        data={"csrf": csrf, "action": "accept", "revision": "0"},
        headers=origin(client),
    )
    assert str(stale.url.path).endswith("/1.1")
    assert "vừa được người thẩm định khác quyết định" in await stale.text()
    with w.db.session() as s:
        (decision,) = s.exec(select(AppraisalDecision)).all()
        assert (decision.decision, decision.appraised_points) == ("adjust", "6.5")
        audit = s.exec(select(AuditLog).where(AuditLog.action == "appraisal.decide")).one()
        assert audit.channel == "web"


async def test_a_decision_outside_the_scope_or_without_csrf_changes_nothing(
    w: WebProvince, client: TestClient[object, object]
) -> None:
    csrf = await sign_in(w, client, "district_reviewer")
    other, own = w.unit_id("25843"), w.unit_id("25840")
    form = {"csrf": csrf, "action": "accept", "revision": "0"}
    assert (
        await client.post(f"/appraise/{other}/1.1/decide", data=form, headers=origin(client))
    ).status == 403
    forged = {"action": "accept", "revision": "0"}
    assert (
        await client.post(f"/appraise/{own}/1.1/decide", data=forged, headers=origin(client))
    ).status == 403
    with w.db.session() as s:
        assert s.exec(select(AppraisalDecision)).all() == []


async def test_closing_before_every_decision_is_told(
    w: WebProvince, client: TestClient[object, object]
) -> None:
    csrf = await sign_in(w, client, "district_reviewer")
    own = w.unit_id("25840")
    done = await client.post(
        f"/appraise/{own}/do/close", data={"csrf": csrf, "back": "1.1"}, headers=origin(client)
    )
    assert done.status == 200
    assert "Chưa kết thúc được" in await done.text()
    assert status(w.db) == "submitted"


async def test_a_database_that_is_down_is_a_503_page(
    w: WebProvince, client: TestClient[object, object], monkeypatch: pytest.MonkeyPatch
) -> None:
    await sign_in(w, client, "admin")

    def down(*args: object) -> None:
        raise OperationalError("SELECT", {}, Exception("connection refused"))

    monkeypatch.setattr("storage.web.signed_in", down)
    page = await client.get("/board")
    assert page.status == 503
    assert "tạm thời" in await page.text()


async def test_pages_are_in_the_members_language(w: WebProvince, client: TestClient[object, object]) -> None:
    w.chats["leader"].say("english")
    await sign_in(w, client, "leader")
    page = await (await client.get(f"/units/{w.unit_id('25840')}")).text()
    assert "Audit trail" in page and "Nhật ký thay đổi" not in page and 'lang="en"' in page


async def test_the_board_pages_and_sorts(
    w: WebProvince, client: TestClient[object, object], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("bot.web.board.PAGE", 1)
    await sign_in(w, client, "admin")
    first = await (await client.get("/board?sort=code")).text()
    assert "Xã An Bình" in first and "&lt;script&gt;" not in first and "Trang 1/2" in first
    assert "page=2" in first
    second = await (await client.get("/board?sort=code&page=2")).text()
    assert "Xã An Bình" not in second and "&lt;script&gt;" in second
    backwards = await (await client.get("/board?sort=code&dir=desc")).text()
    assert "&lt;script&gt;" in backwards and "Xã An Bình" not in backwards
    download = load_workbook(
        io.BytesIO(await (await client.get("/board.xlsx?sort=code&page=2")).read())
    ).active
    assert download is not None and download.max_row == 3  # every row the filters keep, not a page


async def test_a_hostile_answer_is_shown_as_text(w: WebProvince, client: TestClient[object, object]) -> None:
    respondent = w.chats["other_leader"]
    respondent.say("câu 3.1")
    respondent.say("không áp dụng")
    respondent.say('<img src=x onerror=alert(1)> "Không có hệ thống"')
    await sign_in(w, client, "admin")
    page = await (await client.get(f"/units/{w.unit_id('25843')}/indicators/3.1")).text()
    assert "&lt;img src=x onerror=alert(1)&gt;" in page and "<img src=x" not in page
    assert "&#34;Không có hệ thống&#34;" in page or "&quot;Không có hệ thống&quot;" in page


async def test_an_extended_deadline_shows_on_the_board(
    w: WebProvince, client: TestClient[object, object]
) -> None:
    import datetime as dt

    from storage.models import Extension

    due = dt.datetime(2027, 2, 1, 10, 0, tzinfo=dt.UTC)
    with w.db.session() as s:
        s.add(
            Extension(
                period_id=1,
                unit_id=w.unit_id("25840"),
                deadline="self_assessment_due",
                due_at=due,
                reason="Bão lũ",
            )
        )
    await sign_in(w, client, "admin")
    page = await (await client.get("/board?q=25840")).text()
    assert "01/02/2027 17:00" in page and "gia hạn" in page  # Vietnam time
    other = await (await client.get("/board?q=25843")).text()
    assert "15/01/2027 17:00" in other and "gia hạn" not in other


async def test_a_file_larger_than_the_limit_is_a_clear_page(
    w: WebProvince, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("bot.web.app.MAX_UPLOAD", 4096)
    client = w.app_client()
    await client.start_server()
    try:
        csrf = await sign_in(w, client, "respondent")
        form = FormData()
        form.add_field("csrf", csrf)
        form.add_field(
            "file", pdf_bytes("x") + b"\0" * 8000, filename="to.pdf", content_type="application/pdf"
        )
        own = w.unit_id("25840")
        response = await client.post(
            f"/units/{own}/indicators/1.1/evidence", data=form, headers=origin(client)
        )
        assert response.status == 413
        assert "Tệp quá lớn" in await response.text()
        assert len(w.p.evidence("25840")) == 1
    finally:
        await client.close()
