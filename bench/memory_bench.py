"""10,000 members and 1,000 conversations in progress stay under 200 MB RSS.

The bot is meant to run a whole province on a small VPS next to its database, so its memory must not
grow with the number of members or of open conversations. Seeds a migrated SQLite database with
1,000 communes × 10 members: in each commune one respondent joins through the real console pipeline
(an invite code, then an answer and its evidence step, so a conversation row is in progress at the
second indicator) and nine more members (leaders and respondents on Telegram) are inserted as rows.
Then a clean child process runs the bot service over that database and handles one more message (the
answer to the second indicator) for each of the 1,000 conversations, and reports its peak RSS
(`ru_maxrss` and `/proc/self/status` VmHWM). The baseline is the peak RSS of a clean child that only
imports the bot modules (`bot.channels.telegram`, `sqlmodel`, `bot.service`, `bot.channels.console`)
and builds the aiogram schemas the Telegram channel builds at start-up; the measured child does the
same before it starts, so the difference is what the data and the work cost. `dtibot run telegram`
does its database work in a second process (bot/db_process.py): one more child handles the same
messages that way, 50 at a time from an event loop, and the two processes' peak RSS is printed and
held to the target together. Also printed: a child that imports aiogram on its own, which builds all
of aiogram's ~600 schemas at import (what the bot avoids, see `bot/channels/aiogram_schemas.py`).

    make bench    # or: .venv/bin/python bench/memory_bench.py [--communes 1000] [--members 10]
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import io
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

TARGET_MB = 200.0
TELEGRAM = "bot.channels.telegram"
IMPORTS = (TELEGRAM, "sqlmodel", "bot.service", "bot.channels.console")


def peak_mb() -> tuple[float, float, float]:
    """(ru_maxrss, VmHWM, VmRSS now) of this process in MB."""
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    status: dict[str, float] = {}
    path = Path("/proc/self/status")
    if path.exists():
        for line in path.read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmHWM", "VmRSS"):
                status[key] = int(value.split()[0]) / 1024
    return maxrss, status.get("VmHWM", 0.0), status.get("VmRSS", 0.0)


def seed(url: str, communes: int, members: int) -> float:
    """The province, its members and one conversation in progress per commune; returns seconds."""
    import sqlalchemy as sa
    from sqlmodel import select

    from bot import catalog
    from bot.channels.console import ConsoleChannel
    from bot.service import Service
    from storage import migrate
    from storage.admin import UnitRow, create_invite, import_units, open_period
    from storage.db import Database
    from storage.evidence import EvidenceStore
    from storage.models import Member, Unit

    started = time.perf_counter()
    migrate.upgrade(url)
    db = Database(url)
    now = dt.datetime.now(dt.UTC)
    fw = catalog.framework("tay-ninh-commune-2025")
    rows = [UnitRow("70000", "Tỉnh Tây Ninh", "province", None)]
    rows += [UnitRow(f"{c:05d}", f"Xã thử {c}", "commune", "70000") for c in range(communes)]
    with db.session() as s:
        import_units(s, rows, now)
        open_period(
            s,
            name="Kỳ đánh giá thử",
            year=2026,
            framework_id=fw.id,
            framework_version=fw.version,
            now=now,
            self_assessment_due=now + dt.timedelta(days=30),
        )
        codes = [create_invite(s, f"{c:05d}", "respondent", now).code for c in range(communes)]
        ids = {u.code: u.id for u in s.exec(select(Unit).where(Unit.level == "commune"))}
        others = [
            {
                "channel": "telegram",
                "chat_id": str(1_000_000 + c * members + n),
                "unit_id": ids[f"{c:05d}"],
                "role": "leader" if n == 1 else "respondent",
            }
            for c in range(communes)
            for n in range(1, members)
        ]
        if others:
            s.execute(sa.insert(Member), others)
    service = Service(db)
    store = EvidenceStore(Path(url[len("sqlite:///") :]).parent / "evidence")
    sink = io.StringIO()
    for c, code in enumerate(codes):
        channel = ConsoleChannel(service, store, f"chat-{c}", sink)
        channel.run(["70,4", "#1"], code)  # join, answer 1.1, "Xong" on its evidence: now at 1.2
        sink.seek(0)
        sink.truncate()
    with db.session() as s:
        count = s.execute(sa.select(sa.func.count()).select_from(Member)).scalar_one()
        assert count == communes * members, count
    db.dispose()
    return time.perf_counter() - started


def other_peak_mb(pid: int) -> float:
    """VmHWM of another process in MB (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def pss_mb(pid: int | str = "self") -> float:
    """A process's proportional set size in MB: its resident pages, each page shared with other
    processes (libpython, the C extensions) divided among them, so that the PSS of two processes adds
    up to the memory they take together, which their RSS counts twice (Linux)."""
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) / 1024
    return 0.0


def with_database_process(url: str, communes: int) -> tuple[float, float, float, float]:
    """As `dtibot run telegram` runs by default: the messages handed to the service 50 at a time from
    an event loop, their database work done by the database process (bot/db_process.py). Returns the
    seconds, the database process's peak RSS in MB, and this process's and the database process's
    PSS at the end in MB."""
    import asyncio
    import uuid

    from bot.channels.console import CHANNEL, ConsoleChannel
    from bot.service import Service
    from storage.db import Database
    from storage.evidence import EvidenceStore

    db = Database(url)
    db.require_current()
    service = Service(db, db_process=True)
    store = EvidenceStore(Path(url[len("sqlite:///") :]).parent / "evidence")

    async def go() -> tuple[float, float, float, float]:
        pid = await service.database_process().ready()
        started = time.perf_counter()
        with open(os.devnull, "w", encoding="utf-8") as sink:
            for first in range(0, communes, 50):
                chats = range(first, min(first + 50, communes))
                channels = [ConsoleChannel(service, store, f"chat-{c}", sink) for c in chats]
                sent = [(channel, channel.inbound_for("45")) for channel in channels]
                await asyncio.gather(
                    *(
                        service.handle_async(CHANNEL, channel.chat_id, uuid.uuid4().hex, inbound)
                        for channel, inbound in sent
                        if inbound is not None
                    )
                )
                for channel in channels:
                    channel.deliver()
        return time.perf_counter() - started, other_peak_mb(pid), pss_mb(), pss_mb(pid)

    try:
        return asyncio.run(go())
    finally:
        service.close()
        db.dispose()


def child(modules: list[str], url: str | None, communes: int, db_process: bool = False) -> None:
    """Import `modules`; with a database, handle one more message in each of `communes` chats (with
    `db_process`, through the database process, whose peak RSS is printed too)."""
    for name in modules:
        importlib.import_module(name)
    if TELEGRAM in modules:
        from bot.channels import aiogram_schemas, telegram

        aiogram_schemas.warm(telegram.schemas())  # what TelegramChannel() does at start-up
    elapsed = 0.0
    other = pss = other_pss = 0.0
    if url is not None and db_process:
        elapsed, other, pss, other_pss = with_database_process(url, communes)
    elif url is not None:
        from bot.channels.console import ConsoleChannel
        from bot.service import Service
        from storage.db import Database
        from storage.evidence import EvidenceStore

        db = Database(url)
        db.require_current()
        service = Service(db)
        store = EvidenceStore(Path(url[len("sqlite:///") :]).parent / "evidence")
        with open(os.devnull, "w", encoding="utf-8") as sink:
            started = time.perf_counter()
            for c in range(communes):
                channel = ConsoleChannel(service, store, f"chat-{c}", sink)
                inbound = channel.inbound_for("45")  # the answer to indicator 1.2
                assert inbound is not None
                channel.send(inbound)
            elapsed = time.perf_counter() - started
        db.dispose()
    maxrss, hwm, now = peak_mb()
    print(f"{maxrss:.1f} {hwm:.1f} {now:.1f} {elapsed:.3f} {other:.1f} {pss:.1f} {other_pss:.1f}")


def run_child(
    modules: tuple[str, ...], url: str | None = None, communes: int = 0, db_process: bool = False
) -> tuple[float, ...]:
    """(ru_maxrss MB, VmHWM MB, VmRSS at the end MB, seconds of work, and with `db_process` the
    database process's peak RSS MB, then both processes' PSS at the end MB) of a clean child process."""
    cmd = [sys.executable, __file__, "--child", ",".join(modules), "--communes", str(communes)]
    if url is not None:
        cmd += ["--url", url]
    if db_process:
        cmd.append("--db-process")
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"child {modules} failed:\n{proc.stderr}")
    return tuple(float(x) for x in proc.stdout.split()[-7:])


def copy_db(tmp: Path, name: str) -> str:
    """A copy of the seeded database (and its WAL files), so every measured child starts alike."""
    folder = tmp / name
    folder.mkdir()
    for f in tmp.glob("bench.db*"):
        shutil.copy2(f, folder / f.name)
    return f"sqlite:///{folder / 'bench.db'}"


def answers_after(url: str) -> int:
    import sqlalchemy as sa

    from storage.db import Database
    from storage.models import AnswerRevision

    db = Database(url)
    with db.session() as s:
        n = int(s.execute(sa.select(sa.func.count()).select_from(AnswerRevision)).scalar_one())
    db.dispose()
    return n


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--communes", type=int, default=1000, help="one conversation in progress each")
    parser.add_argument("--members", type=int, default=10, help="members per commune")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--db-process", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        child(args.child.split(","), args.url, args.communes, args.db_process)
        return
    console = tuple(m for m in IMPORTS if m != TELEGRAM)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        seeded = seed(f"sqlite:///{tmp / 'bench.db'}", args.communes, args.members)
        size = (tmp / "bench.db").stat().st_size
        base = run_child(IMPORTS)
        base_console = run_child(console)
        aiogram_only = run_child(("aiogram",))
        url = copy_db(tmp, "telegram")
        measured = run_child(IMPORTS, url, args.communes)
        answered = answers_after(url)
        url_console = copy_db(tmp, "console")
        measured_console = run_child(console, url_console, args.communes)
        url_split = copy_db(tmp, "split")
        split = run_child(IMPORTS, url_split, args.communes, db_process=True)
        answered_split = answers_after(url_split)
    assert answered == 2 * args.communes, f"expected {2 * args.communes} answers, found {answered}"
    assert answered_split == answered, f"expected {answered} answers, found {answered_split}"
    n = args.communes
    peak = max(measured[0], measured[1])
    verdict = f"MET (under {TARGET_MB:.0f} MB)" if peak < TARGET_MB else f"NOT MET (over {TARGET_MB:.0f} MB)"
    peak_console = max(measured_console[0], measured_console[1])
    verdict_console = "met" if peak_console < TARGET_MB else "not met"
    print(f"machine: {platform.machine()}, {platform.python_implementation()} {platform.python_version()}")
    print(
        f"input:    {n} communes x {args.members} members = {n * args.members} members, {n} conversations "
        f"in progress (SQLite {size / 1e6:.1f} MB, seeded through the console pipeline in {seeded:.0f} s)"
    )
    print("peak RSS of clean child processes: ru_maxrss (VmHWM; VmRSS at the end)")
    print(f"baseline  import {', '.join(IMPORTS)}:  {base[0]:7.1f} MB ({base[1]:.1f}; {base[2]:.1f})")
    print(
        f"measured  same + 1 message in each of {n} chats:  {measured[0]:7.1f} MB "
        f"({measured[1]:.1f}; {measured[2]:.1f}); {measured[3] / n * 1000:.1f} ms per message; "
        f"{answered} answers stored"
    )
    print(
        f"ratio     measured / baseline = {measured[0] / base[0]:.2f}; "
        f"data and work add {measured[0] - base[0]:.1f} MB"
    )
    print(f"target    peak RSS < {TARGET_MB:.0f} MB: {verdict}")
    split_peak = max(split[0], split[1])
    together = split[5] + split[6]
    print(
        f"as `dtibot run telegram` runs, its database work in a process of its own, 50 messages at a "
        f"time ({split[3] / n * 1000:.1f} ms per message): peak RSS the bot {split_peak:.1f} MB, the "
        f"database process {split[4]:.1f} MB (sum {split_peak + split[4]:.1f} MB, the pages they share "
        f"counted twice); PSS at the end {split[5]:.1f} + {split[6]:.1f} = {together:.1f} MB"
    )
    verdict_split = "MET" if together < TARGET_MB else "NOT MET"
    print(f"target    the two processes together (PSS) < {TARGET_MB:.0f} MB: {verdict_split}")
    print(f"reference import aiogram on its own (every schema built at import): {aiogram_only[0]:7.1f} MB")
    print(
        f"console   without aiogram: imports {base_console[0]:.1f} MB (end {base_console[2]:.1f}), "
        f"with the {n} messages {measured_console[0]:.1f} MB "
        f"(end {measured_console[2]:.1f}; {verdict_console})"
    )
    from scoring.answers import VIETNAM_TZ

    now = dt.datetime.now(VIETNAM_TZ)
    print(f"run at {now:%d/%m/%Y %H:%M} Asia/Ho_Chi_Minh")


if __name__ == "__main__":
    main()
