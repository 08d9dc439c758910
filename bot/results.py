"""Final results by the decisions' rules, and their publication.

`compute`: every unit of the period's level is scored through the scoring core with the appraised
points where a reviewer gave them; required evidence missing → 0; evidence after its deadline → 0;
"not applicable" → the average of the appraised same-level units that scored the indicator; a unit
whose appraisal was not closed → 0 and still ranked; bands from the framework; ranks within the level
and within the district. `publish`: the computed results are frozen into a publication and each
unit's members are told their result, rank and where they lost the most.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from bot import catalog
from bot.render.reply import CHANNEL_ESCAPES
from bot.service import render_payload, utc_now
from flows.results import result_reply
from scoring.engine import Report, Rules, score, score_units
from scoring.model import Framework
from scoring.numbers import plain, ratio_of, round_index, round_score
from scoring.ranking import RankEntry, rank
from storage.conversations import queue_replies
from storage.db import Database
from storage.models import Period
from storage.results import (
    UnitInput,
    computed,
    latest_publication,
    publish,
    save_results,
    unit_inputs,
    unit_recipients,
)

PRIORITY_RESULTS = 5


class NothingComputed(RuntimeError):
    pass


@dataclass(frozen=True)
class Computed:
    period: Period
    framework: Framework
    rows: list[dict[str, Any]]


def _losses(report: Report, n: int = 3) -> list[dict[str, str]]:
    lost = sorted(
        ((r.full_max - r.score, r.code) for r in report.indicators if r.full_max - r.score > 0),
        key=lambda x: (-x[0], x[1]),
    )
    return [{"code": code, "lost": plain(round_score(points))} for points, code in lost[:n]]


def unit_row(inp: UnitInput, report: Report, claimed: Report, framework: Framework) -> dict[str, Any]:
    counted_total = report.total if inp.appraised else Decimal(0)
    return {
        "unit_id": inp.unit.id,
        "code": inp.unit.code,
        "name": inp.unit.name,
        "district_code": inp.district.code if inp.district else None,
        "district_name": inp.district.name if inp.district else None,
        "appraised": inp.appraised,
        "total": plain(round_score(counted_total)),
        "exact_total": plain(counted_total),
        "max": plain(report.max),
        "index": plain(round_index(ratio_of(counted_total, report.max))),
        "band": (report.band.label if report.band else None) if inp.appraised else None,
        "self_total": plain(round_score(claimed.total)),
        "groups": [
            {
                "id": g.id,
                "name": g.name,
                "score": plain(round_score(g.score if inp.appraised else Decimal(0))),
                "max": plain(g.max),
            }
            for g in report.groups
        ],
        "indicators": [
            {
                "code": r.code,
                "max": plain(r.full_max),
                "self": plain(round_score(c.score)),
                "appraised": plain(round_score(r.score)),
                "status": r.status.value,
            }
            for r, c in zip(report.indicators, claimed.indicators, strict=True)
        ],
        "losses": _losses(report) if inp.appraised else [],
    }


def compute(
    db: Database, period: Period, now: dt.datetime | None = None, operator: str | None = None
) -> Computed:
    assert period.id is not None
    framework = catalog.framework(f"{period.framework_id}@{period.framework_version}")
    with db.session() as s:
        inputs = unit_inputs(s, period.id, framework)
    rules = Rules(require_evidence=True)
    appraised = {inp.unit.code: inp.answers for inp in inputs if inp.appraised}
    reports = score_units(framework, appraised, rules)  # peers: the appraised units of the level
    rows = []
    for inp in inputs:
        report = reports.get(inp.unit.code) or score(framework, inp.answers, rules)
        claimed = score(framework, inp.self_answers, rules)
        rows.append(unit_row(inp, report, claimed, framework))
    ranking = rank(
        RankEntry(r["code"], r["name"], Decimal(r["exact_total"]), r["appraised"], r["district_code"])
        for r in rows
    )
    by_code = {r["code"]: r for r in rows}
    district_sizes = Counter(r["district_code"] for r in rows if r["district_code"])
    ordered = []
    for position in ranking:
        row = by_code[position.unit_id]
        row["rank"] = position.rank
        row["district_rank"] = position.district_rank
        row["district_size"] = district_sizes.get(row["district_code"], 0) if row["district_code"] else None
        ordered.append(row)
    with db.session() as s:
        save_results(s, period.id, ordered, now or utc_now(), operator)
    return Computed(period, framework, ordered)


def publish_results(
    db: Database, period: Period, by: str | None, now: dt.datetime | None = None
) -> tuple[int, int]:
    """Freeze the computed results and tell every unit's members; returns (publication id, messages)."""
    assert period.id is not None
    at = now or utc_now()
    messages = 0
    with db.session() as s:
        rows = computed(s, period.id)
        if not rows:
            raise NothingComputed(period.id)
        document = {
            "period": {"id": period.id, "name": period.name, "year": period.year},
            "framework": f"{period.framework_id}@{period.framework_version}",
            "published_at": at.isoformat(),
            "units": rows,
        }
        publication = publish(s, period.id, document, by, at)
        for row in rows:
            for member in unit_recipients(s, row["unit_id"]):
                reply = result_reply(period.name, row, len(rows))
                payload = render_payload(reply, member.language, CHANNEL_ESCAPES.get(member.channel, str))
                queue_replies(
                    s, member.channel, member.chat_id, member.id, [payload], at, priority=PRIORITY_RESULTS
                )
                messages += 1
        assert publication.id is not None
        return publication.id, messages


def published(db: Database, period: Period) -> dict[str, Any] | None:
    assert period.id is not None
    with db.session() as s:
        pub = latest_publication(s, period.id)
        return json.loads(pub.data_json) if pub is not None else None
