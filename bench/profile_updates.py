"""Where one update's time goes: the update benchmark's officials, one at a time, under cProfile.

The service's database work normally runs on its worker threads, which cProfile does not follow; here
it runs inline on the event loop so the profile sees the whole pipeline (aiogram, engine, storage,
render). Also counts the SQL statements and transactions each update costs, and the process CPU time
per update, which is what bounds throughput on one core.

    .venv/bin/python bench/profile_updates.py [--officials 80] [--postgres URL] [--top 30]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import update_bench
from sqlalchemy import event

from bot.channels.telegram import TelegramChannel, escape, make_bot
from bot.service import Service, resolve_framework
from flows.model import Inbound
from storage import migrate
from storage.db import Database
from storage.evidence import EvidenceStore
from tests.fake_telegram import FakeTelegram, Limits
from tests.storage_fixtures import bench_databases


class InlineService(Service):
    """The service with its database work on the calling thread, so the profiler sees it."""

    async def handle_async(
        self,
        channel: str,
        chat_id: str,
        inbound_id: str | None,
        inbound: Inbound,
        prepend: Sequence[dict[str, object]] = (),
    ) -> list[int]:
        return self.handle(channel, chat_id, inbound_id, inbound, prepend)


def count_statements(db: Database) -> Counter[str]:
    counts: Counter[str] = Counter()

    def executed(*args: Any) -> None:
        counts["statements"] += 1

    def committed(*args: Any) -> None:
        counts["transactions"] += 1

    event.listen(db.engine, "before_cursor_execute", executed)
    event.listen(db.engine, "commit", committed)
    return counts


async def profile(url: str, officials: int, steps: int, top: int, tmp: Path) -> None:
    migrate.upgrade(url)
    db = Database(url)
    framework = resolve_framework("tay-ninh-commune-2025", "2025.1")
    period_id, codes = update_bench.build(db, officials)
    fake = FakeTelegram(limits=Limits(chat_interval=0.0, per_second=1e9))
    scripts = update_bench.make_updates(
        fake, [update_bench.script(framework, period_id, c, steps, n) for n, c in enumerate(codes)]
    )
    await fake.start()
    bot = make_bot(fake.token, fake.url, timeout=10)
    try:
        service = InlineService(db, escapes={"telegram": escape})
        channel = TelegramChannel(bot, service, EvidenceStore(tmp / "ev"))
        feed = update_bench.feeder(channel.dispatcher, bot)
        warm = officials // 4
        half = warm + (officials - warm) // 2
        await update_bench.drive(feed, scripts[:warm], 1, None)
        counts = count_statements(db)
        started, cpu = time.perf_counter(), time.process_time()
        figures = await update_bench.drive(feed, scripts[warm:half], 1, None)
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
        n = figures.updates
        print(figures.line("  one official at a time, no profiler"))
        print(
            f"  per update: {1000 * wall / n:.2f} ms wall, {1000 * cpu / n:.2f} ms CPU (the fake Bot API "
            f"runs in this process too), {counts['statements'] / n:.1f} SQL statements, "
            f"{counts['transactions'] / n:.2f} transactions"
        )
        profiler = cProfile.Profile()
        profiler.enable()
        await update_bench.drive(feed, scripts[half:], 1, None)
        profiler.disable()
        stats = pstats.Stats(profiler, stream=sys.stdout)
        stats.sort_stats("cumulative").print_stats(r"/(bot|storage|flows|scoring)/", top)
    finally:
        await bot.session.close()
        await fake.stop()
        db.dispose()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--officials", type=int, default=80)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--top", type=int, default=30, help="functions of ours to list")
    parser.add_argument("--postgres", default=os.environ.get("DTI_TEST_POSTGRES_URL"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for name, url in bench_databases(Path(tmp), args.postgres):
            await profile(url, args.officials, args.steps, args.top, Path(tmp) / name[:6])


if __name__ == "__main__":
    asyncio.run(main())
