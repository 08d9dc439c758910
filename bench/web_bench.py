"""The web workspace's pages for a province of 3,300 communes × the 62-indicator Tây Ninh framework.

Seeds a migrated database (SQLite in a temporary directory, or PostgreSQL with `--postgres URL`,
default `DTI_TEST_POSTGRES_URL`; a fresh database is created next to it and dropped afterwards) with
bulk inserts (`bench/export_bench.seed`: units, a period, assessments, answers, evidence, adjustments),
plus a province admin and a province reviewer, each signed in through a sign-in link.

For three pages — the progress board (`/board`), a unit (`/units/ID`) and the appraisal workspace
(`/appraise/ID/CODE`) — it measures the server time of each request (a middleware placed before
every other one times the whole handling, authentication included; requests through aiohttp's test
client, the first one reported apart as cold) next to the time of that page's own database reads in
the same run: the storage calls the page makes (the session and viewer lookups of every request, then
the page's queries), in one session, into Python objects. Medians and 95th percentiles of `--repeat`
runs. Goal: no page costs more than twice its reads; the board under 300 ms at 3,300 units.

    make bench    # or: .venv/bin/python bench/web_bench.py [--units 3300] [--repeat 30]
                  #     [--postgres postgresql+psycopg://postgres@127.0.0.1:5432/test] [--sqlite-only]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import platform
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import sqlalchemy as sa
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from export_bench import _insert, seed
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool
from sqlmodel import select

from bot import catalog
from bot.service import Service, resolve_framework, utc_now
from bot.web.app import make_app
from flows.web import token_digest
from scoring.answers import VIETNAM_TZ
from storage import board as store_board
from storage import migrate, workspace
from storage import web as store_web
from storage.db import Database
from storage.evidence import EvidenceStore
from storage.models import Member, Unit

FRAMEWORK = "tay-ninh-commune-2025"
TIMES = web.AppKey("bench_times", list)


@web.middleware
async def timing(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """The server time of a request: everything between receiving it and the response body."""
    started = time.perf_counter()
    response = await handler(request)
    request.app[TIMES].append(time.perf_counter() - started)
    return response


def people(db: Database) -> tuple[int, int]:
    """A province admin and a province reviewer (the seeded communes sit directly under the province)."""
    with db.session() as s:
        province = s.exec(select(Unit).where(Unit.code == "70000")).one().id
    _insert(
        db,
        Member,
        [
            {"channel": "telegram", "chat_id": "1", "unit_id": province, "role": "admin"},
            {"channel": "telegram", "chat_id": "2", "unit_id": province, "role": "reviewer"},
        ],
    )
    with db.session() as s:
        admin = s.exec(select(Member).where(Member.chat_id == "1")).one().id
        reviewer = s.exec(select(Member).where(Member.chat_id == "2")).one().id
    assert admin is not None and reviewer is not None
    return admin, reviewer


async def signed_in(client: TestClient[web.Request, web.Application], db: Database, member: int) -> None:
    """The browser signed in as `member` with a sign-in link, as an operator prints one."""
    token = secrets.token_urlsafe(32)
    now = utc_now()
    with db.session() as s:
        store_web.operator_link(s, member, token_digest(token), now, now + dt.timedelta(minutes=10), "bench")
    url = client.make_url("/")
    origin = {"Origin": f"{url.scheme}://{url.host}:{url.port}"}
    response = await client.post(f"/login/{token}", headers=origin, allow_redirects=False)
    assert response.status == 303, await response.text()


def reads(db: Database, member: int, page: str, unit_id: int, code: str) -> Callable[[], object]:
    """The page's own database reads: the session and the viewer (every request), then the page's."""
    session_token = ""

    def run() -> object:
        with db.session() as s:
            now = utc_now()
            store_web.signed_in(s, session_token, now)
            who = store_web.viewer(s, member)
            assert who is not None
            periods = store_board.periods(s, resolve_framework)
            period = periods[0]
            if page == "board":
                return store_board.board(s, period, who.visible, now)
            info = workspace.unit_info(s, unit_id)
            assert info is not None
            view = workspace.unit_view(s, info, period.id, period.framework)
            if page == "unit":
                return workspace.audit_trail(s, unit_id)
            assert view.assessment_id is not None
            return workspace.history(s, view.assessment_id, code)

    return run


def quantiles(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return statistics.median(ordered), p95


async def measure(
    db: Database, store: EvidenceStore, repeat: int
) -> list[tuple[str, float, float, float, float, float]]:
    admin, reviewer = people(db)
    app = make_app(db, store, Service(db), base_url="http://127.0.0.1")
    app.middlewares.insert(0, timing)
    app[TIMES] = []
    with db.session() as s:
        unit = s.exec(select(Unit).where(Unit.code == "00007")).one()
    assert unit.id is not None
    fw = catalog.framework(FRAMEWORK)
    code = fw.indicators[len(fw.indicators) // 2].code
    pages = [
        ("board", "/board", admin),
        ("unit", f"/units/{unit.id}", admin),
        ("appraise", f"/appraise/{unit.id}/{code}", reviewer),
    ]
    out = []
    for name, path, member in pages:
        client: TestClient[web.Request, web.Application] = TestClient(TestServer(app))
        await client.start_server()
        try:
            await signed_in(client, db, member)
            app[TIMES].clear()
            for _ in range(repeat + 1):
                response = await client.get(path)
                body = await response.read()
                assert response.status == 200, body[:500]
            cold, warm = app[TIMES][0], app[TIMES][1:]
        finally:
            await client.close()
        baseline = reads(db, member, name, unit.id, code)
        baseline()
        read_times = []
        for _ in range(repeat):
            started = time.perf_counter()
            baseline()
            read_times.append(time.perf_counter() - started)
        median, p95 = quantiles(warm)
        read_median, read_p95 = quantiles(read_times)
        out.append((name, cold, median, p95, read_median, read_p95))
    return out


@contextmanager
def postgres_database(admin_url: str) -> Iterator[str]:
    """A fresh database next to `admin_url`'s, dropped afterwards."""
    name = f"dti_bench_{secrets.token_hex(4)}"
    engine = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with engine.connect() as c:
        c.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with engine.connect() as c:
            c.exec_driver_sql(
                f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
            )
            c.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}"')
        engine.dispose()


def run(backend: str, url: str, units: int, repeat: int, tmp: Path) -> None:
    migrate.upgrade(url)
    db = Database(url)
    try:
        started = time.perf_counter()
        seed(db, catalog.framework(FRAMEWORK), units, 0)
        seeded = time.perf_counter() - started
        rows = asyncio.run(measure(db, EvidenceStore(tmp / "evidence"), repeat))
    finally:
        db.dispose()
    print(
        f"{backend}: {units} communes x 62 indicators (seeded in {seeded:.1f} s); "
        f"{repeat} requests per page; cold: the first request of a fresh process without the "
        "warm-up `dtibot run web` does at start"
    )
    print(f"  {'page':<9} {'cold':>8} {'median':>8} {'p95':>8}   {'reads med':>9} {'reads p95':>9}   ratio")
    for name, cold, median, p95, read_median, read_p95 in rows:
        ratio = median / read_median if read_median else float("inf")
        verdict = "ok" if ratio <= 2 else "over 2x"
        if name == "board":
            verdict += ", under 300 ms" if median < 0.3 else ", OVER 300 ms"
        print(
            f"  {name:<9} {cold * 1000:7.0f}ms {median * 1000:7.1f}ms {p95 * 1000:7.1f}ms   "
            f"{read_median * 1000:8.1f}ms {read_p95 * 1000:8.1f}ms   {ratio:4.2f}  {verdict}",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--units", type=int, default=3300)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--postgres", metavar="URL", default=os.environ.get("DTI_TEST_POSTGRES_URL"))
    parser.add_argument("--sqlite-only", action="store_true")
    parser.add_argument("--backend", choices=("sqlite", "postgres"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.backend == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            run("SQLite", f"sqlite:///{Path(tmp) / 'bench.db'}", args.units, args.repeat, Path(tmp))
        return
    if args.backend == "postgres":
        with tempfile.TemporaryDirectory() as tmp, postgres_database(args.postgres) as url:
            run("PostgreSQL", url, args.units, args.repeat, Path(tmp))
        return
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    # each backend in a process of its own, as a server runs: nothing the board keeps in memory
    # (its per-assessment points) carries over from one database to the other
    common = [sys.executable, __file__, "--units", str(args.units), "--repeat", str(args.repeat)]
    subprocess.run([*common, "--backend", "sqlite"], check=True)
    if args.postgres and not args.sqlite_only:
        subprocess.run([*common, "--backend", "postgres", "--postgres", args.postgres], check=True)
    elif not args.sqlite_only:
        print("PostgreSQL: skipped (give --postgres URL or set DTI_TEST_POSTGRES_URL)")
    print(f"run at {dt.datetime.now(VIETNAM_TZ):%d/%m/%Y %H:%M} Asia/Ho_Chi_Minh")


if __name__ == "__main__":
    main()
