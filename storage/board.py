"""The progress board of a period: one row per unit, from a few set-based queries.

Each figure is read for every unit of the period at once (never a query per unit): the units and
their assessments; their latest answers (answered, evidence missing, last answer); their evidence
and latest decisions; reminders by status; extensions. The claimed points need the scoring core on
each answer, so they are kept per assessment and revision (and the appraised points per assessment
and decisions count): a row changes only when its counter moves, and only those are read again.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from scoring.model import Framework
from scoring.numbers import ZERO
from storage.in_list import in_list
from storage.load import PERIODS, FrameworkResolver, OpenPeriod, decoded_value, read_periods
from storage.models import Extension, Outbox, Reminder, table_of
from storage.tables import ANSWER, ASSESSMENT, DECISION, EVIDENCE, MEMBER, UNIT

EXTENSION = table_of(Extension)
REMINDER = table_of(Reminder)
OUTBOX = table_of(Outbox)
STATES = ("none", "draft", "awaiting_leader", "submitted", "returned", "appraised")


@dataclass(frozen=True)
class BoardRow:
    unit_id: int
    code: str
    name: str
    district_id: int | None
    district: str | None
    status: str  # one of STATES ("none": nothing recorded yet)
    answered: int
    total: int
    evidence_missing: int
    claimed: Decimal
    appraised: Decimal | None  # None: nothing decided yet
    last_activity: dt.datetime | None
    deadline: dt.datetime | None
    extended: bool
    submitted_at: dt.datetime | None
    reminders: dict[str, int]  # sent, queued, deferred, undeliverable


def periods(s: Session, resolve: FrameworkResolver) -> list[OpenPeriod]:
    """Every period, newest first, open or not (the board can show a closed one)."""
    return read_periods(s.connection().execute(PERIODS), resolve)


def _of(column: sa.ColumnElement[Any], ids: list[int] | None) -> sa.ColumnElement[bool]:
    """Rows of the period's assessments, or of `ids` only (None: all of the period's)."""
    return sa.true() if ids is None else in_list(column, "ids")


def _latest_answers(ids: list[int] | None) -> sa.Select[Any]:
    """The latest answer revision of each indicator of the period's assessments (or of `ids`; the
    newer revisions are looked for among those too, which PostgreSQL does not infer)."""
    newer = ANSWER.alias("newer")
    return (
        sa.select(
            ANSWER.c.assessment_id,
            ANSWER.c.indicator_code,
            ANSWER.c.not_applicable,
            ANSWER.c.value_json,
            ANSWER.c.created_at,
        )
        .join(ASSESSMENT, ASSESSMENT.c.id == ANSWER.c.assessment_id)
        .where(
            ASSESSMENT.c.period_id == sa.bindparam("period"),
            ~sa.exists().where(
                newer.c.assessment_id == ANSWER.c.assessment_id,
                newer.c.indicator_code == ANSWER.c.indicator_code,
                newer.c.revision > ANSWER.c.revision,
                _of(newer.c.assessment_id, ids),
            ),
            _of(ANSWER.c.assessment_id, ids),
        )
    )


@dataclass(frozen=True)
class _Progress:
    """What an assessment's answers and evidence come to, as of its `revision` counter."""

    revision: int
    answered: int
    missing: int
    last: dt.datetime | None
    claimed: Decimal


class BoardCache:
    """Progress by (assessment, revision), appraised points by (assessment, decided), for one
    database: every change of an assessment's answers or evidence bumps its revision (decisions:
    `decided`), so a hit is never stale, and a board reads again only the assessments that changed
    since. The caller keeps one per database (the web application has its own)."""

    def __init__(self) -> None:
        self.progress: dict[int, _Progress] = {}
        self.appraised: dict[int, tuple[int, Decimal | None]] = {}
        self.lock = threading.Lock()


def _progress(
    s: Session, cache: BoardCache, fw: Framework, period_id: int, revisions: dict[int, int]
) -> dict[int, _Progress]:
    with cache.lock:
        known = {a: p for a, p in cache.progress.items() if revisions.get(a) == p.revision}
    stale = [a for a in revisions if a not in known]
    if not stale:
        return known
    ids = None if len(stale) * 2 > len(revisions) else stale  # most changed: read the period's at once
    params = {"period": period_id, "ids": ids}
    conn = s.connection()
    required = sorted(ind.code for ind in fw.indicators if ind.evidence.required)
    latest = _latest_answers(ids).subquery()
    has_evidence = sa.exists().where(
        EVIDENCE.c.assessment_id == latest.c.assessment_id,
        EVIDENCE.c.indicator_code == latest.c.indicator_code,
    )
    needs = sa.and_(
        latest.c.indicator_code.in_(required),
        sa.not_(latest.c.not_applicable),
        latest.c.value_json.is_not(None),
    )
    counted = sa.select(
        latest.c.assessment_id,
        sa.func.count(),
        sa.func.sum(sa.case((sa.and_(needs, ~has_evidence), 1), else_=0)),
        sa.func.max(latest.c.created_at),
    ).group_by(latest.c.assessment_id)
    figures = {
        aid: (int(n), int(missing or 0), last) for aid, n, missing, last in conn.execute(counted, params)
    }
    evidence_last = dict(
        conn.execute(
            sa.select(EVIDENCE.c.assessment_id, sa.func.max(EVIDENCE.c.created_at))
            .join(ASSESSMENT, ASSESSMENT.c.id == EVIDENCE.c.assessment_id)
            .where(ASSESSMENT.c.period_id == sa.bindparam("period"), _of(EVIDENCE.c.assessment_id, ids))
            .group_by(EVIDENCE.c.assessment_id),
            params,
        ).all()
    )
    claimed: dict[int, Decimal] = {}
    values = sa.select(latest.c.assessment_id, latest.c.indicator_code, latest.c.value_json).where(
        latest.c.value_json.is_not(None), sa.not_(latest.c.not_applicable)
    )
    for aid, code, value_json in conn.execute(values, params):
        ind = fw.indicator(code)
        value = decoded_value(ind, value_json) if ind is not None else None
        if ind is not None and value is not None:
            claimed[aid] = claimed.get(aid, ZERO) + ind.points(value)
    fresh = {}
    for aid in stale:
        answered, missing, last = figures.get(aid, (0, 0, None))
        other = evidence_last.get(aid)
        if other is not None and (last is None or other > last):
            last = other
        fresh[aid] = _Progress(revisions[aid], answered, missing, last, claimed.get(aid, ZERO))
    with cache.lock:
        cache.progress.update(fresh)
    return {**known, **fresh}


def _appraised(
    s: Session, cache: BoardCache, period_id: int, decided: dict[int, int]
) -> dict[int, Decimal | None]:
    with cache.lock:
        known = {a: p for a, (n, p) in cache.appraised.items() if decided.get(a) == n}
    stale = {a for a, n in decided.items() if a not in known}
    if stale:
        fresh: dict[int, Decimal | None] = {a: None for a in stale}
        latest: dict[tuple[int, str], tuple[int, str | None]] = {}
        rows = s.connection().execute(
            sa.select(
                DECISION.c.assessment_id,
                DECISION.c.indicator_code,
                DECISION.c.revision,
                DECISION.c.appraised_points,
            )
            .join(ASSESSMENT, ASSESSMENT.c.id == DECISION.c.assessment_id)
            .where(ASSESSMENT.c.period_id == period_id, ASSESSMENT.c.decided > 0)
        )
        for aid, code, revision, points in rows:
            if aid not in stale:  # its total is known (cached): nothing to read again
                continue
            if (aid, code) not in latest or latest[(aid, code)][0] < revision:
                latest[(aid, code)] = (revision, points)
        for (aid, _), (_, points) in latest.items():
            if aid in stale:
                fresh[aid] = (fresh[aid] or ZERO) + (Decimal(points) if points is not None else ZERO)
        with cache.lock:
            for aid, total in fresh.items():
                cache.appraised[aid] = (decided[aid], total)
        known.update(fresh)
    return known


def board(
    s: Session, period: OpenPeriod, visible: Iterable[int] | None, cache: BoardCache | None = None
) -> list[BoardRow]:
    """Every unit of the period's level (of `visible`, None: all) with its progress, by code."""
    fw = period.framework
    conn = s.connection()
    parent = UNIT.alias("parent")
    units = conn.execute(
        sa.select(
            UNIT.c.id,
            UNIT.c.code,
            UNIT.c.name,
            parent.c.id.label("district_id"),
            parent.c.name.label("district"),
            parent.c.level.label("parent_level"),
            ASSESSMENT.c.id.label("assessment_id"),
            ASSESSMENT.c.status,
            ASSESSMENT.c.submitted_at,
            ASSESSMENT.c.revision,
            ASSESSMENT.c.decided,
        )
        .outerjoin(parent, parent.c.id == UNIT.c.parent_id)
        .outerjoin(
            ASSESSMENT, sa.and_(ASSESSMENT.c.unit_id == UNIT.c.id, ASSESSMENT.c.period_id == period.id)
        )
        .where(UNIT.c.level == fw.level.value)
        .order_by(UNIT.c.code)
    ).all()
    allowed = set(visible) if visible is not None else None
    units = [u for u in units if allowed is None or u.id in allowed]
    revisions = {u.assessment_id: u.revision for u in units if u.assessment_id is not None}
    cache = cache if cache is not None else BoardCache()
    progress = _progress(s, cache, fw, period.id, revisions)
    appraised = _appraised(
        s,
        cache,
        period.id,
        {u.assessment_id: u.decided for u in units if u.assessment_id is not None and u.decided},
    )
    extensions = {
        unit_id: due
        for unit_id, due in conn.execute(
            sa.select(EXTENSION.c.unit_id, EXTENSION.c.due_at).where(
                EXTENSION.c.period_id == period.id, EXTENSION.c.deadline == "self_assessment_due"
            )
        )
    }
    reminders: dict[int, dict[str, int]] = {}
    for unit_id, status, sent, count in conn.execute(
        sa.select(MEMBER.c.unit_id, REMINDER.c.status, OUTBOX.c.status, sa.func.count())
        .join(MEMBER, MEMBER.c.id == REMINDER.c.member_id)
        .outerjoin(OUTBOX, OUTBOX.c.id == REMINDER.c.outbox_id)
        .where(REMINDER.c.period_id == period.id)
        .group_by(MEMBER.c.unit_id, REMINDER.c.status, OUTBOX.c.status)
    ):
        key = "sent" if status == "queued" and sent == "sent" else status
        counts = reminders.setdefault(unit_id, {})
        counts[key] = counts.get(key, 0) + int(count)
    rows = []
    for u in units:
        aid = u.assessment_id
        done = progress.get(aid) if aid is not None else None
        rows.append(
            BoardRow(
                u.id,
                u.code,
                u.name,
                u.district_id if u.parent_level == "district" else None,
                u.district if u.parent_level == "district" else None,
                u.status or "none",
                done.answered if done is not None else 0,
                len(fw.indicators),
                done.missing if done is not None else 0,
                done.claimed if done is not None else ZERO,
                appraised.get(aid) if aid is not None else None,
                done.last if done is not None else None,
                extensions.get(u.id) or period.self_assessment_due,
                u.id in extensions,
                u.submitted_at,
                reminders.get(u.id, {}),
            )
        )
    return rows


def progress(
    s: Session, period_id: int, unit_ids: Sequence[int] | None
) -> tuple[list[dt.datetime], list[dt.datetime]]:
    """When answers were given and units submitted (for the chart of progress by day)."""
    conn = s.connection()
    answers = (
        sa.select(ANSWER.c.created_at)
        .join(ASSESSMENT, ASSESSMENT.c.id == ANSWER.c.assessment_id)
        .where(ASSESSMENT.c.period_id == period_id)
    )
    submitted = sa.select(ASSESSMENT.c.submitted_at).where(
        ASSESSMENT.c.period_id == period_id, ASSESSMENT.c.submitted_at.is_not(None)
    )
    if unit_ids is not None:
        answers = answers.where(ASSESSMENT.c.unit_id.in_(unit_ids))
        submitted = submitted.where(ASSESSMENT.c.unit_id.in_(unit_ids))
    return [r[0] for r in conn.execute(answers)], [r[0] for r in conn.execute(submitted)]
