"""Every failure the workspace can meet gets a page in Vietnamese that says what happened and what to
do next, and changes nothing: an unknown or forbidden page, a missing session, a forged form, a
database that cannot be reached (the middleware turns `OperationalError` into 503)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web
from sqlalchemy.exc import OperationalError

from bot.service import Unavailable
from bot.web.pages import render
from scoring.messages import N_

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# status → (title key, explanation key) of the page shown when nothing more specific was said
_DEFAULTS = {
    400: (N_("web.error.bad_request.title"), N_("web.error.bad_request.body")),
    401: (N_("web.error.signed_out.title"), N_("web.error.signed_out.body")),
    403: (N_("web.error.forbidden.title"), N_("web.error.forbidden.body")),
    404: (N_("web.error.not_found.title"), N_("web.error.not_found.body")),
    405: (N_("web.error.bad_request.title"), N_("web.error.bad_request.body")),
    413: (N_("web.error.too_large.title"), N_("web.error.too_large.body")),
    503: (N_("web.error.unavailable.title"), N_("web.error.unavailable.body")),
}


class PageError(web.HTTPException):
    """A failure shown as a page: its status, title and explanation (message keys and parameters)."""

    def __init__(
        self, status: int, title: str | None = None, body: str | None = None, **params: object
    ) -> None:
        self.status_code = status
        super().__init__()
        default_title, default_body = _DEFAULTS.get(status, _DEFAULTS[400])
        self.title_key = title or default_title
        self.body_key = body or default_body
        self.params = params


def error_page(
    request: web.Request, status: int, title: str, body: str, params: dict[str, object]
) -> web.Response:
    return render(
        request,
        "error.html",
        {"status": status, "title_key": title, "body_key": body, "params": params},
        status,
    )


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Errors as pages: ours, aiohttp's (404, 405, 413), and an unreachable database (503)."""
    try:
        return await handler(request)
    except PageError as exc:
        return error_page(request, exc.status_code, exc.title_key, exc.body_key, exc.params)
    except web.HTTPException as exc:
        if exc.status_code in _DEFAULTS and exc.status_code >= 400:
            title, body = _DEFAULTS[exc.status_code]
            return error_page(request, exc.status_code, title, body, {})
        raise
    except (OperationalError, Unavailable) as exc:
        log.warning("web page %s: database unavailable (%s)", request.path, exc)
        title, body = _DEFAULTS[503]
        response = error_page(request, 503, title, body, {})
        response.headers["Retry-After"] = "30"
        return response
