"""The results workbook (`dtibot export results`) for 3,300 communes × the 62-indicator Tây Ninh framework.

The provincial office exports the whole province at once, so this is the largest file the bot writes
and the command an operator waits for. Seeds a migrated database (SQLite in a temporary directory, or
`--postgres URL`) with the communes, an open period, one assessment per commune (most appraised, some
only submitted), the answers (synthesised as in `bench/score_bench.py`, validated and encoded exactly
as the bot stores them), their evidence and some reviewer adjustments with comments; then computes the
results with the code `dtibot results compute` runs (`bot.results.compute`).

Prints the time to write the workbook with the code `dtibot export results` runs
(`bot.exports.results_workbook`) next to the baseline of merely reading the data it exports from the
database (the same queries, into Python objects), both measured in this run, the ratio and the size.

    make bench    # or: .venv/bin/python bench/export_bench.py [--units 3300] [--repeat 1] [--profile 15]
                  #     [--postgres postgresql+psycopg://postgres@127.0.0.1:5432/EMPTY_DB]

`--profile N` runs the export once more under cProfile and lists the N functions with the most own time.
`--postgres` needs an empty database (the script migrates it and refuses one that already has units).
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import hashlib
import io
import json
import platform
import pstats
import random
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import sqlalchemy as sa
from score_bench import synthetic_units
from sqlmodel import select

from bot import catalog
from bot.exports import results_workbook
from bot.i18n import Translator
from bot.results import compute
from scoring.answers import VIETNAM_TZ, encode_value, parse_answers
from scoring.model import Framework
from storage import migrate
from storage.admin import UnitRow, import_units, open_period
from storage.db import Database
from storage.models import AnswerRevision, AppraisalDecision, Assessment, Evidence, Member, Period, Unit
from storage.results import computed, decision_comments, evidence_index

FRAMEWORK = "tay-ninh-commune-2025"
BATCH = 20_000


def _insert(db: Database, model: type[Any], rows: list[dict[str, Any]]) -> None:
    with db.session() as s:
        for i in range(0, len(rows), BATCH):
            s.execute(sa.insert(model), rows[i : i + BATCH])


def seed(db: Database, fw: Framework, units: int, districts: int, seed_value: int = 2025) -> Period:
    """Units, a period, assessments, answers, evidence and decisions; returns the period."""
    rnd = random.Random(seed_value)
    now = dt.datetime(2026, 11, 20, 3, 0, tzinfo=dt.UTC)
    rows = [UnitRow("70000", "Tỉnh Tây Ninh", "province", None)]
    rows += [UnitRow(f"D{d:03d}", f"Huyện thử {d}", "district", "70000") for d in range(districts)]
    rows += [
        UnitRow(f"{u:05d}", f"Xã thử {u}", "commune", f"D{u % districts:03d}" if districts else "70000")
        for u in range(units)
    ]
    with db.session() as s:
        if s.exec(select(Unit)).first() is not None:
            raise SystemExit("the database already has units; give an empty one")
        import_units(s, rows, now)
        period = open_period(
            s,
            name="Kỳ đánh giá 2025",
            year=2025,
            framework_id=fw.id,
            framework_version=fw.version,
            now=now,
            self_assessment_due=now + dt.timedelta(days=30),
        )
        s.flush()
        period_id = period.id
        ids = {u.code: u.id for u in s.exec(select(Unit).where(Unit.level == "commune"))}
    assert period_id is not None
    _insert(
        db,
        Member,
        [
            {
                "channel": "telegram",
                "chat_id": str(10_000 + u),
                "unit_id": ids[f"{u:05d}"],
                "role": "respondent",
            }
            for u in range(units)
        ]
        + [{"channel": "telegram", "chat_id": "9", "unit_id": ids["00000"], "role": "reviewer"}],
    )
    statuses = ["appraised" if rnd.random() < 0.9 else "submitted" for _ in range(units)]
    _insert(
        db,
        Assessment,
        [
            {
                "period_id": period_id,
                "unit_id": ids[f"{u:05d}"],
                "status": statuses[u],
                "submitted_at": now,
                "appraised_at": now if statuses[u] == "appraised" else None,
            }
            for u in range(units)
        ],
    )
    with db.session() as s:
        members = {m.unit_id: m.id for m in s.exec(select(Member).where(Member.role == "respondent"))}
        reviewer = s.exec(select(Member).where(Member.role == "reviewer")).one().id
        assessments = {a.unit_id: a.id for a in s.exec(select(Assessment))}
    document = synthetic_units(fw, units, seed_value)
    revisions: list[dict[str, Any]] = []
    evidence: list[dict[str, Any]] = []
    decisions: list[dict[str, Any]] = []
    for u, unit in enumerate(document["units"]):
        unit_id = ids[f"{u:05d}"]
        aid, mid = assessments[unit_id], members[unit_id]
        answers = parse_answers(fw, {"answers": unit["answers"]})
        at = now - dt.timedelta(days=3, minutes=u % 600)
        for code, answer in answers.items():
            revisions.append(
                {
                    "assessment_id": aid,
                    "indicator_code": code,
                    "revision": 1,
                    "value_json": json.dumps(encode_value(answer.value))
                    if answer.value is not None
                    else None,
                    "not_applicable": answer.not_applicable,
                    "author_member_id": mid,
                    "channel": "telegram",
                    "created_at": at,
                }
            )
            for name in unit["answers"][code].get("evidence", []):
                evidence.append(
                    {
                        "assessment_id": aid,
                        "indicator_code": code,
                        "kind": "file",
                        "sha256": hashlib.sha256(name.encode()).hexdigest(),
                        "size": 50_000 + rnd.randint(0, 2_000_000),
                        "mime": "application/pdf",
                        "original_name": f"bao-cao-{code}.pdf",
                        "uploader_member_id": mid,
                        "channel": "telegram",
                        "created_at": at,
                        "late": rnd.random() < 0.02,
                    }
                )
            if statuses[u] == "appraised" and not answer.not_applicable and rnd.random() < 0.05:
                ind = fw.indicator(code)
                assert ind is not None
                decisions.append(
                    {
                        "assessment_id": aid,
                        "indicator_code": code,
                        "revision": 1,
                        "decision": "adjust",
                        "appraised_points": str((ind.max_points / 2).normalize()),
                        "comment": "Minh chứng chưa thể hiện đủ tử số và mẫu số; chấm một nửa.",
                        "reviewer_member_id": reviewer,
                        "created_at": now,
                    }
                )
    _insert(db, AnswerRevision, revisions)
    _insert(db, Evidence, evidence)
    _insert(db, AppraisalDecision, decisions)
    with db.session() as s:
        return s.exec(select(Period).where(Period.id == period_id)).one()


def read_only(db: Database, period: Period) -> int:
    """The baseline: the queries `results_workbook` runs, into Python objects, and nothing else."""
    assert period.id is not None
    with db.session() as s:
        rows = computed(s, period.id)
        comments = decision_comments(s, period.id)
        evidence = evidence_index(s, period.id)
        codes = {u.code: u.id for u in s.exec(select(Unit))}
    return len(rows) + len(comments) + len(evidence) + len(codes)


def timed(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def count(db: Database, model: type[Any]) -> int:
    with db.session() as s:
        return int(s.execute(sa.select(sa.func.count()).select_from(model)).scalar_one())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--units", type=int, default=3300)
    parser.add_argument("--districts", type=int, default=0, help="0: communes directly under the province")
    parser.add_argument("--repeat", type=int, default=1, help="best of N for both figures")
    parser.add_argument("--profile", type=int, default=0, metavar="N", help="cProfile the export: top N")
    parser.add_argument("--postgres", metavar="URL", help="an empty PostgreSQL database instead of SQLite")
    args = parser.parse_args()
    fw = catalog.framework(FRAMEWORK)
    t = Translator("vi")
    with tempfile.TemporaryDirectory() as tmp:
        url = args.postgres or f"sqlite:///{Path(tmp) / 'bench.db'}"
        migrate.upgrade(url)
        db = Database(url)
        started = time.perf_counter()
        period = seed(db, fw, args.units, args.districts)
        seeded = time.perf_counter() - started
        started = time.perf_counter()
        result = compute(db, period)
        computing = time.perf_counter() - started
        assert len(result.rows) == args.units
        out = Path(tmp) / "results.xlsx"
        read_s = timed(lambda: read_only(db, period), args.repeat)
        write_s = timed(lambda: results_workbook(db, period, out, t), args.repeat)
        size = out.stat().st_size
        answers, evidence, decisions = (
            count(db, AnswerRevision),
            count(db, Evidence),
            count(db, AppraisalDecision),
        )
        profile = ""
        if args.profile:
            prof = cProfile.Profile()
            prof.runcall(results_workbook, db, period, out, t)
            buf = io.StringIO()
            pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(args.profile)
            profile = buf.getvalue()
        db.dispose()
    backend = "PostgreSQL" if args.postgres else "SQLite"
    best = f"best of {args.repeat}"
    detail_rows = args.units * len(fw.indicators)
    print(f"machine: {platform.machine()}, {platform.python_implementation()} {platform.python_version()}")
    print(
        f"input:    {args.units} communes x {len(fw.indicators)} indicators on {backend}: {answers} answers, "
        f"{evidence} evidence, {decisions} adjustments (seeded in {seeded:.1f} s)"
    )
    print(f"setup     results compute (bot.results.compute):        {computing * 1000:9.0f} ms")
    print(f"baseline  read the exported data (the export's queries): {read_s * 1000:9.0f} ms ({best})")
    print(f"measured  write the results workbook (export results):  {write_s * 1000:9.0f} ms ({best})")
    print(f"ratio     workbook / read = {write_s / read_s:.2f}")
    print(
        f"workbook  {size / 1e6:.1f} MB; sheets: ranking {args.units} rows, detail {detail_rows} rows, "
        f"evidence {evidence} rows"
    )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"memory    peak RSS of this process (seeding, compute and export): {peak:.0f} MB")
    if profile:
        print(f"profile of one export (top {args.profile} by own time):")
        print(profile.rstrip())
    now = dt.datetime.now(VIETNAM_TZ)
    print(f"run at {now:%d/%m/%Y %H:%M} Asia/Ho_Chi_Minh")


if __name__ == "__main__":
    main()
