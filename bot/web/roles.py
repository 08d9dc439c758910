"""Who may act on the pages that change things, and how they are named in the audit trail.

Seeing is decided per request by storage/web.py (the member's role and unit); these are the checks of
the pages only admins use, and the operator every web action is audited as.
"""

from __future__ import annotations

from aiohttp import web

from bot.web.errors import PageError
from bot.web.pages import viewer
from storage.web import Viewer, WebRole


def admin(request: web.Request) -> Viewer:
    """The viewer, if they are a province (or district) admin: the only ones who change anything."""
    who = viewer(request)
    if who.role is not WebRole.ADMIN:
        raise PageError(403)
    return who


def web_operator(who: Viewer) -> str:
    """Who acted, as the audit trail's operator: marked as made on the web, with the member."""
    return f"web:{who.member_id}" + (f" {who.name}" if who.name else "")
