"""The chat's way into the web workspace: `đăng nhập web` (or `/web`) gives a single-use link.

Pure like the rest of the engine: the token comes in the snapshot (`WebLinkOffer`, drawn by the
service), the engine decides whether the member may have another link now and says what to record
(`IssueWebLink`, the token's SHA-256 only) and what to reply (the link). A member may ask for a few
links an hour; one more is refused, and the refusal is recorded too.
"""

from __future__ import annotations

import datetime as dt
import hashlib

from flows.model import Decision, Inbound, InboundKind, IssueWebLink, Reply, Snapshot, msg
from flows.parse import clean, folded
from scoring.messages import N_

LINK_MINUTES = 10
LINKS_PER_HOUR = 5
LOGIN_PATH = "/login/"
_PHRASES = frozenset({"dang nhap web", "/web", "web", "dang nhap", "login", "/login", "/dangnhap"})


def asks_for_web_link(inbound: Inbound) -> bool:
    """The member asks for a sign-in link to the web workspace."""
    return (
        inbound.kind is InboundKind.TEXT
        and len(inbound.text) < 40
        and folded(clean(inbound.text)) in _PHRASES
    )


def token_digest(token: str) -> str:
    """What is stored of a link's or a session's token: its SHA-256, in hex."""
    return hashlib.sha256(token.encode()).hexdigest()


def link_url(base_url: str, token: str) -> str:
    return base_url.rstrip("/") + LOGIN_PATH + token


def web_link(snap: Snapshot, now: dt.datetime) -> Decision:
    """A sign-in link for the member who asked, unless they asked too often in the last hour."""
    offer = snap.web_link
    expires = now + dt.timedelta(minutes=LINK_MINUTES)
    if offer is None:
        return Decision(snap.session, (), (Reply((msg(N_("web.link_unavailable")),)),))
    if offer.recent >= LINKS_PER_HOUR:
        reply = Reply((msg(N_("web.link_limited"), count=LINKS_PER_HOUR),))
        return Decision(snap.session, (IssueWebLink(None, expires),), (reply,))
    url = link_url(offer.base_url, offer.token)
    reply = Reply((msg(N_("web.link"), url=url, minutes=LINK_MINUTES),))
    return Decision(snap.session, (IssueWebLink(token_digest(offer.token), expires),), (reply,))
