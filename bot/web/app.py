"""The web workspace application: routes, middlewares, templates, and `dtibot run web`.

Pages are rendered on the server with Jinja2 (autoescape on) from the same catalogs as the chat;
static files are the vendored htmx and one stylesheet. The database work of a page is short and
synchronous (SQLAlchemy), as in the bot's webhooks.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import aiohttp_jinja2
import jinja2
from aiohttp import web

from bot.i18n import Translator
from bot.service import Service, resolve_framework, utc_now, web_url
from bot.web import appraise, auth, board, errors, manage, unit
from bot.web import frameworks as framework_pages
from bot.web import results as results_pages
from bot.web.pages import STATE, WebState, helpers, viewer
from storage import board as store_board
from storage.db import Database
from storage.evidence import EvidenceStore
from storage.web import WebRole

log = logging.getLogger(__name__)
HERE = Path(__file__).resolve().parent
MAX_UPLOAD = 21 * 1024 * 1024  # the evidence store's 20 MB and the form around it


async def home(request: web.Request) -> web.Response:
    """Where a signed-in member starts: the board for staff and reviewers, their unit for a unit."""
    who = viewer(request)
    if who.role is WebRole.UNIT:
        raise web.HTTPSeeOther(f"/units/{who.unit_id}")
    raise web.HTTPSeeOther("/board")


# The pages need nothing from elsewhere: scripts, styles, pictures and PDFs all come from this site.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; object-src 'self'; "
        "frame-ancestors 'self'; base-uri 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "SAMEORIGIN",
    "Referrer-Policy": "same-origin",  # a sign-in link's token never leaves in a Referer
}


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)


def warm_board(db: Database, cache: store_board.BoardCache) -> None:
    """Compute every period's board once, so the first person to open it does not wait for the
    claimed points of every unit (kept per assessment revision afterwards; see storage/board.py)."""
    try:
        with db.session() as s:
            for period in store_board.periods(s, resolve_framework):
                store_board.board(s, period, None, cache)
    except Exception as exc:  # a database that is down: the pages say so when they are opened
        log.warning("could not prepare the progress board at start: %r", exc)


async def _warm_in_background(app: web.Application) -> None:
    asyncio.get_running_loop().run_in_executor(None, warm_board, app[STATE].db, app[STATE].board_cache)


async def healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok")


def make_app(
    db: Database,
    store: EvidenceStore,
    service: Service | None = None,
    clock: Callable[[], dt.datetime] = utc_now,
    base_url: str | None = None,
    warm: bool = False,
) -> web.Application:
    """The workspace on `db` and `store`; decisions go through `service` (a new one on `db`)."""
    app = web.Application(middlewares=[errors.errors, auth.authenticate], client_max_size=MAX_UPLOAD)
    app.on_response_prepare.append(security_headers)
    if warm:
        app.on_startup.append(_warm_in_background)
    app[STATE] = WebState(db, store, service or Service(db, clock=clock), clock, base_url or web_url())
    env = aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        extensions=["jinja2.ext.i18n"],
        undefined=jinja2.StrictUndefined,
    )
    vi = helpers(Translator("vi"))
    cast(Any, env).install_gettext_callables(  # added by the i18n extension
        vi["_"], lambda one, many, n: vi["_"](one if n == 1 else many), newstyle=False
    )
    env.globals.update(vi)
    app.router.add_static("/static/", HERE / "static")
    app.router.add_routes(
        [
            web.get("/", home),
            web.get("/healthz", healthz),
            *auth.routes(),
            *board.routes(),
            *unit.routes(),
            *appraise.routes(),
            *results_pages.routes(),
            *manage.routes(),
            *framework_pages.routes(),
        ]
    )
    return app


async def serve(app: web.Application, host: str, port: int, ready: Callable[[int], None]) -> None:
    """Run until SIGINT or SIGTERM."""
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    ready(port)
    await stop.wait()
    await runner.cleanup()
