"""Long polling under a backlog: getUpdates calls and updates received per update handled.

Telegram confirms every update below getUpdates' offset, and the bot holds the offset at the oldest
update it has not finished, so a call made while updates are in hand returns them all again before
any new one. This counts, at the fake Bot API (which drops confirmed updates as Telegram does), what
the bot's real polling loop (`TelegramApp.start_polling`) asks for and is sent while it handles:

- a backlog: `--officials` officials × 10 updates (a join, four answers with `để sau` at each evidence
  step, the score), all waiting before the bot starts, interleaved as many officials writing at once;
- a stream: the same updates arriving at `--rate` per second while the bot runs.

The figures are counts (calls, updates sent by the fake, updates handled); the time to handle them
all is printed for context only. The fake runs in the bench's process; the database is SQLite, or a
scratch PostgreSQL database with `--postgres`.

    .venv/bin/python bench/polling_bench.py [--officials 20 100] [--rate 100]
                                            [--postgres postgresql+psycopg://postgres@127.0.0.1:5432/test]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import bot.channels  # noqa: F401  first, as in the bot process: aiogram's schemas build on first use

# isort: split
from sqlmodel import func, select

from bot.channels.telegram import make_bot
from bot.channels.telegram_app import TelegramApp
from bot.outbox import Pace
from storage import migrate
from storage.admin import UnitRow, create_invite, import_units, open_period
from storage.db import Database
from storage.evidence import EvidenceStore
from storage.models import ProcessedInbound
from tests.fake_telegram import FakeTelegram, Limits
from tests.storage_fixtures import create_postgres_database, drop_postgres_database

LINES = ["70,4", "để sau", "12/30", "để sau", "55,5", "để sau", "5", "để sau", "xem điểm"]
FAST = Pace(per_second=100_000, chat_interval=0.0)


def province(db: Database, officials: int) -> list[str]:
    """`officials` communes with an open period; one respondent invite each."""
    now = dt.datetime.now(dt.UTC)
    rows = [UnitRow("P0", "Tỉnh thử", "province", None)] + [
        UnitRow(f"X{i:05d}", f"Xã thử {i}", "commune", "P0") for i in range(officials)
    ]
    with db.session() as s:
        import_units(s, rows, now)
        open_period(
            s,
            name="Bench",
            year=2026,
            framework_id="tay-ninh-commune-2025",
            framework_version="2025.1",
            now=now,
            self_assessment_due=now + dt.timedelta(days=2),
        )
        return [create_invite(s, f"X{i:05d}", "respondent", now).code for i in range(officials)]


def updates(fake: FakeTelegram, codes: list[str]) -> list[dict[str, Any]]:
    """Every official's updates, interleaved: first everyone's join, then everyone's first answer…"""
    chats = [7_000_000 + n for n in range(len(codes))]
    scripts = [[f"/start {code}", *LINES] for code in codes]
    return [
        fake.text(chat, script[step])
        for step in range(len(LINES) + 1)
        for chat, script in zip(chats, scripts, strict=True)
    ]


def handled(db: Database) -> int:
    with db.session() as s:
        return int(s.exec(select(func.count()).select_from(ProcessedInbound)).one())


async def run(url: str, officials: int, rate: float | None, tmp: Path) -> str:
    migrate.upgrade(url)
    db = Database(url)
    fake = FakeTelegram(limits=Limits(chat_interval=0.0, per_second=1e9))
    await fake.start()
    app: TelegramApp | None = None
    try:
        queued = updates(fake, province(db, officials))
        if rate is None:
            for update in queued:
                fake.push(update)
        bot = make_bot(fake.token, fake.url, timeout=10)
        app = TelegramApp(db, bot, EvidenceStore(tmp), pace=FAST, remind_every=None)
        started = time.perf_counter()
        await app.start_polling()
        if rate is not None:
            for n, update in enumerate(queued):
                await asyncio.sleep(max(0.0, started + n / rate - time.perf_counter()))
                fake.push(update)
        while handled(db) < len(queued):
            await asyncio.sleep(0.02)
        seconds = time.perf_counter() - started
        calls, received = fake.get_updates_calls, fake.updates_returned
    finally:
        if app is not None:
            await app.stop()
        await fake.stop()
        db.dispose()
    total = len(queued)
    what = f"backlog of {total}" if rate is None else f"{total} arriving at {rate:g}/s"
    return (
        f"  {what} ({officials} officials): handled in {seconds:.1f} s; getUpdates {calls} calls, "
        f"{received} updates received = {received / total:.2f} per update handled, "
        f"{calls / total:.3f} calls per update handled"
    )


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--officials", type=int, nargs="+", default=[20, 100])
    parser.add_argument("--rate", type=float, default=100.0, help="updates/s for the stream")
    parser.add_argument("--postgres", default=os.environ.get("DTI_TEST_POSTGRES_URL"))
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, CPython {platform.python_version()}")
    with tempfile.TemporaryDirectory() as tmp:
        for name, base in (("SQLite (WAL)", f"sqlite:///{tmp}/bench"), ("PostgreSQL", args.postgres)):
            if not base:
                print(f"{name}: skipped (no --postgres URL)")
                continue
            print(f"{name}:")
            for n, (officials, rate) in enumerate(
                (officials, rate) for officials in args.officials for rate in (None, args.rate)
            ):
                url = create_postgres_database(base) if name == "PostgreSQL" else f"{base}-{n}.db"
                try:
                    print(await run(url, officials, rate, Path(tmp) / f"ev-{n}"))
                finally:
                    if name == "PostgreSQL":
                        drop_postgres_database(base, url)


if __name__ == "__main__":
    asyncio.run(main())
