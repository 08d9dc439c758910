"""File names carry the detected type's extension (issue 20 item 11).

Whatever the sender called a file, the name it is recorded, shown, sent and exported under ends in the
extension of the type detected from its content: a PDF sent as `baocao.bat` is `baocao.pdf` in the
reply, in the evidence row, in the document the reviewer is sent and in the export. Rows recorded
before this rule (`cu.bat`) are named the same way wherever they are sent or exported.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook
from sqlmodel import select

from bot.exports import evidence_zip, results_workbook
from bot.i18n import Translator
from bot.results import compute
from storage.admin import period_by_ref
from storage.db import Database
from storage.models import Assessment, Evidence
from tests.e2e_support import Province, docx_bytes, make_province, pdf_bytes, png_bytes
from tests.fake_telegram import FakeTelegram, Limits, Sent
from tests.fake_zalo import FakeZalo
from tests.test_channel_inputs import USER, zalo_app
from tests.test_telegram import CHAT, Harness

REVIEWER = 555900

# (sent as, content, recorded as)
FILES = [
    ("baocao.bat", pdf_bytes("bat"), "baocao.pdf"),
    ("x.pdf.html", pdf_bytes("html"), "x.pdf.pdf"),
    ("bieu-do.svg", png_bytes(), "bieu-do.png"),
    ("mau-bieu.jar", docx_bytes(), "mau-bieu.docx"),
]


@pytest.fixture
async def telegram() -> AsyncIterator[FakeTelegram]:
    server = FakeTelegram(limits=Limits(chat_interval=0.0, per_second=10_000))
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def zalo() -> AsyncIterator[FakeZalo]:
    server = FakeZalo()
    await server.start()
    yield server
    await server.stop()


def legacy_row(p: Province, name: str, data: bytes) -> None:
    """An evidence row recorded before the rule, under the name the sender gave."""
    stored = p.store.put(data, name)
    with p.db.session() as s:
        assessment = s.exec(select(Assessment)).one()
        assert assessment.id is not None
        s.add(
            Evidence(
                assessment_id=assessment.id,
                indicator_code="1.1",
                kind="file",
                sha256=stored.sha256,
                size=stored.size,
                mime=stored.mime,
                original_name=name,
                channel="telegram",
            )
        )


def submitted(p: Province) -> None:
    with p.db.session() as s:
        assessment = s.exec(select(Assessment)).one()
        assessment.status = "submitted"
        assessment.submitted_at = dt.datetime.now(dt.UTC)
        s.add(assessment)


async def reviewer(h: Harness, update: dict[str, Any]) -> list[Sent]:
    """What the reviewer is sent in answer to `update`."""
    before = len(h.fake.transcripts[REVIEWER])
    await h.deliver(update)
    await h.processed(str(update["update_id"]))
    await h.settle()
    return h.fake.transcripts[REVIEWER][before:]


async def test_telegram_names_carry_the_detected_extension(
    db: Database, tmp_path: Path, telegram: FakeTelegram
) -> None:
    p = make_province(db, tmp_path)
    h = Harness(telegram, p, "polling")
    await h.start()
    try:
        await h.text(f"/start {p.invite('25840', 'respondent')}")
        await h.text("70,4")
        for sent_as, data, recorded in FILES:
            out = await h.send(telegram.document(CHAT, sent_as, data))
            assert f"Đã nhận tệp {recorded}" in out and sent_as not in out
        assert sorted(e.original_name or "" for e in p.evidence("25840")) == sorted(f[2] for f in FILES)

        legacy_row(p, "cu.bat", pdf_bytes("legacy"))
        submitted(p)
        await reviewer(h, telegram.text(REVIEWER, f"/start {p.invite('70000', 'reviewer')}"))
        queue = telegram.last_with_buttons(REVIEWER)
        view = await reviewer(h, telegram.press(REVIEWER, queue, "Xã An Bình"))
        documents = [m for m in view if m.document is not None]
        assert sorted(m.document_name or "" for m in documents) == sorted([*(f[2] for f in FILES), "cu.pdf"])
        for m in documents:  # the bytes sent are the file's
            assert any(m.document == data for _, data, _ in FILES) or m.document == pdf_bytes("legacy")
    finally:
        await h.stop()


async def test_zalo_names_carry_the_detected_extension(db: Database, tmp_path: Path, zalo: FakeZalo) -> None:
    h = await zalo_app(db, tmp_path, zalo)
    p = h.p
    reviewer_user = "8009000"
    try:
        await h.send(zalo.text(USER, p.invite("25840", "respondent")))
        await h.send(zalo.text(USER, "70,4"))
        for sent_as, data, recorded in FILES:
            out = await h.send(zalo.file(USER, sent_as, data))
            assert f"Đã nhận tệp {recorded}" in out and sent_as not in out
        assert sorted(e.original_name or "" for e in p.evidence("25840")) == sorted(f[2] for f in FILES)

        legacy_row(p, "cu.bat", pdf_bytes("legacy"))
        submitted(p)
        assert await zalo.post(zalo.text(reviewer_user, p.invite("70000", "reviewer"))) == 200
        await h.app.channel.flush()
        await h.app.sender.drain()
        button = next(b for b in zalo.last_buttons(reviewer_user) if b["title"] == "Xã An Bình")
        before = len(zalo.transcripts[reviewer_user])
        assert await zalo.post(zalo.press(reviewer_user, button["payload"])) == 200
        await h.app.channel.flush()
        await h.app.sender.drain()
        files = [m for m in zalo.transcripts[reviewer_user][before:] if m.kind == "file"]
        assert sorted(m.name for m in files) == sorted([*(f[2] for f in FILES), "cu.pdf"])
    finally:
        await h.app.stop()


def test_exports_name_files_by_their_detected_type(db: Database, tmp_path: Path) -> None:
    p = make_province(db, tmp_path)
    chat, out = p.chat("con-1")
    (p.files / "baocao.bat").write_bytes(pdf_bytes("bat"))
    (p.files / "bieu-do.svg").write_bytes(png_bytes())
    chat.run(
        ["70,4", f"/file {p.files}/baocao.bat", f"/file {p.files}/bieu-do.svg"],
        join=p.invite("25840", "respondent"),
    )
    assert "Đã nhận tệp baocao.pdf" in out.getvalue() and "Đã nhận tệp bieu-do.png" in out.getvalue()
    legacy_row(p, "cu.bat", pdf_bytes("legacy"))
    names = {"baocao.pdf", "bieu-do.png", "cu.pdf"}
    with db.session() as s:
        period = period_by_ref(s, None)
    t = Translator("vi")

    zipped = tmp_path / "minh-chung.zip"
    assert evidence_zip(db, p.store, period, "25840", zipped, t) == 3
    with zipfile.ZipFile(zipped) as z:
        paths = [n for n in z.namelist() if n != "manifest.csv"]
        manifest = list(csv.reader(io.StringIO(z.read("manifest.csv").decode("utf-8-sig"))))
    assert {path.split("/", 1)[1][4:] for path in paths} == names  # "1.1/001-baocao.pdf"
    header, rows = manifest[0], manifest[1:]
    assert {row[header.index(t("export.col.file"))] for row in rows} == names
    assert {row[header.index(t("export.col.path"))] for row in rows} == set(paths)

    compute(db, period)
    book = tmp_path / "ket-qua.xlsx"
    results_workbook(db, period, book, t)
    sheet = load_workbook(book, read_only=True)[t("export.sheet.evidence")]
    table = [list(r) for r in sheet.iter_rows(values_only=True)]
    column = table[0].index(t("export.col.file"))
    assert {r[column] for r in table[1:]} == names
