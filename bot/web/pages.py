"""What every page shares: the application's state, the signed-in viewer, rendering in their language.

Text comes from the chat's Babel catalogs through `bot.i18n.Translator`: templates call `_("key",
name=value)` (Jinja2's i18n extension is installed with the same catalogs); the values are filled in
before Jinja2 escapes the whole text, so nothing a user typed reaches the page unescaped.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp_jinja2
from aiohttp import web

from bot.i18n import Translator
from bot.service import Service
from scoring.answers import VIETNAM_TZ
from storage.board import BoardCache
from storage.db import Database
from storage.evidence import EvidenceStore
from storage.web import SignedIn, Viewer


@dataclass
class WebState:
    """What the handlers share: the database, the evidence store, the service decisions go through,
    the clock, the public base URL and whether cookies are `Secure` (the URL is https)."""

    db: Database
    store: EvidenceStore
    service: Service
    clock: Callable[[], dt.datetime]
    base_url: str
    # what a decision's replies said, shown on the next page of that session (post, redirect, get);
    # kept in this process only: a restart loses at most a message already acted upon
    flashes: dict[int, list[str]] = field(default_factory=dict)
    board_cache: BoardCache = field(default_factory=BoardCache)  # see storage/board.py

    @property
    def secure(self) -> bool:
        return self.base_url.startswith("https://")


STATE = web.AppKey("dti_state", WebState)
VIEWER = web.RequestKey("dti_viewer", Viewer)
SESSION = web.RequestKey("dti_session", SignedIn)


def state(request: web.Request) -> WebState:
    return request.app[STATE]


def viewer(request: web.Request) -> Viewer:
    return request[VIEWER]


def translator(request: web.Request) -> Translator:
    found = request.get(VIEWER)
    return Translator(found.language if found is not None else "vi")


def local(value: dt.datetime | None, with_time: bool = True) -> str:
    """A time as officials read it: Vietnam time, dd/mm/yyyy HH:MM."""
    if value is None:
        return ""
    shown = value.astimezone(VIETNAM_TZ)
    return shown.strftime("%d/%m/%Y %H:%M" if with_time else "%d/%m/%Y")


def helpers(t: Translator) -> dict[str, Any]:
    """The template globals of one language: `_` (text), `num` (decimal comma), `when` (dates)."""

    def text(key: str, **params: object) -> str:
        return t(key, **params)

    def num(value: Decimal | int | float | str | None, places: int = 2) -> str:
        if value is None or value == "":
            return "–"
        return t.number(Decimal(str(value)), places)

    def action(code: str) -> str:
        key = f"web.action.{code}"
        return t(key) if t.has(key) else code

    return {"_": text, "gettext": text, "num": num, "when": local, "action": action, "lang": t.lang}


def render(
    request: web.Request, template: str, context: Mapping[str, Any], status: int = 200
) -> web.Response:
    """A page in the viewer's language, with the CSRF token and the viewer for the layout."""
    signed = request.get(SESSION)
    partial = request.headers.get("HX-Request") == "true"
    # what the last form's replies said goes on the next whole page (not a download, not a fragment)
    flash = state(request).flashes.pop(signed.session_id, []) if signed is not None and not partial else []
    full = {
        **helpers(translator(request)),
        "viewer": request.get(VIEWER),
        "csrf": signed.csrf_token if signed is not None else "",
        "flash": flash,
        "partial": partial,
        **context,
    }
    response = aiohttp_jinja2.render_template(template, request, full, status=status)
    response.headers["Cache-Control"] = "no-store"
    return response


def flash_later(request: web.Request, texts: list[str]) -> None:
    """Texts to show on the session's next page (after the redirect that follows a form)."""
    signed = request.get(SESSION)
    if signed is not None and texts:
        state(request).flashes.setdefault(signed.session_id, []).extend(texts)


XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


async def stream_file(
    request: web.Request, write: Callable[[Path], object], name: str, content_type: str
) -> web.StreamResponse:
    """Write a download (an export, a report) into a scratch file and stream it to the browser in chunks."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        write(path)
        response = web.StreamResponse(
            headers={
                "Content-Type": content_type,
                "Content-Disposition": f'attachment; filename="{name}"',
                "Content-Length": str(path.stat().st_size),
                "Cache-Control": "no-store",
            }
        )
        await response.prepare(request)
        with path.open("rb") as fh:
            while chunk := fh.read(64 * 1024):
                await response.write(chunk)
        await response.write_eof()
        return response
