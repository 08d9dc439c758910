"""Signing in without a password, sessions and forged-request protection.

A member asks the chat for a link (`đăng nhập web`; an operator can print one with `dtibot web link`).
Opening it shows a page with one button: the link is used only by that button's POST, so a messenger
fetching the link for a preview does not use it up. The POST opens a session: a random token in an
`HttpOnly; SameSite=Lax` cookie (`Secure` whenever `DTI_WEB_URL` is https, as it is in production;
plain-http test and local runs leave it off so the browser keeps it), only its SHA-256 in the
database. Every request after that finds its member again in the database, and every POST must carry
the session's CSRF token (a hidden form field, or the `X-CSRF-Token` header htmx sends) and come from
this site (`Origin`, else `Referer`).
"""

from __future__ import annotations

import hmac
import secrets
from urllib.parse import urlsplit

from aiohttp import web

from bot.web.errors import Handler, PageError
from bot.web.pages import SESSION, VIEWER, render, state
from flows.web import token_digest
from scoring.messages import N_
from storage import web as store_web
from storage.web import LinkProblem

COOKIE = "dti_session"
CSRF_FIELD = "csrf"
CSRF_HEADER = "X-CSRF-Token"
PUBLIC = ("/login/", "/static/", "/signed-out", "/healthz")
_SAFE = ("GET", "HEAD", "OPTIONS")
FORM_CSRF = web.RequestKey("dti_form_csrf", str)

_PROBLEMS = {
    LinkProblem.UNKNOWN: (404, N_("web.link.unknown.title"), N_("web.link.unknown.body")),
    LinkProblem.USED: (410, N_("web.link.used.title"), N_("web.link.used.body")),
    LinkProblem.EXPIRED: (410, N_("web.link.expired.title"), N_("web.link.expired.body")),
    LinkProblem.MEMBER_GONE: (403, N_("web.link.member_gone.title"), N_("web.link.member_gone.body")),
}


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def same_site(request: web.Request) -> bool:
    """The request comes from a page of this workspace: its `Origin` (else `Referer`) is the public
    address or the host the request was sent to."""
    claimed = request.headers.get("Origin") or request.headers.get("Referer")
    if not claimed or claimed == "null":
        return False
    origin = _origin(claimed)
    return origin == _origin(state(request).base_url) or urlsplit(origin).netloc == request.host.lower()


def _refuse_forged(request: web.Request, expected: str | None) -> None:
    if not same_site(request):
        raise PageError(403, N_("web.error.cross_site.title"), N_("web.error.cross_site.body"))
    if expected is None:
        return
    given = request.headers.get(CSRF_HEADER, "")
    if not given:
        given = request.get(FORM_CSRF, "")
    if not given or not hmac.compare_digest(given.encode(), expected.encode()):
        raise PageError(403, N_("web.error.csrf.title"), N_("web.error.csrf.body"))


@web.middleware
async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Find the signed-in member of the cookie in the database (every request), and refuse a POST
    without this session's CSRF token or from another site."""
    if request.path.startswith(PUBLIC) or request.path == "/favicon.ico":
        if request.method not in _SAFE:
            _refuse_forged(request, None)
        return await handler(request)
    cookie = request.cookies.get(COOKIE, "")
    st = state(request)
    signed = None
    found = None
    if cookie:
        with st.db.session() as s:
            signed = store_web.signed_in(s, token_digest(cookie), st.clock())
            found = store_web.viewer(s, signed.member_id) if signed is not None else None
    if signed is None or found is None:
        raise PageError(401)
    request[SESSION] = signed
    request[VIEWER] = found
    if request.method not in _SAFE:
        if request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
            fields = await request.post()
            request[FORM_CSRF] = str(fields.get(CSRF_FIELD, ""))
        _refuse_forged(request, signed.csrf_token)
    return await handler(request)


async def login_page(request: web.Request) -> web.Response:
    """The page a sign-in link opens: one button that uses it (nothing is used by opening it)."""
    st = state(request)
    token = request.match_info["token"]
    with st.db.session() as s:
        problem = store_web.look_up_link(s, token_digest(token), st.clock())
    if problem is not None:
        status, title, body = _PROBLEMS[problem]
        raise PageError(status, title, body)
    return render(request, "login.html", {"token": token})


async def login(request: web.Request) -> web.Response:
    """Use the link once and open a session in this browser."""
    st = state(request)
    token = request.match_info["token"]
    session_token = secrets.token_urlsafe(32)
    with st.db.session() as s:
        used = store_web.use_link(
            s, token_digest(token), token_digest(session_token), secrets.token_urlsafe(24), st.clock()
        )
    if isinstance(used, LinkProblem):
        status, title, body = _PROBLEMS[used]
        raise PageError(status, title, body)
    response = web.HTTPSeeOther("/")
    response.set_cookie(COOKIE, session_token, httponly=True, secure=st.secure, samesite="Lax", path="/")
    raise response


async def logout(request: web.Request) -> web.Response:
    """Sign out this browser, or (`everywhere`) every session of the member."""
    st = state(request)
    signed = request[SESSION]
    everywhere = request.match_info.get("scope") == "everywhere"
    with st.db.session() as s:
        store_web.sign_out(s, signed.member_id, None if everywhere else signed.session_id, st.clock())
    response = web.HTTPSeeOther("/signed-out")
    response.del_cookie(COOKIE, path="/")
    raise response


async def signed_out(request: web.Request) -> web.Response:
    return render(request, "signed_out.html", {})


def routes() -> list[web.RouteDef]:
    return [
        web.get("/login/{token}", login_page),
        web.post("/login/{token}", login),
        web.post("/logout", logout),
        web.post("/logout/{scope:everywhere}", logout),
        web.get("/signed-out", signed_out),
    ]
