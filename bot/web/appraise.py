"""The appraisal workspace: a reviewer's queue, and per unit the indicator tree on the left with the
indicator and its evidence on the right, beside the forms Chấp nhận, Điều chỉnh điểm, Yêu cầu bổ sung
and Kết thúc thẩm định. Next and previous indicators are links (and j/k or the arrow keys).

Nothing is decided here: every form becomes the `InboundKind.FORM` message of flows/appraise.py and
goes through `Service.handle_web`, the chat's engine, revision check, audit and notices. The page
shows what the engine answered; a decision on a revision that moved on is refused there and told.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from bot.service import resolve_framework
from bot.web.errors import PageError
from bot.web.pages import flash_later, render, state, viewer
from bot.web.unit import indicator_context, load_unit, unit_id_of
from flows.intents import payload
from flows.model import Inbound, InboundKind
from scoring.messages import N_
from storage import appraisal, workspace
from storage import board as store_board

ACTIONS = ("accept", "adjust", "return")
_FIELDS = ("points", "comment", "due")


def appraised_unit(request: web.Request) -> int:
    unit_id = unit_id_of(request)
    if unit_id not in viewer(request).appraises:
        raise PageError(403)
    return unit_id


async def queue_page(request: web.Request) -> web.Response:
    """The units waiting for the reviewer (submitted, returned, appraised), as the chat lists them."""
    who = viewer(request)
    if not who.appraises:
        raise PageError(403)
    st = state(request)
    with st.db.session() as s:
        periods = store_board.periods(s, resolve_framework)
        if not periods:
            raise PageError(404, N_("web.error.no_period.title"), N_("web.error.no_period.body"))
        wanted = request.query.get("period", "")
        period = next((p for p in periods if str(p.id) == wanted), periods[0])
        items = appraisal.queue(s, period.id, sorted(who.appraises))
    return render(request, "queue.html", {"period": period, "periods": periods, "items": items})


async def unit_start(request: web.Request) -> web.Response:
    unit_id = appraised_unit(request)
    period, _, _ = load_unit(request)
    first = period.framework.indicators[0].code
    raise web.HTTPSeeOther(f"/appraise/{unit_id}/{first}?period={period.id}")


async def workspace_page(request: web.Request) -> web.Response:
    appraised_unit(request)
    period, view, _ = load_unit(request)
    context = indicator_context(request, period, view, request.match_info["code"])
    decision = view.decisions.get(request.match_info["code"])
    total = len(period.framework.indicators)
    final = sum(1 for d in view.decisions.values() if d.decision.value in ("accept", "adjust"))
    returned = sum(1 for d in view.decisions.values() if d.decision.value == "return")
    context.update(
        {
            "revision": decision.revision if decision is not None else 0,
            "final": final,
            "returned": returned,
            "total": total,
        }
    )
    return render(request, "appraise.html", context)


def _form_inbound(
    period_id: int, unit_id: int, code: str | None, arg: str, fields: dict[str, str]
) -> Inbound:
    given = tuple((k, fields[k]) for k in _FIELDS if fields.get(k))
    return Inbound(
        InboundKind.FORM, payload=payload("rv", period_id, code, arg), fields=(("unit", str(unit_id)), *given)
    )


async def decide(request: web.Request) -> web.Response:
    """Accept, adjust the points or ask for more evidence on one indicator, as decided on the revision
    the page showed; then the next indicator once it is recorded, else the same one with what was said."""
    unit_id = appraised_unit(request)
    code = request.match_info["code"]
    st = state(request)
    posted = await request.post()
    fields = {k: str(v) for k, v in posted.items() if isinstance(v, str)}
    action = fields.get("action", "")
    revision = fields.get("revision", "")
    if action not in ACTIONS or not (revision.isascii() and revision.isdigit()):
        raise PageError(400)
    period, view, _ = load_unit(request)
    fw = period.framework
    if fw.indicator(code) is None:
        raise PageError(404)
    inbound = _form_inbound(period.id, unit_id, code, f"{action}:{revision}", fields)
    # the service may wait out a conflict's backoff: never on the event loop
    replies = await asyncio.to_thread(st.service.handle_web, viewer(request).member_id, inbound)
    texts = [o.text for o in replies]
    flash_later(request, texts)
    with st.db.session() as s:
        after = workspace.unit_view(s, view.unit, period.id, fw).decisions.get(code)
    before = view.decisions.get(code)
    target = code
    if after is not None and after.revision > (before.revision if before is not None else 0):  # recorded
        codes = [i.code for i in fw.indicators]
        target = codes[min(codes.index(code) + 1, len(codes) - 1)]
    raise web.HTTPSeeOther(f"/appraise/{unit_id}/{target}?period={period.id}")


async def unit_action(request: web.Request) -> web.Response:
    """Closing the appraisal, or sending the returns to the unit."""
    unit_id = appraised_unit(request)
    action = request.match_info["action"]
    st = state(request)
    period, _, _ = load_unit(request)
    posted = await request.post()
    back = str(posted.get("back", "")) or period.framework.indicators[0].code
    if period.framework.indicator(back) is None:
        back = period.framework.indicators[0].code
    inbound = _form_inbound(period.id, unit_id, None, action, {})
    replies = await asyncio.to_thread(st.service.handle_web, viewer(request).member_id, inbound)
    texts = [o.text for o in replies]
    flash_later(request, texts)
    raise web.HTTPSeeOther(f"/appraise/{unit_id}/{back}?period={period.id}")


def routes() -> list[web.RouteDef]:
    return [
        web.get("/appraise", queue_page),
        web.get("/appraise/{unit}", unit_start),
        web.get("/appraise/{unit}/{code}", workspace_page),
        web.post("/appraise/{unit}/{code}/decide", decide),
        web.post("/appraise/{unit}/do/{action:close|send}", unit_action),
    ]
