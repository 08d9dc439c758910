"""The operator's command line as an operator meets it: every state in `status`, errors that say what to
do (no traceback, no database created by a read), guard rails on periods, invites and results, the
operator named in the audit trail, and the lists an operator needs (units, periods, invites, members)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlmodel import col, select

from bot.cli import main
from flows.model import Inbound, InboundKind
from scoring.answers import VIETNAM_TZ
from storage.db import Database
from storage.models import Assessment, AuditLog, Member, Unit
from tests.e2e_support import UNITS, Province, make_province

DTIBOT = str(Path(sys.executable).parent / "dtibot")


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    return main(list(argv), out, err), out.getvalue(), err.getvalue()


@pytest.fixture
def province(db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Province:
    """The e2e province (a province, two communes, a period) with the CLI pointed at its database."""
    monkeypatch.setenv("DTI_DATABASE_URL", db.url)
    monkeypatch.setenv("DTI_EVIDENCE_DIR", str(tmp_path / "evidence"))
    monkeypatch.setenv("USER", "vanhanh")
    return make_province(db, tmp_path)


def set_status(p: Province, unit_code: str, status: str) -> None:
    with p.db.session() as s:
        unit = s.exec(select(Unit).where(Unit.code == unit_code)).one()
        period_id = s.exec(select(Assessment.period_id)).first()
        if period_id is None:
            from storage.admin import period_by_ref

            period_id = period_by_ref(s, None).id
        assert unit.id is not None and period_id is not None
        row = s.exec(select(Assessment).where(Assessment.unit_id == unit.id)).first()
        row = row or Assessment(period_id=period_id, unit_id=unit.id)
        row.status = status
        s.add(row)


# -- issue 21.1: every state in `dtibot status` --------------------------------------------------------


def state_of(out: str, code: str) -> str:
    return next(line for line in out.splitlines() if line.startswith(code))


@pytest.mark.parametrize(
    ("status", "label"),
    [
        ("draft", "đang làm"),
        ("awaiting_leader", "chờ lãnh đạo duyệt"),
        ("submitted", "đã nộp"),
        ("returned", "trả lại để bổ sung"),
        ("appraised", "đã thẩm định"),
    ],
)
def test_status_shows_every_assessment_state(province: Province, status: str, label: str) -> None:
    set_status(province, "25840", status)
    code, out, err = run("status")
    assert code == 0, err
    assert label in state_of(out, "25840")
    assert "đang làm" in state_of(out, "25843")  # never started


def test_status_shows_published_results(province: Province) -> None:
    set_status(province, "25840", "appraised")
    assert run("results", "compute")[0] == 0
    code, _, err = run("results", "publish", "--force")  # 25843 is counted 0
    assert code == 0, err
    code, out, err = run("--lang", "en", "status")
    assert code == 0, err
    assert "results published" in state_of(out, "25840")
    assert "in progress" in state_of(out, "25843")  # published with 0, but its own state is still its own


# -- issue 20.8 / 21.17: an unreachable database is one line, never a traceback -------------------------

UNREACHABLE = "postgresql+psycopg://dti@127.0.0.1:1/dti"  # nothing listens on port 1
READ_COMMANDS = [
    ("status",),
    ("period", "show"),
    ("period", "list"),
    ("units", "list"),
    ("invite", "list"),
    ("member", "list"),
    ("member", "remove", "1"),
    ("invite", "revoke", "AB12CD34"),
    ("remind", "--dry-run"),
    ("results", "compute"),
    ("export", "audit", "--out", "{tmp}/audit.csv"),
    ("zalo", "status"),
    ("db", "upgrade"),
    ("chat",),
]


@pytest.mark.parametrize("argv", READ_COMMANDS, ids=lambda a: " ".join(a[:2]))
def test_an_unreachable_database_is_one_line(
    argv: tuple[str, ...], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DTI_DATABASE_URL", UNREACHABLE)
    code, out, err = run(*(a.format(tmp=tmp_path) for a in argv))
    assert code == 1 and out == ""
    assert len(err.strip().splitlines()) == 1, err
    assert "Không kết nối được cơ sở dữ liệu postgresql+psycopg://dti@127.0.0.1:1/dti" in err
    assert "DTI_DATABASE_URL" in err and "Traceback" not in err


def test_the_installed_command_prints_no_traceback_when_the_database_is_down(tmp_path: Path) -> None:
    env = {**os.environ, "DTI_DATABASE_URL": UNREACHABLE.replace("dti@", "dti:secret@"), "DTI_LANG": "vi"}
    proc = subprocess.run([DTIBOT, "status"], capture_output=True, text=True, env=env, check=False)
    assert proc.returncode == 1 and proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "Không kết nối được" in proc.stderr and "secret" not in proc.stderr


def test_output_into_a_closed_pipe_ends_quietly() -> None:
    """`dtibot … | head`: once the reader is gone the command ends without a BrokenPipeError."""
    read, write = os.pipe()
    os.close(read)  # the reader has gone before the first line is written
    try:
        proc = subprocess.run(
            [DTIBOT, "framework", "show", "tay-ninh-commune-2025"],
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            check=False,
        )
    finally:
        os.close(write)
    assert "BrokenPipeError" not in proc.stderr and "Traceback" not in proc.stderr
    assert proc.stderr == ""


# -- issue 21.17: no period says how to open one ----------------------------------------------------------


def test_status_without_a_period_says_how_to_open_one(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DTI_DATABASE_URL", db.url)
    code, out, err = run("status")
    assert code == 2 and out == ""
    assert "dtibot period open" in err and "dtibot status" not in err
    code, _, err = run("status", "--period", "42")
    assert code == 2 and "dtibot period list" in err and "dtibot status" not in err


# -- issue 21.18: a read never creates a database; the demo's leader command works as printed ------------


@pytest.mark.parametrize("argv", [("status",), ("period", "show"), ("zalo", "status"), ("chat",)])
def test_a_read_never_creates_a_database(
    argv: tuple[str, ...], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DTI_DATABASE_URL", raising=False)
    code, out, err = run(*argv)
    assert code == 2 and out == ""
    assert str(tmp_path / "dti.db") in err and "DTI_DATABASE_URL" in err and "dtibot db upgrade" in err
    assert not (tmp_path / "dti.db").exists()
    missing = tmp_path / "nowhere" / "tinh.db"
    monkeypatch.setenv("DTI_DATABASE_URL", f"sqlite:///{missing}")
    code, _, err = run(*argv)
    assert code == 2 and str(missing) in err
    assert not missing.parent.exists()


def test_the_demo_prints_a_leader_command_that_works_as_printed(tmp_path: Path) -> None:
    home, elsewhere = tmp_path / "repo", tmp_path / "elsewhere"
    home.mkdir()
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DTI_")}
    demo = subprocess.run(
        [DTIBOT, "demo"], cwd=home, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True
    )
    assert demo.returncode == 0, demo.stderr
    command = next(line for line in demo.stderr.splitlines() if "chat --as lanhdao" in line).strip()
    leader = subprocess.run(
        command, shell=True, cwd=elsewhere, env=env, input="", capture_output=True, text=True, check=False
    )
    assert leader.returncode == 0, leader.stderr
    assert "Đã liên kết với" in leader.stdout and "lãnh đạo" in leader.stdout
    assert list(elsewhere.iterdir()) == []  # nothing created where it was run


# -- issue 21.17: the Zalo re-authorisation steps in the operator's language -------------------------------


def test_zalo_reauthorisation_steps_are_localized(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    from storage.zalo import refresh_failed, save_token

    monkeypatch.setenv("DTI_DATABASE_URL", db.url)
    now = dt.datetime(2026, 12, 4, 8, tzinfo=dt.UTC)
    with db.session() as s:
        save_token(s, "AT", "RT", now + dt.timedelta(hours=25), now)
    with db.session() as s:
        refresh_failed(s, "Invalid refresh token", now)
    code, out, _ = run("zalo", "status")
    assert code == 2
    assert "Cấp quyền lại cho OA" in out and "developers.zalo.me" in out and "dtibot zalo token" in out
    assert "Re-authorise" not in out
    code, out, _ = run("--lang", "en", "zalo", "status")
    assert code == 2 and "Re-authorise the OA" in out


# -- issue 21.19: units and periods listed; the operator named in the audit trail -------------------------


def audit(db: Database) -> list[AuditLog]:
    with db.session() as s:
        return list(s.exec(select(AuditLog).order_by(col(AuditLog.id))))


def test_units_and_periods_are_listed(province: Province) -> None:
    code, out, err = run("units", "list")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["Mã", "Tên", "Cấp", "Trực", "thuộc", "Thành", "viên"]
    row = next(line for line in lines if line.startswith("25840"))
    assert "Xã An Bình" in row and "cấp xã" in row and row.split()[-2:] == ["70000", "0"]
    assert any(line.startswith("70000") and "cấp tỉnh" in line for line in lines)
    assert len(lines) == 1 + len(UNITS)
    with province.db.session() as s:
        from storage.admin import create_invite

        create_invite(s, "25840", "leader", dt.datetime(2026, 12, 1, tzinfo=dt.UTC))
    province.chat("c1")[0].run([], join=next(iter(invite_codes(province))))
    code, out, _ = run("units", "list", "--level", "commune")
    assert [line.split()[0] for line in out.splitlines()[1:]] == ["25840", "25843"]
    assert next(line for line in out.splitlines() if line.startswith("25840")).split()[-1] == "1"

    code, out, err = run("period", "list")
    assert code == 0, err
    row = next(line for line in out.splitlines() if line.split()[0] == "1")
    assert "Kỳ đánh giá 2025" in row and "tay-ninh-commune-2025@2025.1" in row and "đang mở" in row
    assert "15/01/2027 17:00" in row
    code, out, _ = run("period", "show")
    assert code == 0 and out.splitlines()[0].endswith("· đang mở")


def invite_codes(p: Province) -> list[str]:
    from storage.models import Invite

    with p.db.session() as s:
        return [i.code for i in s.exec(select(Invite).where(col(Invite.used_at).is_(None)))]


def test_every_cli_change_names_its_operator(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DTI_DATABASE_URL", db.url)
    monkeypatch.setenv("USER", "vanhanh")
    units = tmp_path / "units.csv"
    units.write_text(
        "code,name,level,parent\n70000,Tỉnh Tây Ninh,province,\n25840,Xã An Bình,commune,70000\n"
    )
    assert run("units", "import", str(units))[0] == 0
    units.write_text("code,name,level,parent\n25840,Xã An Bình mới,commune,70000\n")
    assert run("--by", "Nguyễn Văn Hải", "units", "import", str(units))[0] == 0
    due = (dt.datetime.now(VIETNAM_TZ) + dt.timedelta(days=40)).strftime("%d/%m/%Y")
    later = (dt.datetime.now(VIETNAM_TZ) + dt.timedelta(days=50)).strftime("%d/%m/%Y")
    opened = run(
        "period", "open", "--name", "DTI 2026", "--year", "2026", "--framework", "tay-ninh-commune-2025",
        "--self-assessment-due", due,
    )  # fmt: skip
    assert opened[0] == 0, opened[2]
    assert run("invite", "create", "--unit", "25840", "--role", "respondent")[0] == 0
    extended = run("period", "extend", "--deadline", "self_assessment_due", "--to", later, "--reason", "Bão")
    assert extended[0] == 0, extended[2]
    assert run("results", "compute")[0] == 0
    rows = audit(db)
    actions = [(r.action, r.entity_id, r.operator) for r in rows]
    assert ("unit.create", "70000", "vanhanh") in actions and ("unit.create", "25840", "vanhanh") in actions
    assert ("unit.update", "25840", "Nguyễn Văn Hải") in actions
    update = next(r for r in rows if r.action == "unit.update")
    assert "Xã An Bình mới" in (update.new_json or "") and "Xã An Bình" in (update.old_json or "")
    assert {r.action for r in rows} >= {"period.open", "invite.create", "deadline.extend", "results.compute"}
    assert all(r.operator == "vanhanh" for r in rows if r.action != "unit.update"), actions

    out = tmp_path / "audit.csv"
    assert run("export", "audit", "--out", str(out))[0] == 0
    with out.open(encoding="utf-8-sig", newline="") as fh:
        exported = list(csv.reader(fh))[1:]
    assert {row[2] for row in exported} >= {"unit.create", "unit.update", "period.open", "invite.create"}
    assert all(row[1] in ("vanhanh (dtibot)", "Nguyễn Văn Hải (dtibot)") for row in exported), exported


def test_the_operator_is_never_missing(db: Database, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DTI_DATABASE_URL", db.url)
    for name in ("USER", "LOGNAME", "LNAME", "USERNAME"):
        monkeypatch.delenv(name, raising=False)
    units = tmp_path / "units.csv"
    units.write_text("code,name,level,parent\n70000,Tỉnh Tây Ninh,province,\n")
    assert run("units", "import", str(units))[0] == 0
    rows = audit(db)
    assert rows and all(r.operator for r in rows)


# -- issue 21.15: deadlines that make no sense and reviewers for communes are refused, with the reason ---


def local(days: int, hour: int = 17) -> str:
    when = dt.datetime.now(VIETNAM_TZ).replace(hour=hour, minute=0) + dt.timedelta(days=days)
    return when.strftime("%d/%m/%Y %H:%M")


def open_args(**due: str) -> list[str]:
    argv = ["period", "open", "--name", "DTI 2026", "--year", "2026", "--framework", "tay-ninh-commune-2025"]
    for name, value in due.items():
        argv += [f"--{name.replace('_', '-')}", value]
    return argv


@pytest.mark.parametrize(
    ("due", "needle"),
    [
        ({"self_assessment_due": local(-1)}, "đã qua"),
        ({"self_assessment_due": local(30), "supplement_due": local(20)}, "hạn bổ sung minh chứng"),
        (
            {"self_assessment_due": local(30), "supplement_due": local(35), "appraisal_due": local(33)},
            "hạn thẩm định",
        ),
        ({"self_assessment_due": local(30), "publication_due": local(29)}, "hạn công bố"),
    ],
)
def test_period_open_refuses_past_or_disordered_deadlines(
    db: Database, monkeypatch: pytest.MonkeyPatch, due: dict[str, str], needle: str
) -> None:
    monkeypatch.setenv("DTI_DATABASE_URL", db.url)
    code, out, err = run(*open_args(**due))
    assert code == 2 and out == "", err
    assert needle in err
    assert "tự đánh giá ≤ bổ sung minh chứng ≤ thẩm định ≤ công bố" in err or "đã qua" in err
    assert run("period", "list")[1].count("DTI 2026") == 0  # nothing opened


def test_period_open_accepts_ordered_future_deadlines(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DTI_DATABASE_URL", db.url)
    due = {
        "self_assessment_due": local(30),
        "supplement_due": local(30),  # the same moment is in order
        "appraisal_due": local(40),
        "publication_due": local(50),
    }
    code, _, err = run(*open_args(**due))
    assert code == 0, err


def test_period_extend_refuses_a_deadline_that_is_not_later(province: Province) -> None:
    extend = ("period", "extend", "--deadline", "self_assessment_due", "--reason", "Bão")
    code, out, err = run(*extend, "--to", "10/01/2027")  # the period's is 15/01/2027 17:00
    assert code == 2 and out == ""
    assert "10/01/2027 23:59" in err and "15/01/2027 17:00" in err and "không sau" in err
    code, _, err = run(*extend, "--to", "15/01/2027 17:00")  # the same is not later either
    assert code == 2 and "không sau" in err
    code, _, err = run(*extend, "--unit", "25840", "--to", "20/01/2027")
    assert code == 0, err
    code, _, err = run(
        *extend, "--unit", "25840", "--to", "18/01/2027"
    )  # later than the period's, not the unit's
    assert code == 2 and "20/01/2027 23:59" in err
    code, _, err = run(*extend, "--unit", "25843", "--to", "18/01/2027")  # another unit: the period's applies
    assert code == 0, err
    code, out, err = run(
        "period", "extend", "--deadline", "supplement_due", "--reason", "x", "--to", local(-2)
    )
    assert code == 2 and "đã qua" in err
    with province.db.session() as s:
        from storage.models import Extension, Period

        assert len(s.exec(select(Extension)).all()) == 2
        period = s.exec(select(Period)).one()
        assert period.self_assessment_due == dt.datetime(2027, 1, 15, 17, tzinfo=VIETNAM_TZ)


def test_a_reviewer_invite_for_a_commune_is_refused(province: Province) -> None:
    code, out, err = run("invite", "create", "--unit", "25840", "--role", "reviewer")
    assert code == 2 and out == ""
    assert "Xã An Bình" in err and "cấp huyện" in err and "cấp tỉnh" in err
    assert "--role reviewer" in err
    code, out, err = run("invite", "create", "--unit", "70000", "--role", "reviewer")
    assert code == 0, err


# -- issue 20.12: the Zalo token pair never on the command line --------------------------------------------


def stored_token(db: Database) -> tuple[str, str] | None:
    from storage.zalo import token

    with db.session() as s:
        row = token(s)
        return (row.access_token, row.refresh_token) if row is not None else None


def test_zalo_token_refuses_the_pair_on_the_command_line(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DTI_DATABASE_URL", db.url)
    monkeypatch.setattr(sys, "stdin", io.StringIO("AT-1\nRT-1\n"))
    code, out, err = run("zalo", "token", "--access", "AT-1", "--refresh", "RT-1")
    assert code == 2 and out == ""
    assert "ps" in err and "lịch sử" in err  # why
    assert "ZALO_ACCESS_TOKEN" in err and "dtibot zalo token" in err  # and how
    assert stored_token(db) is None


@pytest.mark.parametrize("given", ["AT-1\nRT-1\n", "AT-1 RT-1", "  AT-1\tRT-1  \n\n"])
def test_zalo_token_reads_the_pair_from_standard_input(
    db: Database, monkeypatch: pytest.MonkeyPatch, given: str
) -> None:
    monkeypatch.setenv("DTI_DATABASE_URL", db.url)
    monkeypatch.delenv("ZALO_ACCESS_TOKEN", raising=False)
    monkeypatch.delenv("ZALO_REFRESH_TOKEN", raising=False)
    monkeypatch.setattr(sys, "stdin", io.StringIO(given))
    code, out, err = run("zalo", "token")
    assert code == 0, err
    assert "Đã lưu cặp mã truy cập Zalo" in out and "AT-1" not in out + err
    assert stored_token(db) == ("AT-1", "RT-1")


def test_zalo_token_reads_the_pair_from_the_environment(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DTI_DATABASE_URL", db.url)
    monkeypatch.setenv("ZALO_ACCESS_TOKEN", "AT-env")
    monkeypatch.setenv("ZALO_REFRESH_TOKEN", "RT-env")
    monkeypatch.setattr(sys, "stdin", io.StringIO("ignored\n"))
    assert run("zalo", "token")[0] == 0
    assert stored_token(db) == ("AT-env", "RT-env")


@pytest.mark.parametrize(
    ("env", "given"),
    [({}, ""), ({}, "AT-only\n"), ({}, "A B C\n"), ({"ZALO_REFRESH_TOKEN": "RT-env"}, "AT-1 RT-1\n")],
)
def test_zalo_token_refuses_anything_but_a_pair(
    db: Database, monkeypatch: pytest.MonkeyPatch, env: dict[str, str], given: str
) -> None:
    monkeypatch.setenv("DTI_DATABASE_URL", db.url)
    for name in ("ZALO_ACCESS_TOKEN", "ZALO_REFRESH_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)  # one of the two is not a pair either
    monkeypatch.setattr(sys, "stdin", io.StringIO(given))
    code, out, err = run("zalo", "token")
    assert code == 2 and out == ""
    assert "ZALO_ACCESS_TOKEN" in err and "ACCESS" in err
    assert stored_token(db) is None


# -- issue 20.13: invites listed and revoked; members listed and removed ------------------------------------


def invite_rows(out: str) -> dict[str, list[str]]:
    """`invite list` rows by invite id."""
    return {line.split()[0]: line.split("  ") for line in out.splitlines()[1:]}


def test_invites_are_listed_and_revoked(province: Province) -> None:
    unused = run("invite", "create", "--unit", "25840", "--role", "respondent")[1].strip()
    used = run("invite", "create", "--unit", "25840", "--role", "leader")[1].strip()
    spare = run("invite", "create", "--unit", "25843", "--role", "respondent")[1].strip()
    expired = run("invite", "create", "--unit", "25843", "--role", "leader", "--days", "0")[1].strip()
    province.chat("c1")[0].run([], join=used)

    code, out, err = run("invite", "list")
    assert code == 0, err
    assert unused in out and spare in out  # an operator can hand these out
    assert used not in out and f"{used[:2]}******" in out and expired not in out
    lines = {line.split()[1]: line for line in out.splitlines()[1:]}
    assert "chưa dùng" in lines[unused] and "Xã An Bình" in lines[unused] and "người trả lời" in lines[unused]
    assert "đã dùng" in lines[f"{used[:2]}******"] and "lãnh đạo" in lines[f"{used[:2]}******"]
    assert "hết hạn" in lines[f"{expired[:2]}******"]
    code, out, _ = run("invite", "list", "--unit", "25843")
    assert spare in out and unused not in out

    code, out, err = run("invite", "revoke", spare.lower())  # typed as it was read aloud
    assert code == 0, err and spare in out
    code, out, _ = run("invite", "list", "--unit", "25843")
    assert spare not in out and "đã thu hồi" in out
    code, _, err = run("invite", "revoke", spare)
    assert code == 2 and "đã được thu hồi" in err
    code, _, err = run("invite", "revoke", used)
    assert code == 2 and "đã được dùng" in err and "dtibot member remove" in err
    code, _, err = run("invite", "revoke", "ZZZZ9999")
    assert code == 2 and "ZZZZ9999" in err

    outsider, said = province.chat("outsider")
    outsider.run([], join=spare)  # a revoked invite joins no one
    assert "không đúng" in said.getvalue() and "Đã liên kết" not in said.getvalue()
    revoked = [r for r in audit(province.db) if r.action == "invite.revoke"]
    assert len(revoked) == 1 and revoked[0].operator == "vanhanh" and spare not in (revoked[0].new_json or "")


def test_a_revoked_invite_is_refused_by_group_commit_too(province: Province) -> None:
    from bot.service import Service

    codes = [
        run("invite", "create", "--unit", u, "--role", "respondent")[1].strip() for u in ("25840", "25843")
    ]
    assert run("invite", "revoke", codes[0])[0] == 0
    svc = Service(province.db, clock=province.clock)
    svc.handle_batch(
        [
            ("telegram", f"g{n}", f"join-{n}", Inbound(InboundKind.TEXT, text=f"/start {c}"), ())
            for n, c in enumerate(codes)
        ]
    )
    assert [m.chat_id for m in members(province)] == ["g1"]


def members(p: Province) -> list[Member]:
    with p.db.session() as s:
        return list(s.exec(select(Member).where(col(Member.removed_at).is_(None)).order_by(col(Member.id))))


def test_a_removed_member_is_told_and_can_no_longer_answer(province: Province) -> None:
    p = province
    respondent, said = p.chat("c1")
    respondent.run(["70,4"], join=p.invite("25840", "respondent"))
    leader, _ = p.chat("c2")
    leader.run([], join=p.invite("25840", "leader"))
    other, _ = p.chat("c3")
    other.run([], join=p.invite("25843", "respondent"))
    ids = {m.chat_id: m.id for m in members(p)}

    code, out, err = run("member", "list")
    assert code == 0, err
    rows = {line.split()[0]: line for line in out.splitlines()[1:]}
    assert set(rows) == {str(i) for i in ids.values()}
    assert "console:c1" in rows[str(ids["c1"])] and "người trả lời" in rows[str(ids["c1"])]
    assert "Xã An Bình" in rows[str(ids["c2"])] and "lãnh đạo" in rows[str(ids["c2"])]
    code, out, _ = run("member", "list", "--unit", "25843")
    assert [line.split()[0] for line in out.splitlines()[1:]] == [str(ids["c3"])]

    code, out, err = run("member", "remove", str(ids["c1"]))
    assert code == 0, err
    assert "console:c1" in out and "Xã An Bình" in out
    respondent.deliver()  # the chat is told, in its language
    assert "đã gỡ" in said.getvalue() and "mã mời mới" in said.getvalue()
    before = len(p.revisions("25840"))
    respondent.send(Inbound(InboundKind.TEXT, text="50"))  # the next message: as an unbound chat
    assert "hãy gửi mã mời" in said.getvalue().rsplit("> ", 1)[-1]
    assert len(p.revisions("25840")) == before
    code, out, _ = run("member", "list")
    assert str(ids["c1"]) not in [line.split()[0] for line in out.splitlines()[1:]]
    code, out, _ = run("member", "list", "--removed")
    assert "đã gỡ" in next(line for line in out.splitlines() if line.startswith(str(ids["c1"])))
    code, _, err = run("member", "remove", str(ids["c1"]))
    assert code == 2 and "đã được gỡ" in err
    code, _, err = run("member", "remove", "999")
    assert code == 2 and "999" in err
    removed = [r for r in audit(p.db) if r.action == "member.remove"]
    assert len(removed) == 1 and removed[0].operator == "vanhanh" and removed[0].entity_id == str(ids["c1"])

    code, out, _ = run("remind", "--dry-run", "--at", "14/01/2027 08:30")  # no reminders for it either
    assert "console:c1 " not in out and "console:c2 " in out

    # a removed chat can join again with a new invite, as anyone else
    respondent.run([], join=p.invite("25843", "leader"))
    assert "Đã liên kết với Xã Hòa Thành" in said.getvalue()
    assert {m.chat_id: m.unit_id for m in members(p)}["c1"] != ids["c2"]


def test_a_removed_member_can_no_longer_answer_through_group_commit(province: Province) -> None:
    from bot.service import Service

    p = province
    svc = Service(p.db, clock=p.clock)
    codes = [p.invite("25840", "respondent"), p.invite("25843", "respondent")]
    svc.handle_batch(
        [
            ("telegram", f"g{n}", f"join-{n}", Inbound(InboundKind.TEXT, text=f"/start {c}"), ())
            for n, c in enumerate(codes)
        ]
    )
    removed = next(m for m in members(p) if m.chat_id == "g0")
    assert run("member", "remove", str(removed.id))[0] == 0
    svc.handle_batch(
        [("telegram", f"g{n}", f"answer-{n}", Inbound(InboundKind.TEXT, text="50"), ()) for n in range(2)]
    )
    assert p.revisions("25840") == [] and len(p.revisions("25843")) == 1
    again = [p.invite("25840", "leader"), p.invite("25843", "leader")]
    svc.handle_batch(
        [
            ("telegram", "g0", "rejoin", Inbound(InboundKind.TEXT, text=f"/start {again[0]}"), ()),
            ("telegram", "g9", "join-9", Inbound(InboundKind.TEXT, text=f"/start {again[1]}"), ()),
        ]
    )
    assert {m.chat_id: m.role for m in members(p)} == {"g0": "leader", "g1": "respondent", "g9": "leader"}


# -- issue 21.13 / 21.14: results are published and exported only when they mean something ---------------


def result_messages(p: Province) -> list[tuple[str, str]]:
    from bot.results import PRIORITY_RESULTS
    from storage.models import Outbox

    with p.db.session() as s:
        rows = s.exec(select(Outbox).where(Outbox.priority == PRIORITY_RESULTS).order_by(col(Outbox.id)))
        return [(o.chat_id, o.payload_json) for o in rows]


def publications(p: Province) -> int:
    from storage.models import Publication

    with p.db.session() as s:
        return len(s.exec(select(Publication)).all())


def set_appraisal_due(p: Province, due: dt.datetime) -> None:
    from storage.models import Period

    with p.db.session() as s:
        period = s.exec(select(Period)).one()
        period.appraisal_due = due
        s.add(period)


def test_export_results_before_compute_is_refused(province: Province, tmp_path: Path) -> None:
    out = tmp_path / "results.xlsx"
    code, stdout, err = run("export", "results", "--out", str(out))
    assert code == 2 and stdout == ""
    assert "dtibot results compute" in err
    assert not out.exists()
    assert run("results", "compute")[0] == 0
    assert run("export", "results", "--out", str(out))[0] == 0 and out.exists()


def test_publish_waits_for_the_appraisal_deadline_and_closed_appraisals(province: Province) -> None:
    p = province
    p.chat("c1")[0].run([], join=p.invite("25840", "respondent"))
    p.chat("c2")[0].run([], join=p.invite("25843", "respondent"))
    set_status(p, "25840", "appraised")
    set_status(p, "25843", "submitted")
    assert run("results", "compute")[0] == 0
    ahead = dt.datetime.now(VIETNAM_TZ).replace(hour=17, minute=0, second=0, microsecond=0) + dt.timedelta(
        days=20
    )
    set_appraisal_due(p, ahead)

    code, out, err = run("results", "publish")
    assert code == 2 and out == ""
    assert f"hạn thẩm định ({ahead:%d/%m/%Y %H:%M})" in err
    assert "25843 Xã Hòa Thành" in err and "đã nộp" in err and "25840" not in err
    assert "--force" in err
    assert publications(p) == 0 and result_messages(p) == []

    set_appraisal_due(p, dt.datetime.now(dt.UTC) - dt.timedelta(hours=1))
    code, _, err = run("results", "publish")  # the deadline passed, but one appraisal is still open
    assert code == 2 and "25843 Xã Hòa Thành" in err and "hạn thẩm định (" not in err
    assert publications(p) == 0

    code, out, err = run("results", "publish", "--force")  # says what it does, then does it
    assert code == 0, err
    assert "25843 Xã Hòa Thành" in out and "0 điểm" in out
    assert publications(p) == 1 and sorted(c for c, _ in result_messages(p)) == ["c1", "c2"]

    # published again with nothing changed: nobody is told twice
    assert run("results", "compute")[0] == 0
    code, out, err = run("results", "publish", "--force")
    assert code == 0, err
    assert publications(p) == 2 and len(result_messages(p)) == 2
    assert "0 tin nhắn" in out and "2 đơn vị" in out

    # 25843's appraisal closes: only its members are told, and a member who joined since
    p.chat("c3")[0].run([], join=p.invite("25840", "leader"))
    set_status(p, "25843", "appraised")
    assert run("results", "compute")[0] == 0
    code, out, err = run("results", "publish")  # every appraisal closed, the deadline passed: no --force
    assert code == 0, err
    assert sorted(c for c, _ in result_messages(p)[2:]) == ["c2", "c3"]
