"""The operator commands on a real database: units, periods, invites, status; errors exit 2."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from bot.cli import main
from flows.model import Inbound, InboundKind
from storage.db import Database
from tests.e2e_support import Province


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    return main(list(argv), out, err), out.getvalue(), err.getvalue()


@pytest.fixture
def url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    value = f"sqlite:///{tmp_path / 'ops.db'}"
    monkeypatch.setenv("DTI_DATABASE_URL", value)
    monkeypatch.setenv("DTI_EVIDENCE_DIR", str(tmp_path / "ev"))
    assert run("db", "upgrade")[0] == 0
    return value


def test_units_period_invite_status(url: str, tmp_path: Path) -> None:
    units = tmp_path / "units.csv"
    units.write_text(
        "code,name,level,parent\n"
        "25840,Xã An Bình,commune,70000\n"
        "70000,Tỉnh Tây Ninh,province,\n"
        "25843,Xã Hòa Thành,commune,70000\n",
        encoding="utf-8",
    )
    code, out, err = run("units", "import", str(units))
    assert code == 0, err
    assert "3 đơn vị: 3 mới, 0 cập nhật" in out
    units.write_text("code,name,level,parent\n25840,Xã An Bình mới,commune,70000\n", encoding="utf-8")
    assert "0 mới, 1 cập nhật" in run("units", "import", str(units))[1]

    code, out, err = run(
        "period", "open", "--name", "DTI 2025", "--year", "2025", "--framework", "tay-ninh-commune-2025",
        "--self-assessment-due", "15/01/2027", "--supplement-due", "20/01/2027 17:00",
    )  # fmt: skip
    assert code == 0, err
    assert "tay-ninh-commune-2025@2025.1" in out

    code, out, err = run("invite", "create", "--unit", "25840", "--role", "respondent")
    assert code == 0, err
    invite = out.strip()
    assert len(invite) == 8 and invite.isalnum() and invite in err
    os.environ["TELEGRAM_BOT_USERNAME"] = "@dti_tayninh_bot"
    try:
        code, out, _ = run("invite", "create", "--unit", "25843", "--role", "leader")
    finally:
        del os.environ["TELEGRAM_BOT_USERNAME"]
    other, link = out.split()
    assert link == f"https://t.me/dti_tayninh_bot?start={other}"  # the deep link joins in one tap

    db = Database(url)
    try:
        province = Province(db, None, tmp_path)  # type: ignore[arg-type]
        svc = province.service()
        svc.handle("console", "c1", None, Inbound(InboundKind.TEXT, text=f"/start {invite}"))
        svc.handle("console", "c1", None, Inbound(InboundKind.TEXT, text="70,4"))
    finally:
        db.dispose()
    code, out, err = run("status")
    assert code == 0, err
    lines = out.splitlines()
    assert "DTI 2025" in lines[0] and "2 đơn vị" in lines[0]
    row = next(line for line in lines if line.startswith("25840"))
    assert "Xã An Bình mới" in row and "1/62" in row and "0/960" in row and "đang làm" in row
    assert any(line.startswith("25843") and "0/62" in line for line in lines)


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (("invite", "create", "--unit", "99999", "--role", "respondent"), "Không có đơn vị mã 99999"),
        (
            ("period", "open", "--name", "x", "--year", "2025", "--framework", "khong-co"),
            "Không có bộ chỉ số",
        ),
        (
            (
                "period",
                "open",
                "--name",
                "x",
                "--year",
                "2025",
                "--framework",
                "tay-ninh-commune-2025",
                "--self-assessment-due",
                "31/02/2026",
            ),
            "31/02/2026",
        ),
        (("status", "--period", "42"), "Không có kỳ đánh giá"),
    ],
)
def test_bad_admin_input_exits_2(url: str, argv: tuple[str, ...], needle: str) -> None:
    code, out, err = run(*argv)
    assert code == 2 and out == ""
    assert needle in err


def test_units_file_errors_name_the_row(url: str, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("code,name,level,parent\n1,A,commune,9\n", encoding="utf-8")
    code, _, err = run("units", "import", str(bad))
    assert code == 2 and "Dòng 1" in err and "9" in err
    bad.write_text("code,name,level\n1,A,xa\n", encoding="utf-8")
    assert 'cấp "xa" không hợp lệ' in run("units", "import", str(bad))[2]
    bad.write_text("ma,ten\n1,A\n", encoding="utf-8")
    assert "code, name, level" in run("units", "import", str(bad))[2]


@pytest.mark.parametrize(("rate", "interval"), [("nhanh", ""), ("0", "1"), ("30", "-1"), ("inf", "1")])
def test_run_telegram_refuses_a_pace_that_is_not_a_pace(
    url: str, monkeypatch: pytest.MonkeyPatch, rate: str, interval: str
) -> None:
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "123456:TEST")
    monkeypatch.setenv("TELEGRAM_RATE", rate)
    monkeypatch.setenv("TELEGRAM_CHAT_INTERVAL", interval)
    code, _, err = run("run", "telegram")
    assert code == 2
    assert "TELEGRAM_RATE (số tin mỗi giây) phải là số dương" in err
    assert f"đang đặt {rate} và {interval or '-'}" in err


# enough for `dtibot run telegram` and `run zalo` to get as far as their other settings
CHANNEL_SETTINGS = {
    "TELEGRAM_BOT_TOKEN": "123456:TEST",
    "ZALO_APP_ID": "1",
    "ZALO_APP_SECRET": "s",
    "ZALO_SIGNATURE_SECRET": "k",
}


@pytest.mark.parametrize("command", ["telegram", "zalo"])
@pytest.mark.parametrize("lease", ["lâu", "0", "-5", "1e9"])
def test_run_refuses_an_outbox_lease_that_is_not_a_duration(
    url: str, monkeypatch: pytest.MonkeyPatch, command: str, lease: str
) -> None:
    for key, value in {**CHANNEL_SETTINGS, "DTI_OUTBOX_LEASE": lease}.items():
        monkeypatch.setenv(key, value)
    code, _, err = run("run", command)
    assert code == 2
    assert "DTI_OUTBOX_LEASE" in err and f"đang đặt {lease}." in err


def test_the_outbox_lease_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import datetime as dt

    from bot.cli import Context
    from bot.cli_admin import _outbox_lease
    from bot.i18n import Translator
    from storage.outbox import STALE_CLAIM

    ctx = Context(Translator("vi"), io.StringIO(), io.StringIO())
    monkeypatch.delenv("DTI_OUTBOX_LEASE", raising=False)
    assert _outbox_lease(ctx) == STALE_CLAIM
    monkeypatch.setenv("DTI_OUTBOX_LEASE", "1,5")
    assert _outbox_lease(ctx) == dt.timedelta(seconds=1.5)


def test_the_telegram_pace_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from bot.cli import Context
    from bot.cli_admin import _telegram_pace
    from bot.i18n import Translator
    from bot.outbox import Pace

    ctx = Context(Translator("vi"), io.StringIO(), io.StringIO())
    monkeypatch.delenv("TELEGRAM_RATE", raising=False)
    monkeypatch.delenv("TELEGRAM_CHAT_INTERVAL", raising=False)
    assert _telegram_pace(ctx) == Pace()  # Telegram's own limits unless the operator says otherwise
    monkeypatch.setenv("TELEGRAM_RATE", "12,5")
    monkeypatch.setenv("TELEGRAM_CHAT_INTERVAL", "0")
    assert _telegram_pace(ctx) == Pace(12.5, 0.0)


@pytest.mark.parametrize("command", ["telegram", "zalo"])
def test_run_refuses_a_database_process_setting_it_does_not_know(
    url: str, monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    for key, value in {**CHANNEL_SETTINGS, "DTI_DB_PROCESS": "có lẽ"}.items():
        monkeypatch.setenv(key, value)
    code, _, err = run("run", command)
    assert code == 2
    assert "DTI_DB_PROCESS" in err and "đang đặt có lẽ." in err


def test_the_database_process_is_on_unless_turned_off(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from bot.cli import Context
    from bot.cli_admin import _db_process
    from bot.i18n import Translator
    from storage.db import Database

    ctx = Context(Translator("vi"), io.StringIO(), io.StringIO())
    on_disk, in_memory = Database(f"sqlite:///{tmp_path / 'dti.db'}"), Database("sqlite://")
    monkeypatch.delenv("DTI_DB_PROCESS", raising=False)
    assert _db_process(ctx, on_disk) and not _db_process(ctx, in_memory)  # no other process can open it
    for off in ("0", "off", "No"):
        monkeypatch.setenv("DTI_DB_PROCESS", off)
        assert not _db_process(ctx, on_disk)
    monkeypatch.setenv("DTI_DB_PROCESS", "1")
    assert _db_process(ctx, on_disk)
