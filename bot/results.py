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
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from bot import catalog
from bot.render.reply import CHANNEL_ESCAPES
from bot.service import render, utc_now
from flows.results import result_reply
from scoring.engine import Report, Rules, score, score_units
from scoring.model import Framework
from scoring.numbers import plain, ratio_of, round_index, round_score
from scoring.ranking import RankEntry, rank
from storage.admin import period_extensions
from storage.db import Database
from storage.models import Period
from storage.record import queue_replies
from storage.results import (
    UnitInput,
    assessment_statuses,
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


class ResultsChanged(RuntimeError):
    """The results were computed again since they were shown: publishing them would publish unseen ones."""


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
                # a unit whose appraisal is not closed counts 0, indicator by indicator as in total
                "appraised": plain(round_score(r.score)) if inp.appraised else "0",
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


@dataclass(frozen=True)
class Premature:
    """Why publishing now would be early: the appraisal deadline still ahead, and the units whose
    appraisal is not closed (code, name, assessment state or None if never started), which the
    computed results count as 0."""

    appraisal_due: dt.datetime | None
    open_units: list[tuple[str, str, str | None]]

    def __bool__(self) -> bool:
        return self.appraisal_due is not None or bool(self.open_units)


def premature(db: Database, period: Period, now: dt.datetime | None = None) -> Premature:
    """What makes the period's computed results not yet final (`NothingComputed` if there are none)."""
    assert period.id is not None
    at = now or utc_now()
    with db.session() as s:
        rows = computed(s, period.id)
        if not rows:
            raise NothingComputed(period.id)
        statuses = assessment_statuses(s, period.id)
        extended = [due for _, name, due, _ in period_extensions(s, period.id) if name == "appraisal_due"]
    deadlines = [d for d in (period.appraisal_due, *extended) if d is not None]
    due = max(deadlines) if deadlines and max(deadlines) > at else None
    open_units = [(r["code"], r["name"], statuses.get(r["unit_id"])) for r in rows if not r["appraised"]]
    return Premature(due, sorted(open_units))


@dataclass(frozen=True)
class Published:
    id: int
    messages: int  # result messages queued
    unchanged: int  # units whose result is the one already published: not told again


def publish_results(
    db: Database,
    period: Period,
    by: str | None,
    now: dt.datetime | None = None,
    *,
    as_shown: Callable[[list[dict[str, Any]]], bool] | None = None,
) -> Published:
    """Freeze the computed results and tell each unit's members their result, unless it is the very
    result the previous publication already told them. The publication keeps, per unit, who has been
    told its result (`told`), so a member who joined since is told all the same. `as_shown`: whether
    the results read in this transaction are the ones the operator saw (else `ResultsChanged`)."""
    assert period.id is not None
    at = now or utc_now()
    messages = unchanged = 0
    with db.session() as s:
        rows = computed(s, period.id)
        if not rows:
            raise NothingComputed(period.id)
        if as_shown is not None and not as_shown(rows):
            raise ResultsChanged(period.id)
        before = latest_publication(s, period.id)
        old = json.loads(before.data_json) if before is not None else {"units": [], "told": {}}
        replies = {u["code"]: result_reply(old["period"]["name"], u, len(old["units"])) for u in old["units"]}
        told: dict[str, list[int]] = {}
        for row in rows:
            reply = result_reply(period.name, row, len(rows))
            same = replies.get(row["code"]) == reply
            unchanged += same
            already = set(old.get("told", {}).get(row["code"], ())) if same else set()
            for member in unit_recipients(s, row["unit_id"]):
                assert member.id is not None
                if member.id not in already:
                    payload = render(
                        reply, member.language, CHANNEL_ESCAPES.get(member.channel, str)
                    ).to_json()
                    queue_replies(
                        s, member.channel, member.chat_id, member.id, [payload], at, priority=PRIORITY_RESULTS
                    )
                    messages += 1
                already.add(member.id)
            told[row["code"]] = sorted(already)
        document = {
            "period": {"id": period.id, "name": period.name, "year": period.year},
            "framework": f"{period.framework_id}@{period.framework_version}",
            "published_at": at.isoformat(),
            "units": rows,
            "told": told,
        }
        publication = publish(s, period.id, document, by, at)
        assert publication.id is not None
        return Published(publication.id, messages, unchanged)


def published(db: Database, period: Period) -> dict[str, Any] | None:
    assert period.id is not None
    with db.session() as s:
        pub = latest_publication(s, period.id)
        return json.loads(pub.data_json) if pub is not None else None
