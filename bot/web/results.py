"""Results on the web: compute and preview them, publish them with a two-step confirmation, and
download the exports the CLI makes.

Nothing is scored here: `bot.results.compute`, `premature` and `publish_results` are the functions
behind `dtibot results compute` and `publish`, and the downloads are `bot.exports` as `dtibot export`
writes them. The page only reads their rows. Province admins act; reviewers see the preview of the
units they may see. The confirmation page carries a fingerprint of the results it showed; the
publication is refused if the computed results have changed since.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from typing import Any

from aiohttp import web

from bot.results import NothingComputed, Premature, ResultsChanged, compute, premature, publish_results
from bot.service import resolve_framework
from bot.web.board import chosen_period, staff
from bot.web.errors import PageError
from bot.web.pages import XLSX, flash_later, local, render, state, stream_file, translator
from bot.web.roles import admin, web_operator
from scoring.engine import Status
from scoring.messages import N_
from storage import board as store_board
from storage.admin import AdminError, period_by_ref
from storage.load import OpenPeriod
from storage.models import Period, Unit
from storage.results import computed, latest_publication
from storage.web import WebRole

# what the rules did to an indicator, as the preview counts it per unit
RULES = {
    Status.EVIDENCE_MISSING.value: N_("web.results.rule.evidence_missing"),
    Status.EVIDENCE_LATE.value: N_("web.results.rule.evidence_late"),
    Status.NOT_APPLICABLE.value: N_("web.results.rule.not_applicable"),
}


def fingerprint(rows: list[dict[str, Any]]) -> str:
    """What the preview showed, in a few characters: any change to the computed results changes it."""
    text = json.dumps(rows, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def rules_applied(row: dict[str, Any]) -> dict[str, int]:
    """How many indicators of a unit each rule touched (and whether the whole unit counted 0)."""
    counts = Counter(i["status"] for i in row["indicators"] if i["status"] in RULES)
    out = {key: counts.get(key, 0) for key in RULES}
    out["not_appraised"] = 0 if row["appraised"] else 1
    return out


def _period_row(request: web.Request, period: OpenPeriod) -> Period:
    with state(request).db.session() as s:
        try:
            found = period_by_ref(s, str(period.id))
        except AdminError as exc:  # removed between two reads
            raise PageError(404) from exc
        s.expunge(found)
        return found


def _load(request: web.Request) -> tuple[OpenPeriod, list[OpenPeriod], list[dict[str, Any]], Any]:
    st = state(request)
    with st.db.session() as s:
        periods = store_board.periods(s, resolve_framework)
        period = chosen_period(request, periods)
        rows = computed(s, period.id)
        publication = latest_publication(s, period.id)
        published = (publication.published_at, publication.published_by) if publication is not None else None
    return period, periods, rows, published


async def results_page(request: web.Request) -> web.Response:
    """The computed results of a period: ranks, scores, bands and what the rules did."""
    who = staff(request)
    period, periods, rows, published = _load(request)
    shown = [r for r in rows if r["unit_id"] in who.visible]
    totals = Counter[str]()
    for r in shown:
        totals.update(rules_applied(r))
    context = {
        "period": period,
        "periods": periods,
        "rows": shown,
        "rules": {r["code"]: rules_applied(r) for r in shown},
        "rule_keys": RULES,
        "totals": totals,
        "published": published,
        "districts": any(r["district_code"] for r in shown),
        "can_act": who.role is WebRole.ADMIN,
    }
    return render(request, "results.html", context)


async def compute_now(request: web.Request) -> web.Response:
    """Compute the period's results now (`dtibot results compute`), then show the preview."""
    who = admin(request)
    period, _, _, _ = _load(request)
    st = state(request)
    done = compute(st.db, _period_row(request, period), st.clock(), web_operator(who))
    t = translator(request)
    flash_later(request, [t("web.results.computed", units=len(done.rows))])
    raise web.HTTPSeeOther(f"/results?period={period.id}")


def _premature_lines(request: web.Request, early: Premature) -> list[str]:
    t = translator(request)
    lines = []
    if early.appraisal_due is not None:
        lines.append(t("web.results.before_deadline", due=local(early.appraisal_due)))
    if early.open_units:
        lines.append(t("web.results.open_units", count=len(early.open_units)))
        lines += [f"{code} {name}" for code, name, _ in early.open_units]
    return lines


async def confirm_page(request: web.Request) -> web.Response:
    """Step one: what publishing now does, with the fingerprint of the results shown."""
    admin(request)
    period, _, rows, published = _load(request)
    if not rows:
        raise PageError(409, N_("web.results.none.title"), N_("web.results.none.body"))
    early = premature(state(request).db, _period_row(request, period), state(request).clock())
    context = {
        "period": period,
        "rows": rows,
        "fingerprint": fingerprint(rows),
        "warnings": _premature_lines(request, early),
        "premature": bool(early),
        "published": published,
    }
    return render(request, "results_confirm.html", context)


async def publish_now(request: web.Request) -> web.Response:
    """Step two: publish what the confirmation showed (`dtibot results publish`, `--force` being the
    box ticked after reading why it is early); refused if the results changed since."""
    who = admin(request)
    posted = await request.post()
    period, _, _, _ = _load(request)
    st = state(request)
    shown = str(posted.get("fingerprint", ""))
    row = _period_row(request, period)
    try:
        early = premature(st.db, row, st.clock())
        if early and posted.get("force") != "yes":
            raise PageError(409, N_("web.results.premature.title"), N_("web.results.premature.body"))
        done = publish_results(
            st.db, row, web_operator(who), st.clock(), as_shown=lambda rows: fingerprint(rows) == shown
        )
    except NothingComputed as exc:
        raise PageError(409, N_("web.results.none.title"), N_("web.results.none.body")) from exc
    except ResultsChanged as exc:
        raise PageError(
            409, N_("web.results.stale.title"), N_("web.results.stale.body"), period=str(period.id)
        ) from exc
    t = translator(request)
    flash_later(request, [t("web.results.published", messages=done.messages, unchanged=done.unchanged)])
    raise web.HTTPSeeOther(f"/results?period={period.id}")


async def results_xlsx(request: web.Request) -> web.StreamResponse:
    from bot.exports import results_workbook

    admin(request)
    period, _, _, _ = _load(request)
    row = _period_row(request, period)
    t = translator(request)
    try:
        return await stream_file(
            request,
            lambda out: results_workbook(state(request).db, row, out, t),
            f"ket-qua-{period.id}.xlsx",
            XLSX,
        )
    except NothingComputed as exc:
        raise PageError(409, N_("web.results.none.title"), N_("web.results.none.body")) from exc


async def audit_download(request: web.Request) -> web.StreamResponse:
    from bot.exports import audit_csv

    admin(request)
    period, _, _, _ = _load(request)
    row = _period_row(request, period)
    t = translator(request)
    return await stream_file(
        request,
        lambda out: audit_csv(state(request).db, row, out, t),
        f"nhat-ky-{period.id}.csv",
        "text/csv; charset=utf-8",
    )


async def evidence_download(request: web.Request) -> web.StreamResponse:
    """A unit's evidence filed by indicator, for staff who may see the unit."""
    from bot.exports import evidence_zip

    who = staff(request)
    raw = request.match_info["unit"]
    unit_id = int(raw) if raw.isascii() and raw.isdigit() else -1
    if not who.sees(unit_id):
        raise PageError(404)
    period, _, _, _ = _load(request)
    st = state(request)
    with st.db.session() as s:
        unit = s.get(Unit, unit_id)
        code = unit.code if unit is not None else None
    if code is None:
        raise PageError(404)
    row = _period_row(request, period)
    t = translator(request)
    return await stream_file(
        request,
        lambda out: evidence_zip(st.db, st.store, row, code, out, t),
        f"minh-chung-{code}-{period.id}.zip",
        "application/zip",
    )


def routes() -> list[web.RouteDef]:
    return [
        web.get("/results", results_page),
        web.post("/results/compute", compute_now),
        web.get("/results/publish", confirm_page),
        web.post("/results/publish", publish_now),
        web.get("/results/ket-qua.xlsx", results_xlsx),
        web.get("/results/audit.csv", audit_download),
        web.get("/results/evidence/{unit}.zip", evidence_download),
    ]
