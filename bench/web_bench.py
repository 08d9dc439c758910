"""The web workspace's pages for a province of 3,300 communes × the 62-indicator Tây Ninh framework.

Seeds a migrated database (as `bench/export_bench.py` does: communes, an open period, answers,
evidence, some decisions) on SQLite and, with `--postgres URL` (or `DTI_TEST_POSTGRES_URL`), on a
scratch PostgreSQL database; signs in a province admin and a province reviewer with sign-in links, and
times each page through aiohttp's server in this process next to the page's own database reads
(the same storage calls, alone), both measured in this run: the progress board (the first time, which
computes every unit's claimed points, then warm, then after 50 units changed), a unit, an indicator
and the appraisal page. Goal: no page more than twice its reads; the board under 300 ms at 3,300 units.

    make bench    # or: .venv/bin/python bench/web_bench.py [--units 3300] [--repeat 5]
                  #     [--postgres postgresql+psycopg://postgres@127.0.0.1:5432/test]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import sqlalchemy as sa
from aiohttp.test_utils import TestClient, TestServer

from bench.export_bench import seed
from bot import catalog
from bot.service import resolve_framework
from bot.web.app import make_app
from bot.web.pages import STATE
from flows.web import token_digest
from storage import board as store_board
from storage import migrate, web, workspace
from storage.db import Database
from storage.evidence import EvidenceStore
from storage.models import Member, Unit
from tests.storage_fixtures import bench_databases


def ms(seconds: float) -> str:
    return f"{seconds * 1000:7.1f} ms"


def timed(fn: Callable[[], object], repeat: int) -> float:
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - start)
    return statistics.median(runs)


async def atimed(fn: Callable[[], Awaitable[object]], repeat: int) -> float:
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        await fn()
        runs.append(time.perf_counter() - start)
    return statistics.median(runs)


def prepare(db: Database, units: int) -> dict[str, int]:
    """The seeded province, its assessments' counters set as the bot keeps them, an admin and a
    reviewer of the province with a sign-in link each (token: the role's name)."""
    fw = catalog.framework("tay-ninh-commune-2025")
    seed(db, fw, units, 0)
    now = dt.datetime.now(dt.UTC)
    with db.session() as s:
        s.execute(
            sa.text(
                "UPDATE assessment SET"
                " decided = (SELECT count(*) FROM appraisal_decision d"
                " WHERE d.assessment_id = assessment.id),"
                " revision = (SELECT count(*) FROM answer_revision a WHERE a.assessment_id = assessment.id)"
                " + (SELECT count(*) FROM evidence e WHERE e.assessment_id = assessment.id)"
            )
        )
        province = s.exec(sa.select(Unit.id).where(Unit.code == "70000")).scalar_one()
        ids = {}
        for role in ("admin", "reviewer"):
            member = Member(channel="console", chat_id=f"bench-{role}", unit_id=province, role=role)
            s.add(member)
            s.flush()
            assert member.id is not None
            ids[role] = member.id
            web.operator_link(s, member.id, token_digest(role), now, now + dt.timedelta(minutes=10), "bench")
        ids["unit"] = s.exec(sa.select(Unit.id).where(Unit.code == "00001")).scalar_one()
        if db.engine.dialect.name == "postgresql":
            s.execute(sa.text("ANALYZE"))
    return ids


def board_reads(db: Database, member_id: int, cache: store_board.BoardCache) -> None:
    """What the board page reads: the session, the viewer, the periods and the board."""
    with db.session() as s:
        web.signed_in(s, token_digest("no-such-session"), dt.datetime.now(dt.UTC))
        web.viewer(s, member_id)
        period = store_board.periods(s, resolve_framework)[0]
        store_board.board(s, period, None, cache)


def unit_reads(db: Database, member_id: int, unit_id: int, code: str | None) -> None:
    """What a unit, indicator or appraisal page reads: the session, the viewer, the unit's view and
    its audit trail (a unit) or the indicator's history."""
    with db.session() as s:
        web.signed_in(s, token_digest("no-such-session"), dt.datetime.now(dt.UTC))
        web.viewer(s, member_id)
        info = workspace.unit_info(s, unit_id)
        assert info is not None
        period = store_board.periods(s, resolve_framework)[0]
        view = workspace.unit_view(s, info, period.id, period.framework)
        if code is None:
            workspace.audit_trail(s, unit_id)
        elif view.assessment_id is not None:
            workspace.history(s, view.assessment_id, code)


async def measure(name: str, url: str, units: int, repeat: int) -> None:
    migrate.upgrade(url)
    db = Database(url)
    try:
        start = time.perf_counter()
        ids = prepare(db, units)
        print(f"  seeded {units} units in {time.perf_counter() - start:.1f} s")
        app = make_app(db, EvidenceStore(Path(tempfile.mkdtemp())), base_url="http://b")
        cache = app[STATE].board_cache  # the page's reads, as warm as the page's
        client = TestClient(TestServer(app))
        await client.start_server()
        try:
            host = client.make_url("/")
            origin = {"Origin": f"{host.scheme}://{host.host}:{host.port}"}
            sign = await client.post("/login/admin", headers=origin, allow_redirects=False)
            assert sign.status == 303, sign.status

            async def get(path: str) -> None:
                response = await client.get(path)
                await response.read()
                assert response.status == 200, (path, response.status)

            first = await atimed(lambda: get("/board"), 1)
            print(f"  board, first (every unit's claimed points):  page {ms(first)}")
            rows = [
                ("board (warm)", "/board", lambda: board_reads(db, ids["admin"], cache)),
            ]
            unit = ids["unit"]
            for label, path, reads in rows:
                page = await atimed(lambda path=path: get(path), repeat)
                read = timed(reads, repeat)
                print(f"  {label:<32} page {ms(page)}   reads {ms(read)}   ratio {page / read:4.1f}")
            with db.session() as s:
                s.execute(sa.text("UPDATE assessment SET revision = revision + 1 WHERE id <= 50"))
            changed = await atimed(lambda: get("/board"), 1)
            print(f"  board, 50 units changed since      page {ms(changed)}")
            client.session.cookie_jar.clear()
            sign = await client.post("/login/reviewer", headers=origin, allow_redirects=False)
            assert sign.status == 303
            reviewer = ids["reviewer"]
            for label, path, code in (
                ("unit", f"/units/{unit}", None),
                ("indicator", f"/units/{unit}/indicators/1.1", "1.1"),
                ("appraisal", f"/appraise/{unit}/1.1", "1.1"),
            ):
                page = await atimed(lambda path=path: get(path), repeat)
                read = timed(lambda code=code: unit_reads(db, reviewer, unit, code), repeat)
                print(f"  {label:<32} page {ms(page)}   reads {ms(read)}   ratio {page / read:4.1f}")
        finally:
            await client.close()
    finally:
        db.dispose()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--units", type=int, default=3300)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--postgres", default=os.environ.get("DTI_TEST_POSTGRES_URL"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for name, url in bench_databases(Path(tmp), args.postgres):
            await measure(name, url, args.units, args.repeat)


if __name__ == "__main__":
    asyncio.run(main())
