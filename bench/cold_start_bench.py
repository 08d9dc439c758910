"""Process start to the first reply: a fresh `dtibot chat`, and a fresh `dtibot run telegram`.

Every console session, `dtibot` command and container restart pays the start-up once, so it is the
latency a user (and an operator) feels first. Prepares a migrated SQLite database with a province, an
open period and one invite per run, then, best of N:

- console: spawns the real console bot (`dtibot chat --join CODE`, standard input a pipe) and
  measures the wall time from spawn to the first reply line on its standard output;
- Telegram: queues `/start CODE` on a fake Bot API on 127.0.0.1, spawns the real `dtibot run
  telegram` (long polling, `TELEGRAM_API_URL` pointed at the fake) and measures the wall time from
  spawn to the fake receiving the welcome message for that chat.

Both are printed next to two baselines measured in the same run: a fresh process that only starts
Python (`-c pass`) and one that merely does `import aiogram, sqlmodel` (the dependencies a Telegram
bot process loads; aiogram on its own builds all its schemas at import, which the bot defers).

    make bench    # or: .venv/bin/python bench/cold_start_bench.py [--runs 5] [--imports 12]

`--imports N` also lists the N slowest imports of `bot.cli` (from `python -X importtime`).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot import catalog
from scoring.answers import VIETNAM_TZ
from storage import migrate
from storage.admin import UnitRow, create_invite, import_units, open_period
from storage.db import Database
from tests.fake_telegram import FakeTelegram, Limits

ROOT = Path(__file__).resolve().parent.parent
FRAMEWORK = "tay-ninh-commune-2025"
UNITS = [
    UnitRow("70000", "Tỉnh Tây Ninh", "province", None),
    UnitRow("25840", "Xã An Bình", "commune", "70000"),
]


def prepare(url: str, invites: int) -> list[str]:
    """A migrated database with a province, an open period and `invites` respondent invites."""
    migrate.upgrade(url)
    db = Database(url)
    now = dt.datetime.now(dt.UTC)
    fw = catalog.framework(FRAMEWORK)
    with db.session() as s:
        import_units(s, UNITS, now)
        open_period(
            s,
            name="Kỳ đánh giá thử",
            year=2026,
            framework_id=fw.id,
            framework_version=fw.version,
            now=now,
            self_assessment_due=now + dt.timedelta(days=30),
        )
        codes = [create_invite(s, "25840", "respondent", now).code for _ in range(invites)]
    db.dispose()
    return codes


def dtibot_command() -> list[str]:
    """The installed `dtibot` script next to this interpreter, else `python -m bot.cli`."""
    script = Path(sys.executable).parent / "dtibot"
    return [str(script)] if script.exists() else [sys.executable, "-m", "bot.cli"]


def first_line(cmd: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """(seconds to the first non-empty stdout line, seconds to exit, that line) of a fresh process."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=ROOT
    )
    assert proc.stdout is not None
    line, first = "", 0.0
    for raw in proc.stdout:
        if raw.strip():
            first = time.perf_counter() - started
            line = raw.decode("utf-8", "replace").rstrip()
            break
    proc.stdout.read()
    _, err = proc.communicate()
    total = time.perf_counter() - started
    if proc.returncode != 0 or not line:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}): {err.decode(errors='replace')}")
    return first, total, line


async def telegram_first_reply(cmd: list[str], env: dict[str, str], code: str, chat: int) -> float:
    """Seconds from spawning `dtibot run telegram` to the fake Bot API receiving the first reply."""
    limits = Limits(chat_interval=0.0, per_second=10_000.0)
    fake = FakeTelegram(limits=limits, first_update_id=chat)  # ids unseen by the database
    url = await fake.start()
    fake.push(fake.text(chat, f"/start {code}"))
    env = dict(env, TELEGRAM_BOT_TOKEN=fake.token, TELEGRAM_API_URL=url)
    started = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        *cmd,
        "run",
        "telegram",
        env=env,
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        while not fake.transcripts.get(chat):
            if proc.returncode is not None or time.perf_counter() - started > 60:
                if proc.returncode is None:
                    proc.kill()
                _, err = await proc.communicate()
                raise SystemExit(f"dtibot run telegram gave no reply ({proc.returncode}): {err.decode()}")
            await asyncio.sleep(0.002)
        return time.perf_counter() - started
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            await proc.communicate()
        await fake.stop()


def run_to_exit(cmd: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, cwd=ROOT, stdin=subprocess.DEVNULL)
    return time.perf_counter() - started


def slowest_imports(module: str, n: int) -> list[tuple[int, str]]:
    """The n largest cumulative import times (µs) of top-level packages under `module`."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    )
    rows = []
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, _own, cumulative, name = (part.strip() for part in line.replace("import time:", "|").split("|"))
        if "." not in name.strip():
            rows.append((int(cumulative), name.strip()))
    return sorted(rows, reverse=True)[:n]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5, help="fresh processes per measurement (best of)")
    parser.add_argument("--imports", type=int, default=0, metavar="N", help="list the N slowest imports")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        codes = prepare(url, 2 * (args.runs + 1))
        tg_codes, codes = codes[args.runs + 1 :], codes[: args.runs + 1]
        env = dict(os.environ, DTI_DATABASE_URL=url, DTI_EVIDENCE_DIR=str(Path(tmp) / "evidence"))
        env.pop("DTI_LANG", None)
        python = [sys.executable]
        bot = dtibot_command()
        # One unmeasured run of each first: bytecode caches and the page cache are warm for all.
        run_to_exit([*python, "-c", "pass"], env)
        run_to_exit([*python, "-c", "import aiogram, sqlmodel"], env)
        first_line([*bot, "chat", "--as", "warm-up", "--join", codes[0]], env)
        bare = min(run_to_exit([*python, "-c", "pass"], env) for _ in range(args.runs))
        deps = min(run_to_exit([*python, "-c", "import aiogram, sqlmodel"], env) for _ in range(args.runs))
        replies = [
            first_line([*bot, "chat", "--as", f"bench-{i}", "--join", code], env)
            for i, code in enumerate(codes[1:], start=1)
        ]
        reply, exit_s, line = min(replies)
        tg = [
            asyncio.run(telegram_first_reply(bot, env, code, 9_100_000 + i))
            for i, code in enumerate(tg_codes)
        ]
        telegram = min(tg[1:])  # the first run warms the caches, as above
    best = f"best of {args.runs}"
    print(f"machine: {platform.machine()}, {platform.python_implementation()} {platform.python_version()}")
    print(f"command:  {' '.join(Path(c).name for c in bot)} chat --join CODE  (SQLite, stdin a pipe)")
    print(f"first reply line: {line!r}")
    print(f"baseline  python -c pass:                        {bare * 1000:8.0f} ms ({best})")
    print(f"baseline  python -c 'import aiogram, sqlmodel':  {deps * 1000:8.0f} ms ({best})")
    print(f"measured  spawn -> first reply line on stdout:   {reply * 1000:8.0f} ms ({best})")
    print(f"          spawn -> process exit (same run):      {exit_s * 1000:8.0f} ms")
    print(f"ratio     first reply / import aiogram+sqlmodel = {reply / deps:.2f}")
    print(f"ratio     first reply / bare python             = {reply / bare:.2f}")
    print(f"measured  dtibot run telegram, spawn -> reply at the Bot API: {telegram * 1000:5.0f} ms ({best})")
    print(f"ratio     Telegram first reply / import aiogram+sqlmodel = {telegram / deps:.2f}")
    if args.imports:
        print("slowest top-level imports of bot.cli (cumulative, one run, -X importtime):")
        for micros, name in slowest_imports("bot.cli", args.imports):
            print(f"  {micros / 1000:8.1f} ms  {name}")
    now = dt.datetime.now(VIETNAM_TZ)
    print(f"run at {now:%d/%m/%Y %H:%M} Asia/Ho_Chi_Minh")


if __name__ == "__main__":
    main()
