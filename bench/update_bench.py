"""Deadline-day update handling: many officials answering at once through the real aiogram dispatcher.

Each simulated official joins a commune with `/start CODE` and walks the Tây Ninh framework the way
people do on a phone: typed answers (`70,4`, `12/30`, `có`, `5`), yes/no pressed as buttons, small PDFs
as evidence and `để sau` when they have none. Every update is a real Telegram `Update` fed to the
dispatcher, so the whole pipeline runs: aiogram routing, callback answers and file downloads against
the fake Bot API on 127.0.0.1, the engine, the scoring preview, storage (messages of different chats
share a transaction when they queue up), rendering and the outbox rows. Every official writes from a
chat of its own. The updates are made before the clock starts and the fake Bot API runs in a process
of its own (`fake_telegram_process`), as Telegram's servers do: the figures are the bot's work alone.
As `dtibot run telegram` does, the batches' database work runs in a process of its own
(bot/db_process.py; `--no-db-process` keeps it on a thread of the bot's process). Each run prints the
CPU time per update, split between the two processes, and the cores used: a process's threads share
one core's worth of Python (the GIL), so without the database process the throughput is about 1 ÷
that CPU time, and with it about 1 ÷ the busier process's share.

Three runs per database, after a warm-up, in a process settled as the bot settles once started
(`bot.heap`), with autovacuum's ANALYZE rule applied on PostgreSQL (`Autoanalyze`):
- throughput: `--concurrency` officials at a time, as fast as the bot goes (updates/s, latencies);
- the same with the outbox sender delivering the replies from the same process, as `dtibot run
  telegram` does, at Telegram's documented pace (30 messages/s, one a second per chat: `Pace`). On a
  rush the outbox grows faster than Telegram lets it drain; what this shows is what delivery costs the
  handling. The sender's own ceiling is measured by `reminder_bench.py`;
- paced: updates arriving at `--rate` per second, the sender delivering as above (the latency a user
  feels at that load).
Baseline in the same run: the same dispatcher and fake API with a handler that only echoes the text
back (`message.answer`), the floor any aiogram bot pays; the ratio between the two is printed. The
echo also runs paced at `--rate`, the latency floor for the paced run: at a low rate a process spends
more CPU per update than when it is saturated (waking up for each update; measured here: the echo
2,25 ms against 1,12 ms), and the machine's own scheduling shows in the tail.

    make bench     # or: .venv/bin/python bench/update_bench.py [--officials 2000] [--steps 12]
                   #        [--postgres postgresql+psycopg://postgres@127.0.0.1:5432/test]
                   #        [--no-db-process]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import os
import platform
import resource
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import bot.channels  # noqa: F401  first, as in the bot process: aiogram's schemas build on first use

# isort: split
from aiogram import Bot, Dispatcher, Router
from aiogram.types import Message, Update

from bot import heap
from bot.channels.telegram import TelegramChannel, TelegramTransport, escape, make_bot
from bot.outbox import OutboxSender, Pace, RateLimiter
from bot.service import Service, resolve_framework
from flows.intents import payload
from scoring.model import AnswerType, Framework
from storage import migrate
from storage.admin import UnitRow, create_invite, import_units, open_period
from storage.db import Database
from storage.evidence import EvidenceStore
from tests.e2e_support import pdf_bytes
from tests.fake_telegram import FakeTelegram, Limits, Sent, fake_telegram_process
from tests.storage_fixtures import bench_databases

CHAT_BASE = 7_000_000


def build(db: Database, officials: int) -> tuple[int, list[str]]:
    """A province of `officials` communes, one respondent invite each; returns the period id and codes."""
    now = dt.datetime.now(dt.UTC)
    rows = [UnitRow("P0", "Tỉnh thử", "province", None)] + [
        UnitRow(f"X{i:05d}", f"Xã thử {i}", "commune", "P0") for i in range(officials)
    ]
    with db.session() as s:
        import_units(s, rows, now)
        period = open_period(
            s,
            name="Bench",
            year=2026,
            framework_id="tay-ninh-commune-2025",
            framework_version="2025.1",
            now=now,
            self_assessment_due=now + dt.timedelta(days=2),
        )
        codes = [create_invite(s, f"X{i:05d}", "respondent", now).code for i in range(officials)]
        assert period.id is not None
        return period.id, codes


Step = Callable[[FakeTelegram, int], dict[str, Any]]


def script(framework: Framework, period_id: int, code: str, steps: int, n: int) -> list[Step]:
    """What official `n` sends, in order: the join, then answers and evidence for the first indicators."""
    out: list[Step] = [lambda f, chat: f.text(chat, f"/start {code}")]
    for k, ind in enumerate(framework.indicators):
        if len(out) >= steps:
            break
        kind = ind.answer.type
        if kind is AnswerType.YES_NO and (n + k) % 2:
            data = payload("ans", period_id, ind.code, "yes")
            out.append(lambda f, chat, data=data: f.press(chat, Sent(1, chat, "", []), data=data))
            points = True
        elif kind is AnswerType.YES_NO:
            out.append(lambda f, chat: f.text(chat, "có"))
            points = True
        elif kind is AnswerType.PERCENTAGE:
            out.append(lambda f, chat: f.text(chat, "12/30"))
            points = True
        else:
            out.append(lambda f, chat: f.text(chat, "5"))
            points = True
        if ind.evidence.required and points:
            if (n + k) % 3 == 0:
                tag = f"{n}-{k}"
                out.append(lambda f, chat, tag=tag: f.document(chat, f"bc-{tag}.pdf", pdf_bytes(tag)))
                out.append(lambda f, chat: f.text(chat, "xong"))
            else:
                out.append(lambda f, chat: f.text(chat, "để sau"))
    return out[:steps]


@dataclass
class Figures:
    updates: int
    seconds: float
    latencies: list[float] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.updates / self.seconds if self.seconds else 0.0

    def pct(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return 1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0

    def line(self, label: str) -> str:
        return (
            f"{label}: {self.updates} updates in {self.seconds:.1f} s = {self.rate:,.0f}/s; "
            f"latency p50 {self.pct(0.5):.1f} ms, p95 {self.pct(0.95):.1f} ms, p99 {self.pct(0.99):.1f} ms"
        )


class Pacer:
    """Hands out start times `1/rate` apart (None: no pacing)."""

    def __init__(self, rate: float | None) -> None:
        self.interval = 1 / rate if rate else 0.0
        self.next = time.perf_counter()
        self.lock = asyncio.Lock()

    async def wait(self) -> None:
        if not self.interval:
            return
        async with self.lock:
            now = time.perf_counter()
            self.next = max(self.next + self.interval, now)
            delay = self.next - now
        if delay > 0:
            await asyncio.sleep(delay)


def make_updates(fake: FakeTelegram, scripts: list[list[Step]], first: int = 0) -> list[list[dict[str, Any]]]:
    """Every update the officials will send, made before the clock starts (Telegram makes them, not the
    bot): official `n` writes from chat `CHAT_BASE + first + n`, so each script has a chat of its own.
    The documents' bytes are left in `fake.files`, which the fake Bot API then serves."""
    return [[make(fake, CHAT_BASE + first + n) for make in steps] for n, steps in enumerate(scripts)]


async def drive(
    feed: Callable[[dict[str, Any]], Awaitable[None]],
    officials: list[list[dict[str, Any]]],
    concurrency: int,
    rate: float | None,
) -> Figures:
    """`concurrency` officials at a time, each sending its updates in order, each once the last one
    was handled (a phone waits for the answer), at most `rate` updates/s in all."""
    queue: asyncio.Queue[list[dict[str, Any]]] = asyncio.Queue()
    for updates in officials:
        queue.put_nowait(updates)
    figures = Figures(sum(len(u) for u in officials), 0.0)
    pacer = Pacer(rate)

    async def official() -> None:
        while not queue.empty():
            for update in queue.get_nowait():
                await pacer.wait()
                started = time.perf_counter()
                await feed(update)
                figures.latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(official() for _ in range(concurrency)))
    figures.seconds = time.perf_counter() - started
    return figures


class Autoanalyze:
    """On PostgreSQL, while the block runs: autovacuum's ANALYZE rule, applied every second.

    A database in service keeps the planner's statistics current: autovacuum analyzes a table once
    more than 50 rows plus a tenth of it have changed. This run puts a deadline day into about a minute,
    on tables made a moment before it, and the test machine's server runs with autovacuum off. Cached
    plans made while the tables were nearly empty then stay in use as they grow tenfold: sequential
    scans in the foreign-key checks and in the batch's reads (measured: 41 % of the server's CPU in
    the foreign-key checks, and 5,3 ms more per batch in the reads). So the same rule runs here, with
    a naptime of one second instead of one minute.
    """

    THRESHOLD = 50
    SCALE = 0.1
    NAPTIME = 1.0
    _DUE = (
        "SELECT s.relname FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid"
        " WHERE s.n_mod_since_analyze > %(threshold)s + %(scale)s * greatest(c.reltuples, 0)"
    )

    def __init__(self, db: Database) -> None:
        self.db = db
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="autoanalyze", daemon=True)

    def __enter__(self) -> Autoanalyze:
        if self.db.engine.dialect.name == "postgresql":
            self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        if self.thread.is_alive():
            self.thread.join()

    def _run(self) -> None:
        with self.db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            while not self.stop.wait(self.NAPTIME):
                due = connection.exec_driver_sql(
                    self._DUE, {"threshold": self.THRESHOLD, "scale": self.SCALE}
                ).scalars()
                for table in list(due):
                    connection.exec_driver_sql(f'ANALYZE "{table}"')


def feeder(dispatcher: Dispatcher, bot: Bot) -> Callable[[dict[str, Any]], Awaitable[None]]:
    async def feed(raw: dict[str, Any]) -> None:
        await dispatcher.feed_update(bot, Update.model_validate(raw, context={"bot": bot}))

    return feed


def echo_dispatcher() -> Dispatcher:
    router = Router()

    @router.message()
    async def echo(message: Message) -> None:
        await message.answer(message.text or "…")

    @router.callback_query()
    async def pressed(query: Any) -> None:
        await query.answer()

    dispatcher = Dispatcher()
    dispatcher.include_router(router)
    return dispatcher


async def run(url: str, args: argparse.Namespace, framework: Framework, tmp: Path) -> list[str]:
    migrate.upgrade(url)
    db = Database(url)
    period_id, codes = build(db, args.officials)
    maker = FakeTelegram()
    officials = make_updates(
        maker, [script(framework, period_id, c, args.steps, n) for n, c in enumerate(codes)]
    )
    echoes = make_updates(
        maker, [[lambda f, chat: f.text(chat, "70,4")] * args.steps] * (args.officials // 2), args.officials
    )
    limits = Limits(chat_interval=0.0, per_second=1e9)
    stop = asyncio.Event()
    sending: asyncio.Task[None] | None = None
    with fake_telegram_process(maker.token, limits, maker.files) as (api, _):
        bot = make_bot(maker.token, api, timeout=10)
        service = Service(db, escapes={"telegram": escape}, db_process=args.db_process)
        children: tuple[int, ...] = ()
        try:
            # as `dtibot run telegram` does: the database work in a process of its own, started first
            children = (await service.database_process().ready(),) if args.db_process else ()
            pace = Pace()
            sender = OutboxSender(
                db, TelegramTransport(bot), RateLimiter(pace.per_second, pace.chat_interval)
            )
            channel = TelegramChannel(bot, service, EvidenceStore(tmp / "ev"), sender)
            feed = feeder(channel.dispatcher, bot)
            heap.settle()  # as `dtibot run telegram` does once started
            warm = args.officials // 10
            third = (args.officials - warm) // 3
            with Autoanalyze(db):
                await drive(feed, officials[:warm], args.concurrency, None)
                cpu = ProcessCpu(children)
                full = await drive(feed, officials[warm : warm + third], args.concurrency, None)
                full_cpu = cpu.per_update(full)
                sending = asyncio.create_task(sender.run(stop))
                delivering = await drive(
                    feed, officials[warm + third : warm + 2 * third], args.concurrency, None
                )
                delivered = sender.sent
                cpu = ProcessCpu(children)
                paced = await drive(feed, officials[warm + 2 * third :], args.concurrency, args.rate)
                paced_cpu = cpu.per_update(paced)
                delivered_paced = sender.sent - delivered
                sending.cancel()  # mid-batch at 30/s: what it holds is left claimed, as in a crash
                with contextlib.suppress(asyncio.CancelledError):
                    await sending
            echo_feed = feeder(echo_dispatcher(), bot)
            cpu = ProcessCpu(children)
            echo = await drive(echo_feed, echoes[len(echoes) // 3 :], args.concurrency, None)
            echo_cpu = cpu.per_update(echo)
            cpu = ProcessCpu(children)
            echo_paced = await drive(echo_feed, echoes[: len(echoes) // 3], args.concurrency, args.rate)
            echo_paced_cpu = cpu.per_update(echo_paced)
        finally:
            if sending is not None and not sending.done():
                sending.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sending
            await bot.session.close()
            child_peak = [peak_rss(pid) for pid in children]
            service.close()
            db.dispose()
    return [
        echo.line("  baseline, echo handler (the aiogram floor)") + f"; {echo_cpu}",
        full.line(f"  DTI pipeline, {args.concurrency} officials at a time") + f"; {full_cpu}",
        f"  throughput / echo floor: {full.rate / echo.rate:.2f} (goal ≥ 0.5)",
        delivering.line("  the same, replies delivered meanwhile at Telegram's pace")
        + f"; {delivered} sent; / echo floor: {delivering.rate / echo.rate:.2f}",
        echo_paced.line(f"  baseline, echo handler paced at {args.rate:.0f} updates/s")
        + f"; {echo_paced_cpu}",
        paced.line(f"  DTI pipeline paced at {args.rate:.0f} updates/s, replies delivered meanwhile")
        + f"; {delivered_paced} sent; {paced_cpu}; p99 goal < 50 ms",
        *(f"  peak RSS of the database process: {mb:.0f} MB" for mb in child_peak),
    ]


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of another process so far (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss(pid: int) -> float:
    """Another process's peak resident memory so far, in MB (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


class ProcessCpu:
    """The bot's CPU time from now on, per update, and the cores it used: this process's threads
    share one core's worth of Python (the GIL), and the database process (`children`, the default
    of `dtibot run telegram`) runs beside it on another core."""

    def __init__(self, children: tuple[int, ...] = ()) -> None:
        self.children = children
        self.started = time.perf_counter()
        self.own = time.process_time()
        self.child = self.child_cpu()

    def child_cpu(self) -> float:
        return sum(cpu_seconds(pid) for pid in self.children)

    def per_update(self, figures: Figures) -> str:
        own = time.process_time() - self.own
        child = self.child_cpu() - self.child
        cpu = own + child
        wall = time.perf_counter() - self.started
        split = (
            f" (this process {1000 * own / figures.updates:.2f}, the database process "
            f"{1000 * child / figures.updates:.2f})"
            if self.children
            else ""
        )
        return f"CPU {1000 * cpu / figures.updates:.2f} ms/update{split}, {cpu / wall:.2f} cores"


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--officials", type=int, default=2000)
    parser.add_argument("--steps", type=int, default=12, help="updates per official")
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--rate", type=float, default=200.0, help="updates/s for the paced run")
    parser.add_argument("--postgres", default=os.environ.get("DTI_TEST_POSTGRES_URL"))
    parser.add_argument(
        "--db-process",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="the database work in a process of its own, as `dtibot run telegram` does (the default)",
    )
    args = parser.parse_args()
    framework = resolve_framework("tay-ninh-commune-2025", "2025.1")
    assert framework is not None
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, CPython {platform.python_version()}")
    print(f"{args.officials} officials × {args.steps} updates (first tenth warms up, then half and half)")
    with tempfile.TemporaryDirectory() as tmp:
        for name, url in bench_databases(Path(tmp), args.postgres):
            for line in await run(url, args, framework, Path(tmp) / name[:6]):
                print(line)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS of this process: {peak:.0f} MB")


if __name__ == "__main__":
    asyncio.run(main())
