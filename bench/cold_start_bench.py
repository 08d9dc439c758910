"""Process start to the first reply: a fresh `dtibot chat` joining with an invite code.

Every console session, `dtibot` command and container restart pays the start-up once, so it is the
latency a user of the console channel (and an operator) feels first. Prepares a migrated SQLite
database with a province, an open period and one invite per run, then spawns a fresh Python process
running the real console bot (`dtibot chat --join CODE`, standard input a pipe) and measures the wall
time from spawn to the first reply line on its standard output, best of N. Prints it next to two
baselines measured in the same run: a fresh process that only starts Python (`-c pass`) and one that
merely does `import aiogram, sqlmodel` (the dependencies any bot process must load).

    make bench    # or: .venv/bin/python bench/cold_start_bench.py [--runs 5] [--imports 12]

`--imports N` also lists the N slowest imports of `bot.cli` (from `python -X importtime`).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
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
        codes = prepare(url, args.runs + 1)
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
    if args.imports:
        print("slowest top-level imports of bot.cli (cumulative, one run, -X importtime):")
        for micros, name in slowest_imports("bot.cli", args.imports):
            print(f"  {micros / 1000:8.1f} ms  {name}")
    now = dt.datetime.now(VIETNAM_TZ)
    print(f"run at {now:%d/%m/%Y %H:%M} Asia/Ho_Chi_Minh")


if __name__ == "__main__":
    main()
