"""A unit's pages: its indicators by group with their state, one indicator in full (answer, claimed
points, revisions, evidence viewable in the browser, citations, notes, links, the reviewer's
decision), the unit's audit trail, its evidence files, and the upload form for the unit's members.

Who may open a unit is decided by `storage.web.viewer` for every request; a file is served only if it
is recorded as evidence of that unit, and only from the content-addressed evidence store. An upload
is stored there and handed to the engine like a file sent in the chat (`Service.handle_web`).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from urllib.parse import quote

from aiohttp import web
from aiohttp.web_request import FileField

from bot.i18n import Translator
from bot.render.reply import ReplyRenderer
from bot.service import resolve_framework
from bot.web.errors import PageError
from bot.web.pages import flash_later, render, state, translator, viewer
from flows.appraise import claimed
from flows.model import AnswerView, DecisionView, EvidenceView, FileInfo, Inbound, InboundKind, Rejected
from flows.prompts import evidence_lines, value_msg
from scoring.answers import decode_value
from scoring.messages import N_
from scoring.model import Framework, Indicator
from storage import board as store_board
from storage import workspace
from storage.evidence import EvidenceRejected, sanitize_name
from storage.load import OpenPeriod
from storage.web import Viewer

INLINE = ("application/pdf", "image/png", "image/jpeg", "image/gif", "image/webp")
_CHUNK = 256 * 1024


def unit_id_of(request: web.Request) -> int:
    """The unit a URL names, if the viewer may see it: 404 for what is not a unit id, 403 otherwise."""
    raw = request.match_info["unit"]
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 12:
        raise PageError(404)
    unit_id = int(raw)
    if not viewer(request).sees(unit_id):
        raise PageError(403)
    return unit_id


def period_for_unit(request: web.Request, periods: list[OpenPeriod], level: str) -> OpenPeriod:
    if not periods:
        raise PageError(404, N_("web.error.no_period.title"), N_("web.error.no_period.body"))
    wanted = request.query.get("period", "")
    for p in periods:
        if wanted and str(p.id) == wanted:
            return p
    if wanted:
        raise PageError(404)
    return next((p for p in periods if p.framework.level.value == level), periods[0])


@dataclass(frozen=True)
class Item:
    """One indicator as the tree shows it."""

    indicator: Indicator
    status: str  # unanswered | answered | missing_evidence | na | accept | adjust | return
    claimed: Decimal | None
    decision: DecisionView | None


def item_status(ind: Indicator, answer: AnswerView | None, decision: DecisionView | None) -> str:
    if decision is not None:
        return decision.decision.value
    if answer is None:
        return "unanswered"
    if answer.not_applicable:
        return "na"
    if ind.evidence.required and not answer.evidence:
        return "missing_evidence"
    return "answered"


def tree(fw: Framework, view: workspace.UnitView) -> list[tuple[str, str, list[Item]]]:
    """The indicators by group (id, name, items), each with its state."""
    out = []
    for group in fw.groups:
        items = []
        for code in group.indicator_codes:
            ind = fw.indicator(code)
            assert ind is not None
            answer = view.answers.views.get(code)
            decision = view.decisions.get(code)
            items.append(Item(ind, item_status(ind, answer, decision), claimed(ind, answer), decision))
        out.append((group.id, group.name, items))
    return out


def load_unit(request: web.Request) -> tuple[OpenPeriod, workspace.UnitView, list[OpenPeriod]]:
    unit_id = unit_id_of(request)
    st = state(request)
    with st.db.session() as s:
        info = workspace.unit_info(s, unit_id)
        if info is None:
            raise PageError(404)
        periods = store_board.periods(s, resolve_framework)
        period = period_for_unit(request, periods, info.level)
        return period, workspace.unit_view(s, info, period.id, period.framework), periods


async def unit_page(request: web.Request) -> web.Response:
    period, view, periods = load_unit(request)
    st = state(request)
    with st.db.session() as s:
        trail = workspace.audit_trail(s, view.unit.id)
    context = {
        "period": period,
        "periods": periods,
        "view": view,
        "groups": tree(period.framework, view),
        "trail": trail,
        "status_key": f"web.state.{view.status.value if view.assessment_id else 'none'}",
    }
    return render(request, "unit.html", context)


def evidence_rows(t: Translator, unit_id: int, evidence: tuple[EvidenceView, ...]) -> list[dict[str, object]]:
    """Each evidence item: what it is (as the chat describes it) and, for a file, where to view it."""
    renderer = ReplyRenderer(t)
    rows = []
    for ev in evidence:
        lines = [renderer.message(m) for m in evidence_lines(ev)]
        href = f"/units/{unit_id}/files/{ev.sha256}" if ev.sha256 else None
        rows.append({"ev": ev, "lines": lines, "href": href})
    return rows


def indicator_context(
    request: web.Request, period: OpenPeriod, view: workspace.UnitView, code: str
) -> dict[str, object]:
    """What an indicator's page (and the appraisal workspace's right pane) shows."""
    fw = period.framework
    ind = fw.indicator(code)
    if ind is None:
        raise PageError(404)
    t = translator(request)
    renderer = ReplyRenderer(t)
    answer = view.answers.views.get(code)
    decision = view.decisions.get(code)
    history = []
    if view.assessment_id is not None:
        with state(request).db.session() as s:
            for r in workspace.history(s, view.assessment_id, code):
                value = decode_value(ind, json.loads(r.value_json)) if r.value_json else None
                shown = AnswerView(value, r.not_applicable, r.reason, r.revision)
                history.append({"row": r, "value": renderer.message(value_msg(ind, value, shown))})
    codes = [i.code for i in fw.indicators]
    at = codes.index(code)
    return {
        "period": period,
        "view": view,
        "ind": ind,
        "answer": answer,
        "value": renderer.message(value_msg(ind, answer.value if answer else None, answer)),
        "claimed": claimed(ind, answer),
        "decision": decision,
        "status": item_status(ind, answer, decision),
        "history": history,
        "evidence": evidence_rows(t, view.unit.id, answer.evidence if answer else ()),
        "previous": codes[at - 1] if at > 0 else None,
        "next": codes[at + 1] if at + 1 < len(codes) else None,
        "groups": tree(fw, view),
        "can_upload": view.unit.id in viewer(request).uploads,
    }


async def indicator_page(request: web.Request) -> web.Response:
    period, view, _ = load_unit(request)
    context = indicator_context(request, period, view, request.match_info["code"])
    return render(request, "indicator.html", context)


def _disposition(kind: str, name: str) -> str:
    ascii_name = name.encode("ascii", "replace").decode().replace('"', "_").replace("?", "_")
    return f"{kind}; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name)}"


async def evidence_file(request: web.Request) -> web.StreamResponse:
    """A stored evidence file of the unit: PDFs and pictures shown in the browser, the rest
    downloaded; never anything that is not recorded as the unit's evidence."""
    unit_id = unit_id_of(request)
    sha256 = request.match_info["sha256"]
    st = state(request)
    with st.db.session() as s:
        found = workspace.evidence_file(s, unit_id, sha256)
    if found is None or not st.store.exists(sha256):
        raise PageError(404)
    data, name = st.store.document(sha256, found.name)
    mime = found.mime or "application/octet-stream"
    kind = "inline" if mime in INLINE else "attachment"
    return web.Response(
        body=data,
        content_type=mime if kind == "inline" else "application/octet-stream",
        headers={
            "Content-Disposition": _disposition(kind, name),
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "private, max-age=3600",
        },
    )


async def upload(request: web.Request) -> web.Response:
    """Evidence from the computer of a unit's member: stored, then handed to the engine as a file
    sent for that indicator (the same checks, deadlines and audit as in the chat)."""
    unit_id = unit_id_of(request)
    who: Viewer = viewer(request)
    code = request.match_info["code"]
    if unit_id not in who.uploads:
        raise PageError(403)
    st = state(request)
    fields = await request.post()
    part = fields.get("file")
    if not isinstance(part, FileField) or not part.filename:
        raise PageError(400, N_("web.upload.none.title"), N_("web.upload.none.body"))
    name = sanitize_name(part.filename)

    def chunks() -> Iterator[bytes]:
        while block := part.file.read(_CHUNK):
            yield block

    try:
        stored = st.store.put_stream(chunks(), name)
        inbound = Inbound(
            InboundKind.FILE,
            files=(FileInfo(stored.sha256, stored.size, stored.mime, name),),
            fields=(("code", code),),
        )
    except EvidenceRejected as exc:
        inbound = Inbound(InboundKind.FILE, rejected=(Rejected(name, exc.reason),), fields=(("code", code),))
    texts = [o.text for o in await asyncio.to_thread(st.service.handle_web, who.member_id, inbound)]
    if inbound.rejected:
        return render(
            request,
            "error.html",
            {
                "status": 415,
                "title_key": N_("web.upload.refused.title"),
                "body_key": "",
                "texts": texts,
                "params": {},
                "back": f"/units/{unit_id}/indicators/{code}",
            },
            415,
        )
    flash_later(request, texts)
    raise web.HTTPSeeOther(f"/units/{unit_id}/indicators/{code}")


def routes() -> list[web.RouteDef]:
    return [
        web.get("/units/{unit}", unit_page),
        web.get("/units/{unit}/indicators/{code}", indicator_page),
        web.get("/units/{unit}/files/{sha256:[0-9a-f]{64}}", evidence_file),
        web.post("/units/{unit}/indicators/{code}/evidence", upload),
    ]
