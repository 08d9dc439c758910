"""The progress board of a period: a table of every unit the viewer may see, totals as tiles,
filters (district, state, search) and sorting as GET parameters (htmx swaps only the table), the
same rows as an xlsx download (text cells never formulas), and a chart of progress by day drawn on the
server. Province and district staff and reviewers see it; a unit's members have their unit's page."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from bot.i18n import Translator
from bot.service import resolve_framework
from bot.sheets import write_rows
from bot.web.errors import PageError
from bot.web.labels import COLUMNS
from bot.web.pages import XLSX, local, render, state, stream_file, translator, viewer
from scoring.answers import VIETNAM_TZ
from scoring.messages import N_
from scoring.numbers import ZERO
from storage import board as store_board
from storage.board import BoardRow
from storage.load import OpenPeriod
from storage.web import Viewer, WebRole

SORTS = ("code", "name", "district", "status", "answered", "missing", "claimed", "appraised", "activity")
STATE_KEYS = {
    "none": N_("web.state.none"),
    "draft": N_("web.state.draft"),
    "awaiting_leader": N_("web.state.awaiting_leader"),
    "submitted": N_("web.state.submitted"),
    "returned": N_("web.state.returned"),
    "appraised": N_("web.state.appraised"),
}
REMINDER_KINDS = ("sent", "queued", "deferred", "undeliverable")


PAGE = 200  # rows per page; the tiles and the download cover every row the filters keep


@dataclass(frozen=True)
class Filters:
    period: int | None
    district: int | None
    status: str | None
    query: str
    sort: str
    descending: bool
    page: int

    def url(self, path: str = "/board", **changes: object) -> str:
        """This board's address with some parameters changed (a sort, a page)."""
        params = {
            "period": self.period,
            "district": self.district,
            "state": self.status,
            "q": self.query,
            "sort": self.sort,
            "dir": "desc" if self.descending else "asc",
            "page": self.page,
            **changes,
        }
        return path + "?" + urlencode({k: v for k, v in params.items() if v not in (None, "")})

    def sort_url(self, key: str) -> str:
        descending = not self.descending if key == self.sort else False
        return self.url(sort=key, dir="desc" if descending else "asc", page=1)

    @staticmethod
    def of(request: web.Request) -> Filters:
        q = request.query
        district = q.get("district", "")
        status = q.get("state", "")
        sort = q.get("sort", "code")
        period = q.get("period", "")
        page = q.get("page", "1")

        def number(text: str) -> int | None:
            return int(text) if text.isascii() and text.isdigit() and len(text) < 10 else None

        return Filters(
            number(period),
            number(district),
            status if status in STATE_KEYS else None,
            q.get("q", "").strip()[:100],
            sort if sort in SORTS else "code",
            q.get("dir") == "desc",
            max(number(page) or 1, 1),
        )

    def keep(self, row: BoardRow) -> bool:
        if self.district is not None and row.district_id != self.district:
            return False
        if self.status is not None and row.status != self.status:
            return False
        needle = self.query.casefold()
        return not needle or needle in row.name.casefold() or needle in row.code.casefold()


def _sort_key(sort: str) -> Callable[[BoardRow], Any]:
    keys: dict[str, Callable[[BoardRow], Any]] = {
        "code": lambda r: r.code,
        "name": lambda r: r.name.casefold(),
        "district": lambda r: (r.district or "").casefold(),
        "status": lambda r: list(STATE_KEYS).index(r.status),
        "answered": lambda r: r.answered,
        "missing": lambda r: r.evidence_missing,
        "claimed": lambda r: r.claimed,
        "appraised": lambda r: r.appraised if r.appraised is not None else Decimal(-1),
        "activity": lambda r: r.last_activity or dt.datetime.min.replace(tzinfo=dt.UTC),
    }
    return keys[sort]


def staff(request: web.Request) -> Viewer:
    """The viewer, if the board is theirs to see (staff and reviewers)."""
    who = viewer(request)
    if who.role is WebRole.UNIT:
        raise PageError(403)
    return who


def chosen_period(request: web.Request, periods: list[OpenPeriod]) -> OpenPeriod:
    if not periods:
        raise PageError(404, N_("web.error.no_period.title"), N_("web.error.no_period.body"))
    wanted = request.query.get("period", "")
    if not wanted:
        return periods[0]
    for p in periods:
        if str(p.id) == wanted:
            return p
    raise PageError(404)


async def _rows(
    request: web.Request,
) -> tuple[OpenPeriod, list[OpenPeriod], list[BoardRow], list[BoardRow], Filters]:
    who = staff(request)
    st = state(request)

    def read() -> tuple[list[OpenPeriod], OpenPeriod, list[BoardRow]]:
        with st.db.session() as s:
            periods = store_board.periods(s, resolve_framework)
            period = chosen_period(request, periods)
            return periods, period, store_board.board(s, period, who.visible, st.board_cache)

    # after many changes the board scores every changed unit again (seconds): never on the event loop
    periods, period, rows = await asyncio.to_thread(read)
    filters = Filters.of(request)
    shown = sorted(
        (r for r in rows if filters.keep(r)), key=_sort_key(filters.sort), reverse=filters.descending
    )
    return period, periods, rows, shown, filters


def tiles(rows: list[BoardRow]) -> dict[str, object]:
    states = Counter(r.status for r in rows)
    reminders = Counter[str]()
    for r in rows:
        reminders.update(r.reminders)
    return {
        "units": len(rows),
        "states": {k: states.get(k, 0) for k in STATE_KEYS},
        "answered": sum(r.answered for r in rows),
        "possible": sum(r.total for r in rows),
        "missing": sum(r.evidence_missing for r in rows),
        "claimed": sum((r.claimed for r in rows), ZERO),
        "appraised": sum((r.appraised or ZERO for r in rows), ZERO),
        "reminders": {k: reminders.get(k, 0) for k in REMINDER_KINDS},
    }


async def board_page(request: web.Request) -> web.Response:
    period, periods, rows, shown, filters = await _rows(request)
    districts = sorted(
        {(r.district_id, r.district) for r in rows if r.district_id is not None}, key=lambda d: str(d[1])
    )
    filters = replace(filters, period=period.id)
    pages = max(1, -(-len(shown) // PAGE))
    page = min(filters.page, pages)
    filters = replace(filters, page=page)
    t = translator(request)
    context = {
        "period": period,
        "periods": periods,
        "rows": shown[(page - 1) * PAGE : page * PAGE],
        "count": len(shown),
        "first": (page - 1) * PAGE + 1 if shown else 0,
        "pages": pages,
        "labels": {key: t(key) for key in COLUMNS},
        "state_labels": {key: t(label) for key, label in STATE_KEYS.items()},
        "tiles": tiles(rows),
        "filters": filters,
        "districts": districts,
        "state_keys": STATE_KEYS,
        "sorts": SORTS,
    }
    template = "board_table.html" if request.headers.get("HX-Request") == "true" else "board.html"
    return render(request, template, context)


def sheet_rows(t: Translator, rows: list[BoardRow]) -> list[list[object]]:
    """The board as spreadsheet rows: a header, then one row per unit (numbers as numbers)."""
    header: list[object] = [
        t(k)
        for k in (
            "web.col.code",
            "web.col.unit",
            "web.col.district",
            "web.col.state",
            "web.col.answered",
            "web.col.total",
            "web.col.missing",
            "web.col.claimed",
            "web.col.appraised",
            "web.col.activity",
            "web.col.deadline",
            "web.col.sent",
            "web.col.queued",
            "web.col.deferred",
            "web.col.undeliverable",
        )
    ]
    out: list[list[object]] = [header]
    for r in rows:
        out.append(
            [
                r.code,
                r.name,
                r.district or "",
                t(STATE_KEYS[r.status]),
                r.answered,
                r.total,
                r.evidence_missing,
                float(r.claimed),
                float(r.appraised) if r.appraised is not None else "",
                local(r.last_activity),
                local(r.deadline),
                *(r.reminders.get(k, 0) for k in REMINDER_KINDS),
            ]
        )
    return out


async def board_xlsx(request: web.Request) -> web.StreamResponse:
    period, _, _, shown, _ = await _rows(request)
    t = translator(request)
    rows = sheet_rows(t, shown)
    return await stream_file(
        request,
        lambda out: write_rows(out, rows, title=t("web.board.title")),
        f"tien-do-{period.id}.xlsx",
        XLSX,
    )


def _by_day(times: list[dt.datetime]) -> Counter[dt.date]:
    return Counter(t.astimezone(VIETNAM_TZ).date() for t in times)


def draw_progress(t: Translator, answers: list[dt.datetime], submitted: list[dt.datetime]) -> bytes:
    """Answers per day (bars) and units submitted per day (line), by Vietnam day, as a PNG."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    per_answer, per_submit = _by_day(answers), _by_day(submitted)
    active = set(per_answer) | set(per_submit)
    first = min(active, default=None)
    span = (max(active) - first).days + 1 if first is not None else 0
    days = [first + dt.timedelta(days=n) for n in range(span)] if first is not None else []  # quiet days too
    fig = Figure(figsize=(8, 3.2), dpi=110)
    ax = fig.add_subplot()
    positions = range(len(days))
    ax.bar(positions, [per_answer.get(d, 0) for d in days], color="#1f6fb2", label=t("web.chart.answers"))
    other = ax.twinx()
    other.plot(
        positions,
        [per_submit.get(d, 0) for d in days],
        color="#d9822b",
        marker="o",
        label=t("web.chart.submitted"),
    )
    step = max(1, len(days) // 10)
    ax.set_xticks(list(positions)[::step], [d.strftime("%d/%m") for d in days][::step])
    ax.set_ylabel(t("web.chart.answers"))
    other.set_ylabel(t("web.chart.submitted"))
    for axis in (ax, other):  # counts: whole numbers from 0
        axis.set_ylim(bottom=0)
        axis.yaxis.set_major_locator(MaxNLocator(integer=True))
    if not days:
        ax.text(0.5, 0.5, t("web.chart.empty"), ha="center", va="center", transform=ax.transAxes)
    fig.legend(loc="upper center", ncols=2, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 0.92))
    out = io.BytesIO()
    fig.savefig(out, format="png")
    return out.getvalue()


async def board_chart(request: web.Request) -> web.Response:
    who = staff(request)
    st = state(request)
    t = translator(request)

    def draw() -> bytes:
        with st.db.session() as s:
            period = chosen_period(request, store_board.periods(s, resolve_framework))
            answers, submitted = store_board.progress(s, period.id, sorted(who.visible))
        return draw_progress(t, answers, submitted)

    png = await asyncio.to_thread(draw)
    return web.Response(body=png, content_type="image/png", headers={"Cache-Control": "no-store"})


def routes() -> list[web.RouteDef]:
    return [
        web.get("/board", board_page),
        web.get("/board.xlsx", board_xlsx),
        web.get("/board/chart.png", board_chart),
    ]
