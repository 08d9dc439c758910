"""Period and people on the web, for admins: open a period with its deadlines, extend a deadline for
one unit, send one unit a reminder now, see and remove members, create, list, print and revoke invites
(each with its Telegram deep link and a QR code drawn on the server as SVG).

Every action is the CLI's: `storage.admin` (`open_period`, `extend_deadline`, `create_invite`,
`revoke_invite`), `bot.cli_admin.remove_and_tell`, `ReminderScheduler.remind_unit`; each is audited as
the CLI audits it, with the operator `web:<member>` (bot.web.roles.web_operator). A refusal (a
deadline in the past, an unknown unit, a used invite) is the CLI's message on an error page; nothing
is half-written.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from typing import Any

from aiohttp import web

from bot import catalog
from bot.cli_admin import parse_local_datetime, remove_and_tell
from bot.scheduler import ReminderScheduler
from bot.service import resolve_framework
from bot.web.board import chosen_period
from bot.web.errors import PageError
from bot.web.pages import flash_later, local, render, state, translator
from bot.web.roles import admin, web_operator
from flows.engine import join_code
from flows.reminders import Policy
from scoring.messages import N_
from storage import admin as store_admin
from storage import board as store_board
from storage.admin import AdminError
from storage.models import ROLES
from storage.web import Viewer

DEADLINES = ("self_assessment_due", "supplement_due", "appraisal_due", "publication_due")
REFUSED = N_("web.manage.refused.title")


def bot_username() -> str:
    """The Telegram bot's username, as `dtibot invite create` knows it (empty: links cannot be made)."""
    return os.environ.get("TELEGRAM_BOT_USERNAME", "").strip().lstrip("@")


def deep_link(code: str) -> str | None:
    username = bot_username()
    return f"https://t.me/{username}?start={code}" if username else None


def qr_svg(text: str) -> str:
    """`text` as a QR code, an SVG element to inline in the page (drawn here from a link this module
    built from the bot's name and an invite code: the template marks it safe)."""
    import qrcode  # type: ignore[import-untyped]
    import qrcode.image.svg  # type: ignore[import-untyped]

    image = qrcode.make(text, image_factory=qrcode.image.svg.SvgPathImage, border=2)
    svg = str(image.to_string(encoding="unicode"))
    return re.sub(r"^<\?xml[^>]*\?>\s*", "", svg)


def _refused(request: web.Request, exc: AdminError) -> PageError:
    """The CLI's message for a refusal (a deadline named by its label), as an error page."""
    t = translator(request)
    params = {k: t(f"deadline.{v}") if v in DEADLINES else v for k, v in exc.params.items()}
    return PageError(400, REFUSED, exc.key, **params)


def _date(raw: str, *, required: bool) -> dt.datetime | None:
    if not raw.strip():
        if required:
            raise PageError(400, REFUSED, N_("web.manage.date_required"))
        return None
    try:
        return parse_local_datetime(raw)
    except ValueError as exc:
        raise PageError(400, REFUSED, N_("web.manage.bad_date"), value=raw.strip()[:40]) from exc


async def _form(request: web.Request) -> dict[str, str]:
    posted = await request.post()
    return {k: str(v).strip() for k, v in posted.items() if isinstance(v, str)}


def _unit_code(who: Viewer, units: dict[int, Any], raw: str) -> str:
    """The code of a unit the admin may act on, from the form's unit id."""
    unit_id = int(raw) if raw.isascii() and raw.isdigit() else -1
    if unit_id not in units or not who.sees(unit_id):
        raise PageError(404)
    return str(units[unit_id].code)


def _units(request: web.Request, who: Viewer) -> dict[int, Any]:
    with state(request).db.session() as s:
        return {u.id: u for u in store_admin.all_units(s) if u.id is not None and who.sees(u.id)}


async def manage_page(request: web.Request) -> web.Response:
    """The period's deadlines and extensions, opening a period, a reminder now, the members."""
    who = admin(request)
    st = state(request)
    with st.db.session() as s:
        periods = store_board.periods(s, resolve_framework)
        period = chosen_period(request, periods) if periods else None
        rows = {p.id: p for p in store_admin.list_periods(s)}
        extensions = store_admin.period_extensions(s, period.id) if period is not None else []
        members = [m for m in store_admin.list_members(s) if who.sees(m.unit.id or -1)]
        units = [u for u in store_admin.all_units(s) if u.id is not None and who.sees(u.id)]
    context = {
        "period": period,
        "periods": periods,
        "period_row": rows.get(period.id) if period is not None else None,
        "deadlines": DEADLINES,
        "extensions": extensions,
        "members": members,
        "units": units,
        "frameworks": [f.id for f in catalog.shipped()],
        "current_framework": request.query.get("framework")
        or (period.framework.id if period is not None else ""),
        "year": st.clock().year,
    }
    return render(request, "manage.html", context)


async def open_new_period(request: web.Request) -> web.Response:
    """`dtibot period open`: a name, a year, a framework and the deadlines (the default reminders)."""
    who = admin(request)
    form = await _form(request)
    name = form.get("name", "")[:200]
    year = form.get("year", "")
    if not name or not (year.isascii() and year.isdigit() and 2000 <= int(year) <= 2100):
        raise PageError(400, REFUSED, N_("web.manage.period_fields"))
    try:
        framework = catalog.resolve(form.get("framework", "")).framework
    except (LookupError, ValueError) as exc:
        raise PageError(400, REFUSED, N_("web.manage.framework_unknown")) from exc
    due = {d: _date(form.get(d, ""), required=d == "self_assessment_due") for d in DEADLINES}
    st = state(request)
    try:
        with st.db.session() as s:
            period = store_admin.open_period(
                s,
                name=name,
                year=int(year),
                framework_id=framework.id,
                framework_version=framework.version,
                now=st.clock(),
                self_assessment_due=due["self_assessment_due"],
                supplement_due=due["supplement_due"],
                appraisal_due=due["appraisal_due"],
                publication_due=due["publication_due"],
                reminder_policy_json=json.dumps(Policy().to_json()),
                operator=web_operator(who),
            )
            period_id = period.id
    except AdminError as exc:
        raise _refused(request, exc) from exc
    t = translator(request)
    flash_later(request, [t("web.manage.period_opened", name=name)])
    raise web.HTTPSeeOther(f"/manage?period={period_id}")


async def extend(request: web.Request) -> web.Response:
    """`dtibot period extend [--unit]`: one unit's deadline, or the period's, moved later, with a
    reason."""
    who = admin(request)
    form = await _form(request)
    st = state(request)
    with st.db.session() as s:
        period_ref = chosen_period(request, store_board.periods(s, resolve_framework))
    whole = form.get("unit", "") == ""  # the period's own deadline (`dtibot period extend` without --unit)
    code = None if whole else _unit_code(who, _units(request, who), form.get("unit", ""))
    deadline = form.get("deadline", "")
    due = _date(form.get("due", ""), required=True)
    assert due is not None
    try:
        with st.db.session() as s:
            period = store_admin.period_by_ref(s, str(period_ref.id))
            old = store_admin.extend_deadline(
                s, period, deadline, due, form.get("reason", "")[:500], st.clock(), code, web_operator(who)
            )
    except AdminError as exc:
        raise _refused(request, exc) from exc
    t = translator(request)
    label = t(f"deadline.{deadline}")
    flash_later(
        request,
        [
            t(
                "web.manage.extended",
                deadline=label,
                unit=code or t("web.manage.whole_period"),
                old=local(old) or "—",
                new=local(due),
            )
        ],
    )
    raise web.HTTPSeeOther(f"/manage?period={period_ref.id}")


async def remind(request: web.Request) -> web.Response:
    """A reminder to one unit now, through the scheduler's own reminders and the outbox."""
    who = admin(request)
    form = await _form(request)
    units = _units(request, who)
    _unit_code(who, units, form.get("unit", ""))
    st = state(request)
    planned = ReminderScheduler(st.db, st.clock).remind_unit(int(form["unit"]), operator=web_operator(who))
    t = translator(request)
    name = units[int(form["unit"])].name
    text = (
        t("web.manage.reminded", unit=name, count=len(planned))
        if planned
        else t("web.manage.nothing_to_remind", unit=name)
    )
    flash_later(request, [text])
    raise web.HTTPSeeOther(f"/manage?{request.query_string}")


async def remove(request: web.Request) -> web.Response:
    """`dtibot member remove`: the member's chat is told and from then on is a stranger's."""
    who = admin(request)
    raw = request.match_info["member"]
    member_id = int(raw) if raw.isascii() and raw.isdigit() else -1
    st = state(request)
    with st.db.session() as s:
        found = next((m for m in store_admin.list_members(s) if m.member.id == member_id), None)
    if found is None or not who.sees(found.unit.id or -1):
        raise PageError(404)
    if member_id == who.member_id:
        raise PageError(400, REFUSED, N_("web.manage.not_yourself"))
    try:
        with st.db.session() as s:
            row = remove_and_tell(s, member_id, st.clock(), web_operator(who))
    except AdminError as exc:
        raise _refused(request, exc) from exc
    t = translator(request)
    flash_later(request, [t("web.manage.removed", name=row.member.display_name or row.member.chat_id)])
    raise web.HTTPSeeOther("/manage#members")


async def invites_page(request: web.Request) -> web.Response:
    """Every invite of the admin's units: the unused ones with their link and QR code, to print."""
    who = admin(request)
    st = state(request)
    now = st.clock()
    with st.db.session() as s:
        listed = [i for i in store_admin.list_invites(s) if who.sees(i.unit.id or -1)]
        units = [u for u in store_admin.all_units(s) if u.id is not None and who.sees(u.id)]
    rows = []
    for item in reversed(listed):
        status = item.state(now)
        link = deep_link(item.invite.code) if status == "unused" else None
        rows.append(
            {
                "id": item.invite.id,
                "code": item.invite.code if status == "unused" else store_admin.masked_code(item.invite.code),
                "unit": item.unit,
                "role": item.invite.role,
                "expires": item.invite.expires_at,
                "state": status,
                "by": item.invite.created_by,
                "link": link,
                "qr": qr_svg(link) if link else None,
            }
        )
    only = request.query.get("show", "")
    if only == "unused":
        rows = [r for r in rows if r["state"] == "unused"]
    context = {"invites": rows, "units": units, "roles": ROLES, "username": bot_username(), "only": only}
    return render(request, "invites.html", context)


async def create(request: web.Request) -> web.Response:
    """`dtibot invite create`: a new code for a unit and a role."""
    who = admin(request)
    form = await _form(request)
    code = _unit_code(who, _units(request, who), form.get("unit", ""))
    days = form.get("days", "14")
    if not (days.isascii() and days.isdigit() and 1 <= int(days) <= 90):
        raise PageError(400, REFUSED, N_("web.manage.bad_days"))
    st = state(request)
    try:
        with st.db.session() as s:
            invite = store_admin.create_invite(
                s, code, form.get("role", ""), st.clock(), dt.timedelta(days=int(days)), web_operator(who)
            )
            made = invite.code
    except AdminError as exc:
        raise _refused(request, exc) from exc
    t = translator(request)
    flash_later(request, [t("web.manage.invite_created", code=made)])
    raise web.HTTPSeeOther("/manage/invites")


async def revoke(request: web.Request) -> web.Response:
    """`dtibot invite revoke`: an unused invite joins no one from now on."""
    who = admin(request)
    raw = request.match_info["invite"]
    st = state(request)
    with st.db.session() as s:
        found = next((i for i in store_admin.list_invites(s) if str(i.invite.id) == raw), None)
    if found is None or not who.sees(found.unit.id or -1):
        raise PageError(404)
    code = join_code(found.invite.code) or found.invite.code
    try:
        with st.db.session() as s:
            store_admin.revoke_invite(s, code, st.clock(), web_operator(who))
    except AdminError as exc:
        raise _refused(request, exc) from exc
    t = translator(request)
    flash_later(request, [t("web.manage.invite_revoked", code=store_admin.masked_code(code))])
    raise web.HTTPSeeOther("/manage/invites")


def routes() -> list[web.RouteDef]:
    return [
        web.get("/manage", manage_page),
        web.post("/manage/period", open_new_period),
        web.post("/manage/extend", extend),
        web.post("/manage/remind", remind),
        web.post("/manage/members/{member}/remove", remove),
        web.get("/manage/invites", invites_page),
        web.post("/manage/invites", create),
        web.post("/manage/invites/{invite}/revoke", revoke),
    ]
