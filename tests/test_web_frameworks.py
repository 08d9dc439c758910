"""A province's annex through the web workspace (aiohttp's test client): a province admin uploads
each annex layout and sees the CLI's import report, downloads it as a workbook, adopts the framework
into the province's frameworks directory (then `dtibot framework validate/show` accept it, a period
opens on it and the chat asks its questions); a bad annex adopts nothing; other roles get 403; forged
forms are refused; rule texts are escaped."""

from __future__ import annotations

import datetime as dt
import html
import io
import re
from pathlib import Path

import pytest
from aiohttp import FormData
from aiohttp.test_utils import TestClient
from openpyxl import load_workbook
from sqlalchemy.exc import OperationalError
from sqlmodel import select

from bot import catalog
from bot.annex_files import import_annex_file
from bot.cli import main
from bot.i18n import Translator
from bot.render.annex import report_sheet
from bot.sheets import text_cell
from bot.web.frameworks import MAX_ANNEX
from storage.db import Database
from storage.models import AuditLog, Period
from tests.test_state_rules_storage import Chat
from tests.web_support import WebProvince, origin, sign_in, web_province

DATA = Path(__file__).parent / "data"
FIXTURES = ("annex-merged-header.xlsx", "annex-nested-header.docx", "annex.csv")
VI = Translator("vi")
HOSTILE = '<script>alert("x")</script> =1+2'


@pytest.fixture
def frameworks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "province-frameworks"
    folder.mkdir()
    monkeypatch.setenv("DTI_FRAMEWORKS_DIR", str(folder))
    return folder


@pytest.fixture
def w(db: Database, tmp_path: Path, frameworks: Path) -> WebProvince:
    return web_province(db, tmp_path)


def annex_form(csrf: str, name: str, data: bytes) -> FormData:
    form = FormData()
    form.add_field("csrf", csrf)
    form.add_field("file", io.BytesIO(data), filename=name, content_type="application/octet-stream")
    return form


async def upload(client: TestClient[object, object], csrf: str, name: str, data: bytes) -> str:
    """Upload an annex as the form does; the address of its report."""
    sent = await client.post(
        "/frameworks/import", data=annex_form(csrf, name, data), headers=origin(client), allow_redirects=False
    )
    assert sent.status == 303, await sent.text()
    return sent.headers["Location"]


def cells_of(page: str) -> list[list[str]]:
    """The report table's rows as the browser shows their texts (tags dropped, entities decoded)."""
    body = page.split('<table class="annex-report">', 1)[1].split("</table>", 1)[0]
    rows = []
    for row in re.findall(r"<tr[^>]*>(.*?)</tr>", body, re.S):
        cells = re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S)
        rows.append([html.unescape(re.sub(r"<[^>]+>", "\n", c)).strip() for c in cells])
    return rows


def csv_annex(old: str, new: str) -> bytes:
    text = (DATA / "annex.csv").read_text(encoding="utf-8")
    assert old in text
    return text.replace(old, new, 1).encode("utf-8")


@pytest.mark.parametrize("name", FIXTURES)
async def test_each_annex_layout_shows_the_clis_report_and_downloads_it(
    w: WebProvince, client: TestClient[object, object], name: str
) -> None:
    csrf = await sign_in(w, client, "admin")
    data = (DATA / name).read_bytes()
    report = await upload(client, csrf, name, data)
    page = await client.get(report)
    text = await page.text()
    assert page.status == 200, text
    expected = import_annex_file(data, name)
    assert expected.ok and len(expected.report) >= 7
    shown = cells_of(text)
    sheet = report_sheet(VI, expected.report)
    assert shown[0] == sheet[0]
    # every indicator, the rule text beside its reading, in the CLI's order (not understood first)
    assert [r[:2] for r in shown[1:]] == [r[:2] for r in sheet[1:]]
    for got, want in zip(shown[1:], sheet[1:], strict=True):
        assert got[4] == want[4].strip() and got[5] == want[5] and got[7] == want[7]
    assert shown[1][7] == VI("annex.confidence.low")  # the self-assessed rule leads the report
    choice = next(r for r in shown if r[1] == "1.1")
    assert "Trưởng ban là Chủ tịch UBND → 10" in choice[5] and "Trưởng ban là Phó Chủ tịch → 5" in choice[5]
    ratio = next(r for r in shown if r[1] == "1.3")
    assert "a = Số văn bản đi được ký số" in ratio[5] and "b = Tổng số văn bản đi của UBND xã" in ratio[5]
    assert 'action="' + report + '/adopt"' in text
    assert VI("web.fw.report.nothing_adopted") not in text
    download = await client.get(report + "/report.xlsx")
    assert download.status == 200
    book = load_workbook(io.BytesIO(await download.read()))
    rows = [["" if v is None else str(v) for v in r] for r in book.active.iter_rows(values_only=True)]
    assert rows == [[str(text_cell(c)) for c in r] for r in sheet]  # as the CLI writes it


async def test_a_duplicate_code_names_its_row_and_adopts_nothing(
    w: WebProvince, client: TestClient[object, object], frameworks: Path
) -> None:
    csrf = await sign_in(w, client, "admin")
    data = csv_annex("\n1.3,", "\n1.1,")
    report = await upload(client, csrf, "phu-luc.csv", data)
    text = await (await client.get(report)).text()
    expected = import_annex_file(data, "phu-luc.csv")
    assert not expected.ok and expected.errors
    (problem,) = [p for p in expected.errors if p.key == "annex.duplicate_code"] or expected.errors[:1]
    where = VI("where.row", source="phu-luc.csv", row=problem.row)
    assert html.escape(where, quote=False) in text or html.escape(where) in text
    assert VI("web.fw.report.nothing_adopted") in text
    assert "/adopt" not in text
    form = {"csrf": csrf, "id": "tinh-xau", "version": "1", "title": "x", "level": "commune"}
    refused = await client.post(report + "/adopt", data=form, headers=origin(client), allow_redirects=False)
    assert refused.status == 400
    assert list(frameworks.iterdir()) == []
    with w.db.session() as s:
        assert s.exec(select(AuditLog).where(AuditLog.action == "framework.adopt")).all() == []


async def test_adopted_framework_validates_opens_a_period_and_the_chat_asks_its_questions(
    w: WebProvince, client: TestClient[object, object], frameworks: Path, tmp_path: Path
) -> None:
    csrf = await sign_in(w, client, "admin")
    report = await upload(
        client, csrf, "annex-nested-header.docx", (DATA / "annex-nested-header.docx").read_bytes()
    )
    form = {"csrf": csrf, "id": "tinh-commune-2026", "version": "2026.1", "title": "Bộ chỉ số xã 2026"}
    decision = {"decision_number": "1949/QĐ-UBND", "decision_date": "23/11/2026", "issuer": "UBND tỉnh"}
    done = await client.post(
        report + "/adopt",
        data={**form, **decision, "level": "commune"},
        headers=origin(client),
        allow_redirects=False,
    )
    assert done.status == 303, await done.text()
    listed = await (await client.get(done.headers["Location"])).text()
    assert VI("web.fw.adopted", key="tinh-commune-2026@2026.1", indicators=7) in listed
    assert 'id="fw-tinh-commune-2026"' in listed
    assert client.app is not None
    if any(r.canonical == "/manage" for r in client.app.router.resources()):  # web2's period page
        assert "/manage?framework=tinh-commune-2026#open-period" in listed
        manage = await (await client.get("/manage?framework=tinh-commune-2026")).text()
        assert '<option value="tinh-commune-2026" selected>' in manage and 'id="open-period"' in manage
        period = {"csrf": csrf, "name": "DTI 2026 (web)", "year": "2026", "framework": "tinh-commune-2026"}
        opened = await client.post(
            "/manage/period",
            data={**period, "self_assessment_due": "31/12/2099"},
            headers=origin(client),
            allow_redirects=False,
        )
        assert opened.status == 303, await opened.text()
        with w.db.session() as s:
            pinned = s.exec(select(Period).where(Period.name == "DTI 2026 (web)")).one()
        assert (pinned.framework_id, pinned.framework_version) == ("tinh-commune-2026", "2026.1")
    else:
        assert "dtibot period open --framework tinh-commune-2026" in listed
    path = frameworks / "tinh-commune-2026.yaml"
    out, err = io.StringIO(), io.StringIO()
    assert main(["framework", "validate", str(path)], out, err) == 0, err.getvalue()
    out = io.StringIO()
    assert main(["framework", "show", "tinh-commune-2026"], out, err) == 0, err.getvalue()
    assert "Bộ chỉ số xã 2026" in out.getvalue()
    fw = catalog.framework("tinh-commune-2026@2026.1")
    assert [i.code for i in fw.indicators] == ["1.1", "1.2", "1.3", "2.1", "2.2", "2.3", "2.4"]
    assert (fw.decision.number, fw.decision.date, fw.decision.issuer) == (
        "1949/QĐ-UBND",
        dt.date(2026, 11, 23),
        "UBND tỉnh",
    )
    with w.db.session() as s:
        (row,) = s.exec(select(AuditLog).where(AuditLog.action == "framework.adopt")).all()
    assert row.channel == "web" and row.entity_id == "tinh-commune-2026@2026.1"
    assert row.actor_member_id == w.member_id("admin") and (row.operator or "").startswith("web:")
    # the same id again is refused, the file untouched; the upload's token is used up
    before = path.read_bytes()
    again = await upload(client, csrf, "annex.csv", (DATA / "annex.csv").read_bytes())
    refused = await client.post(
        again + "/adopt", data={**form, "version": "2026.2"}, headers=origin(client), allow_redirects=False
    )
    assert refused.status == 409
    assert "tinh-commune-2026-2026-2" in await refused.text()
    assert path.read_bytes() == before
    assert (await client.get(report)).status == 404
    # the CLI's period open finds it in the province's directory, and the chat asks its questions
    url = w.db.engine.url.render_as_string(hide_password=False)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DTI_DATABASE_URL", url)
        mp.setenv("DTI_EVIDENCE_DIR", str(w.p.store.root))
        argv = ["period", "open", "--name", "DTI 2026", "--year", "2026", "--framework", "tinh-commune-2026"]
        out, err = io.StringIO(), io.StringIO()
        assert main([*argv, "--self-assessment-due", "31/12/2099"], out, err) == 0, err.getvalue()
    assert "tinh-commune-2026@2026.1" in out.getvalue()
    chat = Chat(w.p, "new-official", w.p.invite("25843", "respondent"))
    said = chat.out.getvalue() + chat.say("#1")
    first = fw.indicator("1.1")
    assert first is not None and first.text in said
    assert "Trưởng ban là Chủ tịch UBND" in said


async def test_only_province_admins_may_import(
    w: WebProvince, client: TestClient[object, object], frameworks: Path
) -> None:
    csrf = await sign_in(w, client, "admin")
    report = await upload(client, csrf, "annex.csv", (DATA / "annex.csv").read_bytes())
    for who in ("province_reviewer", "district_reviewer", "leader", "respondent"):
        client.session.cookie_jar.clear()
        other = await sign_in(w, client, who)
        assert (await client.get("/frameworks")).status == 403, who
        assert (await client.get(report)).status == 403, who
        assert (await client.get(report + "/report.xlsx")).status == 403, who
        data = annex_form(other, "annex.csv", (DATA / "annex.csv").read_bytes())
        sent = await client.post(
            "/frameworks/import", data=data, headers=origin(client), allow_redirects=False
        )
        assert sent.status == 403, who
        form = {"csrf": other, "id": "x", "version": "1", "title": "x", "level": "commune"}
        adopted = await client.post(
            report + "/adopt", data=form, headers=origin(client), allow_redirects=False
        )
        assert adopted.status == 403, who
        assert "/frameworks" not in (await (await client.get("/signed-in-check")).text()), who
    assert list(frameworks.iterdir()) == []
    # another session of the same admin does not see the upload of the first
    client.session.cookie_jar.clear()
    await sign_in(w, client, "admin")
    assert (await client.get(report)).status == 404
    assert "/frameworks" in await (await client.get("/signed-in-check")).text()


async def test_forged_forms_are_refused_and_store_nothing(
    w: WebProvince, client: TestClient[object, object], frameworks: Path, tmp_path: Path
) -> None:
    csrf = await sign_in(w, client, "admin")
    data = (DATA / "annex.csv").read_bytes()
    forged = await client.post(
        "/frameworks/import", data=annex_form("wrong", "annex.csv", data), headers=origin(client)
    )
    assert forged.status == 403
    elsewhere = {"Origin": "https://evil.example"}
    cross = await client.post(
        "/frameworks/import", data=annex_form(csrf, "annex.csv", data), headers=elsewhere
    )
    assert cross.status == 403
    assert not (w.p.store.root / "annexes").exists()
    report = await upload(client, csrf, "annex.csv", data)
    form = {"csrf": "wrong", "id": "tinh-x", "version": "1", "title": "x", "level": "commune"}
    refused = await client.post(report + "/adopt", data=form, headers=origin(client), allow_redirects=False)
    assert refused.status == 403
    assert list(frameworks.iterdir()) == []
    assert (await client.get("/frameworks/import/" + "A" * 43)).status == 404
    assert (await client.get("/frameworks/import/..%2F..%2Fdti.db")).status == 404
    bad_type = await client.post(
        "/frameworks/import", data=annex_form(csrf, "virus.exe", b"MZ"), headers=origin(client)
    )
    assert bad_type.status == 415 and "virus.exe" in await bad_type.text()
    broken = await client.post(
        "/frameworks/import", data=annex_form(csrf, "hong.xlsx", b"not a workbook"), headers=origin(client)
    )
    assert broken.status == 400 and VI("web.fw.refused.title") in await broken.text()


async def test_a_hostile_rule_text_is_shown_as_text(
    w: WebProvince, client: TestClient[object, object]
) -> None:
    csrf = await sign_in(w, client, "admin")
    data = csv_annex("Căn cứ kết quả kiểm tra thực tế", HOSTILE + " Căn cứ kết quả kiểm tra thực tế")
    report = await upload(client, csrf, "phu-luc <img src=x onerror=alert(1)>.csv", data)
    text = await (await client.get(report)).text()
    assert "<script>alert" not in text and "<img src=x" not in text
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; =1+2" in text
    download = await client.get(report + "/report.xlsx")
    book = load_workbook(io.BytesIO(await download.read()))
    rules = [str(c.value) for c in book.active["E"] if c.value is not None]
    assert any(str(text_cell(HOSTILE)) in r for r in rules)
    assert all(c.data_type == "s" for c in book.active["E"] if c.value is not None)


async def test_an_id_the_gate_refuses_or_a_database_that_fails_adopts_nothing(
    w: WebProvince, client: TestClient[object, object], frameworks: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    csrf = await sign_in(w, client, "admin")
    report = await upload(client, csrf, "annex.csv", (DATA / "annex.csv").read_bytes())
    form = {"csrf": csrf, "id": "Tỉnh X/../y", "version": "1", "title": "x", "level": "commune"}
    refused = await client.post(report + "/adopt", data=form, headers=origin(client), allow_redirects=False)
    text = await refused.text()
    assert refused.status == 400
    assert VI("web.fw.report.nothing_adopted") in text and html.escape("Tỉnh X/../y") in text
    assert list(frameworks.iterdir()) == []
    form["id"] = "tinh-x"
    refused = await client.post(
        report + "/adopt",
        data={**form, "decision_date": "31/02/2026"},
        headers=origin(client),
        allow_redirects=False,
    )
    assert refused.status == 400 and "decision.date" in await refused.text()
    assert list(frameworks.iterdir()) == []

    def down(*args: object, **kwargs: object) -> None:
        raise OperationalError("INSERT", {}, Exception("database is down"))

    monkeypatch.delenv("DTI_FRAMEWORKS_DIR")
    page = await (await client.get(report)).text()
    assert VI("web.fw.no_dir") in await (await client.get("/frameworks")).text() and " disabled>" in page
    nowhere = await client.post(report + "/adopt", data=form, headers=origin(client), allow_redirects=False)
    assert nowhere.status == 503 and VI("web.fw.no_dir") in await nowhere.text()
    monkeypatch.setenv("DTI_FRAMEWORKS_DIR", str(frameworks))
    monkeypatch.setattr("storage.frameworks.record_adoption", down)
    failed = await client.post(report + "/adopt", data=form, headers=origin(client), allow_redirects=False)
    assert failed.status == 503
    assert list(frameworks.iterdir()) == []
    monkeypatch.undo()
    monkeypatch.setenv("DTI_FRAMEWORKS_DIR", str(frameworks))
    done = await client.post(report + "/adopt", data=form, headers=origin(client), allow_redirects=False)
    assert done.status == 303
    assert [p.name for p in frameworks.iterdir()] == ["tinh-x.yaml"]


async def test_an_annex_over_the_size_limit_is_refused(
    w: WebProvince, client: TestClient[object, object]
) -> None:
    csrf = await sign_in(w, client, "admin")
    big = (DATA / "annex.csv").read_bytes() + b"#" * MAX_ANNEX
    sent = await client.post(
        "/frameworks/import", data=annex_form(csrf, "annex.csv", big), headers=origin(client)
    )
    assert sent.status == 413
    assert not (w.p.store.root / "annexes").exists()


async def test_a_district_admin_may_not_import(db: Database, tmp_path: Path, frameworks: Path) -> None:
    w = web_province(db, tmp_path, {"district_admin": ("700", "admin")})
    client = w.app_client()
    await client.start_server()
    try:
        csrf = await sign_in(w, client, "district_admin")
        assert (await client.get("/board")).status == 200  # an admin of the workspace, not of the province
        assert (await client.get("/frameworks")).status == 403
        data = annex_form(csrf, "annex.csv", (DATA / "annex.csv").read_bytes())
        sent = await client.post(
            "/frameworks/import", data=data, headers=origin(client), allow_redirects=False
        )
        assert sent.status == 403
    finally:
        await client.close()
    assert list(frameworks.iterdir()) == []
