"""`dtibot run telegram` at start (issue 20 item 8, issue 21 item 17).

The Bot API unreachable at start (getMe, deleteWebhook, setMyCommands, setWebhook failing, or nothing
listening yet) is waited out: the bot retries with a capped backoff, says so in its log at each try,
and comes up and answers once Telegram does. A malformed TELEGRAM_BOT_TOKEN, or one Telegram refuses,
cannot get better by waiting: one clear line, a non-zero exit, no traceback.
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import IO

import pytest

from bot.channels.telegram import make_bot
from bot.channels.telegram_app import TelegramApp
from bot.cli import main
from storage import migrate
from storage.db import Database
from tests.e2e_support import make_province
from tests.fake_telegram import FakeTelegram, Limits
from tests.test_telegram import CHAT, FAST, Harness

DTIBOT = str(Path(sys.executable).parent / "dtibot")


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    server = FakeTelegram(limits=Limits(chat_interval=0.0, per_second=10_000))
    await server.start()
    yield server
    await server.stop()


@pytest.mark.parametrize("mode", ["polling", "webhook"])
async def test_the_bot_waits_for_an_unreachable_bot_api_and_comes_up(
    db: Database, tmp_path: Path, fake: FakeTelegram, mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    p = make_province(db, tmp_path)
    fake.unavailable = 5  # getMe, then the next calls: 502 Bad Gateway
    h = Harness(fake, p, mode, start_backoff=(0.01, 0.04))
    caplog.set_level(logging.WARNING)
    await h.start()
    try:
        retries = [r for r in caplog.records if "Telegram Bot API unreachable at start" in r.getMessage()]
        assert len(retries) == 5 and all(r.levelno == logging.WARNING and not r.exc_info for r in retries)
        assert (
            "retry 5 in 0,04 s" in retries[-1].getMessage() or "retry 5 in 0.04 s" in retries[-1].getMessage()
        )
        assert fake.calls[:5] == ["getme"] * 5 and fake.commands  # the menu was set once it could be
        if mode == "webhook":
            assert fake.webhook["url"] == "https://bot.example/tg"
        out = await h.text(f"/start {p.invite('25840', 'respondent')}")
        assert "Đã liên kết với Xã An Bình" in out
    finally:
        await h.stop()


def test_the_backoff_doubles_up_to_its_cap() -> None:
    from bot.channels.telegram_app import start_delays

    assert list(zip(range(9), start_delays(1.0, 60.0), strict=False)) == list(
        enumerate([1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0, 60.0])
    )


async def test_stopping_while_waiting_for_the_bot_api(
    db: Database, tmp_path: Path, fake: FakeTelegram
) -> None:
    """SIGTERM while Telegram is still unreachable: the start gives up at once and the app stops."""
    p = make_province(db, tmp_path)
    fake.unavailable = 10_000
    bot = make_bot(fake.token, fake.url, timeout=2.0)
    app = TelegramApp(p.db, bot, p.store, pace=FAST, remind_every=None, start_backoff=(30.0, 60.0))
    starting = asyncio.create_task(app.start_polling())
    while "getme" not in fake.calls:
        await asyncio.sleep(0.01)
    app.stopping.set()
    await asyncio.wait_for(starting, 5)
    await asyncio.wait_for(app.stop(), 15)
    assert set(fake.calls) == {"getme"}


@pytest.mark.parametrize(
    "token",
    ["abc", "123456", "123456:", ":abc", "123 456:abc", "123456:abc def", "²:abc", "123:ábc", "12:a/b"],
)
def test_a_malformed_token_is_one_clear_line(
    token: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'run.db'}"
    migrate.upgrade(url)
    monkeypatch.setenv("DTI_DATABASE_URL", url)
    monkeypatch.setenv("DTI_DB_PROCESS", "0")
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", token)
    monkeypatch.setenv("TELEGRAM_API_URL", "http://127.0.0.1:9")  # never reached
    out, err = io.StringIO(), io.StringIO()
    assert main(["run", "telegram"], out, err) == 2
    lines = [line for line in err.getvalue().splitlines() if line.strip()]
    assert len(lines) == 1 and "TELEGRAM_BOT_TOKEN" in lines[0] and "@BotFather" in lines[0]
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err + captured.out and not out.getvalue()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Lines:
    """A process's standard error, line by line, read on a thread."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.lines: list[str] = []
        self.thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self.thread.start()

    def _read(self, stream: IO[bytes]) -> None:
        for raw in stream:
            self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))

    async def wait_for(self, text: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(text in line for line in self.lines):
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"{text!r} not in {self.lines}")


def run_env(tmp_path: Path, token: str, api: str) -> tuple[dict[str, str], Database]:
    url = f"sqlite:///{tmp_path / 'run.db'}"
    migrate.upgrade(url)
    env = {
        **os.environ,
        "DTI_DATABASE_URL": url,
        "DTI_EVIDENCE_DIR": str(tmp_path / "ev"),
        "TELEGRAM_BOT_TOKEN": token,
        "TELEGRAM_API_URL": api,
    }
    return env, Database(url)


async def test_dtibot_run_telegram_waits_for_a_bot_api_that_starts_late(tmp_path: Path) -> None:
    port = free_port()
    fake = FakeTelegram(limits=Limits(chat_interval=0.0, per_second=10_000))
    env, db = run_env(tmp_path, fake.token, f"http://127.0.0.1:{port}")
    p = make_province(db, tmp_path)
    code = p.invite("25840", "respondent")
    proc = subprocess.Popen([DTIBOT, "run", "telegram"], env=env, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    err = Lines(proc.stderr)
    try:
        await err.wait_for(
            "Telegram Bot API unreachable at start", timeout=90
        )  # a loaded machine: slow start
        assert proc.poll() is None  # still running, waiting for Telegram
        await fake.start(port)
        fake.push(fake.text(CHAT, f"/start {code}"))
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and "Câu 1/62" not in fake.text_of(CHAT):
            await asyncio.sleep(0.05)
        assert "Đã liên kết với Xã An Bình" in fake.text_of(CHAT)
    finally:
        proc.send_signal(signal.SIGTERM)
        code_ = await asyncio.to_thread(proc.wait, 30)
        await fake.stop()
        db.dispose()
        err.thread.join(5)
        proc.stderr.close()
    assert code_ == 0, err.lines
    assert not any("Traceback" in line for line in err.lines), err.lines


async def test_dtibot_run_telegram_with_a_refused_token(tmp_path: Path, fake: FakeTelegram) -> None:
    env, db = run_env(tmp_path, "999999:WRONG-token", fake.url)
    db.dispose()
    proc = await asyncio.to_thread(
        subprocess.run, [DTIBOT, "run", "telegram"], env=env, capture_output=True, timeout=120
    )
    err = [line for line in proc.stderr.decode().splitlines() if line.strip()]
    assert proc.returncode == 2
    assert len(err) == 1 and "TELEGRAM_BOT_TOKEN" in err[0] and "Traceback" not in proc.stderr.decode()
    assert "unreachable" not in proc.stderr.decode()  # refused at once: waiting would not help
