"""Reminders for 10,000 members through the fake Telegram server, its limits enforced.

Builds a province of communes on SQLite (10 members each), opens a period whose deadline makes a
reminder due for everyone, runs one scheduler tick (derive and queue every reminder), then lets the
outbox sender deliver them at the allowed pace. Prints the achieved send rate as a share of the
allowed rate (goal ≥ 95 %), the number of 429 answers (goal 0) and of duplicates (must be 0), next to
the time the tick itself took.

    make bench     # or: .venv/bin/python bench/reminder_bench.py [--members 10000] [--per-second 200]

Telegram's real limit is about 30 messages per second (10,000 reminders then take about 6 minutes);
the fake enforces whatever `--per-second` says, and the sender is told the same limit.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import platform
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlmodel import select

from bot.channels.telegram import TelegramTransport, escape, make_bot
from bot.outbox import OutboxSender, RateLimiter
from bot.scheduler import ReminderScheduler
from flows.reminders import Policy
from scoring.answers import VIETNAM_TZ
from storage import migrate
from storage.admin import UnitRow, import_units, open_period
from storage.db import Database
from storage.models import Member, Unit
from tests.fake_telegram import FakeTelegram, Limits


def build(db: Database, members: int) -> None:
    now = dt.datetime.now(dt.UTC)
    communes = max(1, members // 10)
    rows = [UnitRow("P0", "Tỉnh thử", "province", None)] + [
        UnitRow(f"X{i:05d}", f"Xã thử {i}", "commune", "P0") for i in range(communes)
    ]
    with db.session() as s:
        import_units(s, rows, now)
        ids = {u.code: u.id for u in s.exec(select(Unit))}
        s.add_all(
            Member(
                channel="telegram",
                chat_id=str(1_000_000 + n),
                unit_id=ids[f"X{n % communes:05d}"],
                role="respondent",
            )
            for n in range(members)
        )
        always = Policy(quiet_start=dt.time(0, 0), quiet_end=dt.time(0, 0), skip_weekends=False)
        open_period(
            s,
            name="Bench",
            year=2026,
            framework_id="tay-ninh-commune-2025",
            framework_version="2025.1",
            now=now,
            self_assessment_due=now + dt.timedelta(days=2),
            reminder_policy_json=json.dumps(always.to_json()),
        )


async def deliver(db: Database, fake: FakeTelegram, per_second: float) -> tuple[float, int]:
    bot = make_bot(fake.token, fake.url, timeout=10)
    sender = OutboxSender(db, TelegramTransport(bot), RateLimiter(per_second, 1.0), concurrency=64, batch=500)
    started = time.perf_counter()
    await sender.drain(timeout=3600)
    elapsed = time.perf_counter() - started
    await bot.session.close()
    return elapsed, sender.sent


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--members", type=int, default=10_000)
    parser.add_argument("--per-second", type=float, default=200.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        migrate.upgrade(url)
        db = Database(url)
        build(db, args.members)
        started = time.perf_counter()
        planned = ReminderScheduler(db, escapes={"telegram": escape}).tick()
        tick = time.perf_counter() - started
        fake = FakeTelegram(limits=Limits(chat_interval=1.0, per_second=args.per_second))
        await fake.start()
        try:
            elapsed, sent = await deliver(db, fake, args.per_second)
        finally:
            await fake.stop()
        per_chat = Counter(chat for chat, messages in fake.transcripts.items() for _ in messages)
        duplicates = sum(n - 1 for n in per_chat.values() if n > 1)
        achieved = sent / elapsed if elapsed else 0.0
        print(
            f"machine: {platform.machine()}, {platform.python_implementation()} {platform.python_version()}"
        )
        print(f"members: {args.members}; one tick queued {len(planned)} reminders in {tick:.2f} s (baseline)")
        print(f"allowed rate: {args.per_second:.0f}/s overall, 1/s per chat (enforced by the fake)")
        share = 100 * achieved / args.per_second
        print(
            f"delivered: {sent} in {elapsed:.1f} s = {achieved:.1f}/s = {share:.1f}% of allowed (goal ≥ 95%)"
        )
        print(f"429 answers: {fake.too_many} (goal 0); duplicates: {duplicates} (must be 0)")
        db.dispose()
        now = dt.datetime.now(VIETNAM_TZ)
        print(f"run at {now:%d/%m/%Y %H:%M} Asia/Ho_Chi_Minh")


if __name__ == "__main__":
    asyncio.run(main())
